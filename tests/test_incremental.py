"""Incremental loads on every engine: a run reads only new and changed files, and ends with the same
tables as one full run over the final folder (late copies still win, stale copies still lose)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from engagement.engines.base import Engine
from engagement.generate import generate
from engagement.model import LOADED_FILES
from engagement.pipeline import finish_run, ingest_phase, run_pipeline, start_run
from engagement.results import RunResult
from tests.conftest import CSV_HEADER, rows

TARGETS = ("dim_customer", "fact_click_events")
AUDIT = {"created_at", "updated_at", "run_id"}


def _content(engine: Engine) -> dict[str, list]:
    return {t: sorted((tuple(sorted((k, v) for k, v in r.items() if k not in AUDIT)) for r in rows(engine, t)),
                      key=repr) for t in TARGETS}


def _ingest(result: RunResult) -> dict[str, tuple]:
    return {s.table_name: (s.status.value, s.files, s.files_skipped) for s in result.steps if s.step == "ingest"}


@pytest.fixture
def generated(tmp_path: Path) -> tuple[Path, list[str]]:
    """A generated source over 4 days (late and stale copies across days) and its files, in path order."""
    full = tmp_path / "generated"
    generate(full, customers=60, events=400, days=4, seed=3, defect_rate=0.1)
    return full, sorted(p.relative_to(full).as_posix() for p in full.rglob("*") if p.name != "manifest.json"
                        and p.is_file())


def _copy(src: Path, dst: Path, names: list[str]) -> None:
    for name in names:
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / name, dst / name)


def test_an_incremental_run_equals_a_full_run_over_the_final_folder(
    engine: Engine, generated, tmp_path: Path, engine_name: str
) -> None:
    full, names = generated
    last_day = max(n.split("/")[1] for n in names if n.startswith("clickstream/"))
    later = [n for n in names if last_day in n or n == max(x for x in names if x.startswith("customers/"))]
    earlier = [n for n in names if n not in later]
    landing = tmp_path / "landing"
    _copy(full, landing, earlier)
    first = run_pipeline(engine, landing)
    assert first.status.value == "SUCCEEDED", first.error
    _copy(full, landing, later)
    second = run_pipeline(engine, landing)
    assert second.status.value == "SUCCEEDED", second.error
    new = {"raw_customer_demographics": sum(n.startswith("customers/") for n in later),
           "raw_clickstream_events": sum(n.startswith("clickstream/") for n in later)}
    old = {"raw_customer_demographics": sum(n.startswith("customers/") for n in earlier),
           "raw_clickstream_events": sum(n.startswith("clickstream/") for n in earlier)}
    assert _ingest(second) == {t: ("SUCCEEDED", new[t], old[t]) for t in new}
    # the raw tables hold what this run loaded: the new files only
    assert {r["source_file"] for r in rows(engine, "raw_clickstream_events")} == {
        n for n in later if n.startswith("clickstream/")}

    from engagement.config import load_settings
    from engagement.engines import create_engine

    fresh = create_engine(load_settings(engine=engine_name, warehouse=tmp_path / "fresh" / "w.duckdb"))
    try:
        once = run_pipeline(fresh, full)
        assert once.status.value == "SUCCEEDED", once.error
        assert _content(engine) == _content(fresh)
    finally:
        fresh.close()


def test_unchanged_files_are_not_read_again_and_changed_ones_are(engine: Engine, source: Callable[..., Path]) -> None:
    root = source({
        "customers/a.csv": f"{CSV_HEADER}\nC1,Ann,a@x.com,EU,2024-01-01\n",
        "clickstream/d1.jsonl": '{"event_id":"e1","user_id":"C1","timestamp":"2026-01-01T10:00:00Z"}\n',
        "clickstream/d2.jsonl": '{"event_id":"e2","user_id":"C1","timestamp":"2026-01-02T10:00:00Z"}\n',
    })
    read: list[str] = []
    from engagement.pipeline import Observer

    observer = Observer(file_loaded=lambda file, n: read.append(file.relpath))
    first = run_pipeline(engine, root, observer=observer)
    assert first.status.value == "SUCCEEDED"
    assert sorted(read) == ["clickstream/d1.jsonl", "clickstream/d2.jsonl", "customers/a.csv"]

    # d1 rewritten with the same size and mtime: by its load metadata it is unchanged, so it is
    # not read (were it read, e1 would move to 2026-01-09)
    d1 = root / "clickstream/d1.jsonl"
    stat = d1.stat()
    d1.write_text(d1.read_text().replace("2026-01-01", "2026-01-09"))
    os.utime(d1, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    # d2 changed (a new size), and a new file d3
    (root / "clickstream/d2.jsonl").write_text(
        '{"event_id":"e2","user_id":"C1","event_type":"click","timestamp":"2026-01-02T10:00:00Z"}\n')
    (root / "clickstream/d3.jsonl").write_text('{"event_id":"e3","timestamp":"2026-01-03T10:00:00Z"}\n')
    read.clear()
    second = run_pipeline(engine, root, observer=observer)
    assert sorted(read) == ["clickstream/d2.jsonl", "clickstream/d3.jsonl"]
    assert _ingest(second) == {"raw_customer_demographics": ("SKIPPED", 0, 1),
                               "raw_clickstream_events": ("SUCCEEDED", 2, 1)}
    # the raw table of a loaded source holds exactly what this run loaded; a SKIPPED source's
    # keeps its latest load, which its run_id names
    assert sorted((r["source_file"], r["run_id"]) for r in rows(engine, "raw_clickstream_events")) == [
        ("clickstream/d2.jsonl", second.run_id), ("clickstream/d3.jsonl", second.run_id)]
    assert {(r["source_file"], r["run_id"]) for r in rows(engine, "raw_customer_demographics")} == {
        ("customers/a.csv", first.run_id)}
    facts = {r["event_id"]: r for r in rows(engine, "fact_click_events")}
    assert str(facts["e1"]["event_timestamp"]).startswith("2026-01-01")
    assert facts["e2"]["event_type"] == "click" and "e3" in facts
    assert {r["source_file"]: r["state"] for r in rows(engine, LOADED_FILES.name)} == {
        "customers/a.csv": "MERGED", "clickstream/d1.jsonl": "MERGED", "clickstream/d2.jsonl": "MERGED",
        "clickstream/d3.jsonl": "MERGED"}

    # a full refresh reads every file: now the rewritten d1 counts
    read.clear()
    run_pipeline(engine, root, observer=observer, full_refresh=True)
    assert len(read) == 4
    assert str({r["event_id"]: r for r in rows(engine, "fact_click_events")}["e1"]["event_timestamp"]).startswith(
        "2026-01-09")


def test_files_ingested_but_never_merged_are_loaded_again(engine: Engine, source: Callable[..., Path]) -> None:
    root = source({"customers/a.csv": f"{CSV_HEADER}\nC1,Ann,a@x.com,EU,2024-01-01\n",
                   "clickstream/d1.jsonl": '{"event_id":"e1","timestamp":"2026-01-01T10:00:00Z"}\n'})
    run_id = start_run(engine, str(root))
    ingest_phase(engine, run_id)  # then the process died before the transform phase
    finish_run(engine, run_id, failure="killed before the merge")
    assert {r["state"] for r in rows(engine, LOADED_FILES.name)} == {"INGESTED"}
    again = run_pipeline(engine, root)
    assert _ingest(again) == {"raw_customer_demographics": ("SUCCEEDED", 1, 0),
                              "raw_clickstream_events": ("SUCCEEDED", 1, 0)}
    assert [r["event_id"] for r in rows(engine, "fact_click_events")] == ["e1"]
