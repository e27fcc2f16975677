"""Against a real Snowflake account: skipped unless ENGAGEMENT_TEST_SNOWFLAKE_CONNECTION names a connection.

Set-up (once): run sql/01_setup.sql and sql/02_stages.sql, add the connection to
connections.toml, then:

    ENGAGEMENT_TEST_SNOWFLAKE_CONNECTION=myconn make test

The test writes to the schema ENGAGEMENT_TEST_SNOWFLAKE_SCHEMA (default
MARKETING_TEST, create it like MARKETING in sql/01_setup.sql) of
ENGAGEMENT_SNOWFLAKE_DATABASE, never to the production schema. Reruns are
idempotent, so the comparison holds on a schema an earlier live run filled.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engagement.config import load_settings
from engagement.engines import create_engine
from engagement.pipeline import run_pipeline
from tests.conftest import PARITY_SOURCE as SOURCE
from tests.conftest import rows, write_files

CONNECTION = os.environ.get("ENGAGEMENT_TEST_SNOWFLAKE_CONNECTION")
pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not CONNECTION, reason="set ENGAGEMENT_TEST_SNOWFLAKE_CONNECTION to run against Snowflake"),
]
AUDIT = {"created_at", "updated_at", "run_id", "loaded_at", "rejected_at"}


def content(engine, table: str) -> list[dict]:
    return sorted(({k: v for k, v in r.items() if k not in AUDIT} for r in rows(engine, table)), key=repr)


def test_snowflake_agrees_with_duckdb(tmp_path: Path) -> None:
    src = write_files(tmp_path / "src", SOURCE)
    schema = os.environ.get("ENGAGEMENT_TEST_SNOWFLAKE_SCHEMA", "MARKETING_TEST")
    snow = create_engine(load_settings(engine="snowflake", snowflake_connection=CONNECTION, snowflake_schema=schema))
    duck = create_engine(load_settings(engine="duckdb", warehouse=tmp_path / "w.duckdb"))
    try:
        a, b = run_pipeline(snow, src), run_pipeline(duck, src)
        assert a.status == b.status
        assert {i.table: i.rejected for i in a.ingest} == {i.table: i.rejected for i in b.ingest}
        for table in ("raw_customer_demographics", "raw_clickstream_events", "dim_customer", "fact_click_events"):
            assert content(snow, table) == content(duck, table), table
    finally:
        snow.close()
        duck.close()
