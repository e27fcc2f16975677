"""Benchmark: how long each dashboard page takes on a big DuckDB warehouse, on this machine.

    python bench/bench_dashboard.py                      # 10M events (builds the warehouse once)
    python bench/bench_dashboard.py --events 1000000 --repeat 5

The warehouse is loaded by two runs of the pipeline (the first half of the days, then
all of them) and kept in --work for the next time. For each page it measures:

* data: the page's queries through the dashboard's own Reader with nothing cached (open
  the file read-only, run the page's engagement.insights functions, close);
* render: the whole page through Streamlit's AppTest (queries + figures + widgets), with
  nothing cached (the first view after a run), and again once the TTL expired without a
  new run (the Reader checks the data version and reuses its answers).

Target: every page under 2 s. It asserts nothing (no timing in tests); it writes
bench/results/dashboard-<events>.md and .json for the README.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
APP = HERE.parent / "streamlit_app" / "app.py"
TARGET_SECONDS = 2.0


def machine() -> str:
    return f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, {platform.system()}"


def build(work: Path, events: int) -> tuple[Path, str]:
    """The warehouse (built unless it is already there) and a note on how it came about."""
    from engagement.engines.duckdb import DuckDBEngine
    from engagement.generate import generate
    from engagement.pipeline import run_pipeline

    warehouse = work / f"dashboard-{events}.duckdb"
    if warehouse.exists():
        return warehouse, f"warehouse reused from {warehouse}"
    src = work / f"src-{events}"
    t0 = time.perf_counter()
    if not (src / "manifest.json").exists():
        generate(src, customers=max(events // 50, 100), events=events, days=30, seed=7, defect_rate=0.02)
    notes = [f"source {src} ({time.perf_counter() - t0:.0f} s)"]
    landing = work / f"landing-{events}"
    shutil.rmtree(landing, ignore_errors=True)
    shutil.copytree(src / "customers", landing / "customers")
    days = sorted(p.name for p in (src / "clickstream").iterdir())
    partial = warehouse.with_suffix(".building")
    partial.unlink(missing_ok=True)
    engine = DuckDBEngine(partial)
    try:
        for batch in (days[: len(days) // 2], days[len(days) // 2:]):
            for day in batch:
                shutil.copytree(src / "clickstream" / day, landing / "clickstream" / day, copy_function=os.link)
            t0 = time.perf_counter()
            result = run_pipeline(engine, landing)
            notes.append(f"run over {len(list((landing / 'clickstream').iterdir()))} days: "
                         f"{result.status.value} in {time.perf_counter() - t0:.0f} s")
            print(notes[-1], file=sys.stderr)
    finally:
        engine.close()
    partial.rename(warehouse)
    shutil.rmtree(landing)
    return warehouse, "; ".join(notes)


def timed(work: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        work()
        out.append(time.perf_counter() - t0)
    return out


def data_work(warehouse: Path) -> dict[str, Callable[[], Any]]:
    """Each page's reads as the page makes them, through a new Reader each time (nothing cached)."""
    from engagement import insights
    from engagement.config import load_settings
    from engagement.dashboard.access import Reader, Warehouse

    settings = load_settings(warehouse=warehouse, engine="duckdb")
    probe = Reader(Warehouse(settings), ttl=0)
    latest = probe.read(insights.overview).value.run["run_id"]
    last = probe.read(insights.event_days).value[1]
    week = insights.Period(last - timedelta(days=6), last)

    def page(*reads: tuple) -> Callable[[], None]:
        def go() -> None:
            reader = Reader(Warehouse(settings), ttl=0)
            for fn, *args in reads:
                snap = reader.read(fn, *args)
                assert snap.value is not None and not snap.locked, fn.__name__
        return go

    return {
        "Overview": page((insights.run_days,), (insights.overview,)),
        "Runs": page((insights.run_days,), (insights.runs, insights.RunFilter()), (insights.run_detail, latest)),
        "Data quality": page((insights.run_days,), (insights.check_catalog,),
                             (insights.quality, insights.QualityFilter())),
        "Engagement": page((insights.run_days,), (insights.event_days,), (insights.engagement, insights.Period())),
        "Engagement, last 7 days": page((insights.run_days,), (insights.event_days,), (insights.engagement, week)),
    }


def render_work(warehouse: Path, cached: bool) -> dict[str, Callable[[], Any]]:
    """Each page through AppTest with ENGAGEMENT_DASHBOARD_TTL=0: with ``cached``, after the
    page was shown once (the answers are checked against the data version, not recomputed);
    without, from nothing (the process-wide reader is dropped first)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ.update(ENGAGEMENT_WAREHOUSE=str(warehouse), ENGAGEMENT_ENGINE="duckdb", ENGAGEMENT_DASHBOARD_TTL="0")

    def run(path: str) -> None:
        at = AppTest.from_file(str(APP), default_timeout=120)
        at.switch_page(path).run()
        assert not at.exception and not at.error, (path, at.exception, at.error)
        assert at.get("plotly_chart"), path

    def page(path: str) -> Callable[[], None]:
        def go() -> None:
            if not cached:
                st.cache_resource.clear()
            run(path)
        return go

    pages = {name: f"views/{p}.py" for name, p in
             (("Overview", "overview"), ("Runs", "runs"), ("Data quality", "quality"), ("Engagement", "engagement"))}
    if cached:
        st.cache_resource.clear()
        for path in pages.values():
            run(path)
    return {name: page(path) for name, path in pages.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000, help="clickstream events to generate")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per page (the median is reported)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/engagement-bench"), help="scratch folder")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    warehouse, note = build(args.work, args.events)
    from engagement.engines.duckdb import DuckDBEngine

    eng = DuckDBEngine(warehouse, read_only=True)
    counts = eng.table_counts()
    eng.close()

    data = {name: timed(work, args.repeat) for name, work in data_work(warehouse).items()}
    render_work(warehouse, cached=False)["Overview"]()  # the first script run imports and compiles: not a page's cost
    render = {name: timed(work, args.repeat) for name, work in render_work(warehouse, cached=False).items()}
    cached = {name: timed(work, args.repeat) for name, work in render_work(warehouse, cached=True).items()}
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())

    lines = [
        f"# Dashboard benchmark: {counts['fact_click_events']:,} events",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()} (load average {load}); "
        f"DuckDB {warehouse.stat().st_size / 2**30:.1f} GiB "
        f"({counts['fact_click_events']:,} events, {counts['dim_customer']:,} customers, "
        f"{counts['rejected_records']:,} rejected records, {counts['ingestion_logs']:,} log rows); {note}.",
        "",
        f"Seconds per page, median of {args.repeat} (min–max); target < {TARGET_SECONDS:g} s. *Data*: the page's "
        "queries with nothing cached (open the file read-only, query, close). *Render*: the whole page through "
        "AppTest with nothing cached. *Render, no new run*: the page again once its TTL expired, when no run "
        "changed the data since (one version query, no page query).",
        "",
        "| page | data s | render s | render, no new run s |",
        "|---|---:|---:|---:|",
    ]

    def cell(values: list[float] | None) -> str:
        if not values:
            return ""
        return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"

    for name in data:
        lines.append(f"| {name} | {cell(data[name])} | {cell(render.get(name))} | {cell(cached.get(name))} |")
    worst = max(statistics.median(v) for v in [*data.values(), *render.values()])
    lines += ["", f"Slowest page with nothing cached: {worst:.2f} s "
                  f"({'under' if worst < TARGET_SECONDS else 'OVER'} the {TARGET_SECONDS:g} s target)."]
    text = "\n".join(lines) + "\n"
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"dashboard-{args.events}.md").write_text(text)
    (out / f"dashboard-{args.events}.json").write_text(json.dumps({
        "events": counts["fact_click_events"], "machine": machine(), "tables": counts, "note": note,
        "load_average": os.getloadavg(), "data_seconds": data, "render_seconds": render,
        "render_no_new_run_seconds": cached,
    }, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
