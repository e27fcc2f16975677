"""Runs: history with filters, step durations and row counts over time, and one run in detail."""

import streamlit as st

from engagement import insights
from engagement.dashboard import charts, ui

bounds = ui.require_runs()
st.sidebar.subheader("Filters")
filters = insights.RunFilter(
    period=ui.day_range("Run days (UTC)", "run_days", bounds, "Runs started on these days (shared with Data quality)"),
    statuses=ui.choose("Run status", "run_status", insights.RUN_STATUSES, "Runs ending with these statuses"),
    tables=ui.choose("Tables", "tables", insights.TABLE_NAMES, "Steps on these tables (shared with Data quality)"),
)
data = ui.fetch(insights.runs, filters)

st.title("Runs")
if data.runs.empty:
    st.info("No run matches these filters.")
    st.stop()

cols = st.columns(4)
cols[0].metric("Runs", len(data.runs))
cols[1].metric("Errored", int((data.runs["status"] == "ERROR").sum()))
cols[2].metric("Records read", f"{int(data.runs['rows_read'].fillna(0).sum()):,}")
cols[3].metric("Records rejected", f"{int(data.runs['rows_rejected'].fillna(0).sum()):,}")
ui.table(data.runs, ["run_id", "status", "checks", "started_at", "seconds", "rows_read", "rows_rejected",
                     "error_message", "engine", "source"])
if len(data.runs) == insights.MAX_RUNS:
    st.caption(f"The newest {insights.MAX_RUNS} runs matching the filters; narrow the run days to see older ones.")

if data.steps.empty:
    st.info("No step of these runs matches the table filter.")
else:
    left, right = st.columns(2)
    left.plotly_chart(charts.step_durations(data.steps))
    right.plotly_chart(charts.step_rows(data.steps))

st.header("One run")
run_id = st.selectbox("Run", data.runs["run_id"].tolist(), key="run_id",
                      help="The newest run matching the filters is shown first")
detail = ui.fetch(insights.run_detail, run_id)
for step in detail.steps[detail.steps["status"] == "ERROR"].itertuples():
    st.error(f"{charts.step_label(step.step, step.table_name)}: {step.error_message}")
if detail.run and detail.run.get("error_message") and (detail.steps["status"] != "ERROR").all():
    st.error(f"run: {detail.run['error_message']}")
ui.table(detail.steps, ["step", "table_name", "status", "seconds", "files", "rows_read", "rows_loaded", "rows_rejected",
                        "rows_inserted", "rows_updated", "rows_unchanged", "rows_collapsed", "error_message",
                        "notebook"])

st.subheader("Rejected records")
if detail.rejected.empty:
    st.caption("This run rejected no record.")
else:
    st.plotly_chart(charts.rejected_reasons(detail.rejected))
    st.caption(f"Up to {insights.SAMPLES} raw records per source and reason, as they arrived:")
    ui.table(detail.samples, ["source_table", "reason", "source_file", "source_row", "detail", "payload"])

if not detail.checks.empty:
    st.subheader("Checks of this run")
    ui.table(detail.checks, ["check_name", "status", "metric_value", "thresholds", "message", "failing_sample"])
