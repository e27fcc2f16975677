"""MERGE semantics across runs: idempotent reruns, updates, incremental batches, no deletes, empty input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import CSV_HEADER, rows
from engagement.config import load_settings
from engagement.engines import create_engine
from engagement.pipeline import run_pipeline

DIM, FACT = "dim_customer", "fact_click_events"
TARGETS = {DIM: "customer_id", FACT: "event_id"}
AUDIT_TIMES = ("created_at", "updated_at", "run_id")


def csv(*lines: str) -> str:
    return "\n".join([CSV_HEADER, *lines]) + "\n"


def ndjson(*docs: dict | str) -> str:
    return "".join((d if isinstance(d, str) else json.dumps(d)) + "\n" for d in docs)


def ev(event_id: str, timestamp: str, **extra) -> dict:
    return {"event_id": event_id, "timestamp": timestamp, **extra}


def table(engine, name: str, drop: tuple[str, ...] = ()) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in drop} for r in rows(engine, name, TARGETS[name])]


def by_key(engine, name: str) -> dict[str, dict]:
    return {r[TARGETS[name]]: r for r in rows(engine, name, TARGETS[name])}


def merge_counts(result, name: str) -> tuple[int, int, int, int]:
    (m,) = [m for m in result.merges if m.table == name]
    return m.inserted, m.updated, m.unchanged, m.collapsed


def run_time(engine, result) -> pd.Timestamp:
    """When ``result``'s run started: the audit time of the rows it changed."""
    (row,) = [r for r in rows(engine, "ingestion_logs") if r["run_id"] == result.run_id and r["step"] == "run"]
    return pd.Timestamp(row["started_at"])


@pytest.fixture
def fresh_engine(engine_name: str, tmp_path: Path):
    """A second, empty warehouse on the same kind of engine (own file and schema)."""
    eng = create_engine(load_settings(engine=engine_name, warehouse=tmp_path / "fresh" / "warehouse.duckdb",
                                      schema_name="fresh"))
    yield eng
    eng.close()


BATCH_A = {
    "customers/2026-01-01.csv": csv(
        "c1,Ann,ann@x,EU,2024-01-01",
        "c2,Bob,bob@x,US,",
        "c3,Cid,cid@x,EU,2024-03-03",
        "c3,Cid,cid@x,FR,2024-03-03",  # a duplicate inside A: the later line wins
    ),
    "clickstream/2026-01-01.jsonl": ndjson(
        ev("e1", "2026-01-01T10:00:00Z", user_id="c1", page_url="/a1"),
        ev("e2", "2026-01-01T11:00:00Z", user_id="c2", page_url="/a2"),
        ev("e3", "2026-01-01T12:00:00Z", user_id="c3", page_url="/a3", duration_ms=5),
        "not json",
    ),
}
BATCH_B = {
    "customers/2026-01-02.csv": csv(
        "c2,Bob,BOB@NEW,US,",  # changed
        "c3,Cid,cid@x,FR,2024-03-03",  # an identical copy in a later file
        "c4,Dee,dee@x,US,",  # new
    ),
    "clickstream/2026-01-02.jsonl": ndjson(
        ev("e1", "2025-12-31T23:00:00Z", user_id="c1", page_url="/stale"),  # a late copy, older: must lose
        ev("e2", "2026-01-02T09:00:00+02:00", user_id="c2", page_url="/b2"),  # newer: must win
        ev("e3", "2026-01-01T12:00:00Z", user_id="c3", page_url="/a3", duration_ms=5),  # same content, later file
        ev("e4", "2026-01-02T08:00:00Z", page_url="/b4"),  # new, anonymous
        ev("e4", "2026-01-02T07:00:00Z", page_url="/b4-older"),  # older duplicate inside B
    ),
}


def test_rerun_on_the_same_input_changes_nothing(engine, source, run):
    root_files = {**BATCH_A, **BATCH_B}
    root = source(root_files)
    first = run(root)
    before = {name: table(engine, name) for name in TARGETS}
    # a plain rerun reads nothing: every file was merged and is unchanged
    skipped = run(root)
    files = {"customers": sum(k.startswith("customers/") for k in root_files), "clickstream": 0}
    files["clickstream"] = len(root_files) - files["customers"]
    assert [(s.step, s.status.value, s.files_skipped) for s in skipped.steps if s.step in ("ingest", "merge")] == [
        ("ingest", "SKIPPED", files["customers"]), ("ingest", "SKIPPED", files["clickstream"]),
        ("merge", "SKIPPED", None), ("merge", "SKIPPED", None)]
    assert all(table(engine, name) == before[name] for name in TARGETS)
    # a full refresh reads everything again, and the MERGE changes nothing
    second = run(root, full_refresh=True)
    assert second.status == first.status == "SUCCEEDED"
    assert run_time(engine, second) > run_time(engine, first)
    for name in TARGETS:
        assert table(engine, name) == before[name], name
        (m,) = [m for m in second.merges if m.table == name]
        assert (m.inserted, m.updated) == (0, 0)
        assert m.unchanged == len(before[name])
    assert all(r["run_id"] == first.run_id for name in TARGETS for r in table(engine, name))


def test_changed_customer_updates_row_and_updated_at_only(engine, source, run):
    first = run(source({"customers/a.csv": csv("c1,Ann,ann@x,EU,", "c2,Bob,bob@x,US,")}, "one"))
    before = by_key(engine, DIM)
    second = run(source({"customers/a.csv": csv("c1,Ann,ann@x,FR,", "c2,Bob,bob@x,US,")}, "two"))
    after = by_key(engine, DIM)
    t1, t2 = run_time(engine, first), run_time(engine, second)
    assert t2 > t1
    assert after["c1"]["region"] == "FR"
    assert (pd.Timestamp(after["c1"]["created_at"]), pd.Timestamp(after["c1"]["updated_at"])) == (t1, t2)
    assert after["c1"]["run_id"] == second.run_id
    assert after["c2"] == before["c2"]  # unchanged: keeps its updated_at and run_id
    assert pd.Timestamp(after["c2"]["updated_at"]) == t1
    assert merge_counts(second, DIM) == (0, 1, 1, 0)


@pytest.mark.parametrize(
    ("file2", "copy"),
    [
        ("clickstream/a.jsonl", ev("e1", "2026-01-01T10:05:00Z", page_url="/new")),  # a newer copy
        ("clickstream/a.jsonl", ev("e1", "2026-01-01T10:00:00Z", page_url="/new")),  # the file corrected in place
        ("clickstream/b.jsonl", ev("e1", "2026-01-01T10:00:00Z", page_url="/new")),  # same time, later file
    ],
    ids=["newer", "corrected-in-place", "later-file"],
)
def test_changed_event_updates_row_and_updated_at_only(engine, source, run, file2, copy):
    first = run(source({"clickstream/a.jsonl": ndjson(ev("e1", "2026-01-01T10:00:00Z", page_url="/old"),
                                                      ev("e2", "2026-01-01T10:00:00Z"))}, "one"))
    before = by_key(engine, FACT)
    second = run(source({file2: ndjson(copy, ev("e2", "2026-01-01T10:00:00Z"))}, "two"))
    after = by_key(engine, FACT)
    t1, t2 = run_time(engine, first), run_time(engine, second)
    assert after["e1"]["page_url"] == "/new"
    assert pd.Timestamp(after["e1"]["event_timestamp"]) == pd.Timestamp(copy["timestamp"]).tz_localize(None)
    assert (pd.Timestamp(after["e1"]["created_at"]), pd.Timestamp(after["e1"]["updated_at"])) == (t1, t2)
    assert after["e1"]["run_id"] == second.run_id
    assert merge_counts(second, FACT)[:2] == (0, 1)
    if file2 == "clickstream/a.jsonl":
        assert after["e2"] == before["e2"]
    assert pd.Timestamp(after["e2"]["updated_at"]) == t1 and after["e2"]["run_id"] == first.run_id


def test_run_over_a_then_a_plus_b_equals_one_run_over_a_plus_b(engine, fresh_engine, source, run):
    run(source(BATCH_A, "a"))
    incremental = run(source({**BATCH_A, **BATCH_B}, "ab"))
    single = run_pipeline(fresh_engine, source({**BATCH_A, **BATCH_B}, "ab_fresh"))
    assert incremental.status == single.status == "SUCCEEDED"
    for name in TARGETS:
        assert table(engine, name, AUDIT_TIMES) == table(fresh_engine, name, AUDIT_TIMES), name
    # and that common result is the expected one
    dim = by_key(engine, DIM)
    assert {k: r["email"] for k, r in dim.items()} == {"c1": "ann@x", "c2": "bob@new", "c3": "cid@x", "c4": "dee@x"}
    assert (dim["c3"]["region"], dim["c3"]["source_file"]) == ("FR", "customers/2026-01-02.csv")
    fact = by_key(engine, FACT)
    assert {k: r["page_url"] for k, r in fact.items()} == {"e1": "/a1", "e2": "/b2", "e3": "/a3", "e4": "/b4"}
    assert merge_counts(incremental, DIM) == (1, 1, 2, 3)
    assert merge_counts(incremental, FACT) == (1, 1, 2, 4)


def test_batch_b_alone_after_a_gives_the_fact_of_one_run_over_a_plus_b(engine, fresh_engine, source, run):
    run(source(BATCH_A, "a"))
    result = run(source(BATCH_B, "b"))
    run_pipeline(fresh_engine, source({**BATCH_A, **BATCH_B}, "ab_fresh"))
    assert table(engine, FACT, AUDIT_TIMES) == table(fresh_engine, FACT, AUDIT_TIMES)
    fact = by_key(engine, FACT)
    assert (fact["e1"]["page_url"], fact["e1"]["source_file"]) == ("/a1", "clickstream/2026-01-01.jsonl")
    assert pd.Timestamp(fact["e1"]["event_timestamp"]) == pd.Timestamp("2026-01-01 10:00:00")
    assert (fact["e2"]["page_url"], fact["e2"]["source_file"]) == ("/b2", "clickstream/2026-01-02.jsonl")
    assert pd.Timestamp(fact["e2"]["event_timestamp"]) == pd.Timestamp("2026-01-02 07:00:00")
    assert merge_counts(result, FACT) == (1, 1, 2, 1)


def test_a_key_absent_from_a_later_run_is_kept(engine, source, run):
    run(source({"customers/a.csv": csv("c1,Ann,a@x,EU,", "c2,Bob,b@x,EU,"),
                "clickstream/a.jsonl": ndjson(ev("e1", "2026-01-01T10:00:00Z"), ev("e2", "2026-01-01T10:00:00Z"))},
               "one"))
    before = {name: by_key(engine, name) for name in TARGETS}
    result = run(source({"customers/a.csv": csv("c2,Bob,b@x,EU,", "c3,Cid,c@x,EU,"),
                         "clickstream/a.jsonl": ndjson(ev("e3", "2026-01-01T10:00:00Z"))}, "two"))
    assert result.status == "SUCCEEDED"
    dim, fact = by_key(engine, DIM), by_key(engine, FACT)
    assert set(dim) == {"c1", "c2", "c3"} and set(fact) == {"e1", "e2", "e3"}
    assert dim["c1"] == before[DIM]["c1"]
    assert fact["e1"] == before[FACT]["e1"] and fact["e2"] == before[FACT]["e2"]


@pytest.mark.parametrize(
    "files",
    [{}, {"customers/readme.txt": "x", "clickstream/notes.md": "x", "customers.csv": CSV_HEADER + "\nc9,Z,z@x,EU,\n"}],
    ids=["empty-folder", "no-matching-files"],
)
def test_a_folder_without_input_files_is_an_error_and_writes_nothing(engine, source, run, tmp_path, files):
    run(source({**BATCH_A, **BATCH_B}, "good"))
    kept = ("raw_customer_demographics", "raw_clickstream_events", DIM, FACT, "rejected_records")
    before = {name: rows(engine, name) for name in kept}
    root = source(files, "empty") if files else (tmp_path / "empty")
    root.mkdir(exist_ok=True)
    result = run(root)
    assert result.status == "ERROR"
    assert "no input files" in result.error
    assert "customers/*.csv" in result.error and "clickstream/**/*.json" in result.error
    assert result.ingest == [] and result.merges == []
    for name in kept:
        assert rows(engine, name) == before[name], name
