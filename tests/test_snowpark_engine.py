"""The Snowpark engine under Snowpark local testing: atomic steps, patches, read_table, parity with DuckDB."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from snowflake.snowpark import Table as SnowparkTable

from conftest import CSV_HEADER, rows, write_files
from engagement.checks import CheckContext
from engagement.config import load_settings
from engagement.engines import create_engine
from engagement.engines.base import Engine
from engagement.model import DIM_CUSTOMER, FACT_EVENTS, TABLES_BY_NAME, Check, CheckType
from engagement.pipeline import Observer, run_pipeline
from engagement.results import CheckResult

RAW_C, RAW_E = "raw_customer_demographics", "raw_clickstream_events"
DIM, FACT, REJECTED = "dim_customer", "fact_click_events", "rejected_records"
AUDIT = {"created_at", "updated_at", "run_id", "loaded_at", "rejected_at"}


def make_engine(name: str, tmp_path: Path) -> Engine:
    return create_engine(load_settings(engine=name, warehouse=tmp_path / name / "warehouse.duckdb"))


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine("snowpark-local", tmp_path)
    yield eng
    eng.close()


def snapshot(engine: Engine) -> dict[str, list[dict]]:
    return {t: rows(engine, t) for t in (RAW_C, RAW_E, DIM, FACT, REJECTED)}


# -- atomicity -------------------------------------------------------------------------------

FIRST = {
    "customers/a.csv": f"{CSV_HEADER}\nc1,Ann,a@x,EU,2024-01-01\nc1,Ann,a@x,EU,2024-13-01\n",
    "clickstream/a.jsonl": '{"event_id":"e1","timestamp":"2026-01-01T10:00:00Z"}\nnot json\n',
}
SECOND = {
    "customers/a.csv": f"{CSV_HEADER}\nc1,Ann,a@x,FR,2024-01-01\n,NoKey,n@x,EU,\n",
    "customers/b.csv": f"{CSV_HEADER}\nc2,Bob,b@x,US,\n",
    "clickstream/a.jsonl": '{"event_id":"e2","timestamp":"2026-01-01T10:00:00Z"}\n',
}


def test_error_after_the_first_file_leaves_every_table_as_it_was(local, tmp_path):
    run_pipeline(local, write_files(tmp_path / "one", FIRST))
    before = snapshot(local)

    def boom(file, records):
        # Files are read (and, on Snowflake, PUT) before the step's transaction opens.
        raise RuntimeError("disk on fire")

    result = run_pipeline(local, write_files(tmp_path / "two", SECOND), observer=Observer(file_loaded=boom))
    assert result.status == "ERROR" and "disk on fire" in result.error
    assert snapshot(local) == before
    (step,) = [s for s in result.steps if s.step == "ingest"]
    assert (step.table_name, step.status) == (RAW_C, "ERROR")


def test_error_after_the_load_inside_the_step_leaves_every_table_as_it_was(local, tmp_path, monkeypatch):
    from engagement.engines.snowpark_local import LocalRawLoader

    run_pipeline(local, write_files(tmp_path / "one", FIRST))
    before = snapshot(local)
    finish = LocalRawLoader.finish
    seen = []

    def load_then_fail(self, expected):
        finish(self, expected)
        # The raw table now holds this run's rows only (truncated, then loaded, like the COPY):
        # only the rollback can bring the first run's back.
        seen.append(sorted(r["source_file"] for r in rows(local, RAW_C)))
        raise RuntimeError("connection lost after COPY")

    monkeypatch.setattr(LocalRawLoader, "finish", load_then_fail)
    result = run_pipeline(local, write_files(tmp_path / "two", SECOND))
    assert result.status == "ERROR" and "connection lost after COPY" in result.error
    assert seen == [["customers/a.csv", "customers/a.csv", "customers/b.csv"]]  # the second run's records
    assert snapshot(local) == before


def test_error_after_the_merge_statement_leaves_the_target_as_it_was(local, tmp_path, monkeypatch):
    run_pipeline(local, write_files(tmp_path / "one", FIRST))
    before = snapshot(local)
    merge = SnowparkTable.merge

    def merge_then_fail(self, *args, **kwargs):
        result = merge(self, *args, **kwargs)
        if not any(t in self.table_name for t in ("DIM_CUSTOMER", "FACT_CLICK_EVENTS")):
            return result  # log tables are written with MERGE too; the fault is in the target's
        raise RuntimeError("connection lost after MERGE")

    monkeypatch.setattr(SnowparkTable, "merge", merge_then_fail)
    result = run_pipeline(local, write_files(tmp_path / "two", SECOND))
    assert result.status == "ERROR" and "connection lost" in result.error
    after = snapshot(local)
    assert after[DIM] == before[DIM] and after[FACT] == before[FACT]
    # the ingest steps before it committed: this run's raw rows and rejects are there
    assert {r["customer_id"] for r in after[RAW_C]} == {"c1", "", "c2"}
    assert len(after[REJECTED]) == len(before[REJECTED]) + 1


# -- patches -------------------------------------------------------------------------------


def test_patches_are_installed_only_in_local_mode_and_only_once():
    # A fresh process: patches are process-global, so other tests may have installed them here.
    script = textwrap.dedent("""
        import json
        from snowflake.snowpark.mock._functions import MockedFunctionRegistry
        from engagement.engines import snowpark_local
        from engagement.engines.snowflake_session import local_session
        from engagement.engines.snowpark import SnowparkEngine

        out = {"imported": snowpark_local.installed_patches()}
        SnowparkEngine(object(), database="D", schema="S", local=False)  # never touches the session
        out["real"] = snowpark_local.installed_patches()
        SnowparkEngine(local_session(), database="D", schema="S", local=True)
        out["local"] = snowpark_local.installed_patches()
        registry = MockedFunctionRegistry.get_or_create()
        first = {n: id(registry.get_function(n)) for n in snowpark_local.PATCHES}
        SnowparkEngine(local_session(), database="D", schema="S", local=True)
        snowpark_local.install_patches()
        out["same"] = first == {n: id(registry.get_function(n)) for n in snowpark_local.PATCHES}
        print(json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(out["local"]) == {"trim", "regexp_like", "try_parse_json", "is_object", "typeof", "check_json",
                                 "get", "strip_null_value", "convert_timezone", "to_char"}
    assert not any(out["imported"].values()) and not any(out["real"].values())
    assert all(out["local"].values())
    assert out["same"] is True


# -- read_table, metrics -------------------------------------------------------------------


def test_read_table_has_lower_case_model_columns_and_none_for_null(local, tmp_path):
    run_pipeline(local, write_files(tmp_path / "src", {
        "clickstream/a.jsonl": '{"event_id":"e1","timestamp":"2026-01-01T10:00:00.5Z","duration_ms":9223372036854775807}\n'
                               '{"event_id":"e2","timestamp":"2026-01-01T11:00:00+01:00","user_id":null}\n',
    }))
    frame = local.read_table(FACT_EVENTS, order_by=["event_id desc"])
    assert list(frame.columns) == FACT_EVENTS.column_names
    assert str(frame["duration_ms"].dtype) == "Int64"
    assert str(frame["event_timestamp"].dtype).startswith("datetime64")
    got = rows(local, FACT, "event_id")
    assert [r["event_id"] for r in got] == ["e1", "e2"]
    e1, e2 = got
    assert e1["duration_ms"] == 2**63 - 1 and type(e1["duration_ms"]) is int
    assert (e2["duration_ms"], e2["user_id"], e2["page_url"]) == (None, None, None)
    assert pd.Timestamp(e1["event_timestamp"]) == pd.Timestamp("2026-01-01 10:00:00.5")
    assert pd.Timestamp(e2["event_timestamp"]) == pd.Timestamp("2026-01-01 10:00:00")
    assert list(local.read_table(FACT_EVENTS, order_by=["event_id desc"])["event_id"]) == ["e2", "e1"]
    assert list(local.read_table(FACT_EVENTS, where={"event_id": "e2"}, limit=5)["event_id"]) == ["e2"]
    empty = local.read_table(DIM_CUSTOMER)
    assert list(empty.columns) == DIM_CUSTOMER.column_names and len(empty) == 0


def test_a_failing_check_gives_a_metric_with_one_line_error(local):
    local.setup()
    good, bad = local.metrics([Check("rows", CheckType.ROW_COUNT, DIM),
                               Check("nope", CheckType.NULL_COUNT, DIM, "no_such_column")],
                              CheckContext("r1", datetime(2026, 1, 1)))
    assert (good.value, good.total, good.error) == (0.0, 0, None)
    assert (bad.value, bad.total) == (None, 0) and bad.error and "\n" not in bad.error


# -- parity with DuckDB -------------------------------------------------------------------

PARITY_RUNS = [
    {
        "customers/a.csv": (
            f"{CSV_HEADER}\n"
            "c1,Ann,ANN@X.COM,EU,2024-01-01\n"
            '  c2 ," Zoë, Z ",z@x,  ,\n'
            "c1,Ann Lee,ann@x.com,EU,2024-01-01\n"  # a later copy: wins
            ",NoKey,n@x,EU,\n"  # missing_key
            "c3,Cid,c@x,EU,2024-02-30\n"  # invalid_value
            "c4,Short\n"  # malformed_row
        ),
        "customers/b.csv": "id,name\n1,x\n",  # a wrong header: every line malformed
        "clickstream/a.jsonl": (
            '{"event_id":"e1","user_id":"c1","page_url":"/café \\"q\\"","duration_ms":3,"timestamp":"2026-01-01T10:00:00Z"}\n'
            '{"event_id":"e1","page_url":"/older","timestamp":"2026-01-01T11:00:00+02:00"}\n'  # older: loses
            "not json\n"
            "[1, 2]\n"
            '{"event_id":"  ","timestamp":"2026-01-01T10:00:00Z"}\n'  # missing_key
            '{"event_id":"e2","timestamp":"2026-01-01T24:00:00Z"}\n'  # invalid_value
            '{"event_id":"e3","timestamp":"2026-01-01T10:00:00Z","duration_ms":"300"}\n'  # invalid_value
            '{"event_id":"e4","user_id":null,"event_type":"","timestamp":"2026-01-01 12:00:00"}\n'
        ),
        "clickstream/b.json": '[{"event_id":"e5","timestamp":"2026-01-02T09:00:00.250-01:00"}, 42, {"event_id":"e1",'
                              '"timestamp":"2026-01-01T10:00:00Z","page_url":"/same-time-later-file"}]',
    },
    {
        "customers/a.csv": f"{CSV_HEADER}\nc1,Ann Lee,ann@x.com,EU,2024-01-01\nc2,Zoë,z@x,FR,\nc5,Eve,e@x,US,\n",
        "clickstream/c.jsonl": (
            '{"event_id":"e1","timestamp":"2026-01-01T09:00:00Z","page_url":"/stale"}\n'
            '{"event_id":"e4","timestamp":"2026-01-01T12:00:01Z","duration_ms":0}\n'
            '{"event_id":"e6","timestamp":"2026-01-03T00:00:00Z"}\n'
        ),
    },
]


def content(engine: Engine, table: str) -> list[dict]:
    return sorted(({k: v for k, v in r.items() if k not in AUDIT} for r in rows(engine, table)), key=repr)


def check_view(c: CheckResult) -> tuple:
    """What both engines must agree on; freshness is measured against each run's own clock,
    so for it compare the newest value found."""
    measured = c.failing_sample if c.check_name == "fact_event_freshness" else c.metric_value
    return c.check_name, measured, c.rows_checked, c.status


def test_same_tables_rejects_counts_and_checks_as_duckdb(tmp_path):
    engines = {name: make_engine(name, tmp_path) for name in ("duckdb", "snowpark-local")}
    try:
        for i, files in enumerate(PARITY_RUNS):
            root = write_files(tmp_path / f"run{i}", files)
            results = {name: run_pipeline(eng, root) for name, eng in engines.items()}
            duck, snow = results["duckdb"], results["snowpark-local"]
            assert duck.status == snow.status == "SUCCEEDED", (duck.error, snow.error)
            assert [(c.table, c.files, c.read, c.rejected) for c in duck.ingest] == [
                (c.table, c.files, c.read, c.rejected) for c in snow.ingest
            ]
            assert duck.merges == snow.merges
            assert [check_view(c) for c in duck.checks] == [check_view(c) for c in snow.checks]
            assert duck.tables == snow.tables
            for table in (RAW_C, RAW_E, DIM, FACT, REJECTED):
                assert content(engines["duckdb"], table) == content(engines["snowpark-local"], table), table
        # the first run really exercised every reason on both sources
        reasons = {(r["source_table"], r["reason"]) for r in rows(engines["snowpark-local"], REJECTED)}
        assert reasons == {(t, r) for t in (RAW_C, RAW_E) for r in ("malformed_row", "missing_key", "invalid_value")}
        steps = {name: [(r["step"], r["table_name"], r["status"], r["rows_read"], r["rows_inserted"])
                        for r in rows(eng, "ingestion_logs")] for name, eng in engines.items()}
        assert sorted(steps["duckdb"], key=repr) == sorted(steps["snowpark-local"], key=repr)
    finally:
        for eng in engines.values():
            eng.close()


def test_every_model_table_is_created(local):
    local.setup()
    local.setup()  # idempotent
    assert local.table_counts() == {name: 0 for name in TABLES_BY_NAME}


# -- logs ------------------------------------------------------------------------------------


def test_write_log_replaces_by_key_null_safe_and_appends_large_batches(local):
    from engagement.model import DQ_CHECK_LOGS, INGESTION_LOGS

    local.setup()
    step = {"run_id": "r1", "step": "run", "table_name": None, "status": "STARTED", "engine": "snowpark-local",
            "started_at": pd.Timestamp("2026-01-01 10:00:00").to_pydatetime()}
    key = ("run_id", "step", "table_name")
    local.write_log(INGESTION_LOGS, [step, {**step, "step": "ingest", "table_name": RAW_C}], key=key)
    local.write_log(INGESTION_LOGS, [{**step, "status": "SUCCEEDED", "files": 3}], key=key)  # NULL table_name
    got = sorted((r["step"], r["table_name"], r["status"], r["files"]) for r in rows(local, "ingestion_logs"))
    assert got == [("ingest", RAW_C, "STARTED", None), ("run", None, "SUCCEEDED", 3)]
    checks = [{"run_id": "r1", "check_name": f"c{i}", "table_name": DIM, "metric_value": float(i), "status": "PASSED",
               "checked_at": step["started_at"]} for i in range(100)]  # 1,300 values: several inline frames
    local.write_log(DQ_CHECK_LOGS, checks)
    logged = rows(local, "dq_check_logs", "metric_value")
    assert [r["check_name"] for r in logged] == [f"c{i}" for i in range(100)]
