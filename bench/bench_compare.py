"""Side by side: `engagement run` (DuckDB engine) vs a bare DuckDB SQL script vs pandas.

    python bench/bench_compare.py                          # 1M and 10M events (what `make bench` runs)
    python bench/bench_compare.py --sizes 200000 --skip-pandas

For each size it generates the source once under --work (reused when its manifest has the
same parameters), then runs each contender in a process of its own over the same files,
into a fresh warehouse:

  pipeline     bench/pipeline_run.py: `engagement run` through the package, DuckDB engine
  bare-duckdb  bench/bare_duckdb.py running bench/bare_duckdb.sql (the minimum equivalent work)
  pandas       bench/bare_pandas.py (the straightforward pandas way; Parquet tables)

Per contender: wall time of the work (from opening the warehouse to closing it, without the
interpreter's start), rows/s (source records read per second), peak RSS of its process
(ru_maxrss from wait4), per-step seconds, and the 1-minute load average of the machine while it
ran. After each run the driver reads the contender's final tables and checks that the work was
equivalent: dim/fact row counts equal to the manifest's distinct keys, the same content as the
pipeline's tables (a hash of every row), the same orphan count.

A contender whose RSS goes over --memory-budget-gb or whose time goes over --time-budget-s is
stopped and reported as such; pandas is not even started at a size where a linear
extrapolation from the previous size says it would go over (reported as "skipped: would need").

Writes OUT/compare.md (printed too), OUT/compare.json and OUT/compare.png. Asserts nothing
about speed: the verdicts against the targets are written down, not enforced.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONTENDERS = {
    "pipeline": ("engagement run (DuckDB engine)", HERE / "pipeline_run.py"),
    "bare-duckdb": ("bare DuckDB SQL script", HERE / "bare_duckdb.py"),
    "pandas": ("pandas", HERE / "bare_pandas.py"),
}
GENERATE = {"days": 30, "seed": 7, "defect_rate": 0.02}  # as bench/bench_pipeline.py
# The targets of issue 7 (at 10M events on the 2-core machine).
TARGET_SIZE = 10_000_000
TARGET_RATIO = 1.5  # pipeline wall time / bare DuckDB wall time
TARGET_PEAK_BYTES = 2 * 1024**3
TARGET_SCALING = 1.2  # time ratio allowed per size ratio: 10x the events, at most 12x the time
GIB = 1024**3

DIM_COLUMNS = "customer_id, first_name, email, region, CAST(signup_date AS DATE)"
FACT_COLUMNS = ("event_id, user_id, event_type, page_url, CAST(duration_ms AS BIGINT), "
                "CAST(event_timestamp AS TIMESTAMP)")


@dataclass
class Outcome:
    """One contender at one size."""

    contender: str
    size: int
    status: str  # ok | failed | aborted | skipped
    note: str = ""
    seconds: float | None = None  # the work, as the contender timed it
    process_seconds: float | None = None  # the whole process, start-up included
    cpu_seconds: float | None = None  # user + system CPU of the process: steadier than wall time under load
    peak_rss: int | None = None  # bytes
    rows_per_s: float | None = None
    steps: list[dict] = field(default_factory=list)
    load: dict = field(default_factory=dict)  # 1-minute load average: start, max, end
    dim_rows: int | None = None
    fact_rows: int | None = None
    dim_hash: str | None = None
    fact_hash: str | None = None
    orphans: int | None = None
    per_day_type: dict | None = None
    same_as_pipeline: bool | None = None
    counts_ok: bool | None = None


# ------------------------------------------------------------------------- machine and source


def machine() -> dict:
    def first(path: str, key: str) -> str:
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "?"

    import duckdb
    import pandas

    mem_kb = first("/proc/meminfo", "MemTotal").split()[0]
    return {
        "cores": os.cpu_count(),
        "cpu": first("/proc/cpuinfo", "model name"),
        "ram_gib": round(int(mem_kb) / 1024**2, 1) if mem_kb.isdigit() else None,
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pandas": pandas.__version__,
    }


def label(n: int) -> str:
    for unit, div in (("M", 1_000_000), ("k", 1_000)):
        if n >= div and n % div == 0:
            return f"{n // div}{unit}"
    return f"{n:,}"


def source_for(work: Path, events: int) -> tuple[Path, dict, str]:
    """The generated source for ``events`` (reused when its manifest matches), its manifest, a note."""
    from engagement.generate import generate

    src = work / f"src-{events}"
    params = {"customers": max(events // 50, 100), "events": events, **GENERATE}
    manifest_path = src / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        found = {**manifest.get("params", {}), "seed": manifest.get("seed")}
        if all(found.get(k) == v for k, v in params.items()):
            return src, manifest, f"reused {src}"
    print(f"generating {events:,} events into {src} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    manifest = generate(src, customers=params["customers"], events=events, days=params["days"],
                        seed=params["seed"], defect_rate=params["defect_rate"])
    return src, manifest, f"generated in {time.perf_counter() - t0:.0f} s"


def source_size(src: Path) -> tuple[int, int]:
    files = [p for p in src.rglob("*") if p.is_file() and p.name != "manifest.json"]
    return len(files), sum(p.stat().st_size for p in files)


# ------------------------------------------------------------------------- running a contender


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def run_contender(name: str, size: int, src: Path, wh: Path, log: Path, *, memory_budget: int,
                  time_budget: float) -> Outcome:
    """Run one contender in its own process, watch its memory and time, and collect what it measured."""
    result_file = log.with_suffix(".json")
    result_file.unlink(missing_ok=True)
    cmd = [sys.executable, str(CONTENDERS[name][1]), "--source", str(src), "--warehouse", str(wh),
           "--result", str(result_file)]
    loads = [os.getloadavg()[0]]
    t0 = time.perf_counter()
    with open(log, "w") as log_fh:
        proc = subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        aborted, next_load = "", t0 + 1
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                now = time.perf_counter()
                rss = _rss(proc.pid)
                if not aborted and rss > memory_budget:
                    aborted = f"stopped: RSS passed the {memory_budget / GIB:g} GB budget after {now - t0:.0f} s"
                elif not aborted and now - t0 > time_budget:
                    aborted = f"stopped: still running after the {time_budget:.0f} s budget"
                if aborted:
                    proc.send_signal(signal.SIGKILL)
                if now >= next_load:
                    loads.append(os.getloadavg()[0])
                    next_load = now + 1
                time.sleep(0.05)
        except BaseException:  # Ctrl-C or an error here: do not leave the contender running
            proc.kill()
            proc.wait()
            raise
    process_seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    loads.append(os.getloadavg()[0])
    out = Outcome(name, size, "ok", process_seconds=process_seconds, peak_rss=usage.ru_maxrss * 1024,
                  cpu_seconds=usage.ru_utime + usage.ru_stime,
                  load={"start": loads[0], "max": max(loads), "end": loads[-1]})
    if aborted:
        out.status, out.note = "aborted", aborted
        return out
    if proc.returncode != 0 or not result_file.exists():
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        out.status, out.note = "failed", f"exit {proc.returncode}: {tail[0][:200]} (see {log})"
        return out
    result = json.loads(result_file.read_text())
    out.seconds, out.steps = result["seconds"], result["steps"]
    out.orphans = result["aggregates"].get("orphan_events")
    out.per_day_type = result["aggregates"].get("events_per_day_type")
    return out


def read_tables(name: str, wh: Path) -> dict:
    """Row counts and a content hash of the final dim_customer and fact_click_events (model columns only)."""
    import duckdb

    if name == "pandas":
        con = duckdb.connect()
        dim, fact = (f"read_parquet('{wh / t}.parquet')" for t in ("dim_customer", "fact_click_events"))
    else:
        con = duckdb.connect(str(wh), read_only=True)
        dim, fact = "dim_customer", "fact_click_events"
    try:
        con.execute("SET TimeZone = 'UTC'")
        (dim_rows, dim_hash), = con.execute(f"SELECT count(*), sum(hash({DIM_COLUMNS})) FROM {dim}").fetchall()
        (fact_rows, fact_hash), = con.execute(f"SELECT count(*), sum(hash({FACT_COLUMNS})) FROM {fact}").fetchall()
    finally:
        con.close()
    return {"dim_rows": dim_rows, "fact_rows": fact_rows,
            "dim_hash": f"{int(dim_hash or 0):x}", "fact_hash": f"{int(fact_hash or 0):x}"}


def fresh(path: Path) -> None:
    """Remove a warehouse (file and WAL, or Parquet folder) left by an earlier run."""
    import shutil

    if path.is_dir():
        shutil.rmtree(path)
    for p in (path, path.with_name(path.name + ".wal")):
        if p.is_file():
            p.unlink()


# ------------------------------------------------------------------------- report


def _s(v: float | None) -> str:
    return "" if v is None else f"{v:,.2f}" if v < 100 else f"{v:,.0f}"


def _gb(v: int | None) -> str:
    return "" if v is None else f"{v / GIB:.2f}"


def verdicts(outcomes: list[Outcome], sizes: list[int]) -> list[dict]:
    """The three targets, each with what was measured and MET / MISSED / not measured."""
    by = {(o.contender, o.size): o for o in outcomes}
    at = TARGET_SIZE if TARGET_SIZE in sizes else max(sizes)
    note = "" if at == TARGET_SIZE else f" (measured at {label(at)}: the target is for {label(TARGET_SIZE)})"
    rows = []
    pipe, bare = by.get(("pipeline", at)), by.get(("bare-duckdb", at))
    if pipe and bare and pipe.seconds and bare.seconds:
        ratio = pipe.seconds / bare.seconds
        cpu = (f"; CPU time {pipe.cpu_seconds / bare.cpu_seconds:.2f}x"
               if pipe.cpu_seconds and bare.cpu_seconds else "")
        rows.append({"target": f"pipeline within {TARGET_RATIO}x of bare DuckDB at {label(TARGET_SIZE)}",
                     "measured": f"{ratio:.2f}x ({_s(pipe.seconds)} s vs {_s(bare.seconds)} s{cpu}){note}",
                     "verdict": "MET" if ratio <= TARGET_RATIO else "MISSED"})
    else:
        rows.append({"target": f"pipeline within {TARGET_RATIO}x of bare DuckDB", "measured": "not measured",
                     "verdict": "n/a"})
    if pipe and pipe.peak_rss:
        rows.append({"target": f"pipeline peak memory under {TARGET_PEAK_BYTES / GIB:.0f} GB at {label(TARGET_SIZE)}",
                     "measured": f"{_gb(pipe.peak_rss)} GB{note}",
                     "verdict": "MET" if pipe.peak_rss < TARGET_PEAK_BYTES else "MISSED"})
    ordered = sorted(sizes)
    for small, big in zip(ordered, ordered[1:]):
        a, b = by.get(("pipeline", small)), by.get(("pipeline", big))
        if a and b and a.seconds and b.seconds:
            k = big / small
            ratio = b.seconds / a.seconds
            rows.append({"target": f"linear time: {k:g}x the events in at most {k * TARGET_SCALING:g}x the time",
                         "measured": f"{ratio:.1f}x ({label(small)} {_s(a.seconds)} s -> {label(big)} {_s(b.seconds)} s)",
                         "verdict": "MET" if ratio <= k * TARGET_SCALING else "MISSED"})
    return rows


def markdown(report: dict, outcomes: list[Outcome]) -> str:
    m = report["machine"]
    sizes = [s["events"] for s in report["sources"]]
    by = {(o.contender, o.size): o for o in outcomes}
    loads = [o.load.get("max") for o in outcomes if o.load]
    lines = [
        "# Side by side: `engagement run` vs bare DuckDB vs pandas",
        "",
        f"{report['date']} on {m['cores']} cores ({m['cpu']}), {m['ram_gib']} GiB RAM, {m['os']}; "
        f"Python {m['python']}, DuckDB {m['duckdb']}, pandas {m['pandas']}. "
        f"1-minute load average while the contenders ran: {min(o.load['start'] for o in outcomes if o.load):.1f} "
        f"to {max(loads):.1f} (on {m['cores']} cores; above {m['cores']} means other work competed for the CPU).",
        "",
        "Each contender runs in its own process over the same generated files into a fresh warehouse. "
        "*s*: the work, from opening the warehouse to closing it (interpreter start-up excluded; "
        "the process took *proc s*); *cpu s*: user + system CPU time of the process, which other work on "
        "the machine disturbs less than wall time; *rows/s*: source records read per second; *peak*: peak "
        "RSS of the process; *same tables*: dim_customer and fact_click_events hold the same rows as the pipeline's "
        "(hash of every row); *rows ok*: their row counts equal the manifest's distinct keys and the "
        "orphan count its orphans.",
        "",
        "| events | contender | s | proc s | cpu s | rows/s | peak GB | x bare DuckDB | dim rows | fact rows "
        "| same tables | rows ok | load (max) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    notes: list[str] = []
    for size in sizes:
        bare = by.get(("bare-duckdb", size))
        for name in CONTENDERS:
            o = by.get((name, size))
            if o is None:
                continue
            if o.status != "ok":
                notes.append(f"{label(size)} {name}: {o.status}: {o.note}")
                lines.append(f"| {label(size)} | {name} | {o.status} ({len(notes)}) | | | | {_gb(o.peak_rss)} | | | | | | "
                             f"{o.load['max']:.1f} |" if o.load else
                             f"| {label(size)} | {name} | {o.status} ({len(notes)}) | | | | | | | | | | |")
                continue
            ratio = f"{o.seconds / bare.seconds:.2f}" if bare and bare.seconds and o.seconds else ""
            same = ("reference" if name == "pipeline" else "" if o.same_as_pipeline is None
                    else "yes" if o.same_as_pipeline else "**NO**")
            lines.append(
                f"| {label(size)} | {name} | **{_s(o.seconds)}** | {_s(o.process_seconds)} | {_s(o.cpu_seconds)} | "
                f"{o.rows_per_s:,.0f} | "
                f"{_gb(o.peak_rss)} | {ratio} | {o.dim_rows:,} | {o.fact_rows:,} | {same} | "
                f"{'yes' if o.counts_ok else '**NO**'} | {o.load['max']:.1f} |")
    if notes:
        lines += [""] + [f"({i}) {n}" + ("  " if i < len(notes) else "") for i, n in enumerate(notes, 1)]
    lines += ["", "## Targets", "", "| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {v['target']} | {v['measured']} | **{v['verdict']}** |" for v in report["verdicts"]]
    ordered = sorted(sizes)
    if len(ordered) > 1:
        lines += ["", "## Scaling", "", "| contender | " + " | ".join(f"{label(s)} s" for s in ordered)
                  + " | " + " | ".join(f"{label(b)}/{label(a)}" for a, b in zip(ordered, ordered[1:])) + " |",
                  "|---|" + "---:|" * (2 * len(ordered) - 1)]
        for name in CONTENDERS:
            secs = [by[(name, s)].seconds if (name, s) in by else None for s in ordered]
            ratios = [f"{b / a:.1f}x" if a and b else "" for a, b in zip(secs, secs[1:])]
            lines.append(f"| {name} | " + " | ".join(_s(v) or "-" for v in secs) + " | " + " | ".join(ratios) + " |")
    lines += ["", "## Steps", ""]
    for size in sizes:
        src = next(s for s in report["sources"] if s["events"] == size)
        lines += [f"**{label(size)} events**: {src['records']:,} source records ({src['clickstream_records']:,} "
                  f"clickstream, {src['customer_records']:,} customers) in {src['files']} files, "
                  f"{src['bytes'] / 1e6:,.0f} MB on disk; source {src['note']}.", "",
                  "| contender | step | s | rows/s | peak GB so far |", "|---|---|---:|---:|---:|"]
        for name in CONTENDERS:
            o = by.get((name, size))
            for st in (o.steps if o else []):
                counted = st.get("rows") and st.get("seconds") and st["step"].split()[0] in ("ingest", "merge")
                rate = f"{st['rows'] / st['seconds']:,.0f}" if counted else ""
                lines.append(f"| {name} | {st['step']} | {_s(st['seconds'])} | {rate} | {_gb(st.get('peak_rss'))} |")
        lines.append("")
    lines += [
        "What the bare script and pandas leave out (raw tables, rejected_records with reasons and raw "
        "text, lineage and audit columns, logs, the checks): see the top of `bench/bare_duckdb.sql`.",
    ]
    return "\n".join(lines) + "\n"


def plot(outcomes: list[Outcome], sizes: list[int], path: Path, title: str) -> None:
    """Wall time (log scale) and peak RSS per size, one bar per contender; the memory target as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    by = {(o.contender, o.size): o for o in outcomes}
    names = list(CONTENDERS)
    colors = {"pipeline": "#1f77b4", "bare-duckdb": "#2ca02c", "pandas": "#ff7f0e"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    width = 0.8 / len(names)
    for ax, what in zip(axes, ("seconds", "peak")):
        for i, name in enumerate(names):
            for j, size in enumerate(sizes):
                o = by.get((name, size))
                x = j + (i - (len(names) - 1) / 2) * width
                value = None
                if o and o.status == "ok":
                    value = o.seconds if what == "seconds" else o.peak_rss / GIB
                if value is None:
                    ax.text(x, 0.02, f"{name}\n{'not run' if o is None else o.status}", transform=ax.get_xaxis_transform(),
                            ha="center", va="bottom", fontsize=7, color=colors[name])
                    continue
                ax.bar(x, value, width, color=colors[name], label=name if name not in ax.get_legend_handles_labels()[1] else None)
                shown = f"{value:.1f}" if value >= 1 else f"{value:.2f}"
                ax.text(x, value, shown, ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(sizes)), [f"{label(s)} events" for s in sizes])
        if what == "seconds":
            ax.set_yscale("log")
            plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(plain)
            ax.set_ylabel("wall time, s (log scale; less is better)")
            ax.set_title("Time")
        else:
            ax.axhline(TARGET_PEAK_BYTES / GIB, color="red", linestyle="--", linewidth=1, label="2 GB target")
            ax.set_ylabel("peak RSS, GB")
            ax.set_title("Peak memory")
        ax.margins(y=0.15)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated event counts")
    parser.add_argument("--skip-pandas", action="store_true", help="leave pandas out")
    parser.add_argument("--work", type=Path, default=Path("/tmp/engagement-bench"),
                        help="scratch folder: sources (reused), warehouses, logs")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="where compare.md/.json/.png go")
    parser.add_argument("--memory-budget-gb", type=float, default=8.0,
                        help="stop (or, for pandas, do not start) a contender that would need more RSS")
    parser.add_argument("--time-budget-s", type=float, default=1800.0, help="the same, for its wall time")
    parser.add_argument("--from-json", type=Path, metavar="COMPARE_JSON",
                        help="run nothing: write the table and the plot again from a compare.json")
    args = parser.parse_args(argv)
    if args.from_json:
        return render(json.loads(args.from_json.read_text()), args.out)
    sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()})
    memory_budget = int(args.memory_budget_gb * GIB)
    names = [n for n in CONTENDERS if not (args.skip_pandas and n == "pandas")]
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)

    report = {"date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", "machine": machine(), "sources": [],
              "budgets": {"memory_gb": args.memory_budget_gb, "time_s": args.time_budget_s}}
    outcomes: list[Outcome] = []
    for size in sizes:
        src, manifest, note = source_for(args.work, size)
        files, nbytes = source_size(src)
        cust, click = manifest["customers"], manifest["clickstream"]
        records = cust["records"] + click["records"]
        report["sources"].append({"events": size, "path": str(src), "note": note, "files": files, "bytes": nbytes,
                                  "records": records, "customer_records": cust["records"],
                                  "clickstream_records": click["records"], "distinct_customers": cust["distinct_keys"],
                                  "distinct_events": click["distinct_keys"], "orphans": click["orphans"]})
        run_dir = args.work / f"compare-{size}"
        run_dir.mkdir(exist_ok=True)
        pipeline_tables = None
        for name in names:
            wh = run_dir / ("pandas" if name == "pandas" else f"{name}.duckdb")
            fresh(wh)
            skip = pandas_skip(outcomes, name, size, memory_budget, args.time_budget_s)
            if skip:
                outcomes.append(Outcome(name, size, "skipped", note=skip))
                print(f"{label(size)} {name}: skipped: {skip}", file=sys.stderr, flush=True)
                continue
            print(f"{label(size)} {name} ...", file=sys.stderr, end=" ", flush=True)
            o = run_contender(name, size, src, wh, run_dir / f"{name}.log", memory_budget=memory_budget,
                              time_budget=args.time_budget_s)
            outcomes.append(o)
            if o.status == "ok":
                o.rows_per_s = records / o.seconds
                tables = read_tables(name, wh)
                for k, v in tables.items():
                    setattr(o, k, v)
                o.counts_ok = (o.dim_rows == cust["distinct_keys"] and o.fact_rows == click["distinct_keys"]
                               and o.orphans == click["orphans"])
                if name == "pipeline":
                    pipeline_tables = tables
                elif pipeline_tables:
                    o.same_as_pipeline = (tables["dim_hash"], tables["fact_hash"]) == (
                        pipeline_tables["dim_hash"], pipeline_tables["fact_hash"])
                print(f"{o.seconds:.2f} s, peak {_gb(o.peak_rss)} GB", file=sys.stderr, flush=True)
            else:
                print(f"{o.status}: {o.note}", file=sys.stderr, flush=True)
    report["outcomes"] = [asdict(o) for o in outcomes]
    return render(report, args.out)


def render(report: dict, out: Path) -> int:
    """Write compare.md (and print it), compare.json and compare.png from a report."""
    out.mkdir(parents=True, exist_ok=True)
    outcomes = [Outcome(**o) for o in report["outcomes"]]
    sizes = [s["events"] for s in report["sources"]]
    report["verdicts"] = verdicts(outcomes, sizes)
    text = markdown(report, outcomes)
    (out / "compare.md").write_text(text)
    (out / "compare.json").write_text(json.dumps(report, indent=2, default=str))
    m = report["machine"]
    plot(outcomes, sizes, out / "compare.png",
         f"engagement run vs bare DuckDB vs pandas - {report['date']}, {m['cores']} cores {m['cpu']}")
    print(text)
    print(f"written: {out / 'compare.md'}, compare.json, compare.png", file=sys.stderr)
    return 0 if all(o.status in ("ok", "skipped") for o in outcomes) else 1


def idle_rss() -> int:
    """Peak RSS of a pandas process that only imports what bench/bare_pandas.py imports (its fixed cost)."""
    proc = subprocess.Popen([sys.executable, "-c", "import pandas, pyarrow.parquet, csv, gzip, io, json"],
                            stdin=subprocess.DEVNULL)
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return usage.ru_maxrss * 1024


def mem_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 1 << 62


def pandas_skip(outcomes: list[Outcome], name: str, size: int, memory_budget: int, time_budget: float) -> str:
    """Why pandas should not run at ``size``: extrapolated linearly from its largest smaller run
    (memory above the idle interpreter's, and time), it would go over a budget."""
    if name != "pandas":
        return ""
    done = [o for o in outcomes if o.contender == name and o.size < size]
    if not done:
        return ""
    last = max(done, key=lambda o: o.size)
    if last.status != "ok":
        return f"it did not complete at {label(last.size)} ({last.status})"
    k = size / last.size
    idle = idle_rss()
    need_mem = idle + max(last.peak_rss - idle, 0) * k
    need_time = (last.seconds or 0) * k
    why = (f"would need about {need_mem / GIB:.1f} GB (peak {_gb(last.peak_rss)} GB at {label(last.size)}, "
           f"{_gb(idle)} GB of it the idle interpreter, the rest x {k:g})")
    if need_mem > memory_budget:
        return f"{why}, over the {memory_budget / GIB:g} GB budget"
    available = mem_available()
    if need_mem > available - GIB:
        return f"{why}, and the machine has only {available / GIB:.1f} GB available now"
    if need_time > time_budget:
        return (f"would need about {need_time:.0f} s ({_s(last.seconds)} s at {label(last.size)} x {k:g}), "
                f"over the {time_budget:.0f} s budget")
    return ""


if __name__ == "__main__":
    raise SystemExit(main())
