"""Run bench/bare_duckdb.sql over a source folder, timing each "-- step:" section.

    python bench/bare_duckdb.py --source DIR --warehouse FILE.duckdb [--result FILE.json]

The warehouse file is created when missing (bench_compare.py always starts from a fresh one).
Prints the steps' seconds; with --result, writes them and the aggregates as JSON for
bench/bench_compare.py.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import time
from pathlib import Path

import duckdb

SCRIPT = Path(__file__).resolve().with_name("bare_duckdb.sql")
STEP = re.compile(r"^-- step: (.+)$", re.MULTILINE)


def sections(text: str) -> list[tuple[str, str]]:
    """(name, SQL) of the set-up before the first step marker, then of every step."""
    parts = STEP.split(text)
    return [("setup", parts[0])] + list(zip(parts[1::2], parts[2::2]))


def peak_rss() -> int:
    """Peak RSS of this process so far, in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run(source: Path, warehouse: Path) -> dict:
    """Run the script's sections in one connection; the time includes closing the file (its checkpoint)."""
    started = time.perf_counter()
    con = duckdb.connect(str(warehouse))
    con.execute("SET VARIABLE src = ?", [str(source.resolve())])
    steps = []
    for name, sql in sections(SCRIPT.read_text(encoding="utf-8")):
        t0 = time.perf_counter()
        con.execute(sql)
        steps.append({"step": name, "seconds": time.perf_counter() - t0, "peak_rss": peak_rss()})
    (orphans,) = con.execute("SELECT orphan_events FROM load_summary").fetchall()[0]
    per_day_type = {f"{day}|{etype}": n for day, etype, n in
                    con.execute("SELECT day, event_type, events FROM events_per_day_type").fetchall()}
    t0 = time.perf_counter()
    con.close()
    steps.append({"step": "close (checkpoint)", "seconds": time.perf_counter() - t0, "peak_rss": peak_rss()})
    return {"contender": "bare-duckdb", "seconds": time.perf_counter() - started, "steps": steps,
            "aggregates": {"orphan_events": orphans, "events_per_day_type": per_day_type}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True, help="source folder (customers/, clickstream/)")
    parser.add_argument("--warehouse", type=Path, required=True, help="DuckDB file to load")
    parser.add_argument("--result", type=Path, help="write the timings and aggregates here as JSON")
    args = parser.parse_args()
    result = run(args.source, args.warehouse)
    for s in result["steps"]:
        print(f"{s['step']:<28} {s['seconds']:8.2f} s", file=sys.stderr)
    print(f"{'total':<28} {result['seconds']:8.2f} s", file=sys.stderr)
    if args.result:
        args.result.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
