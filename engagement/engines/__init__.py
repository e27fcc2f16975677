"""Warehouse engines behind one interface (:class:`engagement.engines.base.Engine`).

Engine modules are imported only when chosen, so the CLI starts fast and the
Snowflake libraries load only for the Snowflake engines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engagement.exceptions import ConfigError

if TYPE_CHECKING:
    from engagement.config import Settings
    from engagement.engines.base import Engine


def create_engine(settings: Settings, *, read_only: bool = False) -> Engine:
    """The engine named by ``settings.engine``, connected and ready."""
    if settings.engine == "duckdb":
        from engagement.engines.duckdb import DuckDBEngine

        # A reader (the dashboard) does not wait: it shows its last answer while a run writes.
        return DuckDBEngine(settings.warehouse, schema=settings.schema_name, read_only=read_only,
                            memory_limit=settings.duckdb_memory_limit,
                            lock_wait=0.0 if read_only else settings.duckdb_lock_wait)
    if settings.engine in ("snowflake", "snowpark-local"):
        from engagement.engines.snowflake_session import create_session

        local = settings.engine == "snowpark-local"
        session = create_session(settings, local=local)
        from engagement.engines.snowpark import SnowparkEngine

        return SnowparkEngine(
            session,
            database=settings.snowflake_database,
            schema=settings.snowflake_schema,
            local=local,
            load_size=settings.snowflake_load_size,
            external_stage=settings.snowflake_external_stage,
        )
    raise ConfigError(f"engine {settings.engine!r} is not available; use --engine duckdb, snowflake or snowpark-local")
