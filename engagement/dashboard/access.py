"""How the dashboard reads the warehouse: briefly, read-only, cached, and calm while a run writes.

DuckDB allows one writer *or* readers on a file, never both, across processes. So the
dashboard never keeps the file open: each read opens it read-only, runs one page's
queries and closes it, and a pipeline run can always start. While a run holds the file,
opening it fails with WarehouseLockedError; the :class:`Reader` then answers with the
last data it read, marked ``locked``, instead of an error.

On Snowflake one Snowpark session is kept for the process: the active session inside
Streamlit in Snowflake, else one opened from the same settings as the CLI.
Answers are cached and computed again only when a run changed the data (see
:class:`Reader`). No Streamlit here; the app wraps a Reader in ``st.cache_resource``.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from engagement.config import Settings
from engagement.engines.base import Engine
from engagement.exceptions import ConfigError, MissingTableError, WarehouseLockedError
from engagement.insights import data_version
from engagement.pipeline import utcnow

T = TypeVar("T")
MAX_ENTRIES = 256  # cached answers kept (each a page's small frames)


def active_session() -> Any | None:
    """The Snowpark session Streamlit in Snowflake provides, or None (also for local-testing sessions)."""
    if "snowflake.snowpark" not in sys.modules:  # nothing imported Snowpark: no session can be active
        return None
    from snowflake.snowpark.context import get_active_session

    try:
        session = get_active_session()
    except Exception:  # SnowparkSessionException: none, or more than one
        return None
    # A local-testing session (tests) is no warehouse.
    return None if type(session._conn).__module__.startswith("snowflake.snowpark.mock") else session


class Warehouse:
    """The warehouse the settings name, opened for one read at a time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._snowpark: Engine | None = None
        self._guard = threading.Lock()
        if settings.engine == "snowpark-local":
            raise ConfigError(
                "snowpark-local keeps nothing between processes, so the dashboard has nothing to show; "
                "set ENGAGEMENT_ENGINE to duckdb or snowflake"
            )
        session = active_session() if "engine" not in settings.model_fields_set or settings.engine == "snowflake" \
            else None
        self.engine_name = "snowflake" if session is not None or settings.engine == "snowflake" else "duckdb"
        self._session = session

    @property
    def location(self) -> str:
        """Where the data is read from, for people."""
        if self.engine_name == "duckdb":
            return str(self.settings.warehouse.resolve())
        s = self.settings
        return f"Snowflake {s.snowflake_database.upper()}.{s.snowflake_schema.upper()}"

    @contextmanager
    def open(self) -> Iterator[Engine]:
        """An engine for one read. DuckDB: a read-only connection closed afterwards; a missing
        file raises MissingTableError (nothing was loaded yet). Snowflake: the shared session."""
        if self.engine_name == "snowflake":
            yield self._snowflake()
            return
        from engagement.engines import create_engine

        path = self.settings.warehouse
        if not path.exists():
            raise MissingTableError(f"warehouse {path} does not exist yet; run `engagement run` first")
        engine = create_engine(self.settings, read_only=True)  # the same settings as the CLI's (memory limit too)
        try:
            yield engine
        finally:
            engine.close()

    def _snowflake(self) -> Engine:
        with self._guard:
            if self._snowpark is None:
                from engagement.engines.snowpark import SnowparkEngine

                s = self.settings
                if self._session is not None:
                    self._snowpark = SnowparkEngine(self._session, database=s.snowflake_database,
                                                    schema=s.snowflake_schema)
                else:
                    from engagement.engines import create_engine

                    self._snowpark = create_engine(s, read_only=True)
            return self._snowpark


@dataclass(frozen=True)
class Snapshot(Generic[T]):
    """An answer and how fresh it is.

    ``locked``: a pipeline run held the warehouse just now, so ``value`` is the last answer
    read before (None when there was none). ``missing``: the warehouse has no tables yet.
    """

    value: T | None
    read_at: datetime | None
    locked: bool = False
    missing: bool = False


@dataclass
class _Entry:
    value: Any
    read_at: datetime  # when the value was computed
    stamp: float  # when it was last known to be current (clock time)
    version: Any  # the warehouse's data version it was computed at


class Reader:
    """Answers ``fn(engine, *args)`` from the warehouse, cached per arguments.

    An answer is reused without asking the warehouse for ``ttl`` seconds. After that the
    warehouse's data version (:func:`engagement.insights.data_version`, one small query on
    the log tables) is checked: the answer is computed again only if a run changed the
    data since, so a page stays fast until the next run. Thread-safe (Streamlit serves each
    browser session from its own thread).
    """

    def __init__(self, warehouse: Warehouse, ttl: float, clock: Callable[[], float] = time.monotonic,
                 version: Callable[[Engine], Any] = data_version) -> None:
        self.warehouse, self.ttl, self.clock, self.version = warehouse, ttl, clock, version
        self._cache: OrderedDict[tuple, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, fn: Callable[..., T], *args: Any) -> Snapshot[T]:
        """The current answer; while the warehouse is locked by a run, the last answer read
        (``locked=True``); before anything was loaded, ``missing=True``."""
        key = (fn.__module__, fn.__qualname__, args)
        with self._lock:
            entry = self._cache.get(key)
        if entry is not None and self.clock() - entry.stamp < self.ttl:
            return Snapshot(entry.value, entry.read_at)
        try:
            with self.warehouse.open() as engine:
                version = self.version(engine)
                if entry is not None and version == entry.version:
                    fresh = _Entry(entry.value, entry.read_at, self.clock(), version)
                else:
                    fresh = _Entry(fn(engine, *args), utcnow(), self.clock(), version)
        except WarehouseLockedError:
            return Snapshot(entry.value if entry else None, entry.read_at if entry else None, locked=True)
        except MissingTableError:
            return Snapshot(None, None, missing=True)
        with self._lock:
            self._cache[key] = fresh
            self._cache.move_to_end(key)
            while len(self._cache) > MAX_ENTRIES:
                self._cache.popitem(last=False)
        return Snapshot(fresh.value, fresh.read_at)

    def clear(self) -> None:
        """Forget every cached answer (the next reads go to the warehouse)."""
        with self._lock:
            self._cache.clear()
