"""Views over the model tables, declared once and created by each engine's setup."""

from __future__ import annotations

from collections.abc import Callable

from engagement.model import LOADED_FILES, REJECTED

CURRENT_REJECTED_RECORDS = "current_rejected_records"


def current_rejected_records_sql(t: Callable[[str], str]) -> str:
    """The rejects of each source file's current load: the run ``loaded_files`` names for it.

    A run killed after its ingest committed left its rejects in ``rejected_records``; the rerun
    that loaded the same file again is the one ``loaded_files`` records, so counts over this
    view never double. With incremental loads, an older file's rejects stay current until a run
    loads that file again. ``t`` qualifies a table name for the engine; plain SQL, shared by
    DuckDB and Snowflake.
    """
    return (
        f"SELECT r.* FROM {t(REJECTED.name)} r JOIN {t(LOADED_FILES.name)} f "
        "ON r.source_table = f.source_table AND r.source_file = f.source_file AND r.run_id = f.run_id"
    )
