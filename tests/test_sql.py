"""The Snowflake DDL in sql/ agrees with the data model."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from engagement.engines.snowflake_ddl import tables_script
from engagement.model import TABLES

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
