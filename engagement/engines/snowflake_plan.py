"""``engagement plan``: every statement a Snowflake run would issue, without an account.

The run goes through the production code path — :class:`~engagement.engines.snowpark.SnowparkEngine`
on a real, non-local Snowpark session — over a
:class:`~engagement.engines.snowflake_recorder.RecordingConnection`, so the statements are
the ones the real Snowpark client generates. They are printed in order, step by step:

    -- step: ingest raw_clickstream_events
    BEGIN;
    ...

Row counts are unknown offline (the recorder answers queries with no rows), so a statement
that only runs for some data (say, the failing sample of a check) may be missing from a plan;
the statements that run on every run are all there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engagement.engines.snowflake_recorder import Catalog, RecordingConnection, Statement, offline_session

if TYPE_CHECKING:
    from engagement.config import Settings
    from engagement.model import Check
    from engagement.results import RunResult
    from engagement.sources import SourceFile


@dataclass
class Plan:
    """A recorded run: its statements, the source files each ingest step read, and the run's result."""

    statements: list[Statement]
    files: dict[str, list[str]] = field(default_factory=dict)  # step tag -> source files whose records it PUT
    result: RunResult | None = None
    header: list[str] = field(default_factory=list)

    @property
    def executed(self) -> list[Statement]:
        """The statements run (describes aside)."""
        return [s for s in self.statements if not s.describe]

    def render(self) -> str:
        """The plan as SQL text: a ``-- step:`` line before each step's statements, each ending in ``;``."""
        lines = [f"-- {h}" for h in self.header]
        current: str | None = None
        for statement in self.executed:
            step = step_of(statement)
            if step != current:
                lines += ["", f"-- step: {step}"]
                current = step
            text = statement.sql.strip().rstrip(";").strip()
            lines.append(f"{text};")
            if re.match(r"PUT\s", text, re.I) and statement.query_tag:
                sources = self.files.get(json.loads(statement.query_tag)["step"], [])
                lines.append(f"-- PUT uploads the records of {len(sources)} source file(s), as Parquet: "
                             + ", ".join(_comment(s) for s in sources))
        return "\n".join(lines) + "\n"


def _comment(name: str) -> str:
    """A name as it may stand in a ``--`` comment: control characters escaped, so a file name
    holding a newline cannot end the comment and put text of its own on a line."""
    return name if name.isprintable() else json.dumps(name)[1:-1]


def step_of(statement: Statement) -> str:
    """``<step> <table>`` from a statement's query tag (``ingest:raw_clickstream_events``), or ``untagged``."""
    if not statement.query_tag:
        return "untagged"
    return json.loads(statement.query_tag).get("step", "untagged").replace(":", " ", 1)


class _FilesSeen:
    """A pipeline observer that notes which source files each ingest step loaded."""

    def __init__(self) -> None:
        self.step = ""
        self.files: dict[str, list[str]] = {}

    def started(self, step: str, table: str | None, files: int) -> None:
        self.step = f"{step}:{table}" if table else step

    def loaded(self, file: SourceFile, rows: int) -> None:
        self.files.setdefault(self.step, []).append(file.relpath)


def record_run(settings: Settings, *, connection: RecordingConnection | None = None,
               checks: Sequence[Check] | None = None, run_id: str | None = None) -> Plan:
    """Run the pipeline of ``settings`` on the offline session; return what it sent."""
    from engagement.engines.snowflake_session import SESSION_PARAMETERS
    from engagement.engines.snowpark import SnowparkEngine
    from engagement.pipeline import Observer, run_pipeline

    connection = connection or RecordingConnection(offline_catalog(settings))
    engine = SnowparkEngine(offline_session(connection), database=settings.snowflake_database,
                            schema=settings.snowflake_schema, load_size=settings.snowflake_load_size,
                            external_stage=settings.snowflake_external_stage)
    seen = _FilesSeen()
    observer = Observer(step_started=seen.started, file_loaded=seen.loaded)
    start = len(connection.statements)
    result = run_pipeline(engine, settings.source, checks=checks, observer=observer,
                          full_refresh=settings.full_refresh, run_id=run_id)
    statements = connection.statements[start:]
    plan = Plan(statements, seen.files, result)
    describes = sum(s.describe for s in statements)
    plan.header = [
        f"engagement plan: the {len(plan.executed)} statements `engagement run --engine snowflake` would issue, "
        "in order,",
        f"for source {_comment(settings.source)} into {settings.snowflake_database.upper()}."
        f"{settings.snowflake_schema.upper()}{' (full refresh)' if settings.full_refresh else ''}.",
        "Generated offline by the real Snowpark client on its production code path, against a recording",
        "connection: nothing was sent to Snowflake. Row counts are unknown in a plan: every query was answered",
        "with no rows (COPY: every staged row loaded), so statements that run only for some data (a failing",
        "check's sample) are not shown, and the run is planned as if the warehouse held no earlier load.",
        f"Not shown: {describes} describe queries (Snowpark asks for a query's columns before building on it;",
        "they need the same privileges as the query).",
        "Session parameters set at login: "
        + ", ".join(f"{k} = '{v}'" for k, v in SESSION_PARAMETERS.items()) + ".",
    ]
    return plan


def offline_catalog(settings: Settings) -> Catalog:
    """An account set up as ``sql/`` does; with an external stage, the stage over the source and its files.

    The files of an external stage are what Snowflake's LIST would show, so they are listed
    here through this process (the one call a plan of an s3:// source makes outside it).
    """
    catalog = Catalog.from_model(settings.snowflake_database, settings.snowflake_schema)
    if settings.snowflake_external_stage and settings.source.startswith("s3://"):
        from engagement.engines.snowflake_ddl import qualified
        from engagement.sources import check_root, discover

        name = qualified(settings.snowflake_database, settings.snowflake_schema, settings.snowflake_external_stage)
        url = settings.source.rstrip("/")
        catalog.stages[name.replace('"', "")] = url + "/"
        root = check_root(settings.source)
        catalog.stage_files[name.replace('"', "")] = [
            (f"{url}/{f.relpath}", f.size, f.version.strip('"')) for files in discover(root).values() for f in files]
    return catalog
