"""The pipeline: ingest -> merge -> checks, each step logged to ``ingestion_logs``.

Steps call the engine interface only; they own ordering, logging and error
handling, never SQL. The first step that errors stops the run; the tables it
was writing keep their previous state (each engine call is atomic).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from engagement import checks as check_rules
from engagement.alerts import Links, send_alert
from engagement.config import Settings
from engagement.engines.base import Engine, RunContext
from engagement.exceptions import EngagementError
from engagement.check_file import load_checks
from engagement.history import check_context
from engagement.model import DQ_CHECK_LOGS, INGESTION_LOGS, SOURCES, Check
from engagement.results import CheckResult, Delivery, RunResult, StepResult, StepStatus
from engagement.sources import SourceFile, check_root, describe_patterns, discover

log = logging.getLogger("engagement")


def utcnow() -> datetime:
    """Now in UTC, naive (the warehouse stores UTC without a zone)."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, readable run id: ``20261126T101500Z-3f9a1c``."""
    return f"{(now or utcnow()):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass
class Observer:
    """Hooks for progress displays (and for tests that stop a run mid-step)."""

    step_started: Callable[[str, str | None, int], None] = lambda step, table, files: None
    file_loaded: Callable[[SourceFile, int], None] = lambda file, rows: None
    step_finished: Callable[[StepResult], None] = lambda result: None


def one_line(exc: BaseException) -> str:
    """An exception as one line for logs and tables (tool errors already are one line)."""
    if isinstance(exc, EngagementError):
        return str(exc)
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"


def log_step(engine: Engine, run: RunResult, step: StepResult) -> None:
    """Write (or rewrite) ``step``'s row of ``ingestion_logs`` for ``run``."""
    row = {**vars(step), "run_id": run.run_id, "engine": run.engine, "source": run.source, "status": step.status.value}
    engine.write_log(INGESTION_LOGS, [row], key=("run_id", "step", "table_name"))


class _Run:
    """One run's state and its logging; the public entry point is :func:`run_pipeline`."""

    def __init__(self, engine: Engine, source: str, run_id: str, observer: Observer) -> None:
        self.engine, self.observer = engine, observer
        self.ctx = RunContext(run_id, utcnow(), engine.name, source)
        self.result = RunResult(run_id, engine.name, source, engine.location)
        self.log = logging.LoggerAdapter(log, {"run_id": run_id})
        self.run_step = StepResult("run", None, StepStatus.STARTED, self.ctx.started_at)

    def start(self) -> None:
        """Log the run's STARTED row (it stays STARTED if the process dies)."""
        self._write(self.run_step)
        self.log.info("run started: engine=%s source=%s warehouse=%s",
                      self.engine.name, self.ctx.source, self.engine.location)

    def finish(self, ok: bool) -> RunResult:
        """Close the run's row, count the tables, and return the result."""
        step = self.run_step
        step.status = StepStatus.SUCCEEDED if ok else StepStatus.ERROR
        step.error_message = self.result.error
        step.finished_at = utcnow()
        self._write(step)
        self.result.status = step.status
        self.result.tables = self.engine.table_counts()
        self.log.info("run %s in %.2fs", step.status.value, step.seconds)
        return self.result

    def checks(self, checks: Sequence[Check]) -> bool:
        """The checks step: measure, evaluate, append to dq_check_logs."""

        def work(step: StepResult) -> None:
            self.result.checks = run_checks(self.engine, checks, self.ctx.run_id)
            step.rows_read = len(self.result.checks)
            for r in self.result.checks:
                self.log.log(logging.INFO if r.status.value == "PASSED" else logging.WARNING, "check %s", r.message)

        return self.step("checks", DQ_CHECK_LOGS.name, work)

    def _write(self, step: StepResult) -> None:
        log_step(self.engine, self.result, step)

    def step(self, name: str, table: str | None, work: Callable[[StepResult], None], files: int = 0) -> bool:
        """Run one step: log STARTED, do ``work``, log SUCCEEDED or ERROR. False when it errored."""
        result = StepResult(name, table, StepStatus.STARTED, utcnow())
        self._write(result)
        self.observer.step_started(name, table, files)
        self.log.info("step %s %s started", name, table or "")
        try:
            work(result)
            result.status = StepStatus.SUCCEEDED
        except Exception as exc:  # every error ends as an ERROR row, never a silent stop
            result.status, result.error_message = StepStatus.ERROR, one_line(exc)
            self.result.error = result.error_message
            self.log.error("step %s %s failed: %s", name, table or "", result.error_message,
                           exc_info=not isinstance(exc, EngagementError))
        result.finished_at = utcnow()
        self._write(result)
        self.result.steps.append(result)
        self.observer.step_finished(result)
        self.log.info("step %s %s %s in %.2fs", name, table or "", result.status.value, result.seconds)
        return result.status is StepStatus.SUCCEEDED


def run_pipeline(
    engine: Engine,
    source: str | Path,
    *,
    run_id: str | None = None,
    checks: Sequence[Check] | None = None,
    observer: Observer | None = None,
) -> RunResult:
    """Ingest every source under ``source``, MERGE the targets, run ``checks``; return what happened.

    ``checks`` default to the package's ``checks.yml``. Raises ConfigError
    (before anything is written) when ``source`` is no folder or the checks are
    invalid. Any later problem is recorded as an ERROR step and in the result.
    """
    root = check_root(source)
    checks = load_checks() if checks is None else checks
    engine.setup()
    run = _Run(engine, str(source), run_id or new_run_id(), observer or Observer())
    run.start()

    files: dict[str, list[SourceFile]] = {}

    def find(step: StepResult) -> None:
        files.update(discover(root))
        step.files = sum(len(v) for v in files.values())
        for s in SOURCES:
            if not files[s.name]:
                warning = f"no {s.name} files under {root.url} (expected {describe_patterns(s)}): {s.raw.name} is emptied"
                run.result.warnings.append(warning)
                run.log.warning(warning)

    ok = run.step("discover", None, find)
    for s in SOURCES:
        if not ok:
            break

        def ingest(step: StepResult, s=s) -> None:
            counts = engine.ingest(run.ctx, s, files[s.name], on_file=run.observer.file_loaded)
            run.result.ingest.append(counts)
            step.files, step.rows_read = counts.files, counts.read
            step.rows_rejected, step.rows_loaded = counts.rejected_total, counts.accepted

        ok = run.step("ingest", s.raw.name, ingest, files=len(files[s.name]))
    for s in SOURCES:
        if not ok:
            break

        def merge(step: StepResult, s=s) -> None:
            counts = engine.merge(run.ctx, s)
            run.result.merges.append(counts)
            step.rows_read = counts.accepted
            step.rows_inserted, step.rows_updated = counts.inserted, counts.updated
            step.rows_unchanged, step.rows_collapsed = counts.unchanged, counts.collapsed

        ok = run.step("merge", s.target.name, merge)
    if ok:
        ok = run.checks(checks)
    return run.finish(ok)


def run_checks_only(
    engine: Engine, *, checks: Sequence[Check] | None = None, run_id: str | None = None,
    observer: Observer | None = None,
) -> RunResult:
    """Run only the checks, against the warehouse as it is, as a run of its own (logged like any run)."""
    checks = load_checks() if checks is None else checks
    engine.setup()
    run = _Run(engine, "(checks only)", run_id or new_run_id(), observer or Observer())
    run.start()
    return run.finish(run.checks(checks))


def run_checks(engine: Engine, checks: Sequence[Check], run_id: str) -> list[CheckResult]:
    """Measure and evaluate ``checks``, and append them to ``dq_check_logs`` under ``run_id``."""
    now = utcnow()
    context = check_context(engine, checks, run_id, now)
    results = check_rules.evaluate_all(checks, engine.metrics(checks, context))
    engine.write_log(
        DQ_CHECK_LOGS,
        [
            {**vars(r), "status": r.status.value, "run_id": run_id, "checked_at": now,
             "failing_sample": ", ".join(r.failing_sample) or None}
            for r in results
        ],
    )
    return results


def alert_run(engine: Engine, settings: Settings, result: RunResult, links: Links) -> list[Delivery]:
    """Send the run's alert when it calls for one (see :mod:`engagement.alerts`), record each
    channel's outcome as an ``alert`` row of ``ingestion_logs``, and keep it on ``result``.
    Never raises for a delivery problem and never changes the run's outcome."""
    started = utcnow()
    result.alerts = send_alert(settings, result, links)
    if result.alerts:
        failed = [f"{d.channel}: {d.error} (after {d.attempts} attempts)" for d in result.alerts if not d.delivered]
        log_step(engine, result, StepResult("alert", None, StepStatus.ERROR if failed else StepStatus.SUCCEEDED,
                                            started, finished_at=utcnow(), error_message="; ".join(failed) or None))
    return result.alerts
