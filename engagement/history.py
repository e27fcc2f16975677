"""Reading past runs back from the log tables, for ``engagement status`` and the dashboard."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from engagement.aggregate import Aggregate, Condition, Fn, Measure, Op
from engagement.checks import CheckContext, Load
from engagement.engines.base import Engine
from engagement.model import DQ_CHECK_LOGS, INGESTION_LOGS, Check, CheckType
from engagement.results import CheckStatus


def recent_runs(engine: Engine, limit: int = 10) -> list[dict[str, Any]]:
    """The last ``limit`` runs, newest first: status, worst check, duration, records read and rejected."""
    runs = engine.read_table(INGESTION_LOGS, where={"step": "run"}, order_by=["started_at desc"], limit=limit)
    if runs.empty:
        return []
    # Only these runs' rows, summed and grouped inside the warehouse: the log tables grow with every run.
    listed = Condition("run_id", Op.IN, tuple(runs.run_id))
    ingest = engine.aggregate(Aggregate(
        INGESTION_LOGS.name, by=("run_id",), where=(listed, Condition("step", Op.EQ, "ingest")),
        measures=(Measure("rows_read", Fn.SUM, "rows_read"), Measure("rows_rejected", Fn.SUM, "rows_rejected")),
    )).set_index("run_id")
    checks = engine.aggregate(Aggregate(DQ_CHECK_LOGS.name, by=("run_id", "status"), where=(listed,)))
    out = []
    for r in runs.itertuples():
        statuses = set(checks.loc[checks.run_id == r.run_id, "status"])
        worst = max((CheckStatus(s) for s in statuses), key=lambda s: s.rank, default=None)
        read, rejected = (ingest.loc[r.run_id, ["rows_read", "rows_rejected"]] if r.run_id in ingest.index
                          else (None, None))
        finished = r.finished_at if r.finished_at == r.finished_at else None  # NaT -> None
        out.append({
            "run_id": r.run_id,
            "status": r.status,
            "checks": worst.value if worst else None,
            "started_at": r.started_at.to_pydatetime(),
            "finished_at": finished.to_pydatetime() if finished is not None else None,
            "seconds": (finished - r.started_at).total_seconds() if finished is not None else None,
            "rows_read": _int(read),
            "rows_rejected": _int(rejected),
            "error_message": r.error_message if isinstance(r.error_message, str) else None,
            "engine": r.engine,
            "source": r.source,
        })
    return out


def _int(value: Any) -> int:
    """A sum from the warehouse as an int: 0 for NULL (no rows, or none with a value)."""
    return 0 if value is None or pd.isna(value) else int(value)


def latest_load(engine: Engine, raw_table: str) -> Load | None:
    """The latest successful ingest of ``raw_table`` (what the raw table holds now)."""
    rows = engine.read_table(INGESTION_LOGS, where={"step": "ingest", "table_name": raw_table, "status": "SUCCEEDED"},
                             order_by=["started_at desc"], limit=1)
    if rows.empty:
        return None
    row = rows.iloc[0]
    return Load(str(row.run_id), int(row.rows_read) if row.rows_read == row.rows_read else 0)


def row_count_history(engine: Engine, check_name: str, run_id: str) -> list[int]:
    """The row counts earlier runs measured for ``check_name``, newest first (ERRORs left out)."""
    rows = engine.read_table(DQ_CHECK_LOGS, where={"check_name": check_name}, order_by=["checked_at desc"])
    rows = rows[(rows.run_id != run_id) & (rows.status != CheckStatus.ERROR.value) & rows.rows_checked.notna()]
    return [int(n) for n in rows.rows_checked]


def check_context(engine: Engine, checks: Sequence[Check], run_id: str, now: datetime) -> CheckContext:
    """What ``checks`` need from the log tables: the latest loads and the volume history."""
    loads = {c.table: load for c in checks if c.type is CheckType.REJECTED_ROWS
             if (load := latest_load(engine, c.table)) is not None}
    history = {c.name: row_count_history(engine, c.name, run_id) for c in checks if c.type is CheckType.VOLUME_CHANGE}
    return CheckContext(run_id, now, loads, history)
