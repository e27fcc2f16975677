"""The live suite's own machinery, offline: the throwaway schemas it creates and drops on the
account, the truncation between tests, and that `make test` never collects the live engine.

The schema set-up and tear-down of tests/conftest.py run here on a real (non-local) Snowpark
session over the recording connection of engagement.engines.snowflake_recorder, so the
statements asserted are the ones the client sends to an account.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from snowflake.connector.cursor import ResultMetadata
from snowflake.snowpark.exceptions import SnowparkSQLException

from engagement.engines.snowflake_ddl import create_table_sql
from engagement.engines.snowflake_catalog import FIXED, TEXT, ProgrammingError
from engagement.engines.snowflake_recorder import RecordingConnection, offline_session
from engagement.exceptions import ConfigError
from engagement.model import TABLES
from tests.conftest import empty_tables, live_schema_name, throwaway_schemas

ROOT = Path(__file__).resolve().parent.parent
BASE = "ENGAGEMENT_TEST_20261130_120000_ABC123"
Q_BASE, Q_FRESH = f'"ENGAGEMENT"."{BASE}"', f'"ENGAGEMENT"."{BASE}_FRESH"'


def _sent(connection: RecordingConnection) -> list[str]:
    """The statements the client ran (describes and query tags left out), whitespace collapsed."""
    return [" ".join(s.sql.split()) for s in connection.statements
            if not s.describe and not s.sql.lower().startswith("alter session set query_tag")]


def _fail_on(connection: RecordingConnection, pattern: str, message: str) -> None:
    """Make the offline account refuse statements matching ``pattern``, as Snowflake would."""

    def refuse(match: re.Match[str]) -> Any:
        raise ProgrammingError(message)

    connection.answers.handlers.insert(0, (re.compile(pattern, re.I), refuse))


def test_set_up_creates_two_transient_quoted_schemas_with_the_engines_tables_and_tear_down_drops_them() -> None:
    connection = RecordingConnection()
    with throwaway_schemas(offline_session(connection), "engagement", BASE) as live:
        during = _sent(connection)
    after = _sent(connection)[len(during):]

    assert (live.database, live.schema, live.fresh) == ("ENGAGEMENT", BASE, f"{BASE}_FRESH")
    comment = "COMMENT = 'engagement make test-live: throwaway, dropped when the run ends; safe to drop'"
    assert during[:4] == [
        f"CREATE TRANSIENT SCHEMA {Q_BASE} DATA_RETENTION_TIME_IN_DAYS = 0 {comment}",
        f'CREATE STAGE {Q_BASE}."ENGAGEMENT_STAGE" FILE_FORMAT = (TYPE = PARQUET)',
        f"CREATE TRANSIENT SCHEMA {Q_FRESH} DATA_RETENTION_TIME_IN_DAYS = 0 {comment}",
        f'CREATE STAGE {Q_FRESH}."ENGAGEMENT_STAGE" FILE_FORMAT = (TYPE = PARQUET)',
    ]
    # the tables are the engine's own: its setup's statements, in the throwaway schema
    for table in TABLES:
        assert " ".join(create_table_sql(table, "ENGAGEMENT", BASE).split()) in during, table.name
    assert during[-1] == f"use schema {Q_BASE}"
    assert not [s for s in during if s.startswith("DROP")]
    assert after == [f"DROP SCHEMA IF EXISTS {Q_FRESH} CASCADE", f"DROP SCHEMA IF EXISTS {Q_BASE} CASCADE"]
    # nothing touches any other schema (the configured MARKETING above all)
    assert all(BASE in s for s in during + after), during
    assert not [s for s in during + after if "MARKETING" in s]


def test_tear_down_drops_the_schemas_when_the_tests_fail() -> None:
    connection = RecordingConnection()
    with pytest.raises(AssertionError, match="a test failed"):
        with throwaway_schemas(offline_session(connection), "ENGAGEMENT", BASE):
            raise AssertionError("a test failed")
    assert _sent(connection)[-2:] == [f"DROP SCHEMA IF EXISTS {Q_FRESH} CASCADE",
                                      f"DROP SCHEMA IF EXISTS {Q_BASE} CASCADE"]


def test_a_schema_that_already_exists_is_never_dropped() -> None:
    connection = RecordingConnection()
    _fail_on(connection, r"\s*CREATE TRANSIENT SCHEMA", "SQL compilation error: Object already exists.")
    with pytest.raises(SnowparkSQLException, match="already exists"):
        with throwaway_schemas(offline_session(connection), "ENGAGEMENT", BASE):
            pytest.fail("the block must not run without its schemas")
    assert not [s for s in _sent(connection) if s.startswith("DROP")]


def test_when_the_second_schema_cannot_be_created_the_first_is_dropped() -> None:
    connection = RecordingConnection()
    _fail_on(connection, rf'\s*CREATE TRANSIENT SCHEMA "ENGAGEMENT"."{BASE}_FRESH"',
             "SQL access control error: Insufficient privileges to operate on database 'ENGAGEMENT'")
    with pytest.raises(SnowparkSQLException, match="Insufficient privileges"):
        with throwaway_schemas(offline_session(connection), "ENGAGEMENT", BASE):
            pytest.fail("the block must not run without its schemas")
    assert [s for s in _sent(connection) if s.startswith("DROP")] == [f"DROP SCHEMA IF EXISTS {Q_BASE} CASCADE"]


@pytest.mark.parametrize(("database", "base"), [
    ("ENGAGEMENT", 'X"; DROP SCHEMA MARKETING; --'),
    ("ENGAGEMENT", "MARKETING.X"),
    ("ENGAGEMENT", "1_STARTS_WITH_A_DIGIT"),
    ('ENGAGEMENT"."MARKETING', BASE),
    ("", BASE),
])
def test_names_that_are_not_plain_identifiers_are_refused_before_any_statement(database: str, base: str) -> None:
    connection = RecordingConnection()
    with pytest.raises(ConfigError, match="not a valid identifier"):
        with throwaway_schemas(offline_session(connection), database, base):
            pytest.fail("refused names must not get a schema")
    assert _sent(connection) == []


def test_the_schema_name_is_dated_random_and_a_plain_identifier() -> None:
    when = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
    assert live_schema_name(when, "ABC123") == BASE
    names = {live_schema_name() for _ in range(20)}
    assert len(names) == 20
    for name in names:
        assert re.fullmatch(r"ENGAGEMENT_TEST_\d{8}_\d{6}_[0-9A-F]{6}", name), name


def _show_tables(connection: RecordingConnection, tables: list[tuple[str, int | None]]) -> None:
    """Have the offline account answer SHOW TABLES with these (name, rows)."""

    def answer(match: re.Match[str]) -> Any:
        meta = [ResultMetadata("name", TEXT, None, 255, None, None, False),
                ResultMetadata("rows", FIXED, None, None, 38, 0, True)]
        return meta, tables

    connection.answers.handlers.insert(0, (re.compile(r"\s*SHOW\s+TABLES\b", re.I), answer))


def test_between_tests_only_model_tables_holding_rows_are_truncated() -> None:
    connection = RecordingConnection()
    _show_tables(connection, [("DIM_CUSTOMER", 3), ("FACT_CLICK_EVENTS", 0), ("LOADED_FILES", None),
                              ("SOMEONE_ELSES_TABLE", 5)])
    emptied = empty_tables(offline_session(connection), "ENGAGEMENT", BASE)
    assert emptied == ["DIM_CUSTOMER", "LOADED_FILES"]  # rows unknown (NULL) is emptied too
    assert _sent(connection) == [
        f"SHOW TABLES IN SCHEMA {Q_BASE}",
        f'TRUNCATE TABLE IF EXISTS {Q_BASE}."DIM_CUSTOMER"',
        f'TRUNCATE TABLE IF EXISTS {Q_BASE}."LOADED_FILES"',
    ]


def test_a_schema_without_tables_costs_one_show() -> None:
    connection = RecordingConnection()
    _show_tables(connection, [])
    assert empty_tables(offline_session(connection), "ENGAGEMENT", f"{BASE}_FRESH") == []
    assert _sent(connection) == [f"SHOW TABLES IN SCHEMA {Q_FRESH}"]


# -- how pytest and make see the live engine (subprocesses: the selection happens at import) ----

CONTRACT = ["tests/test_merge.py", "tests/test_live_snowflake.py"]


def _run(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("ENGAGEMENT_TEST_ENGINES", "ENGAGEMENT_TEST_SNOWFLAKE_CONNECTION")}
    clean.update(env, PYTHONPATH=str(ROOT))
    return subprocess.run(command, cwd=ROOT, env=clean, capture_output=True, text=True, timeout=300)


def _collect(**env: str) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *CONTRACT], **env)


def test_without_the_variables_nothing_live_is_collected() -> None:
    proc = _collect()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    items = [line for line in proc.stdout.splitlines() if "::" in line]
    assert any("[duckdb]" in i for i in items) and any("[snowpark-local]" in i for i in items), items
    assert not [i for i in items if "snowflake" in i], items  # the live module, named here, is deselected
    assert "skipped" not in proc.stdout


def test_the_live_engine_without_a_connection_is_refused_in_one_line() -> None:
    proc = _collect(ENGAGEMENT_TEST_ENGINES="snowflake")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "ERROR: ENGAGEMENT_TEST_ENGINES names snowflake: set ENGAGEMENT_TEST_SNOWFLAKE_CONNECTION to a "
        "connection in connections.toml (see README, Live tests)"]


def test_with_a_connection_the_contract_tests_are_collected_on_snowflake_only() -> None:
    # collecting opens no session: fixtures run only when tests do
    proc = _collect(ENGAGEMENT_TEST_ENGINES="snowflake", ENGAGEMENT_TEST_SNOWFLAKE_CONNECTION="nowhere")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    items = [line for line in proc.stdout.splitlines() if "::" in line]
    params = [m.group(1).split("-") for i in items if (m := re.search(r"\[(.*)\]$", i))]
    assert params and all("snowflake" in p and "duckdb" not in p for p in params), items
    assert "tests/test_live_snowflake.py::test_snowflake_agrees_with_duckdb_on_every_column[snowflake]" in items
    assert any(i.startswith("tests/test_merge.py::") for i in items)


def test_a_connection_that_cannot_be_opened_stops_the_live_run_after_one_error_line(tmp_path: Path) -> None:
    # an empty SNOWFLAKE_HOME: the connection is looked up in the empty connections.toml, no network
    proc = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_check_types.py"],
                ENGAGEMENT_TEST_ENGINES="snowflake", ENGAGEMENT_TEST_SNOWFLAKE_CONNECTION="nowhere",
                SNOWFLAKE_HOME=str(tmp_path))
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, proc.stdout + proc.stderr
    assert "1 error" in proc.stdout and "passed" not in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    message = [line for line in proc.stdout.splitlines() if line.startswith("live tests: ")]
    assert message and "Snowflake connection" in message[0] and "not found" in message[0], proc.stdout


def test_make_test_live_without_a_connection_stops_before_anything_in_one_line() -> None:
    proc = _run(["make", "--no-print-directory", "test-live"])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert "make test-live: set ENGAGEMENT_TEST_SNOWFLAKE_CONNECTION" in line, line


def test_make_test_live_runs_the_contract_modules_on_snowflake() -> None:
    proc = _run(["make", "--no-print-directory", "-n", "test-live", "ENGAGEMENT_TEST_SNOWFLAKE_CONNECTION=nowhere"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (command,) = [line for line in proc.stdout.splitlines() if "-m pytest" in line]
    assert command.startswith("ENGAGEMENT_TEST_ENGINES=snowflake "), command
    for module in ("test_rules_customers.py", "test_rules_clickstream.py", "test_merge.py", "test_incremental.py",
                   "test_check_types.py", "test_check_history_types.py", "test_live_snowflake.py"):
        assert f"tests/{module}" in command.split(), module
    assert "-n" not in command.split()  # one session, one pair of schemas
