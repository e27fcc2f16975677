"""The pipeline: ingest -> merge -> checks, each step logged to ``ingestion_logs``.

Steps call the engine interface only; they own ordering, logging and error
handling, never SQL. The first step that errors stops the run; the tables it
was writing keep their previous state (each engine call is atomic).

:func:`run_pipeline` runs a whole run in one process. The same run can also be
driven phase by phase, each phase possibly in another process (the notebooks of
:mod:`engagement.notebooks`): :func:`start_run`, :func:`ingest_phase`,
:func:`transform_phase`, :func:`quality_phase`, :func:`finish_run`. A phase
learns what the earlier ones did from the run's rows in ``ingestion_logs``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engagement import checks as check_rules
from engagement import incremental
from engagement.alerts import Links, send_alert
from engagement.config import Settings
from engagement.engines.base import Engine, RunContext
from engagement.exceptions import ConfigError, EngagementError, StepFailed, disk_full
from engagement.check_file import load_checks
from engagement.history import check_context
from engagement.model import DQ_CHECK_LOGS, INGESTION_LOGS, SOURCES, Check
from engagement.results import CheckResult, Delivery, RunResult, StepResult, StepStatus
from engagement.sources import Root, SourceFile, check_root, discover, no_files_warning

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


def unreadable_message(unreadable: dict[str, str]) -> str:
    """One line for the files of a source left out because they could not be read."""
    return f"{len(unreadable)} file(s) left out, the others loaded: " + "; ".join(unreadable.values())


def _is_interrupt(exc: BaseException) -> bool:
    """An engine's error that stands for a Ctrl-C: DuckDB cancels its query on SIGINT and raises
    ``InterruptException: INTERRUPT Error: Query interrupted`` (read by its text: no engine here)."""
    return "Query interrupted" in str(exc)


def one_line(exc: BaseException) -> str:
    """An exception as one line for logs and tables (tool errors already are one line)."""
    if isinstance(exc, EngagementError):
        return str(exc)
    full = disk_full(exc)
    if full is not None:
        return full
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"


def log_step(engine: Engine, run: RunResult, step: StepResult, notebook: str | None = None) -> None:
    """Write (or rewrite) ``step``'s row of ``ingestion_logs`` for ``run`` (and the notebook it ran in)."""
    row = {**vars(step), "run_id": run.run_id, "engine": run.engine, "source": run.source,
           "status": step.status.value, "notebook": notebook}
    engine.write_log(INGESTION_LOGS, [row], key=("run_id", "step", "table_name"))


class _Run:
    """One run's state and its logging; the public entry point is :func:`run_pipeline`."""

    def __init__(self, engine: Engine, source: str, run_id: str, observer: Observer, *,
                 started_at: datetime | None = None, notebook: str | None = None) -> None:
        self.engine, self.observer = engine, observer
        self.ctx = RunContext(run_id, started_at or utcnow(), engine.name, source)
        self.notebook = notebook  # the executed notebook writing these rows, if any
        self.done: set[tuple[str, str | None]] = set()  # steps that already SUCCEEDED (or SKIPPED) in this run
        self.skipped: set[str] = set()  # raw tables whose ingest this run SKIPPED: nothing new to merge
        self.result = RunResult(run_id, engine.name, source, engine.location)
        self.log = logging.LoggerAdapter(log, {"run_id": run_id})
        self.run_step = StepResult("run", None, StepStatus.STARTED, self.ctx.started_at)

    def start(self) -> None:
        """Log the run's STARTED row (it stays STARTED if the process dies)."""
        self._write(self.run_step)
        self.log.info("run started: engine=%s source=%s warehouse=%s",
                      self.engine.name, self.ctx.source, self.engine.location)

    def finish(self, ok: bool) -> RunResult:
        """Close the run's row, count the tables, and return the result.

        A run that left out a file it could not read is an ERROR (exit 3) even though every
        step finished: the other files were loaded, merged and checked."""
        ok = ok and self.result.error is None
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
        log_step(self.engine, self.result, step, notebook=self.notebook)

    def step(self, name: str, table: str | None, work: Callable[[StepResult], None], files: int = 0) -> bool:
        """Run one step: log STARTED, do ``work``, log SUCCEEDED or ERROR. False when it errored.

        A step that already SUCCEEDED in this run (a phase retried) is not run again.
        """
        if (name, table) in self.done:
            self.log.info("step %s %s already SUCCEEDED in this run: not run again", name, table or "")
            return True
        result = StepResult(name, table, StepStatus.STARTED, utcnow())
        self._write(result)
        self.observer.step_started(name, table, files)
        self.log.info("step %s %s started", name, table or "")
        try:
            work(result)
            if result.status is StepStatus.STARTED:  # work may say SKIPPED
                result.status = StepStatus.SUCCEEDED
        except Exception as exc:  # every error ends as an ERROR row, never a silent stop
            if _is_interrupt(exc):  # DuckDB turns SIGINT into InterruptException / "Query interrupted"
                result.status, result.error_message = StepStatus.ERROR, "interrupted"
                result.finished_at = utcnow()
                self._write(result)
                raise KeyboardInterrupt from exc
            result.status, result.error_message = StepStatus.ERROR, one_line(exc)
            self.result.error = result.error_message
            self.log.error("step %s %s failed: %s", name, table or "", result.error_message,
                           exc_info=not isinstance(exc, EngagementError))
        result.finished_at = utcnow()
        self._write(result)
        self.result.steps.append(result)
        self.observer.step_finished(result)
        self.log.info("step %s %s %s in %.2fs", name, table or "", result.status.value, result.seconds)
        return result.status in (StepStatus.SUCCEEDED, StepStatus.SKIPPED)


def run_pipeline(
    engine: Engine,
    source: str | Path,
    *,
    run_id: str | None = None,
    checks: Sequence[Check] | None = None,
    observer: Observer | None = None,
    full_refresh: bool = False,
) -> RunResult:
    """Ingest every source under ``source``, MERGE the targets, run ``checks``; return what happened.

    Files merged before and unchanged since (same size and version) are skipped; a source
    with nothing new keeps its previous load. ``full_refresh`` reloads every file.

    ``checks`` default to the package's ``checks.yml``. Raises ConfigError
    (before anything is written) when ``source`` is no folder or the checks are
    invalid. Any later problem is recorded as an ERROR step and in the result.
    """
    root = open_root(engine, source)
    checks = load_checks() if checks is None else checks
    engine.setup()
    run = _Run(engine, str(source), run_id or new_run_id(), observer or Observer())
    run.start()
    ok = _ingest(run, root, full_refresh) and _transform(run) and run.checks(checks)
    return run.finish(ok)


def open_root(engine: Engine, source: str | Path) -> Root:
    """The root of ``source``: one the warehouse reads itself (Snowflake's external stage), else
    one this process reads. Raises a one-line ConfigError when it cannot be used."""
    return engine.source_root(str(source)) or check_root(source)


def _ingest(run: _Run, root: Root, full_refresh: bool = False) -> bool:
    """The ingest phase: discover the files, then load each source's raw table with its new and
    changed files (every file with ``full_refresh``). False when a step errored."""
    files: dict[str, list[SourceFile]] = {}
    skipped: dict[str, int] = {}

    def find(step: StepResult) -> None:
        found = discover(root)
        for warning in getattr(root, "skipped", ()):  # a folder's matches that are no file (LocalRoot)
            run.result.warnings.append(warning)
            run.log.warning(warning)
        step.files = sum(len(v) for v in found.values())
        for s in SOURCES:
            files[s.name], skipped[s.name] = (found[s.name], 0) if full_refresh else \
                incremental.split_new(run.engine, s, found[s.name])
            if not found[s.name]:
                warning = no_files_warning(s, root.url)
                run.result.warnings.append(warning)
                run.log.warning(warning)
        step.files_skipped = sum(skipped.values())

    ok = run.step("discover", None, find)
    for s in SOURCES:
        if not ok:
            break

        def ingest(step: StepResult, s=s) -> None:
            step.files_skipped = skipped[s.name]
            if skipped[s.name] and not files[s.name]:
                # nothing new: the raw table keeps its previous load, already merged
                step.status, step.files = StepStatus.SKIPPED, 0
                run.skipped.add(s.raw.name)
                return
            counts = run.engine.ingest(run.ctx, s, files[s.name], on_file=run.observer.file_loaded)
            counts.skipped = skipped[s.name]
            # A file that could not be read is not recorded as loaded: the next run tries it again.
            loaded = [f for f in files[s.name] if f.relpath not in counts.unreadable]
            incremental.record(run.engine, s, loaded, run.ctx.run_id, run.ctx.started_at)
            if counts.unreadable:
                step.error_message = unreadable_message(counts.unreadable)
                run.log.error("%s", step.error_message)
                run.result.error = run.result.error or step.error_message
            run.result.ingest.append(counts)
            step.files, step.rows_read = counts.files, counts.read
            step.rows_rejected, step.rows_loaded = counts.rejected_total, counts.accepted

        ok = run.step("ingest", s.raw.name, ingest, files=len(files[s.name]))
    return ok


def _transform(run: _Run) -> bool:
    """The transform phase: MERGE each source's accepted rows into its target (not a source whose
    ingest was SKIPPED: its load is merged already). False when a step errored."""
    ok = True
    for s in SOURCES:
        if not ok:
            break

        def merge(step: StepResult, s=s) -> None:
            if s.raw.name in run.skipped:
                step.status = StepStatus.SKIPPED
                return
            counts = run.engine.merge(run.ctx, s)
            incremental.mark_merged(run.engine, s, run.ctx.run_id)
            run.result.merges.append(counts)
            step.rows_read = counts.accepted
            step.rows_inserted, step.rows_updated = counts.inserted, counts.updated
            step.rows_unchanged, step.rows_collapsed = counts.unchanged, counts.collapsed

        ok = run.step("merge", s.target.name, merge)
    return ok


# -- a run driven phase by phase (one notebook per phase) ------------------------------------

# The steps that make a phase done (discover aside: every attempt at the ingest phase repeats it).
PHASE_STEPS: dict[str, list[tuple[str, str | None]]] = {
    "ingest": [("ingest", s.raw.name) for s in SOURCES],
    "transform": [("merge", s.target.name) for s in SOURCES],
    "quality": [("checks", DQ_CHECK_LOGS.name)],
}


def start_run(engine: Engine, source: str | Path, *, run_id: str | None = None) -> str:
    """Open a run to be driven phase by phase: write its 'run' row STARTED; return its id.

    When ``run_id`` names a run already in ``ingestion_logs``, nothing is written (the
    runner opens the run before its first notebook does, and a phase may be retried).
    Raises ConfigError when ``source`` is no folder, or is not the source of that run.
    """
    open_root(engine, source)
    engine.setup()
    run_id = run_id or new_run_id()
    existing = engine.read_table(INGESTION_LOGS, where={"run_id": run_id, "step": "run"})
    if existing.empty:
        _Run(engine, str(source), run_id, Observer()).start()
    elif existing.source.iloc[0] != str(source):
        raise ConfigError(f"run {run_id} reads source {existing.source.iloc[0]}, not {source}; "
                          "pass the same source to every phase, or start a new run")
    return run_id


def ingest_phase(engine: Engine, run_id: str, *, notebook: str | None = None,
                 observer: Observer | None = None, full_refresh: bool = False) -> RunResult:
    """Phase 1 of an open run: discover the source files and load both raw tables with the new
    and changed files (every file with ``full_refresh``).

    Returns what this phase did. Raises StepFailed once a step errored (its ERROR row,
    with ``notebook``, is written first); steps that already SUCCEEDED in the run are
    not repeated, so a failed phase can be retried under the same run id.
    """
    run, _ = _resume(engine, run_id, notebook, observer)
    return _phase_done(run, _ingest(run, open_root(engine, run.ctx.source), full_refresh))


def transform_phase(engine: Engine, run_id: str, *, notebook: str | None = None,
                    observer: Observer | None = None) -> RunResult:
    """Phase 2 of an open run: MERGE the accepted rows into dim_customer and fact_click_events.

    Needs the run's ingest steps SUCCEEDED (ConfigError otherwise); raises StepFailed
    like :func:`ingest_phase`.
    """
    run, _ = _resume(engine, run_id, notebook, observer)
    _require(run, "ingest")
    return _phase_done(run, _transform(run))


def quality_phase(engine: Engine, run_id: str, *, checks: Sequence[Check] | None = None,
                  notebook: str | None = None, observer: Observer | None = None) -> RunResult:
    """Phase 3 of an open run: the data-quality checks into dq_check_logs.

    ``checks`` default to the package's ``checks.yml``. Needs the run's merge steps
    SUCCEEDED (ConfigError otherwise); raises StepFailed like :func:`ingest_phase`. A
    FAILED check is an outcome, not an error: it is in the result.
    """
    checks = load_checks() if checks is None else checks
    run, _ = _resume(engine, run_id, notebook, observer)
    _require(run, "transform")
    return _phase_done(run, run.checks(checks))


def finish_run(engine: Engine, run_id: str, *, failure: str | None = None,
               notebook: str | None = None) -> RunResult:
    """Close a run's 'run' row and return the whole run, read back from the warehouse.

    The run SUCCEEDED when every phase's steps SUCCEEDED and no ``failure`` is given
    (``failure``: what stopped a notebook outside any step). Otherwise it is an ERROR
    whose message is the first failed step's, else ``failure``, else which phase never
    ran. A run already closed is returned as it is, unless a ``failure`` is given.
    """
    from engagement.runlog import load_run

    run, steps = _resume(engine, run_id, notebook, None, open_only=False)
    if run.run_step.status is not StepStatus.STARTED and failure is None:
        return load_run(engine, run_id)
    error = None
    for s in steps.itertuples():
        if s.step == "ingest" and s.status == StepStatus.SUCCEEDED.value and isinstance(s.error_message, str):
            error = error or s.error_message  # a file left out (see unreadable_message); go on looking
            continue
        if s.status not in (StepStatus.SUCCEEDED.value, StepStatus.SKIPPED.value):
            table = f" {s.table_name}" if isinstance(s.table_name, str) else ""
            error = s.error_message if isinstance(s.error_message, str) else f"step {s.step}{table} did not finish"
            break
    missing = [phase for phase, names in PHASE_STEPS.items() if not set(names) <= run.done]
    if error is None and failure is None and missing:
        error = f"the run ended before its {missing[0]} phase"
    run.result.error = error or failure
    run.finish(run.result.error is None)
    return load_run(engine, run_id)


def _resume(engine: Engine, run_id: str, notebook: str | None, observer: Observer | None,
            *, open_only: bool = True) -> tuple[_Run, Any]:
    """The run ``run_id`` as its rows in ingestion_logs tell it, to go on with it in this process;
    also its step rows (a DataFrame, in the order they started)."""
    engine.setup()
    rows = engine.read_table(INGESTION_LOGS, where={"run_id": run_id}, order_by=["started_at"])
    head = rows[rows.step == "run"]
    if head.empty:
        raise ConfigError(f"run {run_id!r} is not in ingestion_logs of {engine.location}; "
                          "open it first with start_run (the 01_ingest notebook does)")
    r = head.iloc[0]
    if r.engine != engine.name:
        raise ConfigError(f"run {run_id} runs on engine {r.engine}, not {engine.name}; use the same engine for every phase")
    if open_only and r.status != StepStatus.STARTED.value:
        raise ConfigError(f"run {run_id} is already closed ({r.status}); start a new run")
    run = _Run(engine, r.source, run_id, observer or Observer(), started_at=r.started_at.to_pydatetime(),
               notebook=notebook)
    run.run_step.status = StepStatus(r.status)
    steps = rows[rows.step != "run"]
    # discover is always repeated: the ingest steps need its file list
    finished = (StepStatus.SUCCEEDED.value, StepStatus.SKIPPED.value)
    run.done = {(s.step, s.table_name if isinstance(s.table_name, str) else None) for s in steps.itertuples()
                if s.status in finished and s.step != "discover"}
    run.skipped = {s.table_name for s in steps.itertuples() if s.step == "ingest" and s.status == StepStatus.SKIPPED.value}
    return run, steps


def _require(run: _Run, phase: str) -> None:
    missing = [f"{step} {table}" for step, table in PHASE_STEPS[phase] if (step, table) not in run.done]
    if missing:
        raise ConfigError(f"run {run.ctx.run_id}: {', '.join(missing)} has not SUCCEEDED; run the {phase} phase first")


def _phase_done(run: _Run, ok: bool) -> RunResult:
    if not ok:
        raise StepFailed(run.result.error or "a step errored")
    return run.result


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
