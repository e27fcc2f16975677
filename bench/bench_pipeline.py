"""Benchmark: `engagement run` step by step on generated data, on this machine.

    python bench/bench_pipeline.py                 # 1M events
    python bench/bench_pipeline.py --events 200000 --runs 2

Reports seconds and rows/s per step, the rerun (idempotent MERGE) and peak
memory, and writes bench/results/pipeline-<events>.md and .json. It asserts
nothing: figures are for people and the README.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from engagement.engines.duckdb import DuckDBEngine
from engagement.generate import generate
from engagement.pipeline import run_pipeline

HERE = Path(__file__).resolve().parent


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    return f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, {platform.system()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="clickstream events to generate")
    parser.add_argument("--customers", type=int, default=None, help="customers (default events / 50)")
    parser.add_argument("--runs", type=int, default=2, help="runs over the same source: the first loads, the rest are reruns")
    parser.add_argument("--work", type=Path, default=Path("/tmp/engagement-bench"), help="scratch folder")
    args = parser.parse_args()
    customers = args.customers or max(args.events // 50, 100)

    src = args.work / f"src-{args.events}"
    t0 = time.perf_counter()
    if (src / "manifest.json").exists():
        gen_note = f"source reused from {src}"
    else:
        generate(src, customers=customers, events=args.events, days=30, seed=7, defect_rate=0.02)
        gen_note = f"source generated in {time.perf_counter() - t0:.1f}s"
    gen_seconds = time.perf_counter() - t0
    wh = args.work / f"bench-{args.events}.duckdb"
    for stale in (wh, wh.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)

    results = []
    for i in range(args.runs):
        engine = DuckDBEngine(wh)
        t0 = time.perf_counter()
        result = run_pipeline(engine, src)
        total = time.perf_counter() - t0
        engine.close()
        results.append((total, result))
        print(f"run {i + 1}: {result.status.value} in {total:.2f}s", file=sys.stderr)

    records = {i.table: i.read for i in results[0][1].ingest}
    all_records = sum(records.values())
    lines = [
        f"# Pipeline benchmark: {args.events:,} events",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}; DuckDB engine; "
        f"{gen_note} ({customers:,} customers, 30 days, defect rate 2%).",
        "",
        "| step | table | rows | first run s | rows/s | rerun s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    out_steps = []
    for first, again in zip(results[0][1].steps, results[-1][1].steps):
        rows_in = first.rows_read or 0
        rate = rows_in / first.seconds if first.seconds and first.step in ("ingest", "merge") else None
        shown = f"{first.files} files" if first.step == "discover" else f"{rows_in:,}"
        lines.append(
            f"| {first.step} | {first.table_name or ''} | {shown} | {first.seconds:.2f} | "
            f"{f'{rate:,.0f}' if rate else ''} | {again.seconds:.2f} |"
        )
        out_steps.append({"step": first.step, "table": first.table_name, "rows": rows_in,
                          "seconds": first.seconds, "rerun_seconds": again.seconds})
    first_total, last_total = results[0][0], results[-1][0]
    lines += [
        f"| **total** | | {all_records:,} | **{first_total:.2f}** | {all_records / first_total:,.0f} | "
        f"{last_total:.2f} |",
        "",
        f"Peak RSS of the benchmark process: {peak_rss_mb():,.0f} MB.",
    ]
    text = "\n".join(lines) + "\n"
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"pipeline-{args.events}.md").write_text(text)
    (out / f"pipeline-{args.events}.json").write_text(json.dumps({
        "events": args.events, "customers": customers, "machine": machine(), "generate_seconds": gen_seconds,
        "total_seconds": first_total, "rerun_seconds": last_total, "peak_rss_mb": peak_rss_mb(), "steps": out_steps,
    }, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
