"""The analysts' aggregates: computed in the warehouse, equal to the same sums done by hand in pandas.

Contract tests: the same answers on DuckDB and on Snowpark local testing.
"""

from __future__ import annotations

import pandas as pd
import pytest

from engagement import explore
from engagement.model import DIM_CUSTOMER, FACT_EVENTS
from tests.conftest import CSV_HEADER


def ev(eid: str, user: str | None, etype: str | None, page: str | None, ts: str) -> str:
    fields = [f'"event_id":"{eid}"', f'"timestamp":"{ts}"']
    fields += [f'"user_id":"{user}"'] if user else []
    fields += [f'"event_type":"{etype}"'] if etype else []
    fields += [f'"page_url":"{page}"'] if page else []
    return "{" + ",".join(fields) + "}\n"


SOURCE = {
    "customers/c.csv": (
        f"{CSV_HEADER}\nC1,Ann,a@x.com,EMEA,2024-01-01\nC2,Bo,b@x.com,EMEA,2024-01-01\n"
        "C3,Cy,c@x.com,NA,2024-01-01\nC4,Di,d@x.com,,2024-01-01\n"
    ),
    "clickstream/dt=2026-01-01/p.jsonl": (
        ev("e1", "C1", "page_view", "/", "2026-01-01T10:00:00Z")
        + ev("e2", "C1", "add_to_cart", "/cart", "2026-01-01T10:01:00Z")
        + ev("e3", "C1", "purchase", "/checkout", "2026-01-01T10:02:00Z")
        + ev("e4", "C2", "page_view", "/", "2026-01-01T11:00:00Z")
        + ev("e5", "C2", "add_to_cart", "/cart", "2026-01-01T11:01:00Z")
        + ev("e6", None, "page_view", "/", "2026-01-01T12:00:00Z")  # anonymous
        + ev("e7", "C9", "purchase", "/checkout", "2026-01-01T23:59:59Z")  # orphan, purchase without view
    ),
    "clickstream/dt=2026-01-02/p.jsonl": (
        ev("e8", "C3", "page_view", "/shoes", "2026-01-02T09:00:00Z")
        + ev("e9", "C3", "page_view", "/shoes", "2026-01-02T09:05:00Z")
        + ev("e10", "C1", "search", None, "2026-01-02T09:10:00Z")
        + ev("e11", "C2", None, "/", "2026-01-02T00:00:00+02:00")  # 2026-01-01 22:00 UTC, no type
    ),
}


@pytest.fixture
def loaded(engine, source, run):
    result = run(source(SOURCE))
    assert result.status.value == "SUCCEEDED", result.error
    return engine


def test_events_by_day_matches_pandas(loaded) -> None:
    got = explore.events_by_day(loaded)
    fact = loaded.read_table(FACT_EVENTS)
    fact["day"] = fact.event_timestamp.dt.normalize()
    fact["event_type"] = fact.event_type.fillna(explore.MISSING)
    want = (fact.groupby(["day", "event_type"]).agg(events=("event_id", "size"), users=("user_id", "nunique"))
            .reset_index())
    assert got.day.dtype.kind == "M"  # datetimes, for plotting
    as_text = {"day": lambda d: d.dt.strftime("%Y-%m-%d")}
    pd.testing.assert_frame_equal(got.assign(**{k: f(got[k]) for k, f in as_text.items()}),
                                  want.assign(**{k: f(want[k]) for k, f in as_text.items()}), check_dtype=False)
    jan1 = got[got.day == "2026-01-01"].set_index("event_type")
    assert jan1.loc["page_view", "events"] == 3 and jan1.loc["page_view", "users"] == 2  # the anonymous view is no user
    assert jan1.loc[explore.MISSING, "events"] == 1  # e11 is on Jan 1st in UTC


def test_funnel_counts_known_users_who_reached_every_stage(loaded) -> None:
    got = explore.funnel(loaded)
    assert list(got.stage) == ["page_view", "add_to_cart", "purchase"]
    assert list(got.users) == [3, 2, 1]  # C1, C2, C3 viewed; C1, C2 added; C1 bought (C9 bought without a view)
    assert got.of_previous.round(4).tolist() == [1.0, 0.6667, 0.5]
    assert got.of_first.round(4).tolist() == [1.0, 0.6667, 0.3333]


def test_top_pages_by_page_views(loaded) -> None:
    got = explore.top_pages(loaded, n=2)
    assert got.to_dict("records") == [
        {"page_url": "/", "page_views": 3, "events": 4, "users": 2},
        {"page_url": "/shoes", "page_views": 2, "events": 2, "users": 1},
    ]
    assert len(explore.top_pages(loaded, n=10)) == 4  # /, /shoes, /cart, /checkout; never the NULL page


def test_activity_by_region_joins_customers(loaded) -> None:
    got = explore.activity_by_region(loaded).set_index("region")
    assert got.loc["EMEA"].to_dict() == {"customers": 2, "active_customers": 2, "events": 7, "purchases": 1}
    assert got.loc["NA"].to_dict() == {"customers": 1, "active_customers": 1, "events": 2, "purchases": 0}
    assert got.loc[explore.MISSING].to_dict() == {"customers": 1, "active_customers": 0, "events": 0, "purchases": 0}
    assert got.customers.sum() == len(loaded.read_table(DIM_CUSTOMER))
    assert list(got.index)[0] == "EMEA"  # most events first


@pytest.mark.engines("duckdb")  # dq_history reads the log table through read_table, tested on both engines
def test_dq_history_keeps_the_last_runs(engine, source, run) -> None:
    root = source(SOURCE)
    first, second = run(root), run(root)
    history = explore.dq_history(engine, runs=1)
    assert set(history.run_id) == {second.run_id}
    assert len(history) == len(second.checks)
    both = explore.dq_history(engine, runs=5)
    assert list(dict.fromkeys(both.run_id)) == [first.run_id, second.run_id]  # oldest first
    assert explore.dq_history(engine, runs=0).empty
