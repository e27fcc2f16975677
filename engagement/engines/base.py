"""The engine interface: the few operations the pipeline needs from a warehouse.

Pipeline steps, rules and logging live outside the engines; an engine compiles
the declarations of :mod:`engagement.model` into its own dialect and runs them.
Each mutating call is atomic: it commits as a whole or leaves the previous state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import pandas as pd

from engagement.aggregate import Aggregate
from engagement.checks import CheckContext
from engagement.model import Check, Source, Table
from engagement.results import IngestCounts, MergeCounts, Metric
from engagement.sources import Root, SourceFile

# Called after each file is loaded (inside the step's transaction): file, records read so far.
FileCallback = Callable[[SourceFile, int], None]


@dataclass(frozen=True)
class RunContext:
    """What every write of one run shares."""

    run_id: str
    started_at: datetime  # UTC, naive; also the audit time of rows the run changes
    engine: str
    source: str


class Engine(Protocol):
    """What a warehouse engine provides to the pipeline, the CLI and the dashboard."""

    name: str

    @property
    def location(self) -> str:
        """Where the data lives, for people (a file path, an account/database/schema)."""
        ...

    def setup(self) -> None:
        """Create the schema and every table of the model that is missing."""

    def source_root(self, source: str) -> Root | None:
        """A root the warehouse reads by itself (Snowflake: an external stage over an s3:// source),
        or None when this process reads the files (:func:`engagement.sources.check_root`)."""

    def ingest(self, run: RunContext, source: Source, files: Sequence[SourceFile],
               on_file: FileCallback | None = None) -> IngestCounts:
        """Truncate and load ``source.raw`` from ``files``; append this run's rejects; count both."""

    def merge(self, run: RunContext, source: Source) -> MergeCounts:
        """Validate, type and de-duplicate the raw table, then MERGE it into ``source.target``."""

    def metrics(self, checks: Sequence[Check], context: CheckContext) -> list[Metric]:
        """One measurement per check, in order; a check whose query fails gives a Metric with
        ``error`` and the others are still measured. Checks on one table share one pass."""

    def write_log(self, table: Table, rows: Sequence[dict[str, Any]], key: Sequence[str] = ()) -> None:
        """Append ``rows`` to a log table; with ``key``, replace rows having the same key first."""

    def table_counts(self) -> dict[str, int]:
        """Row count of every model table."""

    def read_table(self, table: Table, *, where: dict[str, Any] | None = None,
                   order_by: Sequence[str] = (), limit: int | None = None) -> pd.DataFrame:
        """Rows of a model table for people (notebooks, dashboard, ``engagement status``)."""

    def aggregate(self, query: Aggregate) -> pd.DataFrame:
        """Run an aggregate query inside the warehouse; only its rows come back, typed by
        :func:`engagement.aggregate.typed_frame` (the same frame on every engine).

        Raises MissingTableError when a table it reads does not exist yet.
        """

    def close(self) -> None:
        """Release the connection (and the file lock)."""
