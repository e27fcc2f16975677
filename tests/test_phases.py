"""A run driven phase by phase (as the notebooks do) leaves what run_pipeline leaves.

Each phase reopens the run from ingestion_logs, so these tests open a fresh engine per
phase on the DuckDB file, as a notebook's kernel would.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engagement.engines.duckdb import DuckDBEngine
from engagement.exceptions import ConfigError, StepFailed
from engagement.model import INGESTION_LOGS
from engagement.pipeline import (
    Observer,
    finish_run,
    ingest_phase,
    quality_phase,
    run_pipeline,
    start_run,
    transform_phase,
)
from engagement.runlog import load_run, rejected_sample, steps_frame
from tests.conftest import PARITY_SOURCE, rows, write_files

DATA_TABLES = ["raw_customer_demographics", "raw_clickstream_events", "dim_customer", "fact_click_events",
               "rejected_records", "dq_check_logs", "ingestion_logs"]
# Columns that differ between two runs of the same input: the run, its times, the executed notebook.
VARYING = {"run_id", "loaded_at", "created_at", "updated_at", "rejected_at", "started_at", "finished_at",
           "checked_at", "notebook"}


def _stable(table: str, row: dict) -> dict:
    """A row without what differs between two runs of the same input: the run, its times, its
    notebook; and in dq_check_logs the messages (they name the run) and freshness (an age)."""
    out = {k: v for k, v in row.items() if k not in VARYING}
    if table == "dq_check_logs":
        out.pop("message")
        if out["check_name"] == "fact_event_freshness":
            out.pop("metric_value")
    return out


def content(path: Path) -> dict[str, list[dict]]:
    eng = DuckDBEngine(path)
    try:
        return {t: sorted((_stable(t, r) for r in rows(eng, t)), key=repr) for t in DATA_TABLES}
    finally:
        eng.close()


def phase(path: Path, fn, *args, **kwargs):
    """Run one phase on a fresh connection, as a notebook's own process would."""
    eng = DuckDBEngine(path)
    try:
        return fn(eng, *args, **kwargs)
    finally:
        eng.close()


def by_phases(path: Path, src: Path) -> str:
    run_id = phase(path, start_run, str(src))
    phase(path, ingest_phase, run_id, notebook="01.ipynb")
    phase(path, transform_phase, run_id, notebook="02.ipynb")
    phase(path, quality_phase, run_id, notebook="03.ipynb")
    phase(path, finish_run, run_id, notebook="03.ipynb")
    return run_id


def test_load_run_rebuilds_what_run_pipeline_returned(engine, source) -> None:
    result = run_pipeline(engine, source(PARITY_SOURCE))
    rebuilt = load_run(engine, result.run_id)
    want, got = result.to_json(), rebuilt.to_json()
    assert {k: v for k, v in got.items() if k != "checks"} == {k: v for k, v in want.items() if k != "checks"}
    assert sorted(got["checks"], key=repr) == sorted(want["checks"], key=repr)
    assert sorted(map(repr, rebuilt.checks)) == sorted(map(repr, result.checks))


@pytest.mark.engines("duckdb")
def test_phases_in_a_row_leave_the_warehouse_as_run_pipeline(tmp_path: Path, engine) -> None:
    src = write_files(tmp_path / "src", PARITY_SOURCE)
    whole = tmp_path / "whole.duckdb"
    phase(whole, run_pipeline, src)
    phased = tmp_path / "phased.duckdb"
    run_id = by_phases(phased, src)
    assert content(phased) == content(whole)

    eng = DuckDBEngine(phased)
    try:
        logs = {(r["step"], r["table_name"]): r for r in rows(eng, "ingestion_logs")}
        assert logs[("discover", None)]["notebook"] == "01.ipynb"
        assert logs[("ingest", "raw_clickstream_events")]["notebook"] == "01.ipynb"
        assert logs[("merge", "fact_click_events")]["notebook"] == "02.ipynb"
        assert logs[("checks", "dq_check_logs")]["notebook"] == "03.ipynb"
        assert logs[("run", None)]["status"] == "SUCCEEDED" and logs[("run", None)]["notebook"] == "03.ipynb"
        # every step of the run shares the run's start as its audit time, as in one process
        run_start = logs[("run", None)]["started_at"]
        assert {r["created_at"] for r in rows(eng, "fact_click_events")} == {run_start}
        assert len(steps_frame(eng, run_id)) == 6
        sample = rejected_sample(eng, run_id, per_reason=1)
        assert sorted(zip(sample.source_table, sample.reason)) == sorted({
            ("raw_customer_demographics", "malformed_row"), ("raw_customer_demographics", "missing_key"),
            ("raw_customer_demographics", "invalid_value"), ("raw_clickstream_events", "malformed_row"),
            ("raw_clickstream_events", "missing_key"), ("raw_clickstream_events", "invalid_value")})
        # finishing again changes nothing
        again = finish_run(eng, run_id)
        assert again.status.value == "SUCCEEDED"
    finally:
        eng.close()


@pytest.mark.engines("duckdb")
def test_a_second_run_with_nothing_new_succeeds_with_skipped_steps(tmp_path: Path, engine) -> None:
    engine.close()
    src = write_files(tmp_path / "src", PARITY_SOURCE)
    path = tmp_path / "phases.duckdb"
    by_phases(path, src)
    again = by_phases(path, src)
    run = phase(path, load_run, again)
    assert run.status.value == "SUCCEEDED" and run.error is None
    assert {(s.step, s.status.value) for s in run.steps if s.step in ("ingest", "merge")} == {
        ("ingest", "SKIPPED"), ("merge", "SKIPPED")}


@pytest.mark.engines("duckdb")
def test_phases_out_of_order_or_on_a_closed_run_are_refused(tmp_path: Path, engine) -> None:
    src = write_files(tmp_path / "src", PARITY_SOURCE)
    wh = tmp_path / "w.duckdb"
    run_id = phase(wh, start_run, str(src))
    with pytest.raises(ConfigError, match="ingest raw_customer_demographics, ingest raw_clickstream_events has not"):
        phase(wh, transform_phase, run_id)
    phase(wh, ingest_phase, run_id)
    with pytest.raises(ConfigError, match="merge dim_customer, merge fact_click_events has not SUCCEEDED"):
        phase(wh, quality_phase, run_id)
    with pytest.raises(ConfigError, match="is not in ingestion_logs"):
        phase(wh, ingest_phase, "no-such-run")
    closed = phase(wh, finish_run, run_id)  # closing early: the run is an ERROR that says what is missing
    assert closed.status.value == "ERROR" and closed.error == "the run ended before its transform phase"
    with pytest.raises(ConfigError, match="already closed"):
        phase(wh, transform_phase, run_id)


@pytest.mark.engines("duckdb")
def test_a_failed_step_raises_and_is_logged_as_in_one_process(tmp_path: Path, engine) -> None:
    (tmp_path / "empty" / "customers").mkdir(parents=True)
    wh = tmp_path / "w.duckdb"
    run_id = phase(wh, start_run, str(tmp_path / "empty"))
    with pytest.raises(StepFailed, match="no input files under") as failed:
        phase(wh, ingest_phase, run_id, notebook="runs/01_ingest.ipynb")
    result = phase(wh, finish_run, run_id, failure=f"StepFailed: {failed.value}", notebook="runs/01_ingest.ipynb")
    whole = phase(tmp_path / "whole.duckdb", run_pipeline, tmp_path / "empty")
    assert result.status.value == whole.status.value == "ERROR"
    assert result.error == whole.error  # the step's own message wins over the notebook's
    eng = DuckDBEngine(wh)
    try:
        logs = {r["step"]: r for r in rows(eng, "ingestion_logs")}
    finally:
        eng.close()
    assert logs["discover"]["status"] == "ERROR" and logs["discover"]["notebook"] == "runs/01_ingest.ipynb"
    assert logs["run"]["status"] == "ERROR" and logs["run"]["error_message"] == whole.error
    assert logs["run"]["notebook"] == "runs/01_ingest.ipynb"


@pytest.mark.engines("duckdb")
def test_a_retried_phase_does_not_repeat_the_steps_that_succeeded(tmp_path: Path, engine) -> None:
    src = write_files(tmp_path / "src", PARITY_SOURCE)
    wh = tmp_path / "w.duckdb"
    run_id = phase(wh, start_run, str(src))

    def fail_on_clicks(file, rows) -> None:  # customers load, then the clickstream step errors
        if file.relpath.startswith("clickstream/"):
            raise OSError("No space left on device")

    with pytest.raises(StepFailed, match="the disk is full"):
        phase(wh, ingest_phase, run_id, notebook="try1", observer=Observer(file_loaded=fail_on_clicks))
    retried = phase(wh, ingest_phase, run_id, notebook="try2")
    assert [(s.step, s.table_name) for s in retried.steps] == [("discover", None), ("ingest", "raw_clickstream_events")]
    phase(wh, transform_phase, run_id)
    phase(wh, quality_phase, run_id)
    result = phase(wh, finish_run, run_id)
    assert result.status.value == "SUCCEEDED", result.error

    whole = tmp_path / "whole.duckdb"
    phase(whole, run_pipeline, src)
    assert content(wh) == content(whole)  # customers' rejects were not appended twice
    eng = DuckDBEngine(wh)
    try:
        notebooks = dict(eng.con.execute(
            "SELECT table_name, notebook FROM ingestion_logs WHERE step = 'ingest'").fetchall())
        assert eng.read_table(INGESTION_LOGS, where={"run_id": run_id, "status": "ERROR"}).empty
    finally:
        eng.close()
    assert notebooks == {"raw_customer_demographics": "try1", "raw_clickstream_events": "try2"}
