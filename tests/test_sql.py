"""The Snowflake DDL in sql/ agrees with the data model."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from engagement.check_file import load_checks
from engagement.engines.snowflake_ddl import tables_script
from engagement.engines.snowflake_dmf import dmf_script
from engagement.model import TABLES, CheckType

ROOT = Path(__file__).resolve().parents[1]


def test_committed_ddl_is_the_generated_ddl() -> None:
    committed = (ROOT / "sql" / "03_tables.sql").read_text()
    assert committed == tables_script("ENGAGEMENT", "MARKETING"), "run: engagement sql > sql/03_tables.sql"


def test_every_table_and_column_of_the_model_is_created() -> None:
    ddl = tables_script("ENGAGEMENT", "MARKETING")
    for table in TABLES:
        body = re.search(rf'"{table.name.upper()}" \((.*?)\n\)', ddl, re.S)
        assert body, table.name
        names = [line.split()[0] for line in body.group(1).strip().splitlines()]
        assert names == [c.name.upper() for c in table.columns]
    assert "CLUSTER BY (TO_DATE(EVENT_TIMESTAMP), USER_ID)" in ddl
    assert "CLUSTER BY (CUSTOMER_ID)" in ddl


def test_setup_scripts_name_the_objects_the_engine_uses() -> None:
    setup = (ROOT / "sql" / "01_setup.sql").read_text() + (ROOT / "sql" / "02_stages.sql").read_text()
    for name in ("ENGAGEMENT_ROLE", "ENGAGEMENT_WH", "ENGAGEMENT.MARKETING", "ENGAGEMENT_STAGE", "CREATE TABLE"):
        assert name in setup


def test_sql_command_quotes_configured_names_and_rejects_bad_ones(tmp_path: Path) -> None:
    run = lambda *a: subprocess.run([sys.executable, "-m", "engagement", "sql", *a], cwd=tmp_path,  # noqa: E731
                                    capture_output=True, text=True)
    ok = run("--database", "analytics", "--schema", "mkt")
    assert ok.returncode == 0 and '"ANALYTICS"."MKT"."DIM_CUSTOMER"' in ok.stdout
    bad = run("--schema", 'x"; drop table y; --')
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr


def test_committed_dmf_script_is_generated_from_the_default_checks() -> None:
    committed = (ROOT / "sql" / "04_data_metric_functions.sql").read_text()
    assert committed == dmf_script(load_checks(), "ENGAGEMENT", "MARKETING"), \
        "run: engagement sql --dmf -o sql/04_data_metric_functions.sql"


def test_dmf_script_attaches_every_check_or_says_why_not() -> None:
    checks = load_checks()
    script = dmf_script(checks, "ENGAGEMENT", "MARKETING")
    attached = re.findall(r"ADD DATA METRIC FUNCTION (\S+)\n    ON \((.*?)\)(?:\n    EXPECTATION (\S+) \((.*?)\))?;",
                          script)
    mapped = [c for c in checks if c.type not in (CheckType.REJECTED_ROWS, CheckType.VOLUME_CHANGE)]
    assert len(attached) == len(mapped)
    by_name = {c.name: c for c in checks}
    expectations = {e.strip('"').lower(): v for _, _, e, v in attached if e}
    # absolute fail thresholds become expectations (freshness in seconds); shares do not
    assert expectations["fact_event_freshness"] == "VALUE <= 604800"  # fail: 7d
    assert expectations["dim_customer_row_count"] == "VALUE >= 1"
    assert expectations["fact_event_id_unique"] == "VALUE <= 0"
    assert "fact_user_known" not in expectations and by_name["fact_user_known"].fail.endswith("%")
    assert ("SNOWFLAKE.CORE.REFERENTIAL_INTEGRITY_COUNT",
            'USER_ID, TABLE("ENGAGEMENT"."MARKETING"."DIM_CUSTOMER"(CUSTOMER_ID))') in [a[:2] for a in attached]
    assert "EVENT_TYPE -> EVENT_TYPE IN ('page_view', 'add_to_cart', 'purchase', 'search', 'click')" in script
    assert "NOT REGEXP_LIKE(arg_c, '^[^@ ]+@[^@ ]+\\\\.[^@ ]+$')" in script  # the backslash escaped for SQL
    for name in ("customers_rejected", "clickstream_volume"):
        assert f"-- {name} (" in script and "no DMF" in script
    schedules = re.findall(r'ALTER TABLE "ENGAGEMENT"."MARKETING"."(\w+)" SET DATA_METRIC_SCHEDULE', script)
    assert sorted(schedules) == sorted({c.table.upper() for c in mapped})
