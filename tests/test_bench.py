"""`make bench` can't silently rot: its driver runs end to end at a tiny size, all three contenders.

No timing is asserted (bench/ holds the figures); what is asserted is that the driver
produces its table, JSON and plot, and that the bare DuckDB script and pandas did the same
work as the pipeline: the manifest's distinct keys as dim/fact rows, the same rows, the same
orphan count.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "bench" / "bench_compare.py"
CONTENDERS = ("pipeline", "bare-duckdb", "pandas")


def drive(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(DRIVER), "--sizes", "2000", "--work", str(tmp_path / "work"), "--out", str(out), *args],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    return proc, out


def test_bench_compare_runs_all_contenders_on_equivalent_work(tmp_path: Path) -> None:
    proc, out = drive(tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = json.loads((tmp_path / "work" / "src-2000" / "manifest.json").read_text())
    report = json.loads((out / "compare.json").read_text())
    by = {o["contender"]: o for o in report["outcomes"]}
    assert sorted(by) == sorted(CONTENDERS)
    for name, o in by.items():
        assert o["status"] == "ok", (name, o["note"])
        assert o["dim_rows"] == manifest["customers"]["distinct_keys"], name
        assert o["fact_rows"] == manifest["clickstream"]["distinct_keys"], name
        assert o["orphans"] == manifest["clickstream"]["orphans"], name
        assert o["counts_ok"] is True, name
        assert o["seconds"] > 0 and o["peak_rss"] > 0 and o["steps"], name
    for name in ("bare-duckdb", "pandas"):
        assert by[name]["same_as_pipeline"] is True, f"{name} loaded other rows than the pipeline"
    assert by["bare-duckdb"]["per_day_type"] == by["pandas"]["per_day_type"]

    table = (out / "compare.md").read_text()
    for name in CONTENDERS:
        assert f"| 2k | {name} | **" in table
    assert "## Targets" in table and "## Steps" in table
    assert "| 2k | pipeline |" in proc.stdout  # printed too
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    again = tmp_path / "again"  # the report alone, written again from the JSON
    rerun = subprocess.run([sys.executable, str(DRIVER), "--from-json", str(out / "compare.json"), "--out", str(again)],
                           capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert (again / "compare.md").read_text() == table


def test_a_contender_over_the_memory_budget_is_stopped_and_reported(tmp_path: Path) -> None:
    proc, out = drive(tmp_path, "--skip-pandas", "--memory-budget-gb", "0.03")
    assert proc.returncode == 1
    report = json.loads((out / "compare.json").read_text())
    assert [(o["contender"], o["status"]) for o in report["outcomes"]] == [
        ("pipeline", "aborted"), ("bare-duckdb", "aborted")]
    assert "RSS passed the" in (out / "compare.md").read_text()


@pytest.fixture
def compare(monkeypatch: pytest.MonkeyPatch):
    spec = importlib.util.spec_from_file_location("bench_compare", DRIVER)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_compare", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "idle_rss", lambda: 200 * 2**20)
    monkeypatch.setattr(module, "mem_available", lambda: 20 * 2**30)
    return module


def test_pandas_is_not_started_where_it_would_not_fit(compare) -> None:
    gib = 2**30
    done = compare.Outcome("pandas", 1_000_000, "ok", seconds=25.0, peak_rss=int(1.0 * gib))
    # 0.2 GB idle + 0.8 GB x 10 = 8.2 GB: over an 8 GB budget, under a 9 GB one
    assert "would need about 8.2 GB" in compare.pandas_skip([done], "pandas", 10_000_000, 8 * gib, 1800)
    assert compare.pandas_skip([done], "pandas", 10_000_000, 9 * gib, 1800) == ""
    assert "s budget" in compare.pandas_skip([done], "pandas", 10_000_000, 9 * gib, 200)
    assert compare.pandas_skip([done], "pipeline", 10_000_000, 1, 1) == ""
