"""The production Snowflake path, proven offline on the statements the real Snowpark client sends.

Every run shape is recorded by `engagement plan`'s machinery (a non-local Snowpark session over
a RecordingConnection) and held to rules taken from Snowflake's documentation. What this can
prove: which statements a run issues, in which order, under which query tag, inside which
transaction, and that they parse as Snowflake SQL. What it cannot: that Snowflake accepts them
or what they compute (that is `make test-live`).

Golden plans of the parity source live in tests/golden/; ENGAGEMENT_UPDATE_GOLDEN=1 rewrites them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from engagement.config import canonical_size, load_settings
from engagement.engines.snowflake_plan import Plan, record_run, step_of
from engagement.engines.snowflake_recorder import Catalog, RecordingConnection, Statement, offline_session
from tests.conftest import CSV_HEADER, PARITY_SOURCE, write_files

GOLDEN = Path(__file__).parent / "golden"
RUN_ID = "20261201T053000Z-abc123"
MTIME_NS = 1_764_547_200_000_000_000  # 2025-12-01: a fixed version for every source file
# Inside BEGIN ... COMMIT only DML and queries: DDL commits the open transaction, and PUT / REMOVE
# are neither, nor can they be rolled back (docs: sql-reference/transactions).
DDL = re.compile(r"\s*(CREATE|ALTER|DROP|UNDROP|GRANT|REVOKE|COMMENT|TRUNCATE|PUT|REMOVE)\b", re.I)
SECRET = "hunter2-never-in-a-plan"


def _source(root: Path, files: dict[str, str | bytes]) -> Path:
    write_files(root, files)
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(MTIME_NS, MTIME_NS))
    return root


def _settings(source: Path | str, **kwargs):
    return load_settings(engine="snowflake", source=str(source), slack_webhook_url=f"https://hooks.example/{SECRET}",
                         smtp_password=SECRET, **kwargs)


def _clickstream(files: int) -> dict[str, str]:
    out = {"customers/c.csv": f"{CSV_HEADER}\nC1,Ann,a@x.com,EU,2024-01-01\n"}
    for i in range(files):
        out[f"clickstream/dt=2026-01-01/p{i:04d}.jsonl"] = (
            f'{{"event_id":"e{i}","user_id":"C1","event_type":"click","timestamp":"2026-01-01T10:00:00Z"}}\nnot json\n')
    return out


# -- the run shapes -----------------------------------------------------------------------------


def _first_load(tmp_path: Path) -> Plan:
    return record_run(_settings(_source(tmp_path / "src", PARITY_SOURCE)), run_id=RUN_ID)


def _incremental(tmp_path: Path) -> Plan:
    root = _source(tmp_path / "src", PARITY_SOURCE)
    connection = RecordingConnection()
    record_run(_settings(root), connection=connection, run_id="20261130T053000Z-000001")
    _source(root, {"clickstream/dt=2026-01-03/part-0.jsonl":
                   '{"event_id":"e7","user_id":"C5","event_type":"click","timestamp":"2026-01-03T08:00:00Z"}\n'})
    return record_run(_settings(root), connection=connection, run_id=RUN_ID)


def _nothing_new(tmp_path: Path) -> Plan:
    root = _source(tmp_path / "src", PARITY_SOURCE)
    connection = RecordingConnection()
    record_run(_settings(root), connection=connection, run_id="20261130T053000Z-000001")
    return record_run(_settings(root), connection=connection, run_id=RUN_ID)


def _full_refresh(tmp_path: Path) -> Plan:
    root = _source(tmp_path / "src", PARITY_SOURCE)
    connection = RecordingConnection()
    record_run(_settings(root), connection=connection, run_id="20261130T053000Z-000001")
    return record_run(_settings(root, full_refresh=True), connection=connection, run_id=RUN_ID)


def _external_stage(tmp_path: Path) -> Plan:
    catalog = Catalog.from_model()
    url = "s3://landing/engagement"
    catalog.stages["ENGAGEMENT.MARKETING.LANDING"] = "s3://landing/"
    catalog.stage_files["ENGAGEMENT.MARKETING.LANDING"] = [
        (f"{url}/{rel}", len(body), f"md5-{i}") for i, (rel, body) in enumerate(sorted(PARITY_SOURCE.items()))]
    settings = _settings(url, snowflake_external_stage="LANDING")
    return record_run(settings, connection=RecordingConnection(catalog), run_id=RUN_ID)


SHAPES = {"first_load": _first_load, "incremental": _incremental, "nothing_new": _nothing_new,
          "full_refresh": _full_refresh, "external_stage": _external_stage}


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Plan, Path]]:
    """Every shape recorded once for the module: the plan, and the source root it read."""
    out = {}
    for name, record in SHAPES.items():
        tmp = tmp_path_factory.mktemp(name)
        plan = record(tmp)
        assert plan.result is not None and plan.result.status.value == "SUCCEEDED", plan.result and plan.result.error
        out[name] = (plan, tmp / "src")
    return out


@pytest.fixture(params=sorted(SHAPES))
def shape(request: pytest.FixtureRequest, plans: dict[str, tuple[Plan, Path]]) -> tuple[str, list[Statement]]:
    return request.param, plans[request.param][0].statements


def _checks_and_reads() -> list[Statement]:
    """`engagement checks` and every dashboard page's reads, on the offline session."""
    from engagement import insights
    from engagement.engines.snowpark import SnowparkEngine
    from engagement.pipeline import run_checks_only

    connection = RecordingConnection()
    engine = SnowparkEngine(offline_session(connection), database="ENGAGEMENT", schema="MARKETING")
    run_checks_only(engine, run_id=RUN_ID)
    for page in (insights.overview, insights.runs, insights.quality, insights.engagement):
        page(engine)
    return connection.statements


# -- the rules ----------------------------------------------------------------------------------


def _parses(sql: str) -> bool:
    """sqlglot's Snowflake dialect parses ``sql`` as what it is (REMOVE it keeps as a command)."""
    trees = sqlglot.parse(sql, read="snowflake", error_level=sqlglot.ErrorLevel.RAISE)
    return all(t is not None and (not isinstance(t, exp.Command) or sql.lstrip().upper().startswith("REMOVE"))
               for t in trees)


def _assert_rules(statements: list[Statement]) -> None:
    in_transaction: str | None = None
    for s in statements:
        assert _parses(s.sql), s.sql[:300]
        assert SECRET not in s.sql
        # DESC STAGE takes a name; @ is for locations (docs: sql-reference/sql/desc-stage).
        assert not re.match(r"\s*DESC(RIBE)?\s+STAGE\s+@", s.sql, re.I), s.sql
        if re.match(r"\s*COPY\s", s.sql, re.I) and "PARQUET" in s.sql.upper():
            assert re.search(r"USE_LOGICAL_TYPE\s*=\s*True", s.sql, re.I), s.sql
        tag = json.loads(s.query_tag) if s.query_tag else None
        assert tag and tag["app"] == "engagement" and tag["step"], f"untagged: {s.sql[:200]}"
        if re.match(r"\s*BEGIN\b", s.sql, re.I):
            assert in_transaction is None, "nested BEGIN"
            in_transaction = s.query_tag
        elif re.match(r"\s*(COMMIT|ROLLBACK)\b", s.sql, re.I):
            in_transaction = None
        elif in_transaction is not None:
            # DDL commits an open transaction (docs: sql-reference/transactions), and so does
            # Snowpark's hidden CREATE SCOPED TEMPORARY TABLE.
            assert not DDL.match(s.sql), f"DDL inside a transaction: {s.sql[:200]}"
            assert s.query_tag == in_transaction, f"a step's statement under another tag: {s.sql[:200]}"
    assert in_transaction is None, "a transaction was left open"


def test_every_run_shape_keeps_the_rules(shape: tuple[str, list[Statement]]) -> None:
    _assert_rules(shape[1])


def test_checks_and_dashboard_reads_keep_the_rules() -> None:
    statements = _checks_and_reads()
    _assert_rules(statements)
    steps = {step_of(s) for s in statements}
    assert "checks" in steps and any(s.startswith("read ") for s in steps)


def test_generated_ddl_parses() -> None:
    """`engagement sql` (sql/03_tables.sql); the hand-written sql/*.sql: tests/test_snowflake_dmf.py."""
    from engagement.engines.snowflake_ddl import tables_script

    statements = [s for s in sqlglot.parse(tables_script("ENGAGEMENT", "MARKETING"), read="snowflake") if s]
    from engagement.model import TABLES
    from engagement.views import CURRENT_REJECTED_RECORDS

    assert len(statements) == len(TABLES) + 1 and all(isinstance(s, exp.Create) for s in statements)
    assert [s.kind for s in statements] == ["TABLE"] * len(TABLES) + ["VIEW"]
    assert statements[-1].this.name.lower() == CURRENT_REJECTED_RECORDS


def test_statement_count_does_not_grow_with_files(tmp_path: Path) -> None:
    one = record_run(_settings(_source(tmp_path / "one", _clickstream(1))), run_id=RUN_ID)
    many = record_run(_settings(_source(tmp_path / "many", _clickstream(1000))), run_id=RUN_ID)
    assert many.result is not None and many.result.ingest[1].files == 1000
    assert [step_of(s) for s in one.executed] == [step_of(s) for s in many.executed]
    assert len(one.statements) == len(many.statements)


def test_each_attempt_stages_into_a_fresh_folder_and_removes_it(tmp_path: Path) -> None:
    root = _source(tmp_path / "src", PARITY_SOURCE)
    folders = []
    for _ in range(2):  # the same run id twice: a retried ingest
        plan = record_run(_settings(root, full_refresh=True), run_id=RUN_ID)
        puts = [re.search(r"'(@[^']+)'", s.sql).group(1) for s in plan.executed if s.sql.lstrip().startswith("PUT")]
        removes = [s.sql.split(None, 1)[1] for s in plan.executed if s.sql.startswith("REMOVE")]
        assert puts and puts == removes
        folders += puts
    assert len(set(folders)) == len(folders)


def test_log_writes_are_one_statement_each_and_atomic_by_themselves(plans: dict[str, tuple[Plan, Path]]) -> None:
    plan = plans["first_load"][0]
    logs = [s for s in plan.executed if step_of(s).startswith("log ")]
    assert logs and all(re.match(r"\s*(MERGE|INSERT|show tables|alter session)", s.sql, re.I) for s in logs)
    assert not any("TEMP" in s.sql.upper().split("(")[0] for s in plan.statements)


def test_plan_names_the_files_behind_each_put_and_marks_steps(plans: dict[str, tuple[Plan, Path]]) -> None:
    text = plans["first_load"][0].render()
    assert "Row counts are unknown" in text
    assert "-- step: ingest raw_customer_demographics" in text and "-- step: merge fact_click_events" in text
    assert "-- PUT uploads the records of 2 source file(s), as Parquet: customers/a.csv, customers/b.csv.gz" in text
    body = [line for line in text.splitlines() if line and not line.startswith("--")]
    assert body[-1].endswith(";")


def _normalized(plan: Plan, root: Path) -> str:
    text = plan.render().replace(str(root), "<source>")
    text = re.sub(r"file:///[^']*/engagement-stage-[^/']+/", "file://<staging>/", text)
    text = re.sub(rf"({RUN_ID}/\w+/)[0-9a-f]{{8}}/", r"\1<attempt>/", text)
    text = re.sub(r"\br_[0-9a-z]{4}_", "r_NNNN_", text)
    return re.sub(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}\.\d{6}", "<time>", text)


@pytest.mark.parametrize("name", ["first_load", "incremental", "nothing_new", "full_refresh"])
def test_golden_plans_of_the_parity_source(plans: dict[str, tuple[Plan, Path]], name: str) -> None:
    text = _normalized(*plans[name])
    golden = GOLDEN / f"plan_{name}.sql"
    if os.environ.get("ENGAGEMENT_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text(), f"the plan changed: review it, then ENGAGEMENT_UPDATE_GOLDEN=1 ({golden})"


# -- single defects -------------------------------------------------------------------------------


def test_external_stage_is_described_by_name_and_copied_by_location(plans: dict[str, tuple[Plan, Path]]) -> None:
    sqls = [s.sql for s in plans["external_stage"][0].executed]
    assert 'DESC STAGE "ENGAGEMENT"."MARKETING"."LANDING"' in sqls
    assert any(s.startswith('LIST @"ENGAGEMENT"."MARKETING"."LANDING"') for s in sqls)
    copies = [s for s in sqls if s.startswith("COPY INTO")]
    assert copies and all("FORCE = TRUE" in s and "FILES = (" in s for s in copies)
    assert any("ESCAPE_UNENCLOSED_FIELD = NONE" in s for s in copies)  # as the embedded CSV reader: no escapes


@pytest.mark.parametrize(("shown", "canonical"), [("X-Small", "XSMALL"), ("2X-Large", "XXLARGE"),
                                                  ("3X-Large", "XXXLARGE"), ("4X-Large", "X4LARGE"),
                                                  ("Medium", "MEDIUM"), ("XXLARGE", "XXLARGE"), ("X2LARGE", "XXLARGE"),
                                                  ("huge", None)])
def test_warehouse_sizes_compare_canonically(shown: str, canonical: str | None) -> None:
    assert canonical_size(shown) == canonical


def _resizes(tmp_path: Path, shown_size: str, load_size: str) -> list[str]:
    catalog = Catalog.from_model(warehouse_size=shown_size)
    catalog.other_warehouses.append(("ENGAGEMENTXWH", "Large"))  # matches LIKE 'ENGAGEMENT_WH' too
    root = _source(tmp_path / f"src-{shown_size}", PARITY_SOURCE)
    plan = record_run(_settings(root, snowflake_load_size=load_size), connection=RecordingConnection(catalog))
    return [s.sql for s in plan.executed if s.sql.upper().startswith("ALTER WAREHOUSE")]


def test_resizing_restores_the_exact_warehouse_and_skips_when_already_that_size(tmp_path: Path) -> None:
    alters = _resizes(tmp_path, "X-Small", "2X-Large")
    assert alters[:2] == ['ALTER WAREHOUSE "ENGAGEMENT_WH" SET WAREHOUSE_SIZE = XXLARGE',
                          'ALTER WAREHOUSE "ENGAGEMENT_WH" SET WAREHOUSE_SIZE = XSMALL']
    assert _resizes(tmp_path, "2X-Large", "XXLARGE") == []


def test_plan_command_prints_offline_and_refuses_other_engines(tmp_path: Path) -> None:
    _source(tmp_path / "src", PARITY_SOURCE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENGAGEMENT_", "SNOWFLAKE_"))}
    env["SNOWFLAKE_HOME"] = str(tmp_path / "nowhere")  # no connection at all: a plan needs none
    proc = subprocess.run([sys.executable, "-m", "engagement", "plan", "--source", "src", "--out", "plan.sql"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "-- step: merge dim_customer" in (tmp_path / "plan.sql").read_text()
    proc = subprocess.run([sys.executable, "-m", "engagement", "plan", "--engine", "duckdb", "--source", "src"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_a_log_write_past_the_literal_limit_is_split_in_one_transaction() -> None:
    from engagement.engines import snowpark
    from engagement.engines.snowpark import SnowparkEngine
    from engagement.model import LOADED_FILES

    connection = RecordingConnection()
    engine = SnowparkEngine(offline_session(connection), database="ENGAGEMENT", schema="MARKETING")
    rows = [{"source_table": "raw_clickstream_events", "source_file": f"clickstream/{i:05d}-{'x' * 150}.jsonl",
             "size": i, "version": str(i), "run_id": RUN_ID, "state": "INGESTED", "loaded_at": None}
            for i in range(4000)]  # about 1 MB of rows
    engine.write_log(LOADED_FILES, rows, key=("source_table", "source_file"))
    sent = [s.sql for s in connection.statements if not s.describe]
    merges = [s for s in sent if s.lstrip().startswith("MERGE")]
    assert len(merges) >= 2 and all(len(s) < 2 * snowpark.LITERAL_BYTES for s in merges)
    assert sent.index("BEGIN") < sent.index(merges[0]) and sent.index(merges[-1]) < sent.index("COMMIT")
    assert len(connection.answers.logs.rows["LOADED_FILES"]) == 4000


def test_a_remove_that_fails_neither_fails_the_committed_step_nor_hides_it(tmp_path: Path) -> None:
    from engagement.engines.snowflake_catalog import ProgrammingError

    connection = RecordingConnection()
    answer = connection.answers.answer

    def refuse_remove(sql: str):
        if sql.startswith("REMOVE"):
            raise ProgrammingError("REMOVE failed: insufficient privileges")
        return answer(sql)

    connection.answers.answer = refuse_remove  # type: ignore[method-assign]
    plan = record_run(_settings(_source(tmp_path / "src", PARITY_SOURCE)), connection=connection, run_id=RUN_ID)
    assert plan.result is not None and plan.result.status.value == "SUCCEEDED", plan.result.error


def test_plan_of_a_run_that_stops_says_so_and_a_bad_out_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENGAGEMENT_", "SNOWFLAKE_"))}
    for args, code, words in ((["--source", "empty"], 3, "the run would stop: no input files"),
                              (["--source", "empty", "--out", "nowhere/plan.sql"], 2, "its folder does not exist")):
        proc = subprocess.run([sys.executable, "-m", "engagement", "plan", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == code and len(lines) == 1 and words in lines[0] and "Traceback" not in proc.stderr
