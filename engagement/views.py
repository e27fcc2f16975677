"""Views over the model tables, declared once and created by each engine's setup."""

from __future__ import annotations

from collections.abc import Callable

CURRENT_REJECTED_RECORDS = "current_rejected_records"


def current_rejected_records_sql(t: Callable[[str], str]) -> str:
    """The rejects of the latest finished ingest per source table (a killed run's rejects are left out).

    ``t`` qualifies a table name for the engine. Plain SQL (no arg_max) so Snowflake can share it.
    """
    return (
        f"SELECT r.* FROM {t('rejected_records')} r JOIN ("
        f"SELECT table_name, run_id FROM ("
        f"SELECT table_name, run_id, ROW_NUMBER() OVER (PARTITION BY table_name ORDER BY finished_at DESC) AS n "
        f"FROM {t('ingestion_logs')} WHERE step = 'ingest' AND status = 'SUCCEEDED') latest WHERE n = 1"
        f") l ON r.source_table = l.table_name AND r.run_id = l.run_id"
    )
