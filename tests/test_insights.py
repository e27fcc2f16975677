"""The dashboard's data (engagement.insights) against the generator's manifest and plain SQL.

The warehouse holds 20,000 generated events with 2% defects, loaded by two runs (see
``dashboard_warehouse`` in conftest); expected numbers come from the manifest or from
an independent DuckDB query, never from the code under test.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from engagement import insights
from engagement.check_file import load_checks
from engagement.config import load_settings
from engagement.dashboard.access import Reader, Warehouse
from engagement.engines import create_engine
from engagement.engines.duckdb import DuckDBEngine
from engagement.insights import Period, QualityFilter, RunFilter
from engagement.pipeline import run_pipeline
from tests.conftest import OFFLINE_ENGINES, PARITY_SOURCE, DashboardWarehouse, locked, write_files

RAW_C, RAW_E = "raw_customer_demographics", "raw_clickstream_events"


@pytest.fixture
def engine(dashboard_warehouse: DashboardWarehouse) -> Iterator[DuckDBEngine]:
    eng = DuckDBEngine(dashboard_warehouse.path, read_only=True)
    yield eng
    eng.close()


def test_overview_is_the_latest_run(engine, dashboard_warehouse: DashboardWarehouse) -> None:
    m = dashboard_warehouse.manifest
    data = insights.overview(engine)
    assert data.run["run_id"] == dashboard_warehouse.runs[1] and data.run["status"] == "SUCCEEDED"
    sources = data.sources.set_index("table_name")
    for table, key in ((RAW_C, "customers"), (RAW_E, "clickstream")):
        assert sources.loc[table, "rows_read"] == m[key]["records"]
        assert sources.loc[table, "rows_rejected"] == sum(m[key]["rejected"].values())
        assert sources.loc[table, "rows_loaded"] == m[key]["accepted"]
    assert list(data.steps["step"]) == ["discover", "ingest", "ingest", "merge", "merge", "checks"]
    assert sum(data.check_counts.values()) == len(load_checks())
    (newest,) = dashboard_warehouse.sql("SELECT max(event_timestamp) FROM fact_click_events")[0]
    assert data.newest_event == newest and data.events == m["clickstream"]["distinct_keys"]
    assert data.freshness(now=newest + timedelta(hours=5)) == timedelta(hours=5)
    warned = dashboard_warehouse.sql("SELECT count(*) FROM dq_check_logs WHERE run_id = ? AND status = 'WARN'",
                                     [data.run["run_id"]])[0][0]
    assert warned > 0 and data.check_counts["WARN"] == warned
    assert data.health.level == "warn" and f"{warned} checks in WARN" in data.health.headline


def test_runs_newest_first_with_totals(engine, dashboard_warehouse: DashboardWarehouse) -> None:
    m = dashboard_warehouse.manifest
    data = insights.runs(engine)
    assert list(data.runs["run_id"]) == list(reversed(dashboard_warehouse.runs))
    latest = data.runs.iloc[0]
    assert latest["rows_read"] == m["customers"]["records"] + m["clickstream"]["records"]
    assert latest["checks"] == "WARN" and latest["seconds"] > 0
    assert data.runs.iloc[1]["rows_read"] < latest["rows_read"]  # the first run saw 5 days of 7
    assert len(data.steps) == 2 * 6


def test_run_filters(engine, dashboard_warehouse: DashboardWarehouse) -> None:
    assert insights.runs(engine, RunFilter(statuses=("ERROR",))).runs.empty
    steps = insights.runs(engine, RunFilter(tables=(RAW_E,))).steps
    assert set(steps["table_name"]) == {RAW_E} and len(steps) == 2
    (day,) = dashboard_warehouse.sql("SELECT CAST(max(started_at) AS DATE) FROM ingestion_logs")[0]
    assert len(insights.runs(engine, RunFilter(Period(day, day))).runs) == 2
    assert insights.runs(engine, RunFilter(Period(day + timedelta(days=1)))).runs.empty
    assert insights.run_days(engine) == (day, day)


def test_run_detail_rejects_by_reason_with_raw_samples(engine, dashboard_warehouse: DashboardWarehouse) -> None:
    m = dashboard_warehouse.manifest
    detail = insights.run_detail(engine, dashboard_warehouse.runs[1])
    counts = {(r.source_table, r.reason): r.records for r in detail.rejected.itertuples()}
    expected = {(RAW_C, r): n for r, n in m["customers"]["rejected"].items()} | \
               {(RAW_E, r): n for r, n in m["clickstream"]["rejected"].items()}
    assert counts == expected
    per_reason = detail.samples.groupby(["source_table", "reason"]).size()
    assert per_reason.to_dict() == {k: min(n, insights.SAMPLES) for k, n in expected.items()}
    assert detail.samples["payload"].str.len().gt(0).all()
    assert detail.run["status"] == "SUCCEEDED" and len(detail.checks) == len(load_checks())


def test_quality_over_runs_whatever_the_checks(engine, dashboard_warehouse: DashboardWarehouse) -> None:
    names = {c.name for c in load_checks()}
    data = insights.quality(engine)
    assert set(data.results["check_name"]) == names and len(data.results) == 2 * len(names)
    assert data.by_dimension["results"].sum() == data.by_table["results"].sum() == len(data.results)
    assert set(insights.check_catalog(engine)["check_name"]) == names
    one = insights.quality(engine, QualityFilter(checks=("fact_user_known",)))
    assert set(one.results["check_name"]) == {"fact_user_known"}
    assert list(one.results["metric_value"])[-1] == dashboard_warehouse.manifest["clickstream"]["orphans"]
    warn = insights.quality(engine, QualityFilter(statuses=("WARN",)))
    assert len(warn.results) == len(data.results)  # the history keeps every status
    assert set(warn.shown["status"]) == {"WARN"} and set(warn.by_table["status"]) == {"WARN"}
    tables = insights.quality(engine, QualityFilter(tables=("dim_customer",)))
    assert set(tables.by_table["table_name"]) == {"dim_customer"}


def test_only_the_newest_runs_are_listed(engine, dashboard_warehouse: DashboardWarehouse, monkeypatch) -> None:
    monkeypatch.setattr(insights, "MAX_RUNS", 1)
    monkeypatch.setattr(insights, "MAX_QUALITY_RUNS", 1)
    newest = dashboard_warehouse.runs[1]
    listed = insights.runs(engine)
    assert list(listed.runs["run_id"]) == [newest] and set(listed.steps["run_id"]) == {newest}
    checks = insights.quality(engine)
    assert set(checks.results["run_id"]) == {newest}
    assert checks.by_dimension["results"].sum() == len(checks.results) == len(load_checks())


def test_worst_first() -> None:
    checks = pd.DataFrame({"check_name": ["a", "b", "c", "d"], "status": ["PASSED", "ERROR", "WARN", "FAILED"]})
    assert insights.worst_first(checks) == ["b", "d", "c", "a"]


def test_engagement_matches_the_manifest_and_sql(engine, dashboard_warehouse: DashboardWarehouse) -> None:
    m, sql = dashboard_warehouse.manifest["clickstream"], dashboard_warehouse.sql
    data = insights.engagement(engine)
    assert data.events == m["distinct_keys"]
    assert (data.anonymous, data.orphans) == (m["anonymous"], m["orphans"])
    assert data.anonymous_share == pytest.approx(m["anonymous"] / m["distinct_keys"])
    daily = sql("SELECT CAST(event_timestamp AS DATE), event_type, count(*) FROM fact_click_events "
                "GROUP BY ALL ORDER BY 1, 2")
    assert [(d.date(), t, n) for d, t, n in data.daily.itertuples(index=False)] == daily
    funnel = dict(sql("SELECT event_type, count(DISTINCT user_id) FROM fact_click_events GROUP BY 1"))
    assert list(data.funnel["stage"]) == list(insights.FUNNEL)
    assert list(data.funnel["users"]) == [funnel[s] for s in insights.FUNNEL]
    top = sql("SELECT page_url, count(*) FROM fact_click_events WHERE page_url IS NOT NULL GROUP BY 1 "
              "ORDER BY 2 DESC, 1 LIMIT 10")
    assert list(data.top_pages[["page_url", "events"]].itertuples(index=False, name=None)) == top
    customers = sql("SELECT count(DISTINCT f.user_id) FROM fact_click_events f JOIN dim_customer d "
                    "ON f.user_id = d.customer_id")[0][0]
    assert data.customers == customers == data.regions["customers"].sum()


def test_engagement_for_a_period(engine, dashboard_warehouse: DashboardWarehouse) -> None:
    start = date.fromisoformat(dashboard_warehouse.manifest["params"]["start_date"])
    assert insights.event_days(engine) == (start, start + timedelta(days=6))
    period = Period(start + timedelta(days=1), start + timedelta(days=2))
    data = insights.engagement(engine, period)
    (expected,) = dashboard_warehouse.sql(
        "SELECT count(*) FROM fact_click_events WHERE event_timestamp >= ? AND event_timestamp < ?",
        [datetime.combine(period.start, datetime.min.time()), datetime.combine(start + timedelta(days=3), datetime.min.time())],
    )[0]
    assert data.events == expected and 0 < expected < dashboard_warehouse.manifest["clickstream"]["distinct_keys"]
    assert sorted(d.date() for d in data.daily["day"].unique()) == [period.start, period.end]


RUN = {"status": "SUCCEEDED", "started_at": datetime(2026, 1, 1), "error_message": None}
OK_STEPS = pd.DataFrame({"step": ["ingest"], "table_name": [RAW_E], "status": ["SUCCEEDED"], "error_message": [None]})
PASSED = pd.DataFrame({"check_name": ["a"], "status": ["PASSED"], "message": ["fine"]})


def test_health_a_failed_step_is_never_hidden_by_passing_checks() -> None:
    steps = pd.DataFrame({"step": ["ingest", "merge"], "table_name": [RAW_E, "fact_click_events"],
                          "status": ["SUCCEEDED", "ERROR"], "error_message": [None, "disk full"]})
    verdict = insights.health({**RUN, "status": "ERROR"}, steps, PASSED)
    assert verdict.level == "failed" and "1 step errored" in verdict.headline
    assert verdict.reasons == ("step merge fact_click_events errored: disk full",)


def test_health_levels() -> None:
    assert insights.health(RUN, OK_STEPS, PASSED).level == "ok"
    warn = PASSED.assign(status=["WARN"])
    assert insights.health(RUN, OK_STEPS, warn).level == "warn"
    failed = insights.health(RUN, OK_STEPS, PASSED.assign(status=["FAILED"], message=["too many"]))
    assert failed.level == "failed" and failed.reasons == ("check a FAILED: too many",)
    assert insights.health({**RUN, "status": "STARTED"}, OK_STEPS.assign(status=["STARTED"]), PASSED.iloc[:0]).level \
        == "running"
    errored = insights.health({**RUN, "status": "ERROR", "error_message": "killed"}, OK_STEPS, PASSED.iloc[:0])
    assert errored.level == "failed" and errored.reasons == ("the run errored: killed",)
    assert "no checks" in insights.health(RUN, OK_STEPS, PASSED.iloc[:0]).headline


def test_describe_age() -> None:
    assert [insights.describe_age(timedelta(seconds=s)) for s in (-5, 59, 3600, 86400, 3 * 86400)] == \
        ["0 min", "0 min", "1 h", "24 h", "3 days"]


@pytest.mark.skipif("snowpark-local" not in OFFLINE_ENGINES, reason="ENGAGEMENT_TEST_ENGINES leaves out snowpark-local")
def test_every_page_is_the_same_on_snowpark_local(tmp_path: Path) -> None:
    """The dashboard's answers do not depend on the engine (the parity source on both offline engines)."""
    answers = {}
    for name in ("duckdb", "snowpark-local"):
        eng = create_engine(load_settings(engine=name, warehouse=tmp_path / "w.duckdb"))
        try:
            result = run_pipeline(eng, write_files(tmp_path / "src", PARITY_SOURCE))
            overview = insights.overview(eng)
            detail = insights.run_detail(eng, result.run_id)
            e = insights.engagement(eng)
            answers[name] = {
                "overview": (overview.check_counts, overview.newest_event, overview.events, overview.health.level,
                             overview.sources.drop(columns="files").to_dict("records")),
                "rejected": detail.rejected.to_dict("records"),
                "samples": detail.samples[["source_table", "reason", "source_row"]].to_dict("records"),
                "quality": insights.quality(eng).by_dimension.to_dict("records"),
                "engagement": (e.events, e.customers, e.anonymous, e.orphans, e.daily.to_dict("records"),
                               e.funnel.to_dict("records"), e.top_pages.to_dict("records"),
                               e.regions.to_dict("records")),
            }
        finally:
            eng.close()
    assert answers["duckdb"] == answers["snowpark-local"]
    assert answers["duckdb"]["engagement"][:4] == (4, 2, 1, 1)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_reader_recomputes_only_when_a_run_changed_the_data(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    source = write_files(tmp_path / "src", PARITY_SOURCE)
    eng = DuckDBEngine(path)
    run_pipeline(eng, source)
    eng.close()
    calls = []

    def events(engine) -> int:
        calls.append(1)
        return insights.engagement(engine).events

    clock = Clock()
    reader = Reader(Warehouse(load_settings(warehouse=path)), ttl=30, clock=clock)
    first = reader.read(events)
    assert (first.value, first.locked, len(calls)) == (4, False, 1)
    clock.now = 29  # within the TTL: not even the version is checked
    assert reader.read(events).value == 4 and len(calls) == 1
    clock.now = 31  # past the TTL, but no run since: the version says the answer still holds
    assert reader.read(events).read_at == first.read_at and len(calls) == 1
    eng = DuckDBEngine(path)
    run_pipeline(eng, write_files(source, {"clickstream/late.jsonl": '{"event_id":"e9","timestamp":"2026-01-03T00:00:00Z"}\n'}))
    eng.close()
    assert reader.read(events).value == 4 and len(calls) == 1  # still within the new TTL window
    clock.now = 62
    assert reader.read(events).value == 5 and len(calls) == 2
    clock.now = 93
    with locked(path):
        stale = reader.read(events)
        assert (stale.value, stale.locked) == (5, True) and len(calls) == 2
        nothing = reader.read(insights.event_days)  # never read before: nothing to show
        assert (nothing.value, nothing.locked) == (None, True)
    assert reader.read(events).locked is False and len(calls) == 2


def test_reader_on_a_warehouse_without_tables(tmp_path: Path) -> None:
    reader = Reader(Warehouse(load_settings(warehouse=tmp_path / "none.duckdb")), ttl=30)
    assert reader.read(insights.overview).missing
    assert not (tmp_path / "none.duckdb").exists()  # reading never creates the file


def test_a_local_testing_session_is_not_taken_for_streamlit_in_snowflake(tmp_path: Path) -> None:
    from snowflake.snowpark import Session

    from engagement.dashboard.access import active_session

    session = Session.builder.config("local_testing", True).config("disable_local_testing_telemetry", True).create()
    try:
        assert active_session() is None
        assert Warehouse(load_settings(warehouse=tmp_path / "w.duckdb")).engine_name == "duckdb"
    finally:
        session.close()
