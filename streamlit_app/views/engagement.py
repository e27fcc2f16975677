"""Engagement: events per day by type, the funnel, top pages, customers by region, anonymous and orphan share."""

import streamlit as st

from engagement import insights
from engagement.dashboard import charts, ui

ui.require_runs()
bounds = ui.fetch(insights.event_days)
st.sidebar.subheader("Filters")
period = ui.day_range("Event days (UTC)", "event_days", bounds, "Events that happened on these days")
data = ui.fetch(insights.engagement, period)

st.title("Engagement")
if data.events == 0:
    st.info("No event in this period." if bounds else "No event was loaded yet.")
    st.stop()

cols = st.columns(4)
cols[0].metric("Events", f"{data.events:,}")
cols[1].metric("Active customers", f"{data.customers:,}", help="Known customers with at least one event")
cols[2].metric("Anonymous events", f"{data.anonymous_share:.1%}", help=f"{data.anonymous:,} events without a user_id")
cols[3].metric("Orphan events", f"{data.orphan_share:.1%}",
               help=f"{data.orphans:,} events whose user_id is no customer in dim_customer")

st.plotly_chart(charts.events_per_day(data.daily))
left, right = st.columns(2)
left.plotly_chart(charts.funnel(data.funnel))
right.plotly_chart(charts.identities(data))
left, right = st.columns(2)
left.plotly_chart(charts.top_pages(data.top_pages))
right.plotly_chart(charts.regions(data.regions))
st.caption(
    "Funnel: distinct users with at least one event of each type in the period (not a strict sequence). "
    "Anonymous: no user_id. Orphan: a user_id that is no customer."
)
