"""Showing a notebook chain to people: progress per notebook, then the run's summary and the executed copies."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console, Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from engagement.notebooks import ChainObserver, ChainResult, NotebookRun
from engagement.report import STYLE, summary

NB_STYLE = {**STYLE, "not run": "dim"}


@contextmanager
def chain_progress(console: Console) -> Iterator[ChainObserver]:
    """A ChainObserver drawing one bar per notebook (cells executed), and a line when each one ends
    (the only output when the console is not a terminal, e.g. under cron)."""
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("cells"), TimeElapsedColumn(), console=console, transient=True,
    )
    tasks: dict[str, int] = {}

    def started(nb: NotebookRun, cells: int) -> None:
        tasks[nb.name] = progress.add_task(nb.name, total=cells)

    def cell(nb: NotebookRun, index: int) -> None:
        progress.advance(tasks[nb.name])

    def finished(nb: NotebookRun) -> None:
        progress.remove_task(tasks[nb.name])
        text = f"[{NB_STYLE[nb.status]}]{nb.status}[/] {nb.name} in {nb.seconds:.1f}s -> {nb.path}"
        if nb.error:
            text += f"\n  [red]{nb.error}[/]"
        progress.console.print(text, highlight=False, soft_wrap=True)

    with progress:
        yield ChainObserver(started, cell, finished)


def chain_summary(result: ChainResult, log_file: str | None = None) -> Group:
    """The run's summary (as for ``engagement run``) and a table of the notebooks and their copies."""
    notebooks = Table(title=f"Notebooks: executed copies in {result.folder}", title_justify="left")
    for col in ("notebook", "status", "seconds", "executed copy"):
        notebooks.add_column(col, justify="right" if col == "seconds" else "left", no_wrap=col != "executed copy")
    for nb in result.notebooks:
        notebooks.add_row(nb.name, f"[{NB_STYLE[nb.status]}]{nb.status}",
                          f"{nb.seconds:.1f}" if nb.seconds is not None else "",
                          nb.path.name if nb.status != "not run" else "")
    return Group(summary(result.run, log_file), notebooks)
