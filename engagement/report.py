"""Showing runs to people: live progress while a run works, a summary when it ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console, Group
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from engagement.exceptions import ExitCode
from engagement.model import SOURCES_BY_RAW, Reason
from engagement.pipeline import Observer
from engagement.results import CheckStatus, RunResult, StepResult, StepStatus
from engagement.sources import SourceFile

STYLE = {
    "PASSED": "green", "SUCCEEDED": "green", "WARN": "yellow", "FAILED": "red", "ERROR": "bold red",
    "STARTED": "cyan", "SKIPPED": "dim",
}


def exit_code(result: RunResult) -> ExitCode:
    """3 when a step or a check errored, 1 when a check FAILED, else 0."""
    worst = result.worst_check
    if result.status is StepStatus.ERROR or worst is CheckStatus.ERROR:
        return ExitCode.STEP_ERROR
    if worst is CheckStatus.FAILED:
        return ExitCode.CHECK_FAILED
    return ExitCode.OK


@contextmanager
def live_progress(console: Console) -> Iterator[Observer]:
    """An Observer that draws a progress bar per step (files loaded for ingest steps)."""
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rows]}"), TimeElapsedColumn(), console=console, transient=False,
    )
    current: dict[str, int] = {}

    def started(step: str, table: str | None, files: int) -> None:
        label = f"{step} {table or ''}".strip()
        current["task"] = progress.add_task(label, total=files or 1, rows="")

    def loaded(file: SourceFile, rows: int) -> None:
        progress.update(current["task"], advance=1, rows=f"{rows:,} records")

    def finished(result: StepResult) -> None:
        task = current["task"]
        progress.update(task, completed=progress.tasks[task].total,
                        description=f"[{STYLE[result.status.value]}]{result.step} {result.table_name or ''}")

    with progress:
        yield Observer(started, loaded, finished)


def _n(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def summary(result: RunResult, log_file: str | None = None) -> Group:
    """The end-of-run summary: per source read = rejected + accepted, per target where rows went, checks."""
    sources = Table(title="Sources: read = rejected + accepted", title_justify="left")
    for col in ("source", "files", "read", "rejected", *(r.value for r in Reason), "accepted"):
        sources.add_column(col, justify="left" if col == "source" else "right", no_wrap=col == "source")
    for i in result.ingest:
        source = SOURCES_BY_RAW[i.table].name
        sources.add_row(source, _n(i.files), _n(i.read), _n(i.rejected_total),
                        *(_n(i.rejected.get(r.value, 0)) for r in Reason), _n(i.accepted))

    targets = Table(title="Targets: accepted = inserted + updated + unchanged + collapsed", title_justify="left")
    for col in ("table", "accepted", "inserted", "updated", "unchanged", "collapsed", "rows now"):
        targets.add_column(col, justify="left" if col == "table" else "right", no_wrap=col == "table")
    for m in result.merges:
        targets.add_row(m.table, _n(m.accepted), _n(m.inserted), _n(m.updated), _n(m.unchanged),
                        _n(m.collapsed), _n(result.tables.get(m.table)))

    checks = Table(title="Checks", title_justify="left")
    for col in ("check", "status", "metric", "rows", "thresholds"):
        checks.add_column(col, justify="right" if col in ("metric", "rows") else "left", no_wrap=col == "check")
    for c in result.checks:
        metric = "" if c.metric_value is None else f"{c.metric_value:,.{0 if c.metric_value == int(c.metric_value) else 1}f}"
        checks.add_row(c.check_name, f"[{STYLE[c.status.value]}]{c.status.value}", metric,
                       _n(c.rows_checked), c.thresholds)

    steps = Table(title="Steps", title_justify="left")
    for col in ("step", "table", "status", "seconds"):
        steps.add_column(col, justify="right" if col == "seconds" else "left")
    for s in result.steps:
        steps.add_row(s.step, s.table_name or "", f"[{STYLE[s.status.value]}]{s.status.value}",
                      f"{s.seconds:.2f}" if s.seconds is not None else "")

    code = exit_code(result)
    colour = {ExitCode.OK: "green", ExitCode.CHECK_FAILED: "yellow"}.get(code, "red")
    worst = result.worst_check.value if result.worst_check else "not run"
    lines = [
        f"run [bold]{result.run_id}[/] on {result.engine}: [{colour}]{result.status.value}[/], "
        f"checks {worst} (exit code {int(code)})",
        f"warehouse: {result.warehouse}",
    ]
    if result.error:
        lines.append(f"[red]error: {result.error}[/]")
    lines += [f"[yellow]warning: {w}[/]" for w in result.warnings]
    for step in result.steps:
        if step.step == "ingest" and step.status is StepStatus.SKIPPED:
            lines.append(f"nothing new for {SOURCES_BY_RAW[step.table_name].name}: its {step.files_skipped} file(s) were "
                         "loaded before and are unchanged (--full-refresh reloads them)")
        elif step.step == "ingest" and step.files_skipped:
            lines.append(f"{SOURCES_BY_RAW[step.table_name].name}: {step.files_skipped} unchanged file(s) skipped, "
                         f"{step.files} new or changed loaded")
    if any(i.rejected_total for i in result.ingest):
        lines.append(f"rejected records: table rejected_records, run_id = '{result.run_id}'")
    for a in result.alerts:
        lines.append(f"alert by {a.channel}: sent" if a.delivered else
                     f"[yellow]alert by {a.channel}: not delivered after {a.attempts} attempts ({a.error})[/]")
    if log_file:
        lines.append(f"log: {log_file}")
    parts = [p for p, show in ((steps, True), (sources, result.ingest), (targets, result.merges),
                               (checks, result.checks)) if show]
    parts.append(Panel("\n".join(lines), border_style=colour))
    return Group(*parts)
