"""``engagement doctor``: one PASS / FAIL line per item, exit 0 or 2, and nothing created.

DuckDB is tested for real: a warehouse loaded by a real ``engagement run``, a missing file, a
file held read-write by a second process, a table altered behind the model's back.

Snowflake is tested through :class:`engagement.engines.snowflake_recorder.RecordingConnection`
under a real (non-local) Snowpark session: the accepted stand-in for an account. What it proves:
which statements the doctor sends (read-only ones, DESC STAGE on a name, SHOW GRANTS per role),
and how it reads answers shaped as Snowflake documents them (SHOW GRANTS columns, DESC STAGE
properties, CURRENT_*(), INFORMATION_SCHEMA.COLUMNS), so that a missing table, column, stage,
grant or a wrong role is named with its fix. What it cannot prove: that Snowflake answers
these statements exactly so on an account (grant rows of real hierarchies, database-role
rows, quoting of odd names), nor that the fixes it prints are accepted as written.
The connection and setting lines are checked by a real process against a connections.toml in a
temporary SNOWFLAKE_HOME, whose connection points at a closed local port.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from engagement.doctor import CheckResult, Outcome, diagnose, log_folder, report
from engagement.engines.duckdb_doctor import disk_check
from tests.test_cli import GOOD, cli, write_files

LINE = re.compile(r"^(PASS|FAIL|SKIP)  [^:]+: .+$")
SECRET = "hunter2-do-not-print"


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No ENGAGEMENT_* from the caller's environment and no .env: the settings are the test's."""
    for key in list(os.environ):
        if key.upper().startswith("ENGAGEMENT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def assert_report(proc: subprocess.CompletedProcess) -> list[str]:
    """Every line an item (then the count), nothing on stderr, no traceback."""
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr == "", proc.stderr
    *items, count = proc.stdout.splitlines()
    assert items and all(LINE.match(line) for line in items), proc.stdout
    assert re.match(r"^\d+ of \d+ passed, \d+ failed", count), count
    return items


# -- DuckDB ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose w.duckdb was loaded by a real `engagement run`."""
    root = tmp_path_factory.mktemp("doctor")
    write_files(root / "src", GOOD)
    proc = cli(root, "run", "--source", "src", "--warehouse", "w.duckdb")
    assert proc.returncode == 0, proc.stderr
    return root


def test_healthy_duckdb_warehouse_passes_every_item_and_changes_nothing(loaded: Path) -> None:
    before = sorted(p.relative_to(loaded) for p in loaded.rglob("*"))
    proc = cli(loaded, "doctor", "--warehouse", "w.duckdb")
    assert proc.returncode == 0, proc.stdout
    items = assert_report(proc)
    assert all(line.startswith("PASS") for line in items)
    names = [line.split(":")[0][6:] for line in items]
    for name in ("warehouse file", "opens read-only", "schema", "table dim_customer", "table loaded_files",
                 "disk space", "log folder"):
        assert name in names
    assert "(from flag --warehouse)" in proc.stdout and "GiB free" in proc.stdout
    assert sorted(p.relative_to(loaded) for p in loaded.rglob("*")) == before


def test_missing_warehouse_fails_exit_2_and_creates_nothing(tmp_path: Path) -> None:
    proc = cli(tmp_path, "doctor", "--warehouse", "nowhere/w.duckdb")
    assert proc.returncode == 2
    items = assert_report(proc)
    fail = next(line for line in items if line.startswith("FAIL"))
    assert "warehouse file" in fail and "does not exist" in fail and "fix:" in fail and "engagement run" in fail
    assert any(line.startswith("SKIP  opens read-only") for line in items)
    assert list(tmp_path.iterdir()) == []  # no warehouse, no folder, no logs/


def test_locked_warehouse_names_the_process_holding_it(loaded: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(60)",
         str(loaded / "w.duckdb")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        proc = cli(loaded, "doctor", "--warehouse", "w.duckdb")
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 2
    items = assert_report(proc)
    line = next(line for line in items if "opens read-only" in line)
    assert line.startswith("FAIL") and f"locked by process {holder.pid} (python" in line
    assert f"fix: wait for it to finish (`ps -o args= -p {holder.pid}`" in line
    assert "import duckdb" not in line  # a command line may hold a secret: never printed
    assert any(line.startswith("SKIP  tables") for line in items)


def test_a_table_behind_the_model_names_the_table_and_the_column(tmp_path: Path, clean_env: Path) -> None:
    write_files(tmp_path / "src", GOOD)
    assert cli(tmp_path, "run", "--source", "src", "--warehouse", "w.duckdb").returncode == 0
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("ALTER TABLE dim_customer DROP COLUMN region")
        con.execute("ALTER TABLE fact_click_events DROP COLUMN event_id")
        con.execute("DROP TABLE loaded_files")
    results = by_name(list(diagnose({"engine": "duckdb", "warehouse": tmp_path / "w.duckdb"})))
    assert "lacks column(s) region" in results["table dim_customer"].detail
    assert "engagement run" in results["table dim_customer"].fix
    assert "required column(s) event_id" in results["table fact_click_events"].detail
    assert "move that warehouse file away" in results["table fact_click_events"].fix
    assert results["table loaded_files"].detail == "missing"
    assert results["table rejected_records"].ok


def test_little_disk_space_fails_with_the_figure(tmp_path: Path) -> None:
    result = disk_check(tmp_path / "w.duckdb", min_free=2**50)
    assert not result.ok and re.search(r"[\d.]+ GiB free at .*, under 1048576\.0 GiB", result.detail)
    assert disk_check(tmp_path / "w.duckdb", min_free=0).ok


def test_the_log_folder_is_checked_without_creating_it(tmp_path: Path) -> None:
    missing = log_folder(tmp_path / "a" / "logs")
    assert missing.ok and "does not exist yet" in missing.detail and not (tmp_path / "a").exists()
    (tmp_path / "file").write_text("")
    blocked = log_folder(tmp_path / "file" / "logs")
    assert not blocked.ok and "is a file" in blocked.detail and "ENGAGEMENT_LOG_DIR" in blocked.fix
    if os.geteuid() != 0:  # root may write anywhere
        (tmp_path / "ro").mkdir(mode=0o500)
        assert not log_folder(tmp_path / "ro" / "logs").ok


def test_report_is_one_line_per_item_and_exit_2_on_any_failure() -> None:
    lines: list[str] = []
    code = report([CheckResult("a", True, "fine"), CheckResult("b", False, "broken\nbadly", "do x")], lines.append)
    assert code == 2 and lines == ["PASS  a: fine", "FAIL  b: broken badly; fix: do x", "1 of 2 passed, 1 failed"]
    assert report([CheckResult("a", True, "fine")], lines.append) == 0


def test_help_explains_the_command(tmp_path: Path) -> None:
    proc = cli(tmp_path, "doctor", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    for words in ("Changes nothing", "PASS, or FAIL with the fix", "--engine", "--warehouse", "--connection", "--dmf",
                  "SHOW GRANTS", "Exit code 0 when every item passed, 2 otherwise"):
        assert words in text, words
    assert "doctor" in cli(tmp_path, "--help").stdout


def test_doctor_refuses_engines_it_cannot_check(tmp_path: Path) -> None:
    for args in (["--engine", "snowpark-local"], ["--dmf"]):
        proc = cli(tmp_path, "doctor", *args)
        assert proc.returncode == 2 and proc.stderr.startswith("error:") and len(proc.stderr.splitlines()) == 1


# -- Snowflake through the recording connection ---------------------------------------------


def snowflake(catalog, **settings) -> tuple[dict[str, CheckResult], list]:
    """The doctor's results on an offline account holding ``catalog``, and the statements it sent."""
    from engagement.engines.snowflake_recorder import RecordingConnection, offline_session

    connection = RecordingConnection(catalog)
    session = offline_session(connection)
    flags = {"engine": "snowflake", "snowflake_role": "ENGAGEMENT_ROLE", **settings}
    dmf = flags.pop("dmf", False)
    results = list(diagnose(flags, dmf=dmf, session=session))
    return by_name(results), connection.statements


@pytest.fixture
def catalog(clean_env: Path):
    from engagement.engines.snowflake_recorder import Catalog

    return Catalog.from_model()


def test_healthy_account_passes_every_item_with_read_only_statements(catalog) -> None:
    results, statements = snowflake(catalog)
    assert [r.line() for r in results.values() if not r.ok] == []
    assert {"role", "warehouse", "database", "schema", "table DIM_CUSTOMER", "stage ENGAGEMENT_STAGE",
            "grant CREATE TABLE on SCHEMA ENGAGEMENT.MARKETING", "grant table privileges"} <= set(results)
    sent = [s.sql for s in statements if not s.describe]
    assert sum("INFORMATION_SCHEMA.COLUMNS" in s for s in sent) == 1
    assert 'SHOW GRANTS TO ROLE "ENGAGEMENT_ROLE"' in sent and 'SHOW GRANTS TO ROLE "PUBLIC"' in sent
    assert 'DESC STAGE "ENGAGEMENT"."MARKETING"."ENGAGEMENT_STAGE"' in sent
    writes = re.compile(r"^\s*(CREATE|ALTER|DROP|INSERT|UPDATE|DELETE|MERGE|PUT|COPY|GRANT|TRUNCATE)\b", re.I)
    assert not [s for s in sent if writes.match(s)]


@pytest.mark.parametrize(("drop", "item", "words"), [
    ("table", "table DIM_CUSTOMER", ["missing from ENGAGEMENT.MARKETING", "sql/03_tables.sql"]),
    ("column", "table FACT_CLICK_EVENTS", ["lacks column(s) PAGE_URL", "engagement run"]),
    ("stage", "stage ENGAGEMENT_STAGE", ["ENGAGEMENT.MARKETING.ENGAGEMENT_STAGE does not exist", "sql/02_stages.sql"]),
])
def test_a_missing_object_fails_naming_it(catalog, drop: str, item: str, words: list[str]) -> None:
    if drop == "table":
        del catalog.tables["ENGAGEMENT.MARKETING.DIM_CUSTOMER"]
    elif drop == "column":
        name = "ENGAGEMENT.MARKETING.FACT_CLICK_EVENTS"
        catalog.tables[name] = [c for c in catalog.tables[name] if c[0] != "PAGE_URL"]
    else:
        catalog.stages.clear()
    results, _ = snowflake(catalog)
    assert [name for name, r in results.items() if not r.ok] == [item]
    line = results[item].line()
    assert line.startswith("FAIL") and all(w in line for w in words), line


def test_a_missing_privilege_fails_naming_the_grant_to_run(catalog) -> None:
    catalog.grants.discard(("CREATE TABLE", "SCHEMA", "ENGAGEMENT.MARKETING"))
    results, _ = snowflake(catalog)
    failed = [r for r in results.values() if not r.ok]
    assert [r.name for r in failed] == ["grant CREATE TABLE on SCHEMA ENGAGEMENT.MARKETING"]
    assert failed[0].fix == "GRANT CREATE TABLE ON SCHEMA ENGAGEMENT.MARKETING TO ROLE ENGAGEMENT_ROLE"


def test_a_wrong_role_fails_and_its_grants_are_not_judged(catalog) -> None:
    catalog.role = "ANALYST"
    results, _ = snowflake(catalog)
    assert not results["role"].ok
    assert "ANALYST, but ENGAGEMENT_SNOWFLAKE_ROLE expects ENGAGEMENT_ROLE" in results["role"].detail
    assert "GRANT ROLE ENGAGEMENT_ROLE TO USER ENGAGEMENT_SVC" in results["role"].fix
    assert results["privileges"].outcome is Outcome.SKIP


def test_privileges_inherited_through_roles_and_public_count(catalog) -> None:
    """MODIFY through a granted role, the DMF prerequisites through PUBLIC and another role, the
    stage's READ and WRITE through OWNERSHIP: each found by following SHOW GRANTS."""
    stage = "ENGAGEMENT.MARKETING.ENGAGEMENT_STAGE"
    catalog.grants -= {("READ", "STAGE", stage), ("WRITE", "STAGE", stage), ("OPERATE", "WAREHOUSE", "ENGAGEMENT_WH")}
    catalog.grants |= {("USAGE", "ROLE", "WH_OPERATOR"), ("OWNERSHIP", "STAGE", stage),
                       ("OWNERSHIP", "ROLE", "NOT_INHERITED")}
    catalog.role_grants = {
        "WH_OPERATOR": {("OPERATE", "WAREHOUSE", "ENGAGEMENT_WH"), ("MODIFY", "WAREHOUSE", "ENGAGEMENT_WH"),
                        ("USAGE", "ROLE", "DQ")},
        "DQ": {("EXECUTE DATA METRIC FUNCTION", "ACCOUNT", "OFFLINE")},
        "PUBLIC": {("USAGE", "DATABASE_ROLE", "SNOWFLAKE.DATA_METRIC_USER")},
        "NOT_INHERITED": {("CREATE DATA METRIC FUNCTION", "SCHEMA", "ENGAGEMENT.MARKETING")},
    }
    results, statements = snowflake(catalog, snowflake_load_size="MEDIUM", dmf=True)
    failed = [name for name, r in results.items() if not r.ok]
    # owning a role passes none of its privileges on
    assert failed == ["grant CREATE DATA METRIC FUNCTION on SCHEMA ENGAGEMENT.MARKETING"]
    assert "via role WH_OPERATOR" in results["grant OPERATE, MODIFY on WAREHOUSE ENGAGEMENT_WH"].detail
    assert "via role DQ" in results["grant EXECUTE DATA METRIC FUNCTION on the account"].detail
    assert "via role PUBLIC" in results["grant USAGE on DATABASE ROLE SNOWFLAKE.DATA_METRIC_USER"].detail
    assert "(OWNERSHIP)" in results[f"grant READ, WRITE on STAGE {stage}"].detail
    assert "(PUBLIC, WH_OPERATOR, DQ)" in results["roles"].detail
    assert not any("NOT_INHERITED" in s.sql for s in statements)


def test_the_external_stage_is_described_by_name_and_listed(catalog) -> None:
    catalog.stages["ENGAGEMENT.MARKETING.LANDING"] = "s3://acme/landing/"
    catalog.stage_files["ENGAGEMENT.MARKETING.LANDING"] = [("s3://acme/landing/engagement/customers/c.csv", 10, "aa")]
    catalog.grants.add(("USAGE", "STAGE", "ENGAGEMENT.MARKETING.LANDING"))
    results, statements = snowflake(catalog, snowflake_external_stage="LANDING", source="s3://acme/landing/engagement")
    assert [r.line() for r in results.values() if not r.ok] == []
    assert "points at s3://acme/landing/" in results["external stage LANDING"].detail
    assert "1 file(s)" in results["LIST @LANDING"].detail
    sent = [s.sql for s in statements]
    assert 'DESC STAGE "ENGAGEMENT"."MARKETING"."LANDING"' in sent
    assert 'LIST @"ENGAGEMENT"."MARKETING"."LANDING"/engagement/' in sent
    assert not any(s.startswith("DESC STAGE @") for s in sent)

    results, _ = snowflake(catalog, snowflake_external_stage="LANDING", source="s3://other/bucket")
    outside = results["external stage LANDING"]
    assert not outside.ok and "does not hold --source" in outside.detail


# -- Snowflake connection settings, as a user's process reads them ---------------------------


@pytest.fixture
def home(tmp_path: Path) -> Path:
    sf = tmp_path / "sfhome"
    sf.mkdir()
    (sf / "connections.toml").write_text(
        f'[dev]\naccount = "xy12345"\nuser = "ann"\npassword = "{SECRET}"\nhost = "127.0.0.1"\nport = 9\n'
        'protocol = "http"\nlogin_timeout = 5\n')
    (sf / "connections.toml").chmod(0o600)
    return sf


def snowflake_cli(cwd: Path, home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`engagement doctor --engine snowflake` in a process whose only Snowflake settings are the test's."""
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith(("ENGAGEMENT_", "SNOWFLAKE_"))}
    return subprocess.run([sys.executable, "-m", "engagement", "doctor", "--engine", "snowflake", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**base, "SNOWFLAKE_HOME": str(home), "COLUMNS": "200", **(env or {})})


def test_connection_settings_show_their_source_and_never_a_secret(tmp_path: Path, home: Path) -> None:
    proc = snowflake_cli(tmp_path, home, "--connection", "dev", env={"ENGAGEMENT_SNOWFLAKE_ROLE": "ENGAGEMENT_ROLE"})
    assert proc.returncode == 2
    assert SECRET not in proc.stdout + proc.stderr
    items = assert_report(proc)
    text = "\n".join(items)
    assert f"PASS  connection: 'dev' from {home / 'connections.toml'} (named by flag --connection)" in text
    assert "PASS  connections file:" in text
    assert "PASS  setting password: (set) (from connections.toml [dev])" in text
    assert "PASS  setting account: xy12345 (from connections.toml [dev])" in text
    assert "PASS  setting role: ENGAGEMENT_ROLE (from environment ENGAGEMENT_SNOWFLAKE_ROLE)" in text
    assert "PASS  setting database: ENGAGEMENT (from the default)" in text
    connect = next(line for line in items if line.startswith("FAIL  connect:"))
    assert "cannot connect to Snowflake" in connect and "fix:" in connect


def test_an_unknown_connection_or_none_fails_naming_the_fix(tmp_path: Path, home: Path) -> None:
    proc = snowflake_cli(tmp_path, home, "--connection", "prod")
    assert proc.returncode == 2
    line = next(line for line in assert_report(proc) if line.startswith("FAIL"))
    assert "'prod'" in line and "known: dev" in line
    (home / "connections.toml").write_text('[default]\naccount = "a"\n')
    (home / "connections.toml").chmod(0o644)
    proc = snowflake_cli(tmp_path, home)
    items = assert_report(proc)
    # No name: the default connection is used, as a run uses it (its file is too open, though).
    assert any(line.startswith("PASS  connection: the default connection 'default'") for line in items)
    assert any(line.startswith("FAIL") and "connections.toml" in line for line in items)
