"""Overview: is the latest run healthy? Its steps and checks, rows per source, freshness, notebooks."""

import streamlit as st

from engagement import insights
from engagement.dashboard import charts, ui

ui.require_runs()
data = ui.fetch(insights.overview)
if data.empty:  # the runs went away between two reads
    ui.no_runs(ui.reader().warehouse.location)
    st.stop()

run = data.run
st.title("Overview")
st.badge(f"run {run['status']}", color=charts.BADGE_COLORS.get(run["status"], "gray"))
st.caption(f"Latest run `{run['run_id']}` on {run['engine']}, source `{run['source']}`")
ui.health_box(data.health.level, data.health.headline, data.health.reasons)

age = data.freshness()
cols = st.columns(4)
cols[0].metric("Started (UTC)", f"{run['started_at']:%m-%d %H:%M}", help=f"{run['started_at']:%Y-%m-%d %H:%M:%S}")
cols[1].metric("Duration", f"{run['seconds']:.1f} s" if run["seconds"] is not None else "not finished")
cols[2].metric("Checks not passed", sum(n for s, n in data.check_counts.items() if s != "PASSED"))
cols[3].metric("Newest event is", f"{insights.describe_age(age)} old" if age is not None else "no events",
               help=f"{data.newest_event:%Y-%m-%d %H:%M:%S} UTC, the newest of {data.events:,} events"
               if data.newest_event else "fact_click_events is empty")

left, right = st.columns(2)
with left:
    if data.sources.empty:
        st.info("This run read no source (a checks-only run, or it stopped before ingesting).")
    else:
        st.plotly_chart(charts.source_rows(data.sources))
with right:
    if data.checks.empty:
        st.info("No checks were recorded for this run.")
    else:
        st.plotly_chart(charts.checks_by_status(data.check_counts))

st.subheader("Steps")
ui.table(data.steps, ["step", "table_name", "status", "seconds", "files", "rows_read", "rows_loaded", "rows_rejected",
                      "rows_inserted", "rows_updated", "rows_unchanged", "rows_collapsed", "error_message"])

problems = data.checks[data.checks["status"] != "PASSED"] if not data.checks.empty else data.checks
if not problems.empty:
    st.subheader("Checks not passed")
    ui.table(problems, ["check_name", "status", "table_name", "column_name", "dimension", "owner", "message",
                        "failing_sample"])

st.subheader("Executed notebooks")
if data.notebooks:
    for label, path in data.notebooks:
        target = f"[{path}]({path})" if path.startswith(("http://", "https://")) else f"`{path}`"
        st.markdown(f"- **{label}**: {target}")
else:
    st.caption("No executed notebook was recorded for this run (runs through papermill record one per step).")
