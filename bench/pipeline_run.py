"""One `engagement run` on the embedded DuckDB engine, timed, for bench/bench_compare.py.

    python bench/pipeline_run.py --source DIR --warehouse FILE.duckdb [--result FILE.json]

What `engagement run --engine duckdb` does, through the package (engine, run_pipeline with
the default checks, close), without the terminal report and the alert. The time runs from
opening the warehouse to closing it (its checkpoint included).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

from engagement.config import load_settings
from engagement.engines.duckdb import DuckDBEngine
from engagement.pipeline import Observer, run_pipeline


def peak_rss() -> int:
    """Peak RSS of this process so far, in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run(source: Path, warehouse: Path) -> dict:
    started = time.perf_counter()
    peaks: list[int] = []
    engine = DuckDBEngine(warehouse, memory_limit=load_settings().duckdb_memory_limit)  # as `engagement run`
    result = run_pipeline(engine, source, observer=Observer(step_finished=lambda _step: peaks.append(peak_rss())))
    t0 = time.perf_counter()
    engine.close()
    closed = time.perf_counter() - t0
    steps = [{"step": s.step + (f" {s.table_name}" if s.table_name else ""), "seconds": s.seconds,
              "rows": s.rows_read if s.step in ("ingest", "merge") else None, "status": s.status.value,
              "peak_rss": peak} for s, peak in zip(result.steps, peaks)]
    steps.append({"step": "close (checkpoint)", "seconds": closed, "peak_rss": peak_rss()})
    orphans = next((c.metric_value for c in result.checks if c.check_name == "fact_user_known"), None)
    return {
        "contender": "pipeline",
        "seconds": time.perf_counter() - started,
        "status": result.status.value,
        "error": result.error,
        "steps": steps,
        "aggregates": {"orphan_events": None if orphans is None else int(orphans)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True, help="source folder (customers/, clickstream/)")
    parser.add_argument("--warehouse", type=Path, required=True, help="DuckDB warehouse file")
    parser.add_argument("--result", type=Path, help="write the timings as JSON here")
    args = parser.parse_args()
    result = run(args.source, args.warehouse)
    for s in result["steps"]:
        print(f"{s['step']:<40} {s['seconds']:8.2f} s", file=sys.stderr)
    print(f"{'total':<40} {result['seconds']:8.2f} s  {result['status']}", file=sys.stderr)
    if args.result:
        args.result.write_text(json.dumps(result, indent=2))
    return 0 if result["status"] == "SUCCEEDED" else 3


if __name__ == "__main__":
    raise SystemExit(main())
