"""Aggregates for analysts (the explore notebook): computed in the warehouse, small frames back.

Every function takes an engine (DuckDB or Snowflake) and returns a small pandas frame; the
fact table never comes to pandas whole. The queries are :class:`~engagement.aggregate.Aggregate`
declarations, which each engine compiles to its own dialect (``Engine.aggregate``), as the
dashboard's are. Anonymous events (no user_id) count as events but never as users.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from engagement.aggregate import Aggregate, Condition, Fn, Grain, Group, Lookup, Measure, Op
from engagement.engines.base import Engine
from engagement.model import DIM_CUSTOMER, DQ_CHECK_LOGS, FACT_EVENTS

FUNNEL = ("page_view", "add_to_cart", "purchase")
MISSING = "(none)"  # the label of a NULL event type or region
EVENTS = Measure("events", Fn.COUNT)
USERS = Measure("users", Fn.COUNT_DISTINCT, "user_id")


def _of_type(name: str, event_type: str, *more: Condition) -> Measure:
    return Measure(name, Fn.COUNT, where=(Condition("event_type", Op.EQ, event_type), *more))


def _ints(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    frame[list(columns)] = frame[list(columns)].fillna(0).astype("int64")
    return frame


def events_by_day(engine: Engine) -> pd.DataFrame:
    """Events and distinct users per day (UTC) and event type: columns day, event_type, events, users."""
    frame = engine.aggregate(Aggregate(
        FACT_EVENTS.name, by=(Group("event_timestamp", Grain.DAY, "day"), "event_type"), measures=(EVENTS, USERS)))
    frame["day"] = pd.to_datetime(frame["day"])
    frame["event_type"] = frame["event_type"].fillna(MISSING)
    return _ints(frame, ["events", "users"]).sort_values(["day", "event_type"], ignore_index=True)


def funnel(engine: Engine, stages: Sequence[str] = FUNNEL) -> pd.DataFrame:
    """Known users reaching each stage: a user counts at a stage when they have events of that type
    and of every earlier stage (in any order). Columns stage, users, of_previous, of_first (shares)."""
    if not stages:
        raise ValueError("a funnel needs at least one stage")
    per_user = Aggregate(FACT_EVENTS.name, where=(Condition("user_id", Op.NOT_NULL),), by=("user_id",),
                         measures=tuple(_of_type(f"s{i}", s) for i, s in enumerate(stages)))
    reached = tuple(Measure(f"r{i}", Fn.COUNT, where=tuple(Condition(f"s{j}", Op.GT, 0) for j in range(i + 1)))
                    for i in range(len(stages)))
    row = engine.aggregate(Aggregate(per_user, measures=reached)).iloc[0]
    users = [int(row[f"r{i}"] or 0) for i in range(len(stages))]
    return pd.DataFrame({
        "stage": list(stages),
        "users": users,
        "of_previous": [1.0 if i == 0 else (u / users[i - 1] if users[i - 1] else 0.0) for i, u in enumerate(users)],
        "of_first": [u / users[0] if users[0] else 0.0 for u in users],
    })


def top_pages(engine: Engine, n: int = 10) -> pd.DataFrame:
    """The ``n`` pages with the most page views: columns page_url, page_views, events, users."""
    frame = engine.aggregate(Aggregate(
        FACT_EVENTS.name, where=(Condition("page_url", Op.NOT_NULL),), by=("page_url",),
        measures=(_of_type("page_views", "page_view"), EVENTS, USERS),
        order_by=("page_views desc", "events desc", "page_url"), limit=int(n),
    ))
    return _ints(frame, ["page_views", "events", "users"]).reset_index(drop=True)


def activity_by_region(engine: Engine) -> pd.DataFrame:
    """Per customer region: customers, active customers (with events), their events and purchases.
    Columns region, customers, active_customers, events, purchases."""
    customers = engine.aggregate(Aggregate(DIM_CUSTOMER.name, by=("region",),
                                           measures=(Measure("customers", Fn.COUNT),)))
    per_user = Aggregate(FACT_EVENTS.name, where=(Condition("user_id", Op.NOT_NULL),), by=("user_id",),
                         measures=(EVENTS, _of_type("purchases", "purchase")))
    active = engine.aggregate(Aggregate(
        per_user, lookup=Lookup(DIM_CUSTOMER.name, key="customer_id", on="user_id", columns=("customer_id", "region")),
        where=(Condition("customer_id", Op.NOT_NULL),), by=("region",),
        measures=(Measure("active_customers", Fn.COUNT), Measure("events", Fn.SUM, "events"),
                  Measure("purchases", Fn.SUM, "purchases")),
    ))
    key = "_region"
    for frame in (customers, active):
        frame[key] = frame["region"].fillna(MISSING)
    merged = customers[[key, "customers"]].merge(active.drop(columns="region"), on=key, how="left")
    merged = merged.rename(columns={key: "region"})
    merged = _ints(merged, ["customers", "active_customers", "events", "purchases"])
    return merged.sort_values(["events", "region"], ascending=[False, True], ignore_index=True)[
        ["region", "customers", "active_customers", "events", "purchases"]]


def dq_history(engine: Engine, runs: int = 20) -> pd.DataFrame:
    """The check results of the last ``runs`` runs that ran checks, oldest first: columns run_id,
    checked_at, check_name, table_name, status, metric_value, rows_checked (dq_check_logs is small)."""
    logs = engine.read_table(DQ_CHECK_LOGS)
    columns = ["run_id", "checked_at", "check_name", "table_name", "status", "metric_value", "rows_checked"]
    if logs.empty:
        return pd.DataFrame(columns=columns)
    last = logs.groupby("run_id").checked_at.max().nlargest(int(runs)).index
    return logs[logs.run_id.isin(last)][columns].sort_values(["checked_at", "check_name"], ignore_index=True)
