"""One run read back from the warehouse: its rows in ingestion_logs, rejected_records and dq_check_logs.

A run driven phase by phase (one notebook per phase, each in its own process) keeps no
state in memory; this module rebuilds, from the log tables, the same
:class:`~engagement.results.RunResult` that :func:`engagement.pipeline.run_pipeline`
returns, and the small frames an executed notebook shows.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from engagement.aggregate import Aggregate, Condition, Fn, Measure, Op
from engagement.engines.base import Engine
from engagement.model import DQ_CHECK_LOGS, INGESTION_LOGS, REJECTED, SOURCES, SOURCES_BY_RAW, Reason
from engagement.results import (
    CheckResult,
    CheckStatus,
    IngestCounts,
    MergeCounts,
    RunResult,
    StepResult,
    StepStatus,
)
from engagement.sources import no_files_warning


def _value(value: Any) -> Any:
    """A cell as plain Python: None for NULL / NaN / NaT, int for whole numbers of integer columns."""
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _int(value: Any) -> int | None:
    value = _value(value)
    return None if value is None else int(value)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _value(v) for k, v in row.items()} for row in frame.to_dict("records")]


def latest_run_id(engine: Engine) -> str | None:
    """The id of the run started last, or None when there is none."""
    runs = engine.read_table(INGESTION_LOGS, where={"step": "run"}, order_by=["started_at desc"], limit=1)
    return None if runs.empty else str(runs.run_id.iloc[0])


def load_run(engine: Engine, run_id: str) -> RunResult:
    """Run ``run_id`` as :func:`engagement.pipeline.run_pipeline` reported it, rebuilt from the log tables.

    Raises KeyError when the run is not in ``ingestion_logs``.
    """
    rows = _records(engine.read_table(INGESTION_LOGS, where={"run_id": run_id}, order_by=["started_at"]))
    head = next((r for r in rows if r["step"] == "run"), None)
    if head is None:
        raise KeyError(f"run {run_id} is not in ingestion_logs")
    result = RunResult(run_id, head["engine"], head["source"], engine.location, status=StepStatus(head["status"]),
                       error=head["error_message"])
    for r in rows:
        if r["step"] == "run":
            continue
        step = StepResult(
            r["step"], r["table_name"], StepStatus(r["status"]), r["started_at"], r["finished_at"],
            **{k: _int(r[k]) for k in ("files", "rows_read", "rows_loaded", "rows_rejected", "rows_inserted",
                                       "rows_updated", "rows_unchanged", "rows_collapsed", "files_skipped")},
            error_message=r["error_message"],
        )
        result.steps.append(step)
        if step.status is not StepStatus.SUCCEEDED:
            continue
        if step.step == "ingest":
            by_reason = rejected_by_reason(engine, run_id, step.table_name)
            result.ingest.append(IngestCounts(step.table_name, files=step.files or 0, read=step.rows_read or 0,
                                              rejected=by_reason))
            if not step.files:
                result.warnings.append(no_files_warning(SOURCES_BY_RAW[step.table_name], _where(head["source"])))
        elif step.step == "merge":
            result.merges.append(MergeCounts(step.table_name, accepted=step.rows_read or 0,
                                             inserted=step.rows_inserted or 0, updated=step.rows_updated or 0,
                                             unchanged=step.rows_unchanged or 0, collapsed=step.rows_collapsed or 0))
    result.checks = _checks(engine, run_id)
    result.tables = engine.table_counts()
    return result


def rejected_by_reason(engine: Engine, run_id: str, raw_table: str) -> dict[str, int]:
    """The run's rejected records of ``raw_table``, counted per reason inside the warehouse."""
    frame = engine.aggregate(Aggregate(
        REJECTED.name, by=("reason",), measures=(Measure("n", Fn.COUNT),),
        where=(Condition("run_id", Op.EQ, run_id), Condition("source_table", Op.EQ, raw_table)),
    ))
    return {str(r): int(n) for r, n in zip(frame.reason, frame.n)}


def _where(source: str) -> str:
    """A source root as a run's warnings name it (a folder, expanded; or an S3 URL as given)."""
    return source if source.startswith("s3://") else str(Path(source).expanduser())


def _checks(engine: Engine, run_id: str) -> list[CheckResult]:
    out = []
    for r in _records(engine.read_table(DQ_CHECK_LOGS, where={"run_id": run_id})):
        out.append(CheckResult(
            check_name=r["check_name"], table_name=r["table_name"], column_name=r["column_name"],
            metric_value=r["metric_value"], rows_checked=_int(r["rows_checked"]),
            warn_threshold=r["warn_threshold"], fail_threshold=r["fail_threshold"], thresholds=r["thresholds"] or "",
            status=CheckStatus(r["status"]), dimension=r["dimension"] or "", message=r["message"] or "",
            failing_sample=r["failing_sample"].split(", ") if r["failing_sample"] else [], owner=r["owner"],
        ))
    return out


# -- frames for the notebooks ------------------------------------------------------------------

def steps_frame(engine: Engine, run_id: str) -> pd.DataFrame:
    """The run's rows in ingestion_logs, in the order they started, with the columns people read."""
    rows = engine.read_table(INGESTION_LOGS, where={"run_id": run_id}, order_by=["started_at"])
    rows = rows[rows.step != "run"].copy()
    rows["seconds"] = (rows.finished_at - rows.started_at).dt.total_seconds().round(2)
    columns = ["step", "table_name", "status", "seconds", "files", "rows_read", "rows_rejected", "rows_loaded",
               "rows_inserted", "rows_updated", "rows_unchanged", "rows_collapsed", "error_message", "notebook"]
    return rows[columns].reset_index(drop=True)


def ingest_frame(result: RunResult) -> pd.DataFrame:
    """Per source: files, read = rejected + accepted, and the rejects per reason."""
    return pd.DataFrame([
        {"source": SOURCES_BY_RAW[i.table].name, "raw table": i.table, "files": i.files, "read": i.read,
         "rejected": i.rejected_total, **{r.value: i.rejected.get(r.value, 0) for r in Reason}, "accepted": i.accepted}
        for i in result.ingest
    ])


def merge_frame(result: RunResult) -> pd.DataFrame:
    """Per target: accepted = inserted + updated + unchanged + collapsed, and the rows it holds now."""
    return pd.DataFrame([
        {"table": m.table, "accepted": m.accepted, "inserted": m.inserted, "updated": m.updated,
         "unchanged": m.unchanged, "collapsed": m.collapsed, "rows now": result.tables.get(m.table)}
        for m in result.merges
    ])


def checks_frame(result: RunResult) -> pd.DataFrame:
    """One row per check: status, metric, thresholds, the failing sample."""
    return pd.DataFrame([
        {"check": c.check_name, "status": c.status.value, "table": c.table_name, "column": c.column_name,
         "metric": c.metric_value, "rows": c.rows_checked, "thresholds": c.thresholds,
         "failing sample": ", ".join(c.failing_sample), "message": c.message}
        for c in result.checks
    ], columns=["check", "status", "table", "column", "metric", "rows", "thresholds", "failing sample", "message"])


def rejected_sample(engine: Engine, run_id: str, per_reason: int = 3) -> pd.DataFrame:
    """Up to ``per_reason`` rejected records of the run per raw table and reason (first files, first lines)."""
    parts = []
    for source in SOURCES:
        for reason in Reason:
            part = engine.read_table(
                REJECTED, where={"run_id": run_id, "source_table": source.raw.name, "reason": reason.value},
                order_by=["source_file", "source_row"], limit=per_reason,
            )
            if not part.empty:
                parts.append(part[["source_table", "reason", "source_file", "source_row", "detail", "payload"]])
    columns = ["source_table", "reason", "source_file", "source_row", "detail", "payload"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
