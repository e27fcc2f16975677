"""A process killed mid-step or between steps leaves every table in its previous state.

The pipeline runs in a real child process on a real DuckDB file; an Observer hook
calls ``os._exit`` (no cleanup, no rollback handler), as a kill would.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engagement.engines.duckdb import DuckDBEngine
from engagement.pipeline import run_pipeline
from tests.conftest import CSV_HEADER, rows, write_files

CHILD = r"""
import os, sys
from engagement.engines.duckdb import DuckDBEngine
from engagement.pipeline import Observer, run_pipeline

warehouse, source, mode = sys.argv[1:4]
loaded = []

def file_loaded(file, records):
    loaded.append(file.relpath)
    if mode == "mid-ingest" and sum(p.startswith("clickstream/") for p in loaded) == 2:
        os._exit(9)  # inside the clickstream ingest transaction

def step_finished(result):
    if mode == "between" and (result.step, result.table_name) == ("merge", "dim_customer"):
        os._exit(9)  # after the dimension committed, before the fact

run_pipeline(DuckDBEngine(warehouse), source, observer=Observer(file_loaded=file_loaded, step_finished=step_finished))
"""


def event(eid: str, ts: str, etype: str = "page_view") -> str:
    return (f'{{"event_id":"{eid}","user_id":"C1","event_type":"{etype}","page_url":"/",'
            f'"duration_ms":1,"timestamp":"{ts}"}}\n')


BATCH_A = {
    "customers/a.csv": f"{CSV_HEADER}\nC1,Ann,ann@x.com,EMEA,2024-01-01\n",
    "clickstream/dt=2026-01-01/a.jsonl": event("e1", "2026-01-01T10:00:00Z") + "not json\n",
    "clickstream/dt=2026-01-02/a.jsonl": event("e2", "2026-01-02T10:00:00Z"),
}
BATCH_B = {
    **BATCH_A,
    "customers/b.csv": f"{CSV_HEADER}\nC1,Ann,ann@new.com,APAC,2024-01-01\nC2,Bo,bo@x.com,NA,\n",
    "clickstream/dt=2026-01-03/b.jsonl": event("e1", "2026-01-03T10:00:00Z", "purchase") + event("e3", "2026-01-03T11:00:00Z"),
}
DATA_TABLES = ["raw_customer_demographics", "raw_clickstream_events", "dim_customer", "fact_click_events", "rejected_records"]
AUDIT = {"created_at", "updated_at", "run_id", "loaded_at", "rejected_at"}


def snapshot(path: Path) -> dict[str, list[dict]]:
    eng = DuckDBEngine(path)
    try:
        return {t: rows(eng, t, order_by="source_row") for t in DATA_TABLES}
    finally:
        eng.close()


def content(table_rows: list[dict]) -> list[dict]:
    return sorted((({k: v for k, v in r.items() if k not in AUDIT}) for r in table_rows), key=repr)


def run_once(warehouse: Path, source: Path) -> None:
    eng = DuckDBEngine(warehouse)
    try:
        assert run_pipeline(eng, source).status.value == "SUCCEEDED"
    finally:
        eng.close()


def crash(warehouse: Path, source: Path, mode: str) -> None:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(warehouse), str(source), mode],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr


@pytest.fixture
def sources(tmp_path: Path) -> tuple[Path, Path]:
    return write_files(tmp_path / "a", BATCH_A), write_files(tmp_path / "b", BATCH_B)


def test_kill_mid_ingest_keeps_previous_raw_and_targets(tmp_path: Path, sources) -> None:
    a, b = sources
    wh = tmp_path / "w.duckdb"
    run_once(wh, a)
    before = snapshot(wh)
    crash(wh, b, "mid-ingest")
    after = snapshot(wh)
    # the customers ingest step had committed; the clickstream step had not
    assert len(after["raw_customer_demographics"]) == 3
    for table in ("raw_clickstream_events", "dim_customer", "fact_click_events"):
        assert after[table] == before[table], table
    assert content(after["rejected_records"]) == content(before["rejected_records"])
    eng = DuckDBEngine(wh)
    try:
        logs = eng.con.execute(
            "SELECT step, table_name, status, finished_at FROM ingestion_logs "
            "WHERE run_id = (SELECT arg_max(run_id, started_at) FROM ingestion_logs WHERE step = 'run') ORDER BY started_at"
        ).fetchall()
    finally:
        eng.close()
    assert ("ingest", "raw_clickstream_events", "STARTED", None) in logs  # the crash is visible
    assert ("run", None, "STARTED", None) in logs


def test_kill_between_steps_then_rerun_equals_a_clean_run(tmp_path: Path, sources) -> None:
    a, b = sources
    wh = tmp_path / "w.duckdb"
    run_once(wh, a)
    before = snapshot(wh)
    crash(wh, b, "between")
    mid = snapshot(wh)
    assert mid["fact_click_events"] == before["fact_click_events"]
    assert {r["email"] for r in mid["dim_customer"]} == {"ann@new.com", "bo@x.com"}
    run_once(wh, b)
    fresh = tmp_path / "fresh.duckdb"
    run_once(fresh, b)
    got, want = snapshot(wh), snapshot(fresh)
    for table in ("dim_customer", "fact_click_events", "raw_clickstream_events", "raw_customer_demographics"):
        assert content(got[table]) == content(want[table]), table


def test_current_rejected_records_counts_a_killed_runs_rejects_once(tmp_path: Path, sources) -> None:
    a, b = sources
    wh = tmp_path / "w.duckdb"
    run_once(wh, a)
    crash(wh, b, "between")  # its ingest steps (and their rejects) committed
    run_once(wh, b)
    fresh = tmp_path / "fresh.duckdb"
    run_once(fresh, b)
    query = "SELECT reason, count(*) FROM {} GROUP BY reason ORDER BY reason"
    got, want = DuckDBEngine(wh), DuckDBEngine(fresh)
    try:
        all_rows = got.con.execute(query.format("rejected_records")).fetchall()
        current = got.con.execute(query.format("current_rejected_records")).fetchall()
        clean = want.con.execute(query.format("current_rejected_records")).fetchall()
    finally:
        got.close()
        want.close()
    assert current == clean  # the README's query over the view: as after one clean run
    assert sum(n for _, n in all_rows) > sum(n for _, n in current)  # the table keeps every run's rejects
