"""Engine.aggregate, the contract: the same query gives the same typed frame on every engine.

The warehouse is the parity source (see conftest) loaded once per engine. Accepted events:
e1 (C1, page_view, "/", 15 ms, 2026-01-01 10:00:05), e2 (anonymous, add_to_cart, no page,
11:00), e3 (orphan C9, hover, no page, 10:00 UTC), e6 (C2, purchase, /checkout, 0 ms,
2026-01-02 09:00:00.250). Customers: C1 (EMEA), C2 (LATAM), C5 (EMEA).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest

from engagement.aggregate import Aggregate, Condition, Fn, Grain, Group, Lookup, Measure, Op
from engagement.config import load_settings
from engagement.engines import create_engine
from engagement.engines.base import Engine
from engagement.exceptions import MissingTableError
from engagement.pipeline import run_pipeline
from tests.conftest import OFFLINE_ENGINES, PARITY_SOURCE, write_files

FACT, DIM = "fact_click_events", "dim_customer"
ROWS = Measure("events", Fn.COUNT)


@pytest.fixture(scope="module", params=OFFLINE_ENGINES)
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    root = tmp_path_factory.mktemp(f"aggregate-{request.param}")
    eng = create_engine(load_settings(engine=request.param, warehouse=root / "w.duckdb"))
    run_pipeline(eng, write_files(root / "src", PARITY_SOURCE))
    yield eng
    eng.close()


def records(frame: pd.DataFrame) -> list[tuple]:
    """Rows as plain tuples: NULL as None, timestamps as datetime."""
    out = []
    for row in frame.itertuples(index=False):
        out.append(tuple(None if pd.isna(v) else v.to_pydatetime() if isinstance(v, pd.Timestamp) else v
                         for v in row))
    return out


def test_events_per_day_and_type(loaded: Engine) -> None:
    frame = loaded.aggregate(Aggregate(
        FACT, by=(Group("event_timestamp", Grain.DAY, "day"), "event_type"), measures=(ROWS,),
        order_by=("day", "event_type"),
    ))
    assert list(frame.columns) == ["day", "event_type", "events"]
    assert records(frame) == [
        (datetime(2026, 1, 1), "add_to_cart", 1),
        (datetime(2026, 1, 1), "hover", 1),
        (datetime(2026, 1, 1), "page_view", 1),
        (datetime(2026, 1, 2), "purchase", 1),
    ]
    assert [str(t) for t in frame.dtypes] == ["datetime64[us]", "object", "int64"]


def test_every_function_without_groups_gives_one_row(loaded: Engine) -> None:
    frame = loaded.aggregate(Aggregate(FACT, measures=(
        ROWS,
        Measure("with_user", Fn.COUNT, "user_id"),
        Measure("users", Fn.COUNT_DISTINCT, "user_id"),
        Measure("duration", Fn.SUM, "duration_ms"),
        Measure("first", Fn.MIN, "event_timestamp"),
        Measure("newest", Fn.MAX, "event_timestamp"),
        Measure("longest", Fn.MAX, "duration_ms"),
    )))
    assert records(frame) == [(4, 3, 3, 15, datetime(2026, 1, 1, 10), datetime(2026, 1, 2, 9, 0, 0, 250_000), 15)]
    assert [str(t) for t in frame.dtypes] == ["int64"] * 3 + ["Int64", "datetime64[us]", "datetime64[us]", "Int64"]


def test_lookup_tells_customers_anonymous_and_orphans_apart(loaded: Engine) -> None:
    frame = loaded.aggregate(Aggregate(
        FACT,
        lookup=Lookup(DIM, key="customer_id", on="user_id", columns=("customer_id", "region")),
        by=("region",),
        measures=(
            ROWS,
            Measure("customers", Fn.COUNT_DISTINCT, "customer_id"),
            Measure("anonymous", Fn.COUNT, where=(Condition("user_id", Op.IS_NULL),)),
            Measure("orphans", Fn.COUNT, where=(Condition("user_id", Op.NOT_NULL), Condition("customer_id", Op.IS_NULL))),
            Measure("orphan_users", Fn.COUNT_DISTINCT, "user_id", where=(Condition("customer_id", Op.IS_NULL),)),
        ),
        order_by=("region",),
    ))
    assert records(frame) == [("EMEA", 1, 1, 0, 0, 0), ("LATAM", 1, 1, 0, 0, 0), (None, 2, 0, 1, 1, 1)]


def test_an_aggregate_of_an_aggregate(loaded: Engine) -> None:
    """Users first (one row per user_id), then users, customers and events per region."""
    views = Measure("views", Fn.COUNT, where=(Condition("event_type", Op.EQ, "page_view"),))
    per_user = Aggregate(FACT, where=(Condition("event_timestamp", Op.GE, datetime(2026, 1, 1)),), by=("user_id",),
                         measures=(ROWS, views))
    frame = loaded.aggregate(Aggregate(
        per_user,
        lookup=Lookup(DIM, key="customer_id", on="user_id", columns=("customer_id", "region")),
        where=(Condition("events", Op.GE, 1),),
        by=("region",),
        measures=(
            Measure("users", Fn.COUNT),
            Measure("customers", Fn.COUNT, "customer_id"),
            Measure("events", Fn.SUM, "events"),
            Measure("anonymous", Fn.SUM, "events", where=(Condition("user_id", Op.IS_NULL),)),
            Measure("viewers", Fn.COUNT, where=(Condition("user_id", Op.NOT_NULL), Condition("views", Op.GT, 0))),
        ),
        order_by=("region",),
    ))
    assert records(frame) == [("EMEA", 1, 1, 1, None, 1), ("LATAM", 1, 1, 1, None, 0), (None, 2, 0, 2, 1, 0)]
    assert [str(t) for t in frame.dtypes] == ["object", "int64", "int64", "Int64", "Int64", "int64"]


def test_lookup_columns_filter_too(loaded: Engine) -> None:
    frame = loaded.aggregate(Aggregate(
        FACT, lookup=Lookup(DIM, key="customer_id", on="user_id", columns=("region",)),
        where=(Condition("region", Op.EQ, "EMEA"),), by=("event_id",),
    ))
    assert records(frame) == [("e1",)]


@pytest.mark.parametrize(("condition", "expected"), [
    (Condition("event_type", Op.IN, ["page_view", "purchase"]), ["e1", "e6"]),
    (Condition("page_url", Op.NE, "/"), ["e6"]),  # NULL matches no comparison
    (Condition("page_url", Op.IS_NULL), ["e2", "e3"]),
    (Condition("duration_ms", Op.IS_NULL), ["e2", "e3"]),
    (Condition("duration_ms", Op.NOT_NULL), ["e1", "e6"]),
    (Condition("duration_ms", Op.GE, 0), ["e1", "e6"]),
    (Condition("duration_ms", Op.LT, 15), ["e6"]),
    (Condition("event_timestamp", Op.GT, datetime(2026, 1, 1, 10)), ["e1", "e2", "e6"]),
    (Condition("event_timestamp", Op.LE, datetime(2026, 1, 1, 10, 0, 5)), ["e1", "e3"]),
    (Condition("user_id", Op.EQ, "C1"), ["e1"]),
])
def test_conditions(loaded: Engine, condition: Condition, expected: list[str]) -> None:
    frame = loaded.aggregate(Aggregate(FACT, where=(condition,), by=("event_id",), order_by=("event_id",)))
    assert frame["event_id"].tolist() == expected


def test_order_desc_and_limit_on_a_log_table(loaded: Engine) -> None:
    frame = loaded.aggregate(Aggregate(
        "rejected_records", by=("source_table", "reason"), measures=(Measure("records", Fn.COUNT),),
        order_by=("records desc", "source_table", "reason"), limit=3,
    ))
    assert records(frame) == [
        ("raw_clickstream_events", "invalid_value", 2),
        ("raw_clickstream_events", "malformed_row", 2),
        ("raw_clickstream_events", "missing_key", 1),
    ]


def test_groups_without_measures_are_the_distinct_values(loaded: Engine) -> None:
    frame = loaded.aggregate(Aggregate("ingestion_logs", by=("step",), order_by=("step",)))
    assert frame["step"].tolist() == ["checks", "discover", "ingest", "merge", "run"]


def test_no_matching_rows(loaded: Engine) -> None:
    nothing = (Condition("event_type", Op.EQ, "nope"),)
    grouped = loaded.aggregate(Aggregate(FACT, where=nothing, by=("event_type",), measures=(ROWS,)))
    assert grouped.empty and list(grouped.columns) == ["event_type", "events"]
    (row,) = records(loaded.aggregate(Aggregate(FACT, where=nothing, measures=(
        ROWS, Measure("newest", Fn.MAX, "event_timestamp"), Measure("duration", Fn.SUM, "duration_ms")))))
    assert row == (0, None, None)


def test_a_missing_table_is_a_missing_table_error(engine: Engine) -> None:
    with pytest.raises(MissingTableError, match="run `engagement run"):
        engine.aggregate(Aggregate(FACT, measures=(ROWS,)))


@pytest.mark.parametrize(("build", "message"), [
    (lambda: Aggregate("nope", measures=(ROWS,)), "not a table of the model"),
    (lambda: Aggregate(FACT), "at least one group or measure"),
    (lambda: Aggregate(FACT, by=("nope",)), "unknown column 'nope'"),
    (lambda: Aggregate(FACT, measures=(Measure("s", Fn.SUM, "page_url"),)), "cannot sum page_url"),
    (lambda: Aggregate(FACT, measures=(Measure("m", Fn.MAX),)), "needs a column"),
    (lambda: Aggregate(FACT, by=(Group("page_url", Grain.DAY),)), "day grain needs a timestamp"),
    (lambda: Aggregate(FACT, by=("user_id",), where=(Condition("event_timestamp", Op.GE, date(2026, 1, 1)),)),
     "cannot compare it with"),
    (lambda: Aggregate(FACT, by=("user_id",), where=(Condition("duration_ms", Op.GE, "5"),)), "cannot compare"),
    (lambda: Aggregate(FACT, by=("user_id",), order_by=("events desc",)), "cannot order by 'events'"),
    (lambda: Aggregate(FACT, by=("user_id",), limit=0), "limit must be a positive integer"),
    (lambda: Aggregate(FACT, by=("user_id",), measures=(Measure("user_id", Fn.COUNT),)), "result names repeat"),
    (lambda: Aggregate(FACT, by=(Group("user_id", name="bad name"),)), "not a plain identifier"),
    (lambda: Aggregate(FACT, by=("source_file",), lookup=Lookup(DIM, "customer_id", "user_id", ("source_file",))),
     "has the name of a column"),
    (lambda: Aggregate(Aggregate(FACT, by=("user_id",)), by=("event_type",)), "unknown column 'event_type'"),
    (lambda: Condition("user_id", Op.IN, []), "at least one value"),
    (lambda: Condition("user_id", Op.EQ, None), "use IS_NULL"),
])
def test_invalid_queries_are_one_line_errors(build, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        build()
    assert "\n" not in str(err.value)


def test_queries_are_hashable_values() -> None:
    """Equal queries are equal and hash alike (the dashboard caches by them)."""
    def make() -> Aggregate:
        return Aggregate(FACT, by=("event_type",), where=(Condition("event_type", Op.IN, ["a", "b"]),),
                         measures=(ROWS,))

    assert make() == make() and hash(make()) == hash(make())


def test_duckdb_binds_values_as_parameters(tmp_path: Path) -> None:
    from engagement.engines.duckdb_aggregate import aggregate_sql

    sql, params = aggregate_sql(
        Aggregate(FACT, by=("event_type",), where=(Condition("page_url", Op.EQ, "x' OR 1=1 --"),),
                  measures=(Measure("n", Fn.COUNT, where=(Condition("user_id", Op.EQ, "C1"),)),)),
        lambda t: f'"main"."{t}"',
    )
    assert "OR 1=1" not in sql and params == ["C1", "x' OR 1=1 --"]
