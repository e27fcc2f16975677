"""What the dashboard shows, as data: each page's queries, declared once for every engine.

Each public function takes an :class:`~engagement.engines.base.Engine` and returns a
dataclass of small pandas frames. Everything that touches the fact table is an
:class:`~engagement.aggregate.Aggregate` run inside the warehouse; only log rows of one
run (a handful) are read as rows. Nothing here imports Streamlit or plotly: the pages
draw, this module is tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from engagement.aggregate import Aggregate, Condition, Fn, Grain, Group, Lookup, Measure, Op
from engagement.engines.base import Engine
from engagement.model import DIM_CUSTOMER, DQ_CHECK_LOGS, FACT_EVENTS, INGESTION_LOGS, REJECTED, TABLES
from engagement.pipeline import utcnow
from engagement.results import CheckStatus, StepStatus

FUNNEL = ("page_view", "add_to_cart", "purchase")
CHECK_STATUSES = tuple(s.value for s in CheckStatus)
RUN_STATUSES = tuple(s.value for s in StepStatus)
TABLE_NAMES = tuple(t.name for t in TABLES)
MAX_RUNS = 500  # runs listed at most (the newest)
MAX_QUALITY_RUNS = 100  # runs whose check results the quality page shows at most (the newest)
SAMPLES = 5  # raw payloads shown per rejected reason
TOP_PAGES = 10
NO_REGION = "(unknown)"

RUN_COLUMNS = ("run_id", "status", "started_at", "finished_at", "engine", "source", "error_message")
STEP_COLUMNS = ("run_id", "step", "table_name", "status", "started_at", "finished_at", "files", "rows_read",
                "rows_loaded", "rows_rejected", "rows_inserted", "rows_updated", "rows_unchanged",
                "rows_collapsed", "error_message", "notebook")
CHECK_COLUMNS = ("run_id", "checked_at", "check_name", "table_name", "column_name", "dimension", "owner",
                 "status", "metric_value", "rows_checked", "warn_threshold", "fail_threshold", "thresholds",
                 "message", "failing_sample")


def describe_age(age: timedelta) -> str:
    """An age for people: ``3 days``, ``5 h``, ``12 min`` (a negative age is ``0 min``)."""
    seconds = max(age.total_seconds(), 0)
    if seconds >= 2 * 86400:
        return f"{int(seconds // 86400)} days"
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 60)} min"


@dataclass(frozen=True)
class Period:
    """Calendar days, both ends included; None leaves that end open."""

    start: date | None = None
    end: date | None = None

    def conditions(self, column: str) -> tuple[Condition, ...]:
        """The period as conditions on a timestamp column."""
        out = []
        if self.start is not None:
            out.append(Condition(column, Op.GE, datetime.combine(self.start, datetime.min.time())))
        if self.end is not None:
            out.append(Condition(column, Op.LT, datetime.combine(self.end + timedelta(days=1), datetime.min.time())))
        return tuple(out)


def _in(column: str, values: tuple[str, ...]) -> tuple[Condition, ...]:
    return (Condition(column, Op.IN, values),) if values else ()


def _seconds(frame: pd.DataFrame) -> pd.Series:
    return (frame["finished_at"] - frame["started_at"]).dt.total_seconds()


def _rows(engine: Engine, table: str, columns: tuple[str, ...], where: tuple[Condition, ...] = (),
          order_by: tuple[str, ...] = (), limit: int | None = None) -> pd.DataFrame:
    """Log rows (distinct, which the key makes all) matching ``where``, without pulling the table."""
    return engine.aggregate(Aggregate(table, by=columns, where=where, order_by=order_by, limit=limit))


def _record(frame: pd.DataFrame) -> dict[str, Any] | None:
    if frame.empty:
        return None
    row = frame.iloc[0].to_dict()
    return {k: (None if pd.isna(v) else v.to_pydatetime() if isinstance(v, pd.Timestamp) else v)
            for k, v in row.items()}


def data_version(engine: Engine) -> tuple:
    """What changes whenever a run (or a step of it) starts or ends: a cheap "has anything
    changed?" for caches, since the data changes only through runs, which log every step."""
    frame = engine.aggregate(Aggregate(INGESTION_LOGS.name, measures=(
        Measure("rows", Fn.COUNT), Measure("started", Fn.MAX, "started_at"), Measure("finished", Fn.MAX, "finished_at"),
        Measure("open", Fn.COUNT, where=(Condition("finished_at", Op.IS_NULL),)))))
    return tuple(_record(frame).values())


# -- overview ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    """The verdict on a run, over its steps *and* its checks: ok, warn, running or failed."""

    level: str
    headline: str
    reasons: tuple[str, ...] = ()


@dataclass
class Overview:
    """The latest run at a glance."""

    run: dict[str, Any] | None
    steps: pd.DataFrame = field(default_factory=pd.DataFrame)
    sources: pd.DataFrame = field(default_factory=pd.DataFrame)  # the ingest steps: rows read / loaded / rejected
    checks: pd.DataFrame = field(default_factory=pd.DataFrame)  # the run's check results
    check_counts: dict[str, int] = field(default_factory=dict)  # status -> checks, in CHECK_STATUSES order
    newest_event: datetime | None = None
    events: int = 0
    health: Health | None = None
    notebooks: list[tuple[str, str]] = field(default_factory=list)  # (step label, notebook path)

    @property
    def empty(self) -> bool:
        """No run was ever logged: the warehouse is new."""
        return self.run is None

    def freshness(self, now: datetime | None = None) -> timedelta | None:
        """How old the newest event is."""
        return None if self.newest_event is None else (now or utcnow()) - self.newest_event


def health(run: dict[str, Any], steps: pd.DataFrame, checks: pd.DataFrame) -> Health:
    """A run's verdict. A failed step is never hidden by passing checks: it makes the run failed."""
    reasons = []
    errored = steps[steps["status"] == StepStatus.ERROR]
    for s in errored.itertuples():
        reasons.append(f"step {s.step} {s.table_name or ''}".rstrip() + f" errored: {s.error_message or 'no message'}")
    if run["status"] == StepStatus.ERROR and errored.empty:
        reasons.append(f"the run errored: {run.get('error_message') or 'no message'}")
    statuses = checks["status"].value_counts().to_dict() if not checks.empty else {}
    bad = checks[checks["status"].isin([CheckStatus.FAILED, CheckStatus.ERROR])] if not checks.empty else checks
    for c in bad.itertuples():
        reasons.append(f"check {c.check_name} {c.status}: {c.message}")
    warned = statuses.get(CheckStatus.WARN, 0)
    if reasons:
        failed_steps = len(errored) + (run["status"] == StepStatus.ERROR and errored.empty)
        parts = ([f"{failed_steps} step{'s' * (failed_steps > 1)} errored"] if failed_steps else []) + \
                ([f"{len(bad)} check{'s' * (len(bad) > 1)} failed"] if len(bad) else [])
        return Health("failed", "Failed: " + " and ".join(parts), tuple(reasons))
    if run["status"] == StepStatus.STARTED:
        return Health("running", f"Not finished: started {run['started_at']:%Y-%m-%d %H:%M} UTC, still running "
                                 "or stopped without a trace (see the steps)", ())
    if checks.empty:
        return Health("ok", "Succeeded; no checks were recorded for this run", ())
    if warned:
        names = ", ".join(checks.loc[checks["status"] == CheckStatus.WARN, "check_name"])
        return Health("warn", f"Succeeded with {warned} check{'s' * (warned > 1)} in WARN", (f"WARN: {names}",))
    return Health("ok", f"Healthy: every step succeeded and all {len(checks)} checks passed", ())


def overview(engine: Engine) -> Overview:
    """The latest run: its steps, per-source counts, its checks, the newest event and a verdict."""
    latest = _rows(engine, INGESTION_LOGS.name, RUN_COLUMNS, (Condition("step", Op.EQ, "run"),),
                   order_by=("started_at desc", "run_id desc"), limit=1)
    run = _record(latest)
    if run is None:
        return Overview(run=None)
    run["seconds"] = (run["finished_at"] - run["started_at"]).total_seconds() if run["finished_at"] else None
    logged = _rows(engine, INGESTION_LOGS.name, STEP_COLUMNS, (Condition("run_id", Op.EQ, run["run_id"]),),
                   order_by=("started_at", "step", "table_name"))
    steps = logged[logged["step"] != "run"].reset_index(drop=True)
    steps.insert(steps.columns.get_loc("finished_at") + 1, "seconds", _seconds(steps))
    sources = steps.loc[steps["step"] == "ingest", ["table_name", "files", "rows_read", "rows_loaded", "rows_rejected"]]
    checks = _rows(engine, DQ_CHECK_LOGS.name, CHECK_COLUMNS, (Condition("run_id", Op.EQ, run["run_id"]),),
                   order_by=("check_name",))
    counts = checks["status"].value_counts()
    newest = engine.aggregate(Aggregate(FACT_EVENTS.name, measures=(
        Measure("newest", Fn.MAX, "event_timestamp"), Measure("events", Fn.COUNT))))
    notebooks = [(f"{s.step} {s.table_name or ''}".rstrip(), s.notebook)
                 for s in logged.itertuples() if isinstance(s.notebook, str) and s.notebook]
    return Overview(
        run=run,
        steps=steps,
        sources=sources.reset_index(drop=True),
        checks=checks,
        check_counts={s: int(counts.get(s, 0)) for s in CHECK_STATUSES},
        newest_event=_record(newest)["newest"],
        events=int(newest["events"].iloc[0]),
        health=health(run, steps, checks),
        notebooks=notebooks,
    )


# -- runs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFilter:
    """Which runs and steps to show: runs started in ``period``, with these statuses, steps on these tables."""

    period: Period = Period()
    statuses: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()


@dataclass
class Runs:
    """Run history: one row per run, and the steps of those runs."""

    runs: pd.DataFrame
    steps: pd.DataFrame


def _days(engine: Engine, table: str, column: str, where: tuple[Condition, ...] = ()) -> tuple[date, date] | None:
    frame = engine.aggregate(Aggregate(table, where=where, measures=(
        Measure("first", Fn.MIN, column), Measure("last", Fn.MAX, column))))
    first, last = frame.iloc[0]
    return None if pd.isna(first) else (first.date(), last.date())


def run_days(engine: Engine) -> tuple[date, date] | None:
    """The first and last day a run started (UTC), or None before the first run."""
    return _days(engine, INGESTION_LOGS.name, "started_at", (Condition("step", Op.EQ, "run"),))


def _worst(statuses: pd.Series) -> str | None:
    present = [CheckStatus(s) for s in statuses.dropna().unique()]
    return max(present, key=lambda s: s.rank).value if present else None


def runs(engine: Engine, filters: RunFilter = RunFilter()) -> Runs:
    """The newest runs (at most MAX_RUNS) matching ``filters``, with their totals, worst check and steps."""
    listed = _rows(
        engine, INGESTION_LOGS.name, RUN_COLUMNS,
        (Condition("step", Op.EQ, "run"), *filters.period.conditions("started_at"), *_in("status", filters.statuses)),
        order_by=("started_at desc", "run_id desc"), limit=MAX_RUNS,
    )
    listed.insert(listed.columns.get_loc("finished_at") + 1, "seconds", _seconds(listed))
    these = _in("run_id", tuple(listed["run_id"]))
    if not these:
        steps = pd.DataFrame(columns=[*STEP_COLUMNS[:6], "seconds", *STEP_COLUMNS[6:]])
        return Runs(runs=listed.assign(rows_read=pd.Series(dtype="Int64"), rows_rejected=pd.Series(dtype="Int64"),
                                       checks=pd.Series(dtype=object)), steps=steps)
    totals = engine.aggregate(Aggregate(
        INGESTION_LOGS.name, where=(Condition("step", Op.EQ, "ingest"), *these), by=("run_id",),
        measures=(Measure("rows_read", Fn.SUM, "rows_read"), Measure("rows_rejected", Fn.SUM, "rows_rejected")),
    ))
    checks = engine.aggregate(Aggregate(DQ_CHECK_LOGS.name, where=these, by=("run_id", "status"),
                                        measures=(Measure("checks", Fn.COUNT),)))
    worst = checks.groupby("run_id")["status"].agg(_worst).rename("checks")
    table = listed.merge(totals, on="run_id", how="left").merge(worst, on="run_id", how="left")
    steps = _rows(
        engine, INGESTION_LOGS.name, STEP_COLUMNS,
        (Condition("step", Op.NE, "run"), *these, *_in("table_name", filters.tables)),
        order_by=("started_at", "step", "table_name"),
    )
    steps.insert(steps.columns.get_loc("finished_at") + 1, "seconds", _seconds(steps))
    return Runs(runs=table, steps=steps)


@dataclass
class RunDetail:
    """One run: its steps and errors, its rejects by reason with raw samples, its checks."""

    run: dict[str, Any] | None
    steps: pd.DataFrame
    rejected: pd.DataFrame  # source_table, reason, records
    samples: pd.DataFrame  # source_table, reason, source_file, source_row, detail, payload
    checks: pd.DataFrame


def run_detail(engine: Engine, run_id: str) -> RunDetail:
    """Everything logged for ``run_id``; up to SAMPLES raw payloads per rejected reason."""
    this = (Condition("run_id", Op.EQ, run_id),)
    logged = _rows(engine, INGESTION_LOGS.name, STEP_COLUMNS, this, order_by=("started_at", "step", "table_name"))
    run_rows = logged[logged["step"] == "run"]
    steps = logged[logged["step"] != "run"].reset_index(drop=True)
    steps.insert(steps.columns.get_loc("finished_at") + 1, "seconds", _seconds(steps))
    rejected = engine.aggregate(Aggregate(
        REJECTED.name, where=this, by=("source_table", "reason"), measures=(Measure("records", Fn.COUNT),),
        order_by=("source_table", "records desc", "reason"),
    ))
    samples = [
        engine.read_table(REJECTED, where={"run_id": run_id, "source_table": r.source_table, "reason": r.reason},
                          order_by=["source_file", "source_row"], limit=SAMPLES)
        for r in rejected.itertuples()
    ]
    sample_columns = ["source_table", "reason", "source_file", "source_row", "detail", "payload"]
    checks = _rows(engine, DQ_CHECK_LOGS.name, CHECK_COLUMNS, this, order_by=("check_name",))
    return RunDetail(
        run=_record(run_rows),
        steps=steps,
        rejected=rejected,
        samples=pd.concat([s[sample_columns] for s in samples], ignore_index=True) if samples
        else pd.DataFrame(columns=sample_columns),
        checks=checks,
    )


# -- data quality --------------------------------------------------------------------------


@dataclass(frozen=True)
class QualityFilter:
    """Which check results to show: checked in ``period``, on these tables, these checks, these statuses."""

    period: Period = Period()
    tables: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()


@dataclass
class Quality:
    """Check results over runs, whatever checks dq_check_logs holds."""

    results: pd.DataFrame  # one row per check per run (period, tables, checks; every status)
    by_dimension: pd.DataFrame  # dimension, status, results (all filters)
    by_table: pd.DataFrame  # table_name, status, results (all filters)
    statuses: tuple[str, ...] = ()  # the status filter; empty: every status

    @property
    def shown(self) -> pd.DataFrame:
        """The results with the status filter applied (the grid and the failing samples)."""
        if not self.statuses:
            return self.results
        return self.results[self.results["status"].isin(self.statuses)].reset_index(drop=True)


def check_catalog(engine: Engine) -> pd.DataFrame:
    """Every check ever logged (check_name, table_name, dimension, results), by name."""
    return engine.aggregate(Aggregate(DQ_CHECK_LOGS.name, by=("check_name", "table_name", "dimension"),
                                      measures=(Measure("results", Fn.COUNT),), order_by=("check_name",)))


def worst_first(checks: pd.DataFrame) -> list[str]:
    """Check names, the worst status first (ERROR, FAILED, WARN, PASSED), then by name."""
    rank = checks["status"].map({s: -CheckStatus(s).rank for s in CHECK_STATUSES})
    return checks.assign(_rank=rank).sort_values(["_rank", "check_name"])["check_name"].tolist()


def quality(engine: Engine, filters: QualityFilter = QualityFilter()) -> Quality:
    """Check results of the newest MAX_QUALITY_RUNS runs in the period, grouped by quality
    dimension and by table inside the engine."""
    scope = (*filters.period.conditions("checked_at"), *_in("table_name", filters.tables),
             *_in("check_name", filters.checks))
    newest = engine.aggregate(Aggregate(DQ_CHECK_LOGS.name, where=scope, by=("run_id",),
                                        measures=(Measure("checked_at", Fn.MAX, "checked_at"),),
                                        order_by=("checked_at desc", "run_id desc"), limit=MAX_QUALITY_RUNS))
    scope += _in("run_id", tuple(newest["run_id"]))
    with_status = (*scope, *_in("status", filters.statuses))
    counted = (Measure("results", Fn.COUNT),)
    results = _rows(engine, DQ_CHECK_LOGS.name, CHECK_COLUMNS, scope, order_by=("checked_at", "run_id", "check_name"))
    if newest.empty:  # nothing in scope: empty frames of the right shape
        return Quality(results=results, by_dimension=pd.DataFrame(columns=["dimension", "status", "results"]),
                       by_table=pd.DataFrame(columns=["table_name", "status", "results"]), statuses=filters.statuses)
    return Quality(
        results=results,
        by_dimension=engine.aggregate(Aggregate(DQ_CHECK_LOGS.name, where=with_status, by=("dimension", "status"),
                                                measures=counted, order_by=("dimension", "status"))),
        by_table=engine.aggregate(Aggregate(DQ_CHECK_LOGS.name, where=with_status, by=("table_name", "status"),
                                            measures=counted, order_by=("table_name", "status"))),
        statuses=filters.statuses,
    )


# -- engagement ----------------------------------------------------------------------------


@dataclass
class Engagement:
    """What the events say, for a period of event days."""

    events: int
    customers: int  # distinct known customers with an event
    anonymous: int  # events without a user_id
    orphans: int  # events whose user_id is no customer
    daily: pd.DataFrame  # day, event_type, events
    funnel: pd.DataFrame  # stage, users, events, in FUNNEL order
    top_pages: pd.DataFrame  # page_url, events
    regions: pd.DataFrame  # region, customers, events

    @property
    def anonymous_share(self) -> float:
        return self.anonymous / self.events if self.events else 0.0

    @property
    def orphan_share(self) -> float:
        return self.orphans / self.events if self.events else 0.0


def event_days(engine: Engine) -> tuple[date, date] | None:
    """The first and last day with an event (UTC), or None without events."""
    return _days(engine, FACT_EVENTS.name, "event_timestamp")


def engagement(engine: Engine, period: Period = Period()) -> Engagement:
    """Events per day by type, the funnel, top pages, customers by region, anonymous and orphan events.

    Distinct users are the costly part on a big fact table, so the events are first reduced
    to one row per user_id (with a count per funnel stage) inside the engine, once; the
    funnel, the regions and the anonymous and orphan counts are all read from those rows.
    """
    when = period.conditions("event_timestamp")
    events = Measure("events", Fn.COUNT)
    daily = engine.aggregate(Aggregate(
        FACT_EVENTS.name, where=when, by=(Group("event_timestamp", Grain.DAY, "day"), "event_type"),
        measures=(events,), order_by=("day", "event_type"),
    ))
    top = engine.aggregate(Aggregate(
        FACT_EVENTS.name, where=(*when, Condition("page_url", Op.NOT_NULL)), by=("page_url",),
        measures=(events,), order_by=("events desc", "page_url"), limit=TOP_PAGES,
    ))
    per_user = Aggregate(FACT_EVENTS.name, where=when, by=("user_id",), measures=(
        events, *[Measure(f"{stage}_events", Fn.COUNT, where=(Condition("event_type", Op.EQ, stage),))
                  for stage in FUNNEL]))
    known = Condition("user_id", Op.NOT_NULL)
    regions = engine.aggregate(Aggregate(
        per_user,
        lookup=Lookup(DIM_CUSTOMER.name, key="customer_id", on="user_id", columns=("customer_id", "region")),
        by=("region",),
        measures=(
            Measure("customers", Fn.COUNT, "customer_id"),  # one row per user: a count is a distinct count
            Measure("events", Fn.SUM, "events"),
            Measure("anonymous", Fn.SUM, "events", where=(Condition("user_id", Op.IS_NULL),)),
            Measure("orphans", Fn.SUM, "events", where=(known, Condition("customer_id", Op.IS_NULL))),
            *[Measure(f"{stage}_users", Fn.COUNT, where=(known, Condition(f"{stage}_events", Op.GT, 0)))
              for stage in FUNNEL],
            *[Measure(f"{stage}_events", Fn.SUM, f"{stage}_events") for stage in FUNNEL],
        ),
        order_by=("customers desc", "region"),
    ))
    totals = regions.drop(columns="region").fillna(0).sum()
    funnel = pd.DataFrame({
        "stage": list(FUNNEL),
        "users": [int(totals.get(f"{s}_users", 0)) for s in FUNNEL],
        "events": [int(totals.get(f"{s}_events", 0)) for s in FUNNEL],
    })
    shown = regions.assign(region=regions["region"].fillna(NO_REGION), events=regions["events"].fillna(0).astype("int64"))
    return Engagement(
        events=int(totals.get("events", 0)),
        customers=int(totals.get("customers", 0)),
        anonymous=int(totals.get("anonymous", 0)),
        orphans=int(totals.get("orphans", 0)),
        daily=daily,
        funnel=funnel,
        top_pages=top,
        regions=shown[["region", "customers", "events"]].reset_index(drop=True),
    )
