"""Warehouse engines behind one interface (:class:`engagement.engines.base.Engine`).

Engine modules are imported only when chosen, so the CLI starts fast and the
Snowflake libraries load only for the Snowflake engines.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from engagement.exceptions import ConfigError

if TYPE_CHECKING:
    from engagement.config import Settings
    from engagement.doctor import CheckResult
    from engagement.engines.base import Engine

    DoctorChecks = Callable[..., Iterator[CheckResult]]

# `engagement doctor` per engine: the module whose run_checks(settings, flags, *, dmf, session)
# yields its CheckResults. Imported only when chosen, like the engines themselves.
DOCTORS: dict[str, str] = {
    "duckdb": "engagement.engines.duckdb_doctor",
    "snowflake": "engagement.engines.snowflake_doctor",
}


def doctor_for(engine: str) -> DoctorChecks:
    """The doctor checks of ``engine``; a ConfigError for an engine that has none."""
    module = DOCTORS.get(engine)
    if module is None:
        raise ConfigError(f"engagement doctor checks {' or '.join(DOCTORS)}, not {engine!r} "
                          "(snowpark-local keeps nothing to check); use --engine duckdb or snowflake")
    return importlib.import_module(module).run_checks


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
