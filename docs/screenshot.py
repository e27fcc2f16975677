"""Take the README's screenshot of the dashboard's Overview, the way the browser test sees it.

    python docs/screenshot.py                 # writes docs/dashboard_overview.png

Builds a demo warehouse in a temporary folder (the `make demo` source: 2,000 customers,
100,000 events over 7 days with 2% defects, landed over three runs), starts
`engagement dashboard` on a free loopback port and photographs the Overview with
Debian's Chromium through Playwright, with the waits of engagement.dashboard.browser.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import datetime as dt
from pathlib import Path

from engagement.dashboard.browser import browser_page, wait_until_drawn
from engagement.dashboard.launch import serve
from engagement.engines.duckdb import DuckDBEngine
from engagement.generate import generate
from engagement.pipeline import run_pipeline

HERE = Path(__file__).resolve().parent


def demo_warehouse(root: Path) -> Path:
    """A warehouse loaded by three runs as days of events land (3, then 2, then 2 more days)."""
    full = root / "generated"
    # the last day is yesterday, as for `make demo`: the freshness check sees recent data
    generate(full, customers=2_000, events=100_000, days=7, start_date=dt.date.today() - dt.timedelta(days=7))
    landing = root / "landing"
    shutil.copytree(full / "customers", landing / "customers")
    days = sorted(p.name for p in (full / "clickstream").iterdir())
    warehouse = root / "warehouse.duckdb"
    engine = DuckDBEngine(warehouse)
    try:
        for batch in (days[:3], days[3:5], days[5:]):
            for day in batch:
                shutil.copytree(full / "clickstream" / day, landing / "clickstream" / day)
            print(f"run over {len(list((landing / 'clickstream').iterdir()))} days:",
                  run_pipeline(engine, landing).status.value, file=sys.stderr)
    finally:
        engine.close()
    return warehouse


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE / "dashboard_overview.png", help="PNG to write")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="engagement-screenshot-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGEMENT_")}
        env["ENGAGEMENT_WAREHOUSE"] = str(demo_warehouse(Path(tmp)))
        with serve(env) as url, browser_page(width=1400, height=1000) as page:
            page.goto(url)
            wait_until_drawn(page)
            page.screenshot(path=args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
