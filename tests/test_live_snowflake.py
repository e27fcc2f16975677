"""A run on a real Snowflake account leaves what the same run leaves on DuckDB, column for column.

Part of ``make test-live`` (README, "Live tests"): collected only when ENGAGEMENT_TEST_ENGINES
names snowflake and ENGAGEMENT_TEST_SNOWFLAKE_CONNECTION names a connection (tests/conftest.py),
and run in the live session's throwaway schema like every other contract test, never in the
configured one.

Every column is compared, the audit columns too: both runs share one run id, and each time a
run stamps on its rows (``loaded_at``, ``created_at``, ``updated_at``, ``rejected_at``) must be
that run's start as its own ``ingestion_logs`` records it, which must lie between the wall-clock
times taken around the run (so a time shifted by a zone, or read from Parquet as a number, fails).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from engagement.config import load_settings
from engagement.engines import create_engine
from engagement.engines.base import Engine
from engagement.pipeline import run_pipeline, utcnow
from engagement.results import RunResult
from tests.conftest import PARITY_SOURCE as SOURCE
from tests.conftest import rows, write_files

pytestmark = [pytest.mark.live, pytest.mark.engines("snowflake")]

RUN_ID = "20260102T030405Z-1ive00"
# The tables a run fills with data (the log tables hold each engine's own timings and names).
TABLES = ("raw_customer_demographics", "raw_clickstream_events", "dim_customer", "fact_click_events",
          "rejected_records", "loaded_files")
RUN_TIMES = {"loaded_at", "created_at", "updated_at", "rejected_at"}
RUN_START = "<the run's start>"


def _plain(value: Any) -> Any:
    """A value as plain Python, so that both engines' rows print and sort alike."""
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def _run(engine: Engine, src: Path) -> tuple[RunResult, datetime]:
    """Run the pipeline under RUN_ID; the result and the run's start as the engine logged it."""
    before = utcnow()
    result = run_pipeline(engine, src, run_id=RUN_ID)
    after = utcnow()
    assert result.error is None, result.error
    (start,) = [pd.Timestamp(r["started_at"]).to_pydatetime() for r in rows(engine, "ingestion_logs")
                if r["run_id"] == RUN_ID and r["step"] == "run"]
    assert before <= start <= after, (engine.name, before, start, after)
    return result, start


def content(engine: Engine, table: str, start: datetime) -> list[dict]:
    """Every row and column of ``table``, a run time equal to ``start`` shown as RUN_START."""
    out = []
    for row in rows(engine, table):
        plain = {k: _plain(v) for k, v in row.items()}
        out.append({k: RUN_START if k in RUN_TIMES and v is not None and pd.Timestamp(v) == pd.Timestamp(start)
                    else v for k, v in plain.items()})
    return sorted(out, key=repr)


def test_snowflake_agrees_with_duckdb_on_every_column(engine: Engine, tmp_path: Path) -> None:
    src = write_files(tmp_path / "src", SOURCE)
    duck = create_engine(load_settings(engine="duckdb", warehouse=tmp_path / "w.duckdb"))
    try:
        (a, a_start), (b, b_start) = _run(engine, src), _run(duck, src)
        assert a.status == b.status
        assert {i.table: (i.read, i.rejected) for i in a.ingest} == {i.table: (i.read, i.rejected) for i in b.ingest}
        assert [vars(m) for m in a.merges] == [vars(m) for m in b.merges]
        assert a.tables == b.tables
        for table in TABLES:
            snow, want = content(engine, table, a_start), content(duck, table, b_start)
            assert want, f"{table}: the DuckDB run left it empty, so the comparison would prove nothing"
            assert snow == want, table
    finally:
        duck.close()
