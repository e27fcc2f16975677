"""Incremental loading: which source files are new or changed since they were last merged.

Like Snowflake's COPY load metadata, ``loaded_files`` keeps each file's size and
version (mtime or ETag). A file is recorded INGESTED when its raw table is loaded and
MERGED once its target has taken it; only a MERGED file whose size and version are
unchanged is skipped, so a run that failed between ingest and merge reloads its files.
The MERGE rules make this exact: a later file still wins and a stale copy still loses,
because each copy is compared with the stored row's lineage, not with the batch alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from engagement.engines.base import Engine
from engagement.model import LOADED_FILES, Source
from engagement.sources import SourceFile

INGESTED, MERGED = "INGESTED", "MERGED"


def split_new(engine: Engine, source: Source, files: Sequence[SourceFile]) -> tuple[list[SourceFile], int]:
    """The files of ``source`` to load (new, changed, or never merged) and how many are skipped."""
    known = engine.read_table(LOADED_FILES, where={"source_table": source.raw.name, "state": MERGED})
    merged = {(r.source_file, int(r.size), r.version) for r in known.itertuples()}
    new = [f for f in files if (f.relpath, f.size, f.version) not in merged]
    return new, len(files) - len(new)


def record(engine: Engine, source: Source, files: Sequence[SourceFile], run_id: str, now: datetime) -> None:
    """Record ``files`` as INGESTED into ``source``'s raw table by ``run_id``."""
    rows = [{"source_table": source.raw.name, "source_file": f.relpath, "size": f.size, "version": f.version,
             "run_id": run_id, "state": INGESTED, "loaded_at": now} for f in files]
    engine.write_log(LOADED_FILES, rows, key=("source_table", "source_file"))


def mark_merged(engine: Engine, source: Source, run_id: str) -> None:
    """The files ``run_id`` ingested into ``source``'s raw table are now in its target."""
    ingested = engine.read_table(LOADED_FILES, where={"source_table": source.raw.name, "run_id": run_id,
                                                      "state": INGESTED})
    if ingested.empty:
        return
    rows = [{**r, "state": MERGED} for r in ingested.to_dict("records")]
    engine.write_log(LOADED_FILES, rows, key=("source_table", "source_file"))
