"""Reading past runs back from the log tables, for ``engagement status`` and the dashboard."""

from __future__ import annotations

from typing import Any

from engagement.engines.base import Engine
from engagement.model import DQ_CHECK_LOGS, INGESTION_LOGS
from engagement.results import CheckStatus


def recent_runs(engine: Engine, limit: int = 10) -> list[dict[str, Any]]:
    """The last ``limit`` runs, newest first: status, worst check, duration, records read and rejected."""
    runs = engine.read_table(INGESTION_LOGS, where={"step": "run"}, order_by=["started_at desc"], limit=limit)
    if runs.empty:
        return []
    ingest = engine.read_table(INGESTION_LOGS, where={"step": "ingest"})
    checks = engine.read_table(DQ_CHECK_LOGS)
    out = []
    for r in runs.itertuples():
        steps = ingest[ingest.run_id == r.run_id]
        statuses = set(checks.loc[checks.run_id == r.run_id, "status"])
        worst = max((CheckStatus(s) for s in statuses), key=lambda s: s.rank, default=None)
        finished = r.finished_at if r.finished_at == r.finished_at else None  # NaT -> None
        out.append({
            "run_id": r.run_id,
            "status": r.status,
            "checks": worst.value if worst else None,
            "started_at": r.started_at.to_pydatetime(),
            "finished_at": finished.to_pydatetime() if finished is not None else None,
            "seconds": (finished - r.started_at).total_seconds() if finished is not None else None,
            "rows_read": int(steps.rows_read.fillna(0).sum()),
            "rows_rejected": int(steps.rows_rejected.fillna(0).sum()),
            "error_message": r.error_message if isinstance(r.error_message, str) else None,
            "engine": r.engine,
            "source": r.source,
        })
    return out
