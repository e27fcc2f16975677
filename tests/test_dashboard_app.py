"""Every dashboard page through Streamlit's AppTest, on a warehouse built from generated data.

Expected numbers come from the generator's manifest or plain SQL; figures are read from
the plotly JSON Streamlit would send to the browser.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from engagement.check_file import load_checks
from engagement.engines.duckdb import DuckDBEngine
from engagement.pipeline import run_pipeline
from tests.conftest import DashboardWarehouse, locked

APP = Path(__file__).resolve().parents[1] / "streamlit_app" / "app.py"
OVERVIEW, RUNS, QUALITY, ENGAGEMENT = (f"views/{p}.py" for p in ("overview", "runs", "quality", "engagement"))
RAW_C, RAW_E = "raw_customer_demographics", "raw_clickstream_events"


@pytest.fixture
def open_page(monkeypatch: pytest.MonkeyPatch) -> Callable[..., AppTest]:
    """``open_page(warehouse, page)``: the app on ``warehouse``, showing ``page``, run once."""
    for name in ("ENGAGEMENT_ENGINE", "ENGAGEMENT_SCHEMA", "ENGAGEMENT_DASHBOARD_TTL"):
        monkeypatch.delenv(name, raising=False)
    st.cache_resource.clear()  # readers are per process: start each test without answers

    def go(warehouse: Path, page: str = OVERVIEW, ttl: float | None = None, **env: str) -> AppTest:
        monkeypatch.setenv("ENGAGEMENT_WAREHOUSE", str(warehouse))
        if ttl is not None:
            monkeypatch.setenv("ENGAGEMENT_DASHBOARD_TTL", str(ttl))
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        at = AppTest.from_file(str(APP), default_timeout=60)
        at.switch_page(page).run()
        return at

    return go


def decoded(value: Any) -> Any:
    """Plotly JSON with its typed arrays (``{"dtype": "f8", "bdata": base64}``) as plain lists."""
    if isinstance(value, dict):
        if set(value) >= {"dtype", "bdata"}:
            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
            shape = value.get("shape")
            if shape:
                array = array.reshape([int(n) for n in str(shape).split(",")])
            return array.tolist()
        return {k: decoded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decoded(v) for v in value]
    return value


def figures(at: AppTest) -> list[dict]:
    """Each plotly chart of the page as the JSON Streamlit sends to the browser (decoded)."""
    return [decoded(json.loads(chart.proto.spec)) for chart in at.get("plotly_chart")]


def traces(at: AppTest) -> list[list[str]]:
    """Trace names per figure."""
    return [[t.get("name") for t in f["data"]] for f in figures(at)]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def assert_clean(at: AppTest) -> None:
    """No exception and no error box (the app turns a bug into an error box, so check both)."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


# -- Overview --------------------------------------------------------------------------------


def test_overview_shows_the_latest_run(open_page, dashboard_warehouse: DashboardWarehouse) -> None:
    m = dashboard_warehouse.manifest
    at = open_page(dashboard_warehouse.path)
    assert_clean(at)
    assert at.title[0].value == "Overview"
    assert dashboard_warehouse.runs[1] in at.caption[0].value
    not_passed = dashboard_warehouse.sql(
        "SELECT count(*) FROM dq_check_logs WHERE run_id = ? AND status <> 'PASSED'", [dashboard_warehouse.runs[1]])[0][0]
    assert metrics(at)["Checks not passed"] == str(not_passed)
    assert metrics(at)["Newest event is"].endswith(" h old")  # the last generated day is yesterday
    assert at.warning[0].value.startswith(f"Succeeded with {not_passed} checks in WARN")
    rows, checks = figures(at)
    bars = {t["name"]: dict(zip(t["x"], t["y"])) for t in rows["data"]}
    assert bars["read"] == {RAW_C: m["customers"]["records"], RAW_E: m["clickstream"]["records"]}
    assert bars["rejected"][RAW_E] == sum(m["clickstream"]["rejected"].values())
    assert bars["loaded"][RAW_C] == m["customers"]["accepted"]
    assert [t["name"] for t in checks["data"]] == ["PASSED", "WARN", "FAILED", "ERROR"]
    assert sum(t["y"][0] for t in checks["data"]) == len(load_checks()) and checks["data"][1]["y"] == [not_passed]
    steps = at.dataframe[0].value
    assert list(steps["status"]) == ["SUCCEEDED"] * 6


def test_overview_never_hides_a_failed_step(open_page, dashboard_warehouse: DashboardWarehouse,
                                            tmp_path: Path) -> None:
    """The latest run errored in discover (an empty landing folder): red, with the step and its error,
    although every earlier check result is still in dq_check_logs."""
    path = tmp_path / "w.duckdb"
    shutil.copy(dashboard_warehouse.path, path)
    (tmp_path / "empty").mkdir()
    engine = DuckDBEngine(path)
    try:
        assert run_pipeline(engine, tmp_path / "empty").status == "ERROR"
    finally:
        engine.close()
    at = open_page(path)
    assert not at.exception and not at.success and not at.warning
    assert len(at.error) == 1
    assert at.error[0].value.startswith("Failed: 1 step errored")
    assert "step discover errored: no input files" in at.error[0].value
    assert "No checks were recorded for this run." in [i.value for i in at.info]
    assert list(at.dataframe[0].value["status"]) == ["ERROR"]
    at.switch_page(RUNS).run()  # the run in detail shows the error too
    assert not at.exception and metrics(at)["Errored"] == "1"
    assert len(at.error) == 1 and at.error[0].value.startswith("discover: no input files")


def test_overview_points_to_the_executed_notebooks(open_page, dashboard_warehouse: DashboardWarehouse,
                                                   tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    shutil.copy(dashboard_warehouse.path, path)
    import duckdb

    with duckdb.connect(str(path)) as con:  # what the papermill runner (issue 5) records per step
        con.execute("UPDATE ingestion_logs SET notebook = 'runs/' || run_id || '/' || step || '.ipynb' "
                    "WHERE run_id = ? AND step IN ('ingest', 'checks')", [dashboard_warehouse.runs[1]])
    at = open_page(path)
    assert_clean(at)
    shown = [m.value for m in at.markdown if ".ipynb" in m.value]
    run = dashboard_warehouse.runs[1]
    assert shown == [f"- **ingest {RAW_C}**: `runs/{run}/ingest.ipynb`", f"- **ingest {RAW_E}**: `runs/{run}/ingest.ipynb`",
                     f"- **checks dq_check_logs**: `runs/{run}/checks.ipynb`"]


# -- Runs ------------------------------------------------------------------------------------


def test_runs_history_charts_and_one_run(open_page, dashboard_warehouse: DashboardWarehouse) -> None:
    m = dashboard_warehouse.manifest
    at = open_page(dashboard_warehouse.path, RUNS)
    assert_clean(at)
    assert metrics(at)["Runs"] == "2"
    assert metrics(at)["Records rejected"] == "{:,}".format(
        sum(dashboard_warehouse.sql("SELECT sum(rows_rejected) FROM ingestion_logs WHERE step = 'ingest'")[0]))
    assert list(at.dataframe[0].value["run_id"]) == list(reversed(dashboard_warehouse.runs))
    durations, rows, rejected = figures(at)
    assert {t["name"] for t in durations["data"]} == {
        "discover", f"ingest {RAW_C}", f"ingest {RAW_E}", "merge dim_customer", "merge fact_click_events",
        "checks dq_check_logs"}
    assert all(len(t["y"]) == 2 for t in durations["data"])  # two runs each
    read = next(t for t in rows["data"] if t["name"] == f"{RAW_E} read")
    assert read["y"][-1] == m["clickstream"]["records"] and read["y"][0] < read["y"][-1]
    # the newest run in detail: rejected records by reason, per source, with raw samples
    assert at.selectbox(key="run_id").value == dashboard_warehouse.runs[1]
    by_reason = {t["name"]: dict(zip(t["x"], t["y"])) for t in rejected["data"]}
    assert by_reason == {RAW_C: m["customers"]["rejected"], RAW_E: m["clickstream"]["rejected"]}
    samples = at.dataframe[2].value
    assert set(samples["reason"]) == {"malformed_row", "missing_key", "invalid_value"}
    assert samples["payload"].str.len().gt(0).all()


def test_runs_filters_change_what_is_shown(open_page, dashboard_warehouse: DashboardWarehouse) -> None:
    at = open_page(dashboard_warehouse.path, RUNS)
    at.multiselect(key="tables").set_value([RAW_E]).run()
    assert_clean(at)
    assert traces(at)[0] == [f"ingest {RAW_E}"]
    at.selectbox(key="run_id").set_value(dashboard_warehouse.runs[0]).run()
    assert_clean(at)
    first_run_rejects = dashboard_warehouse.sql(
        "SELECT count(*) FROM rejected_records WHERE run_id = ?", [dashboard_warehouse.runs[0]])[0][0]
    assert sum(sum(t["y"]) for t in figures(at)[-1]["data"]) == first_run_rejects
    at.multiselect(key="run_status").set_value(["ERROR"]).run()
    assert_clean(at)
    assert [i.value for i in at.info] == ["No run matches these filters."] and not at.get("plotly_chart")


# -- Data quality ----------------------------------------------------------------------------


def test_quality_metric_grid_dimensions_tables_samples(open_page, dashboard_warehouse: DashboardWarehouse) -> None:
    sql = dashboard_warehouse.sql
    at = open_page(dashboard_warehouse.path, QUALITY)
    assert_clean(at)
    names = [n for (n,) in sql("SELECT DISTINCT check_name FROM dq_check_logs ORDER BY 1")]
    assert metrics(at)["Checks"] == str(len(names)) and metrics(at)["Runs"] == "2"
    metric, grid, dimensions, tables = figures(at)
    chosen = at.selectbox(key="metric_check").value
    assert sql("SELECT status FROM dq_check_logs WHERE run_id = ? AND check_name = ?",
               [dashboard_warehouse.runs[1], chosen])[0][0] != "PASSED"  # the worst check comes first
    assert [t["name"] for t in metric["data"]] == ["metric", "warn", "fail"]
    values = [v for (v,) in sql("SELECT metric_value FROM dq_check_logs WHERE check_name = ? ORDER BY checked_at",
                                [chosen])]
    assert metric["data"][0]["y"] == values
    (heat,) = grid["data"]
    assert heat["type"] == "heatmap" and sorted(heat["y"]) == names and len(heat["x"]) == 2
    per_dimension = dict(sql("SELECT dimension, count(*) FROM dq_check_logs GROUP BY 1"))
    stacked: dict[str, int] = {}
    for t in dimensions["data"]:
        for x, y in zip(t["x"], t["y"]):
            stacked[x] = stacked.get(x, 0) + y
    assert stacked == per_dimension
    assert {x for t in tables["data"] for x in t["x"]} == {t for (t,) in sql("SELECT DISTINCT table_name FROM dq_check_logs")}
    failing = at.dataframe[0].value
    assert set(failing["status"]) <= {"WARN", "FAILED", "ERROR"} and len(failing) == sql(
        "SELECT count(*) FROM dq_check_logs WHERE status <> 'PASSED'")[0][0]


def test_quality_filters_change_what_is_shown(open_page, dashboard_warehouse: DashboardWarehouse) -> None:
    at = open_page(dashboard_warehouse.path, QUALITY)
    at.multiselect(key="checks").set_value(["fact_user_known", "dim_email_pattern"]).run()
    assert_clean(at)
    assert sorted(figures(at)[1]["data"][0]["y"]) == ["dim_email_pattern", "fact_user_known"]
    at.multiselect(key="check_status").set_value(["WARN"]).run()
    assert_clean(at)
    assert figures(at)[1]["data"][0]["y"] == ["fact_user_known"]  # dim_email_pattern passed
    assert traces(at)[2] == ["WARN"] and metrics(at)["Results shown"] == "2"
    at.selectbox(key="metric_check").set_value("dim_email_pattern").run()
    assert figures(at)[0]["layout"]["title"]["text"].startswith("dim_email_pattern")


def test_table_and_day_filters_carry_from_runs_to_quality(open_page, dashboard_warehouse: DashboardWarehouse) -> None:
    at = open_page(dashboard_warehouse.path, RUNS)
    at.multiselect(key="tables").set_value(["dim_customer"]).run()
    at.switch_page(QUALITY).run()
    assert_clean(at)
    assert at.multiselect(key="tables").value == ["dim_customer"]
    (heat,) = figures(at)[1]["data"]
    assert set(heat["y"]) == {"dim_customer_id_unique", "dim_customer_row_count", "dim_email_pattern"}
    at.switch_page(ENGAGEMENT).run()
    at.switch_page(RUNS).run()
    assert at.multiselect(key="tables").value == ["dim_customer"]


# -- Engagement ------------------------------------------------------------------------------


def test_engagement_page(open_page, dashboard_warehouse: DashboardWarehouse) -> None:
    m = dashboard_warehouse.manifest["clickstream"]
    at = open_page(dashboard_warehouse.path, ENGAGEMENT)
    assert_clean(at)
    shown = metrics(at)
    assert shown["Events"] == f"{m['distinct_keys']:,}"
    assert shown["Anonymous events"] == f"{m['anonymous'] / m['distinct_keys']:.1%}"
    assert shown["Orphan events"] == f"{m['orphans'] / m['distinct_keys']:.1%}"
    assert traces(at) == [
        sorted(t for (t,) in dashboard_warehouse.sql("SELECT DISTINCT event_type FROM fact_click_events")),
        ["users"], ["events"], ["events"], ["customers"],
    ]
    daily, funnel, pie, top, regions = figures(at)
    assert sum(sum(t["y"]) for t in daily["data"]) == m["distinct_keys"]
    assert funnel["data"][0]["y"] == ["page_view", "add_to_cart", "purchase"]
    users = dict(dashboard_warehouse.sql("SELECT event_type, count(DISTINCT user_id) FROM fact_click_events GROUP BY 1"))
    assert funnel["data"][0]["x"] == [users["page_view"], users["add_to_cart"], users["purchase"]]
    assert dict(zip(pie["data"][0]["labels"], pie["data"][0]["values"]))["orphan user_id"] == m["orphans"]
    assert len(top["data"][0]["y"]) == 10


def test_engagement_day_filter(open_page, dashboard_warehouse: DashboardWarehouse) -> None:
    start = date.fromisoformat(dashboard_warehouse.manifest["params"]["start_date"])
    at = open_page(dashboard_warehouse.path, ENGAGEMENT)
    slider = at.slider(key="event_days")
    assert slider.value == (start, start + timedelta(days=6))
    slider.set_value((start + timedelta(days=2), start + timedelta(days=3))).run()
    assert_clean(at)
    (expected,) = dashboard_warehouse.sql(
        "SELECT count(*) FROM fact_click_events WHERE CAST(event_timestamp AS DATE) BETWEEN ? AND ?",
        [start + timedelta(days=2), start + timedelta(days=3)])[0]
    assert metrics(at)["Events"] == f"{expected:,}"
    assert len({x for t in figures(at)[0]["data"] for x in t["x"]}) == 2


# -- the warehouse is busy, empty, or misconfigured ------------------------------------------


def test_a_run_in_progress_shows_the_last_data_read(open_page, dashboard_warehouse: DashboardWarehouse,
                                                    tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    shutil.copy(dashboard_warehouse.path, path)
    before = open_page(path, ENGAGEMENT, ttl=0)  # every render asks the warehouse again
    assert_clean(before)
    with locked(path):
        at = AppTest.from_file(str(APP), default_timeout=60)
        at.switch_page(ENGAGEMENT).run()
        assert_clean(at)
        assert at.info[0].value.startswith("A run is in progress")
        assert metrics(at) == metrics(before) and traces(at) == traces(before)


def test_a_run_in_progress_before_anything_was_read(open_page, dashboard_warehouse: DashboardWarehouse,
                                                    tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    shutil.copy(dashboard_warehouse.path, path)
    with locked(path):
        for page in (OVERVIEW, RUNS, QUALITY, ENGAGEMENT):
            at = open_page(path, page)
            assert_clean(at)
            assert [i.value[:21] for i in at.info] == ["A run is in progress:"]
            assert not at.get("plotly_chart")


@pytest.mark.parametrize("setup", ["no file", "no runs"])
def test_an_empty_warehouse_says_run_engagement_run(open_page, tmp_path: Path, setup: str) -> None:
    path = tmp_path / "w.duckdb"
    if setup == "no runs":
        engine = DuckDBEngine(path)
        engine.setup()
        engine.close()
    for page in (OVERVIEW, RUNS, QUALITY, ENGAGEMENT):
        at = open_page(path, page)
        assert_clean(at)
        assert at.title[0].value == "No runs yet"
        assert "run `engagement run`" in at.info[0].value
    assert path.exists() == (setup == "no runs")


def test_a_bad_setting_is_one_line(open_page, tmp_path: Path) -> None:
    at = open_page(tmp_path / "w.duckdb", OVERVIEW, ENGAGEMENT_ENGINE="snowpark-local")
    assert not at.exception
    assert len(at.error) == 1 and "snowpark-local keeps nothing" in at.error[0].value
    at = open_page(tmp_path / "w.duckdb", OVERVIEW, ENGAGEMENT_DASHBOARD_TTL="soon")
    assert not at.exception and "ENGAGEMENT_DASHBOARD_TTL" in at.error[0].value
