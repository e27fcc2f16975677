"""Aggregates for analysts (the explore notebook): computed in the warehouse, small frames back.

Every function takes an engine (DuckDB or Snowflake) and returns a small pandas frame; the
fact table never comes to pandas whole. On DuckDB the aggregates are SQL; on Snowflake
they are the same aggregates as Snowpark DataFrame plans, which compute every conditional
column in a ``select`` before grouping (under Snowpark local testing an ``iff`` inside a
grouped aggregate lands on the wrong rows). Anonymous events (no user_id) count as events
but never as users.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from engagement.engines.base import Engine
from engagement.identifiers import quote
from engagement.model import DIM_CUSTOMER, DQ_CHECK_LOGS, FACT_EVENTS, Table

FUNNEL = ("page_view", "add_to_cart", "purchase")
MISSING = "(none)"  # the label of a NULL event type or region


def _is_duckdb(engine: Engine) -> bool:
    return engine.name == "duckdb"


def _sql(engine: Any, query: str, params: Sequence[Any] = ()) -> list[tuple]:
    return engine.con.execute(query, list(params)).fetchall()


def _t(engine: Any, table: Table) -> str:
    return f"{quote(engine.schema)}.{quote(table.name)}"


def _snow(engine: Any, table: Table):
    from engagement.engines.snowflake_ddl import qualified

    return engine.session.table(qualified(engine.database, engine.schema, table))


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def events_by_day(engine: Engine) -> pd.DataFrame:
    """Events and distinct users per day (UTC) and event type: columns day, event_type, events, users."""
    columns = ["day", "event_type", "events", "users"]
    if _is_duckdb(engine):
        rows = _sql(engine, f"SELECT CAST(event_timestamp AS DATE), coalesce(event_type, {_lit(MISSING)}), count(*), "
                            f"count(DISTINCT user_id) FROM {_t(engine, FACT_EVENTS)} GROUP BY ALL ORDER BY 1, 2")
    else:
        import snowflake.snowpark.functions as F

        fact = _snow(engine, FACT_EVENTS)
        rows = [tuple(r) for r in fact.group_by(
            F.to_date(F.col("event_timestamp")).alias("day"),
            F.coalesce(F.col("event_type"), F.lit(MISSING)).alias("event_type"),
        ).agg(F.count(F.lit(1)), F.count_distinct(F.col("user_id"))).collect()]
    frame = pd.DataFrame(rows, columns=columns)
    frame["day"] = pd.to_datetime(frame["day"])
    frame[["events", "users"]] = frame[["events", "users"]].astype("int64")
    return frame.sort_values(["day", "event_type"], ignore_index=True)


def funnel(engine: Engine, stages: Sequence[str] = FUNNEL) -> pd.DataFrame:
    """Known users reaching each stage: a user counts at a stage when they have events of that type
    and of every earlier stage (in any order). Columns stage, users, of_previous, of_first (shares)."""
    if not stages:
        raise ValueError("a funnel needs at least one stage")
    if _is_duckdb(engine):
        flags = ", ".join(f"bool_or(event_type = {_lit(s)}) AS s{i}" for i, s in enumerate(stages))
        reached = ", ".join(
            "count(*) FILTER (WHERE " + " AND ".join(f"s{j}" for j in range(i + 1)) + ")" for i in range(len(stages))
        )
        (counts,) = _sql(engine, f"SELECT {reached} FROM (SELECT user_id, {flags} FROM {_t(engine, FACT_EVENTS)} "
                                 "WHERE user_id IS NOT NULL GROUP BY user_id)")
    else:
        import snowflake.snowpark.functions as F

        flags = _snow(engine, FACT_EVENTS).select(F.col("user_id"), *[
            F.iff(F.col("event_type") == F.lit(s), F.lit(1), F.lit(0)).alias(f"s{i}") for i, s in enumerate(stages)
        ])
        per_user = flags.group_by(F.col("user_id")).agg(*[F.max(F.col(f"s{i}")).alias(f"s{i}") for i in range(len(stages))])
        # No filter (local testing mis-aligns filtered rows): the NULL user's group counts 0 instead.
        known = F.iff(F.col("user_id").is_null(), F.lit(0), F.lit(1))
        reached = []
        for i in range(len(stages)):
            product = known
            for j in range(i + 1):
                product = product * F.col(f"s{j}")
            reached.append(product.alias(f"r{i}"))
        (counts,) = [tuple(r) for r in per_user.select(*reached).agg(
            *[F.sum(F.col(f"r{i}")) for i in range(len(stages))]).collect()]
    users = [int(c or 0) for c in counts]
    return pd.DataFrame({
        "stage": list(stages),
        "users": users,
        "of_previous": [1.0 if i == 0 else (u / users[i - 1] if users[i - 1] else 0.0) for i, u in enumerate(users)],
        "of_first": [u / users[0] if users[0] else 0.0 for u in users],
    })


def top_pages(engine: Engine, n: int = 10) -> pd.DataFrame:
    """The ``n`` pages with the most page views: columns page_url, page_views, events, users."""
    columns = ["page_url", "page_views", "events", "users"]
    if _is_duckdb(engine):
        rows = _sql(engine, "SELECT page_url, count(*) FILTER (WHERE event_type = 'page_view'), count(*), "
                            f"count(DISTINCT user_id) FROM {_t(engine, FACT_EVENTS)} WHERE page_url IS NOT NULL "
                            "GROUP BY page_url ORDER BY 2 DESC, 3 DESC, 1 LIMIT ?", [int(n)])
    else:
        import snowflake.snowpark.functions as F

        flags = _snow(engine, FACT_EVENTS).select(
            F.col("page_url"), F.col("user_id"),
            F.iff(F.col("event_type") == F.lit("page_view"), F.lit(1), F.lit(0)).alias("page_view"))
        grouped = flags.group_by(F.col("page_url")).agg(
            F.sum(F.col("page_view")).alias("page_views"),
            F.count(F.lit(1)).alias("events"),
            F.count_distinct(F.col("user_id")).alias("users"),
        )
        # the NULL page's group sorts last (and is dropped), so n + 1 rows are enough
        ordered = grouped.sort(F.col("page_url").is_null(), F.col("page_views").desc(), F.col("events").desc(),
                               F.col("page_url"))
        rows = [tuple(r) for r in ordered.limit(int(n) + 1).collect() if r[0] is not None][: int(n)]
    frame = pd.DataFrame(rows, columns=columns)
    frame[columns[1:]] = frame[columns[1:]].astype("int64")
    return frame


def activity_by_region(engine: Engine) -> pd.DataFrame:
    """Per customer region: customers, active customers (with events), their events and purchases.
    Columns region, customers, active_customers, events, purchases."""
    columns = ["region", "customers", "active_customers", "events", "purchases"]
    if _is_duckdb(engine):
        rows = _sql(engine, f"""
            WITH per_user AS (
                SELECT user_id, count(*) AS events, count(*) FILTER (WHERE event_type = 'purchase') AS purchases
                FROM {_t(engine, FACT_EVENTS)} WHERE user_id IS NOT NULL GROUP BY user_id)
            SELECT coalesce(c.region, {_lit(MISSING)}), count(*), count(p.user_id), coalesce(sum(p.events), 0),
                   coalesce(sum(p.purchases), 0)
            FROM {_t(engine, DIM_CUSTOMER)} c LEFT JOIN per_user p ON p.user_id = c.customer_id
            GROUP BY 1 ORDER BY 4 DESC, 1""")
    else:
        import snowflake.snowpark.functions as F

        flags = _snow(engine, FACT_EVENTS).select(
            F.col("user_id"), F.iff(F.col("event_type") == F.lit("purchase"), F.lit(1), F.lit(0)).alias("purchase"))
        per_user = flags.group_by(F.col("user_id")).agg(
            F.count(F.lit(1)).alias("events"), F.sum(F.col("purchase")).alias("purchases"), F.lit(1).alias("active"),
        )
        # a join on a shared column name (an expression join is quadratic under local testing)
        customers = _snow(engine, DIM_CUSTOMER).select(
            F.col("customer_id").alias("user_id"), F.coalesce(F.col("region"), F.lit(MISSING)).alias("region"))
        joined = customers.join(per_user, on="user_id", how="left")
        rows = [tuple(r) for r in joined.group_by(F.col("region")).agg(
            F.count(F.lit(1)), F.sum(F.coalesce(F.col("active"), F.lit(0))),
            F.sum(F.coalesce(F.col("events"), F.lit(0))), F.sum(F.coalesce(F.col("purchases"), F.lit(0))),
        ).collect()]
    frame = pd.DataFrame(rows, columns=columns)
    frame[columns[1:]] = frame[columns[1:]].fillna(0).astype("int64")
    return frame.sort_values(["events", "region"], ascending=[False, True], ignore_index=True)


def dq_history(engine: Engine, runs: int = 20) -> pd.DataFrame:
    """The check results of the last ``runs`` runs that ran checks, oldest first: columns run_id,
    checked_at, check_name, table_name, status, metric_value, rows_checked (dq_check_logs is small)."""
    logs = engine.read_table(DQ_CHECK_LOGS)
    columns = ["run_id", "checked_at", "check_name", "table_name", "status", "metric_value", "rows_checked"]
    if logs.empty:
        return pd.DataFrame(columns=columns)
    last = logs.groupby("run_id").checked_at.max().nlargest(int(runs)).index
    return logs[logs.run_id.isin(last)][columns].sort_values(["checked_at", "check_name"], ignore_index=True)
