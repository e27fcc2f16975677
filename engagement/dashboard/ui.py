"""Streamlit pieces every page shares: the reader, the banners, the filters and tables.

Only the app imports this module (it imports Streamlit).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any, TypeVar

import pandas as pd
import streamlit as st

from engagement.config import Settings, load_settings
from engagement.dashboard.access import Reader, Warehouse
from engagement.exceptions import EngagementError
from engagement.insights import Period, run_days

T = TypeVar("T")
log = logging.getLogger("engagement")
RUN_IN_PROGRESS = "A run is in progress"


def settings() -> Settings:
    """The same settings as the CLI (environment, ``.env``, defaults); a bad one stops the page."""
    try:
        return load_settings()
    except EngagementError as exc:
        st.error(str(exc))
        st.stop()


@st.cache_resource(show_spinner=False)
def _reader(key: tuple, _settings: Settings) -> Reader:
    return Reader(Warehouse(_settings), ttl=_settings.dashboard_ttl)


def reader() -> Reader:
    """The process-wide reader for the configured warehouse (one per distinct configuration)."""
    s = settings()
    key = (s.engine if "engine" in s.model_fields_set else None, str(s.warehouse.resolve()), s.schema_name,
           s.snowflake_connection, s.snowflake_database, s.snowflake_schema, s.dashboard_ttl)
    try:
        return _reader(key, s)
    except EngagementError as exc:
        st.error(str(exc))
        st.stop()


def no_runs(location: str) -> None:
    """The page of a warehouse nothing was loaded into yet."""
    st.title("No runs yet")
    st.info("No runs yet — run `engagement run` to load data, then reload this page.")
    st.caption(f"Reading {location}")


def fetch(fn: Callable[..., T], *args: Any) -> T:
    """``fn(engine, *args)`` through the cache. While a run holds the warehouse: the last data read
    and a banner saying so. No tables yet: the "no runs yet" page. Any error: one line, no traceback."""
    r = reader()
    try:
        snap = r.read(fn, *args)
    except EngagementError as exc:
        st.error(str(exc))
        st.stop()
    except Exception as exc:  # a bug or an unreachable warehouse: one line here, the traceback in the log
        log.exception("dashboard read failed")
        first = (str(exc).strip().splitlines() or [""])[0]
        st.error(f"Could not read {r.warehouse.location}: {type(exc).__name__}: {first}")
        st.stop()
    if snap.missing:
        no_runs(r.warehouse.location)
        st.stop()
    if snap.locked:
        if snap.value is None:
            st.info(f"{RUN_IN_PROGRESS}: the pipeline holds the warehouse right now. "
                    "This page shows its data as soon as the run finishes.")
            st.stop()
        st.info(f"{RUN_IN_PROGRESS}: the pipeline holds the warehouse, so this is the data read at "
                f"{snap.read_at:%H:%M:%S} UTC.")
    return snap.value  # type: ignore[return-value]


def run_page(page: Any) -> None:
    """Run the chosen page; a bug shows as one line (the traceback goes to the server log)."""
    try:
        page.run()
    except Exception as exc:
        log.exception("dashboard page %s failed", getattr(page, "title", page))
        first = (str(exc).strip().splitlines() or [""])[0]
        st.error(f"This page failed: {type(exc).__name__}: {first} (details in the server log; please report it)")


def require_runs() -> tuple[date, date]:
    """The first and last day a run started; without any run, the "no runs yet" page instead."""
    bounds = fetch(run_days)
    if bounds is None:
        no_runs(reader().warehouse.location)
        st.stop()
    return bounds


def sidebar_header() -> None:
    """Where the data comes from, and a button that reads it afresh."""
    r = reader()
    st.sidebar.caption(f"Warehouse: {r.warehouse.location}")
    if st.sidebar.button("Refresh", help="Read the warehouse again now (answers are otherwise reused for "
                                         f"{r.ttl:g} s)"):
        r.clear()


# -- filters that carry across pages ----------------------------------------------------------
# Streamlit forgets a widget's state on pages that do not draw it; each filter therefore
# keeps its value under a key of its own too, and every page drawing it starts from there.


def _keep(key: str) -> None:
    st.session_state[f"_keep_{key}"] = st.session_state[key]


def day_range(label: str, key: str, bounds: tuple[date, date] | None, help: str) -> Period:
    """A slider over the days in ``bounds``; an end left at a bound follows it when data grows."""
    if bounds is None:
        return Period()
    lo, hi = bounds
    if lo >= hi:
        st.sidebar.caption(f"{label}: {lo:%Y-%m-%d} (one day)")
        return Period()
    kept = st.session_state.get(f"_keep_{key}")
    start, end = kept if kept else (lo, hi)
    old = st.session_state.get(f"_bounds_{key}", (lo, hi))
    start = lo if start <= old[0] else min(max(start, lo), hi)
    end = hi if end >= old[1] else max(min(end, hi), lo)
    st.session_state[f"_bounds_{key}"] = (lo, hi)
    st.session_state[key] = (start, end)
    chosen = st.sidebar.slider(label, min_value=lo, max_value=hi, key=key, on_change=_keep, args=(key,),
                               format="YYYY-MM-DD", help=help)
    return Period(chosen[0], chosen[1])


def choose(label: str, key: str, options: Sequence[str], help: str) -> tuple[str, ...]:
    """A multiselect (nothing chosen: everything); choices missing from ``options`` are dropped."""
    kept = [v for v in st.session_state.get(f"_keep_{key}", []) if v in options]
    st.session_state[key] = kept
    chosen = st.sidebar.multiselect(label, list(options), key=key, on_change=_keep, args=(key,),
                                    placeholder="all", help=help)
    return tuple(chosen)


# -- tables ---------------------------------------------------------------------------------


def table(frame: pd.DataFrame, columns: Sequence[str] | None = None, **kwargs: Any) -> None:
    """A read-only table of ``columns`` (all by default), without the index."""
    shown = frame if columns is None else frame[[c for c in columns if c in frame.columns]]
    st.dataframe(shown, hide_index=True, width="stretch", **kwargs)


def health_box(level: str, headline: str, reasons: Sequence[str]) -> None:
    """The run's verdict: red for failed, amber for warn, blue while running, green when healthy."""
    text = headline + "".join(f"\n- {r}" for r in reasons)
    {"failed": st.error, "warn": st.warning, "running": st.info}.get(level, st.success)(text)
