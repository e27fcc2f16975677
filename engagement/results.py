"""What a run produces, as plain dataclasses: per-step counts, check outcomes, the run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum


class StepStatus(StrEnum):
    STARTED = "STARTED"
    SUCCEEDED = "SUCCEEDED"
    SKIPPED = "SKIPPED"  # nothing new to do: every file of the source was loaded before, unchanged
    ERROR = "ERROR"


class CheckStatus(StrEnum):
    """Outcome of a data-quality check, from best to worst."""

    PASSED = "PASSED"
    WARN = "WARN"
    FAILED = "FAILED"
    ERROR = "ERROR"

    @property
    def rank(self) -> int:
        return list(CheckStatus).index(self)


@dataclass
class IngestCounts:
    """One source loaded into its raw table: every record read is rejected or accepted."""

    table: str
    files: int
    read: int
    rejected: dict[str, int] = field(default_factory=dict)
    skipped: int = 0  # files loaded before and unchanged since: not read
    unreadable: dict[str, str] = field(default_factory=dict)  # relpath -> why it could not be read: left out

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def accepted(self) -> int:
        return self.read - self.rejected_total


@dataclass
class MergeCounts:
    """Accepted rows MERGEd into a target: inserted + updated + unchanged + collapsed = accepted."""

    table: str
    accepted: int
    inserted: int
    updated: int
    unchanged: int
    collapsed: int  # extra copies of a key in this load; one copy per key goes on to the MERGE

    @classmethod
    def from_totals(cls, table: str, *, accepted: int, distinct: int, inserted: int, updated: int) -> MergeCounts:
        """Counts from what an engine measures: accepted rows, distinct keys, rows inserted and updated."""
        accepted, distinct, inserted, updated = (int(v) for v in (accepted, distinct, inserted, updated))
        return cls(table, accepted=accepted, inserted=inserted, updated=updated,
                   unchanged=distinct - inserted - updated, collapsed=accepted - distinct)


@dataclass
class Metric:
    """A check's measurement: the value, and the base of its % thresholds (``total``: the rows
    measured, except for volume_change's baseline and rejected_rows' records read)."""

    value: float | None
    total: int
    sample: list[str] = field(default_factory=list)
    error: str | None = None
    note: str | None = None  # what the message adds for the types that are not counts of bad rows
    rows: int | None = None  # the table's rows when ``total`` is something else (kept in rows_checked)
    warning: str | None = None  # something that makes a passing check WARN, added to its message

    def __post_init__(self) -> None:
        if self.rows is None:
            self.rows = self.total


@dataclass
class CheckResult:
    check_name: str
    table_name: str
    column_name: str | None
    metric_value: float | None
    rows_checked: int | None
    warn_threshold: float | None
    fail_threshold: float | None
    thresholds: str
    status: CheckStatus
    dimension: str
    message: str
    failing_sample: list[str] = field(default_factory=list)
    owner: str | None = None


@dataclass
class StepResult:
    """One row of ``ingestion_logs``."""

    step: str
    table_name: str | None
    status: StepStatus
    started_at: datetime
    finished_at: datetime | None = None
    files: int | None = None
    rows_read: int | None = None
    rows_loaded: int | None = None
    rows_rejected: int | None = None
    rows_inserted: int | None = None
    rows_updated: int | None = None
    rows_unchanged: int | None = None
    rows_collapsed: int | None = None
    files_skipped: int | None = None
    error_message: str | None = None

    @property
    def seconds(self) -> float | None:
        return (self.finished_at - self.started_at).total_seconds() if self.finished_at else None


@dataclass
class Delivery:
    """What became of a run's alert on one channel."""

    channel: str  # "slack" or "email"
    delivered: bool
    attempts: int
    error: str | None = None


@dataclass
class RunResult:
    run_id: str
    engine: str
    source: str
    warehouse: str
    status: StepStatus = StepStatus.STARTED
    steps: list[StepResult] = field(default_factory=list)
    ingest: list[IngestCounts] = field(default_factory=list)
    merges: list[MergeCounts] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    alerts: list[Delivery] = field(default_factory=list)

    @property
    def worst_check(self) -> CheckStatus | None:
        return max((c.status for c in self.checks), key=lambda s: s.rank, default=None)

    def to_json(self) -> dict:
        """The ``engagement run --json`` document."""
        return {
            "run_id": self.run_id,
            "status": self.status.value,
            "engine": self.engine,
            "source": self.source,
            "warehouse": self.warehouse,
            "error": self.error,
            "warnings": self.warnings,
            "steps": [
                {**{k: v for k, v in asdict(s).items() if k not in ("started_at", "finished_at")},
                 "status": s.status.value, "seconds": s.seconds}
                for s in self.steps
            ],
            "tables": self.tables,
            "rejected": {i.table: dict(sorted(i.rejected.items())) for i in self.ingest},
            "alerts": [asdict(a) for a in self.alerts],
            "checks": [
                {
                    "check_name": c.check_name,
                    "table_name": c.table_name,
                    "column_name": c.column_name,
                    "metric_value": c.metric_value,
                    "rows_checked": c.rows_checked,
                    "status": c.status.value,
                    "dimension": c.dimension,
                    "message": c.message,
                    "failing_sample": c.failing_sample,
                }
                for c in self.checks
            ],
        }
