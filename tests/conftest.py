"""Shared fixtures: a source folder written from hand-made text, and engines to run it on.

Contract tests take the ``engine_name`` fixture, parametrized over every engine
that runs offline, the way dlt parametrizes its tests over destinations. ``make test-live``
adds a real Snowflake account (see "the live engine" below); ``make test`` never sees it.
"""

from __future__ import annotations

import gzip
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from engagement.config import load_settings
from engagement.engines import create_engine
from engagement.engines.base import Engine
from engagement.pipeline import run_pipeline
from engagement.results import RunResult

if TYPE_CHECKING:
    from snowflake.snowpark import Session

# The engines contract tests run on: ENGAGEMENT_TEST_ENGINES=duckdb narrows a run (e.g. while
# debugging); "snowflake" is the live engine, for `make test-live` only (see below).
TEST_ENGINES = [e for e in os.environ.get("ENGAGEMENT_TEST_ENGINES", "duckdb,snowpark-local").split(",") if e]
# Engines that run offline: what tests building their own engines from this list may use.
OFFLINE_ENGINES = [e for e in TEST_ENGINES if e != "snowflake"]
SNOWFLAKE_CONNECTION = os.environ.get("ENGAGEMENT_TEST_SNOWFLAKE_CONNECTION") or None
LIVE = "snowflake" in TEST_ENGINES
# Without the live engine its module is not even collected, so `make test` shows no skipped live
# test (and pytest_collection_modifyitems deselects it when named on the command line).
collect_ignore = [] if LIVE else ["test_live_snowflake.py"]

CSV_HEADER = "customer_id,first_name,email,region,signup_date"


# A small source touching every rule, shared by the parity and live tests.
PARITY_SOURCE = {
    "customers/a.csv": (
        f"{CSV_HEADER}\r\n"
        'C1,"Smith, Ann", ANN@X.COM ,EMEA,2024-01-01\r\n'
        "C2,Bo,bo@x.com,NA,\r\n"
        "C3,Cy,cy@x.com,NA\r\n"  # malformed_row
        ",NoKey,n@x.com,NA,2024-01-01\r\n"  # missing_key
        "C4,Di,di@x.com,APAC,2024-02-30\r\n"  # invalid_value
    ),
    "customers/b.csv.gz": f"{CSV_HEADER}\nC2,Bo,bo@new.com,LATAM,2024-03-01\nC5,Zoë,z@x.com,EMEA,2023-12-31\n",
    "clickstream/dt=2026-01-01/part-0.jsonl": (
        '{"event_id":"e1","user_id":"C1","event_type":"page_view","page_url":"/","duration_ms":12,"timestamp":"2026-01-01T10:00:00Z"}\n'
        '{"event_id":"e1","user_id":"C1","event_type":"page_view","page_url":"/","duration_ms":15,"timestamp":"2026-01-01T10:00:05+00:00"}\n'
        '{"event_id":"e2","event_type":"add_to_cart","timestamp":"2026-01-01 11:00:00"}\n'
        '{"event_id":"e3","user_id":"C9","event_type":"hover","timestamp":"2026-01-01T12:00:00+02:00","duration_ms":null}\n'
        "not json\n"
        '{"user_id":"C1","timestamp":"2026-01-01T10:00:00Z"}\n'
        '{"event_id":"e4","timestamp":"2026-01-01T25:00:00Z"}\n'
        '{"event_id":"e5","timestamp":"2026-01-01T10:00:00Z","duration_ms":"300"}\n'
    ),
    "clickstream/dt=2026-01-02/extra.json": (
        '[{"event_id":"e6","user_id":"C2","event_type":"purchase","page_url":"/checkout","duration_ms":0,'
        '"timestamp":"2026-01-02T09:00:00.250Z"}, 42]'
    ),
}


def write_files(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write ``{relative path: content}`` under ``root``; ``.gz`` paths are gzipped; str is UTF-8."""
    for rel, content in files.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        if rel.endswith(".gz"):
            data = gzip.compress(data)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


@pytest.fixture(params=TEST_ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    """The engine under test; ``@pytest.mark.engines("duckdb")`` limits a test to some engines.

    On ``snowflake`` the test starts on empty tables, and any engine the test opens itself
    (``create_engine(load_settings(engine="snowflake"))``) lands in the run's second
    throwaway schema, never in the configured one (see :func:`live_snowflake_test`).
    """
    marker = request.node.get_closest_marker("engines")
    if marker and request.param not in marker.args:
        pytest.skip(f"runs on {', '.join(marker.args)} only")
    if request.param == "snowflake":
        request.getfixturevalue("live_snowflake_test")
    return request.param


@pytest.fixture
def engine(engine_name: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A connected engine of kind ``engine_name`` with an empty warehouse of its own."""
    if engine_name == "snowflake":
        from engagement.engines.snowpark import SnowparkEngine

        live: LiveSchemas = request.getfixturevalue("live_snowflake_test")
        # The shipped engine on the run's one session: a login per test would cost more than the test.
        yield SnowparkEngine(live.session, database=live.database, schema=live.schema)
        return  # the session is closed once, by live_snowflake
    eng = create_engine(load_settings(engine=engine_name, warehouse=tmp_path / "wh" / "test.duckdb"))
    yield eng
    eng.close()


# -- the live engine: a real Snowflake account, for `make test-live` ---------------------------
#
# One pair of throwaway schemas per test session, dropped at its end (also when tests fail):
# `<base>` holds the tables of the `engine` fixture, `<base>_FRESH` those of engines a test
# opens itself as "a second, empty warehouse" (tests/test_merge.py, tests/test_incremental.py).
# Between tests the model tables that hold rows are truncated rather than the schemas recreated:
# one SHOW TABLES (a metadata command) plus one TRUNCATE per non-empty table, against a DROP and
# CREATE SCHEMA, a CREATE STAGE and nine setup statements per schema per test. The warehouse bills
# for the time it runs, so fewer round trips is the saving; one login per session, not per test,
# likewise. Snowflake behaviour relied on:
# - CREATE [ TRANSIENT ] SCHEMA ... DATA_RETENTION_TIME_IN_DAYS = <n>: a transient schema has no
#   Fail-safe period, and every table created in it is transient:
#   https://docs.snowflake.com/en/sql-reference/sql/create-schema
#   Transient tables have no Fail-safe and a Time Travel retention of 0 or 1 day:
#   https://docs.snowflake.com/en/user-guide/data-cdp-storage-costs
#   so with retention 0 no storage is billed for the schema once it is dropped.
# - DROP SCHEMA [ IF EXISTS ] <name> [ CASCADE | RESTRICT ] drops the schema and all its objects
#   (CASCADE is the default; written out anyway); a transient schema is purged once it leaves
#   Time Travel: https://docs.snowflake.com/en/sql-reference/sql/drop-schema
# - TRUNCATE TABLE [ IF EXISTS ] also deletes the table's load metadata, so the next test can COPY
#   the same files again: https://docs.snowflake.com/en/sql-reference/sql/truncate-table
# - SHOW TABLES IN SCHEMA lists each table with its "rows":
#   https://docs.snowflake.com/en/sql-reference/sql/show-tables
# - The role needs CREATE SCHEMA on the database; the schema's creator owns it, so it can create
#   tables and stages in it and drop it:
#   https://docs.snowflake.com/en/user-guide/security-access-control-privileges

LIVE_SCHEMA_PREFIX = "ENGAGEMENT_TEST_"
LIVE_SCHEMA_COMMENT = "engagement make test-live: throwaway, dropped when the run ends; safe to drop"


@dataclass(frozen=True)
class LiveSchemas:
    """The throwaway schemas of one live test session, and the session that created them."""

    session: Session
    database: str
    schema: str  # tables of the `engine` fixture
    fresh: str  # tables of engines a test opens itself


def live_schema_name(now: datetime | None = None, token: str | None = None) -> str:
    """``ENGAGEMENT_TEST_<UTC yyyymmdd_hhmmss>_<6 hex>``: unique, sortable, findable with SHOW SCHEMAS LIKE."""
    now = now or datetime.now(UTC)
    token = token if token is not None else secrets.token_hex(3).upper()
    return f"{LIVE_SCHEMA_PREFIX}{now:%Y%m%d_%H%M%S}_{token}"


def _value(row: Any, name: str) -> Any:
    """A field of a SHOW result row by case-insensitive name."""
    return {k.lower(): v for k, v in row.as_dict().items()}.get(name.lower())


@contextmanager
def throwaway_schemas(session: Session, database: str, base: str) -> Iterator[LiveSchemas]:
    """Create ``base`` and ``base_FRESH`` (transient, no Time Travel) in ``database``, each with the
    engine's stage, the tables by the engine's own setup; drop both when the block ends, however it ends.

    Names are validated identifiers, always quoted. A schema whose CREATE failed (it exists, or the
    role may not) is never dropped: only what this function created is.
    """
    from engagement.engines.snowflake_ddl import ident, qualified
    from engagement.engines.snowflake_backend import STAGE
    from engagement.engines.snowpark import SnowparkEngine
    from engagement.identifiers import validate

    validate(database, "ENGAGEMENT_TEST_SNOWFLAKE_DATABASE")
    fresh = validate(f"{validate(base, 'the live test schema')}_FRESH", "the live test schema")
    created: list[str] = []
    try:
        for schema in (base, fresh):
            # No IF NOT EXISTS: an existing schema of that name is someone else's, and must not be dropped.
            session.sql(f"CREATE TRANSIENT SCHEMA {ident(database)}.{ident(schema)} "
                        f"DATA_RETENTION_TIME_IN_DAYS = 0 COMMENT = '{LIVE_SCHEMA_COMMENT}'").collect()
            created.append(schema)
            # the internal stage the engine PUTs to, as sql/02_stages.sql creates it
            session.sql(f"CREATE STAGE {qualified(database, schema, STAGE)} FILE_FORMAT = (TYPE = PARQUET)").collect()
        SnowparkEngine(session, database=database, schema=base).setup()
        # Snowpark puts its own temporary objects in the session's schema: keep them in ours.
        session.use_schema(f"{ident(database)}.{ident(base)}")
        yield LiveSchemas(session, database.upper(), base.upper(), fresh.upper())
    finally:
        errors = []
        for schema in reversed(created):
            try:
                session.sql(f"DROP SCHEMA IF EXISTS {ident(database)}.{ident(schema)} CASCADE").collect()
            except Exception as exc:  # still drop the other one
                errors.append(f"{database}.{schema}: {exc}")
        if errors:
            raise RuntimeError(f"could not drop the live test schema(s) {'; '.join(errors)}; drop them by hand")


def empty_tables(session: Session, database: str, schema: str) -> list[str]:
    """Truncate the model tables of ``schema`` that hold rows (or whose count is unknown); their names."""
    from engagement.engines.snowflake_ddl import ident, qualified
    from engagement.model import TABLES

    model = {t.name.upper() for t in TABLES}
    emptied = []
    for row in session.sql(f"SHOW TABLES IN SCHEMA {ident(database)}.{ident(schema)}").collect():
        name, count = str(_value(row, "name") or ""), _value(row, "rows")
        if name.upper() in model and (count is None or int(count) != 0):
            session.sql(f"TRUNCATE TABLE IF EXISTS {qualified(database, schema, name)}").collect()
            emptied.append(name.upper())
    return emptied


def _live_database(connection: str) -> str:
    """ENGAGEMENT_TEST_SNOWFLAKE_DATABASE, else the connection's ``database``, else the project's
    (ENGAGEMENT_SNOWFLAKE_DATABASE, default ENGAGEMENT)."""
    if os.environ.get("ENGAGEMENT_TEST_SNOWFLAKE_DATABASE"):
        return os.environ["ENGAGEMENT_TEST_SNOWFLAKE_DATABASE"]
    try:
        from snowflake.connector.config_manager import CONFIG_MANAGER  # what the connector reads itself

        configured = (CONFIG_MANAGER["connections"].get(connection) or {}).get("database")
    except Exception:  # no or unreadable connections.toml: create_session says what is wrong
        configured = None
    return str(configured).strip('"') if configured else load_settings().snowflake_database


def _stop(request: pytest.FixtureRequest, message: str) -> NoReturn:
    """Fail this test with ``message`` (one line, no traceback) and stop the run after it: the
    other live tests would only fail the same way."""
    request.session.shouldstop = message
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def live_snowflake(request: pytest.FixtureRequest) -> Iterator[LiveSchemas]:
    """The live test session's Snowpark session and throwaway schemas, dropped at the end."""
    from engagement.engines.snowflake_session import create_session
    from engagement.exceptions import ConfigError

    assert SNOWFLAKE_CONNECTION, "pytest_configure refuses the snowflake engine without a connection"
    base = live_schema_name()
    try:
        database = _live_database(SNOWFLAKE_CONNECTION)
        settings = load_settings(engine="snowflake", snowflake_connection=SNOWFLAKE_CONNECTION,
                                 snowflake_database=database, snowflake_schema=base)
        session = create_session(settings, local=False)
    except ConfigError as exc:
        problem = f"live tests: {exc}"
    else:
        problem = None
    if problem:
        _stop(request, problem)
    with ExitStack() as stack:
        stack.callback(session.close)
        try:
            live = stack.enter_context(throwaway_schemas(session, settings.snowflake_database, base))
        except Exception as exc:  # said once, in one line, rather than as every test's error
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            problem = (f"live tests: cannot create schema {settings.snowflake_database}.{base} "
                       f"(the role needs CREATE SCHEMA on the database): {detail}")
        if problem:
            _stop(request, problem)
        yield live


@pytest.fixture
def live_snowflake_test(live_snowflake: LiveSchemas, monkeypatch: pytest.MonkeyPatch) -> LiveSchemas:
    """Empty tables for this test, and the environment pointing any engine the test opens itself
    (``load_settings(engine="snowflake")``) at the second throwaway schema, with no resizing."""
    live = live_snowflake
    for schema in (live.schema, live.fresh):
        empty_tables(live.session, live.database, schema)
    monkeypatch.setenv("ENGAGEMENT_SNOWFLAKE_CONNECTION", SNOWFLAKE_CONNECTION or "")
    monkeypatch.setenv("ENGAGEMENT_SNOWFLAKE_DATABASE", live.database)
    monkeypatch.setenv("ENGAGEMENT_SNOWFLAKE_SCHEMA", live.fresh)
    monkeypatch.delenv("ENGAGEMENT_SNOWFLAKE_LOAD_SIZE", raising=False)
    monkeypatch.delenv("ENGAGEMENT_SNOWFLAKE_EXTERNAL_STAGE", raising=False)
    return live


def pytest_configure(config: pytest.Config) -> None:
    """Refuse the live engine in one line when no connection is named."""
    if LIVE and not SNOWFLAKE_CONNECTION:
        raise pytest.UsageError(
            "ENGAGEMENT_TEST_ENGINES names snowflake: set ENGAGEMENT_TEST_SNOWFLAKE_CONNECTION to a "
            "connection in connections.toml (see README, Live tests)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without the live engine, tests marked ``live`` are deselected, never reported as skipped."""
    if LIVE:
        return
    live = [item for item in items if item.get_closest_marker("live")]
    if live:
        config.hook.pytest_deselected(items=live)
        items[:] = [item for item in items if not item.get_closest_marker("live")]


@pytest.fixture
def source(tmp_path: Path) -> Callable[..., Path]:
    """``source(files, name="src")`` writes a source folder and returns its root."""

    def make(files: dict[str, str | bytes], name: str = "src") -> Path:
        return write_files(tmp_path / name, files)

    return make


@pytest.fixture
def run(engine: Engine) -> Callable[[Path], RunResult]:
    """Run the whole pipeline on ``engine`` over a source root."""

    def go(root: Path, **kwargs) -> RunResult:
        return run_pipeline(engine, root, **kwargs)

    return go


def rows(engine: Engine, table: str, order_by: str | None = None) -> list[dict]:
    """A model table's rows as dicts (engine-neutral, for comparisons)."""
    from engagement.model import TABLES_BY_NAME

    frame = engine.read_table(TABLES_BY_NAME[table], order_by=[order_by] if order_by else ())
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_dict("records")


# -- a warehouse for the dashboard: generated data with defects, loaded by two runs ------------


@dataclass(frozen=True)
class DashboardWarehouse:
    """``path`` was loaded by ``runs[0]`` (customers and the first 3 days of events), then by
    ``runs[1]`` (every file): its tables equal one run over ``manifest``'s source."""

    path: Path
    manifest: dict
    runs: tuple[str, str]
    root: Path

    def sql(self, query: str, params: list | None = None) -> list[tuple]:
        """An independent answer straight from DuckDB (an oracle for the dashboard's numbers)."""
        import duckdb

        with duckdb.connect(str(self.path), read_only=True) as con:
            con.execute("SET TimeZone = 'UTC'")
            return con.execute(query, params or []).fetchall()


@pytest.fixture(scope="session")
def dashboard_warehouse(tmp_path_factory: pytest.TempPathFactory) -> DashboardWarehouse:
    from engagement.engines.duckdb import DuckDBEngine
    from engagement.generate import generate

    root = tmp_path_factory.mktemp("dashboard")
    full = root / "generated"
    # the last day is yesterday, so the freshness check passes as on a nightly load
    manifest = generate(full, customers=500, events=20_000, days=7, seed=42, defect_rate=0.02,
                        start_date=date.today() - timedelta(days=7))
    staged = root / "landing"
    shutil.copytree(full / "customers", staged / "customers")
    days = sorted(p.name for p in (full / "clickstream").iterdir())
    engine = DuckDBEngine(root / "warehouse.duckdb")
    runs = []
    try:
        for i, batch in enumerate((days[:5], days[5:])):
            for day in batch:
                shutil.copytree(full / "clickstream" / day, staged / "clickstream" / day)
            # the second run reloads the whole folder, so the latest run's totals are the manifest's
            # (and its volume, 7 days against 5, stays within the volume check's WARN level)
            result = run_pipeline(engine, staged, full_refresh=i == 1)
            assert result.status == "SUCCEEDED", result.error
            runs.append(result.run_id)
    finally:
        engine.close()
    return DashboardWarehouse(root / "warehouse.duckdb", manifest, (runs[0], runs[1]), root)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the DuckDB file open for writing from another process, as a pipeline run does."""
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(120)",
         str(path)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.kill()
        holder.wait()
