"""Data quality: each check's metric over runs, the checks × runs grid, dimensions, tables, failing samples.

Driven by whatever dq_check_logs holds: any check name, type or dimension shows up.
"""

import streamlit as st

from engagement import insights
from engagement.dashboard import charts, ui

bounds = ui.require_runs()
catalog = ui.fetch(insights.check_catalog)
st.sidebar.subheader("Filters")
filters = insights.QualityFilter(
    period=ui.day_range("Run days (UTC)", "run_days", bounds, "Checks run on these days (shared with Runs)"),
    tables=ui.choose("Tables", "tables", insights.TABLE_NAMES, "Checks on these tables (shared with Runs)"),
    checks=ui.choose("Checks", "checks", catalog["check_name"].tolist(), "These checks only"),
    statuses=ui.choose("Check status", "check_status", insights.CHECK_STATUSES,
                       "The grid, the groupings and the failing samples show only these statuses"),
)
data = ui.fetch(insights.quality, filters)

st.title("Data quality")
if data.results.empty:
    st.info("No check result matches these filters." if not catalog.empty else "No check was ever run.")
    st.stop()

shown = data.shown
latest = data.results[data.results["run_id"] == data.results["run_id"].iloc[-1]]
cols = st.columns(4)
cols[0].metric("Checks", data.results["check_name"].nunique())
cols[1].metric("Runs", data.results["run_id"].nunique())
cols[2].metric("Results shown", len(shown))
cols[3].metric("Not passed in the latest run", int((latest["status"] != "PASSED").sum()))
if data.results["run_id"].nunique() == insights.MAX_QUALITY_RUNS:
    st.caption(f"The newest {insights.MAX_QUALITY_RUNS} runs in the period; narrow the run days to see older ones.")

names = sorted(data.results["check_name"].unique())
worst = insights.worst_first(latest)[0]  # preselected: the worst check of the latest run
check = st.selectbox("Check", names, index=names.index(worst), key="metric_check",
                     help="Its metric in each run, against the thresholds that applied")
st.plotly_chart(charts.check_metric(data.results, check))

if shown.empty:
    st.info("No result has the chosen statuses.")
    st.stop()
st.plotly_chart(charts.status_grid(shown))
left, right = st.columns(2)
left.plotly_chart(charts.status_by(data.by_dimension, "dimension", "Results by quality dimension"))
right.plotly_chart(charts.status_by(data.by_table, "table_name", "Results by table"))

st.subheader("Failing samples")
bad = shown[shown["status"] != "PASSED"].sort_values(["checked_at", "check_name"], ascending=[False, True])
if bad.empty:
    st.caption("Every result shown passed.")
else:
    ui.table(bad.head(100), ["checked_at", "run_id", "check_name", "status", "table_name", "column_name", "owner",
                             "message", "failing_sample"])
