"""Benchmark: what an incremental run costs next to a full one, on this machine.

    python bench/bench_incremental.py                  # 1M events over 100 daily files
    python bench/bench_incremental.py --events 10000000 --days 100

Generates a source (or reuses it), lands every daily clickstream file but the last, runs the
pipeline (a full load), lands the last file (1/100 of the files with the default 100 days: the
issue's "1% new files") and runs again (incremental); then times a --full-refresh run over
the same final folder.
Writes bench/results/incremental-<events>.md. It asserts nothing: figures are for people.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from engagement.config import load_settings
from engagement.engines.duckdb import DuckDBEngine
from engagement.generate import generate
from engagement.pipeline import run_pipeline

HERE = Path(__file__).resolve().parent


def timed(warehouse: Path, source: Path, **kwargs) -> tuple[float, int]:
    """Seconds for one run (opening to closing the warehouse) and the records it read."""
    started = time.perf_counter()
    engine = DuckDBEngine(warehouse, memory_limit=load_settings().duckdb_memory_limit)  # as `engagement run`
    try:
        result = run_pipeline(engine, source, **kwargs)
        assert result.status.value == "SUCCEEDED", result.error
    finally:
        engine.close()
    return time.perf_counter() - started, sum(i.read for i in result.ingest)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=100, help="daily clickstream files; the last one arrives late")
    parser.add_argument("--work", type=Path, default=Path("/tmp/engagement-bench"))
    args = parser.parse_args()
    full = args.work / f"src-{args.events}-{args.days}d"
    if not (full / "manifest.json").exists():
        generate(full, customers=max(args.events // 50, 100), events=args.events, days=args.days, seed=7,
                 defect_rate=0.02)
    landing = args.work / f"landing-{args.events}"
    shutil.rmtree(landing, ignore_errors=True)
    days = sorted(p.name for p in (full / "clickstream").iterdir())
    shutil.copytree(full / "customers", landing / "customers")
    for day in days[:-1]:
        shutil.copytree(full / "clickstream" / day, landing / "clickstream" / day)
    warehouse = args.work / f"incremental-{args.events}-{args.days}d.duckdb"
    warehouse.unlink(missing_ok=True)
    first, first_read = timed(warehouse, landing)
    shutil.copytree(full / "clickstream" / days[-1], landing / "clickstream" / days[-1])
    all_files = sum(1 for p in landing.rglob("*") if p.is_file())
    new_files = sum(1 for p in (landing / "clickstream" / days[-1]).rglob("*") if p.is_file())
    incremental, incremental_read = timed(warehouse, landing)
    refresh, refresh_read = timed(warehouse, landing, full_refresh=True)
    lines = [
        f"# Incremental vs full runs, {args.events:,} events over {len(days)} daily files",
        "",
        "| run | records read | seconds | vs full refresh |",
        "|---|---:|---:|---:|",
        f"| first load ({len(days) - 1} days) | {first_read:,} | {first:.2f} | |",
        f"| incremental (+1 day: {new_files} of {all_files} files) | {incremental_read:,} | {incremental:.2f} "
        f"| {incremental / refresh:.1%} |",
        f"| full refresh ({len(days)} days) | {refresh_read:,} | {refresh:.2f} | 100% |",
    ]
    out = HERE / "results" / f"incremental-{args.events}-{args.days}d.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
