"""The dashboard's plotly figures, built from :mod:`engagement.insights` frames (no Streamlit).

Trace names are stable (a status, a table, a step, an event type): the tests read them.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from engagement.insights import CHECK_STATUSES, Engagement

STATUS_COLORS = {
    "PASSED": "#2e7d32",
    "SUCCEEDED": "#2e7d32",
    "WARN": "#f9a825",
    "FAILED": "#c62828",
    "ERROR": "#6a1b9a",
    "STARTED": "#1565c0",
    "SKIPPED": "#9e9e9e",
}
BADGE_COLORS = {"SUCCEEDED": "green", "PASSED": "green", "WARN": "orange", "FAILED": "red", "ERROR": "red",
                "STARTED": "blue", "SKIPPED": "gray"}
SOURCE_COLORS = {"read": "#546e7a", "loaded": "#2e7d32", "rejected": "#c62828"}
HEIGHT = 320


def _layout(fig: go.Figure, title: str, **kwargs) -> go.Figure:
    layout = dict(template="plotly_white", height=HEIGHT, margin=dict(l=10, r=10, t=40, b=10),
                  legend=dict(orientation="h", y=-0.2))
    fig.update_layout(title=title, **{**layout, **kwargs})
    return fig


def step_label(step: str, table: str | None) -> str:
    """``ingest raw_clickstream_events``, or just ``discover``."""
    return f"{step} {table}" if isinstance(table, str) and table else step


# -- overview ------------------------------------------------------------------------------


def checks_by_status(counts: dict[str, int]) -> go.Figure:
    """One bar per check status (every status, zero included)."""
    fig = go.Figure([go.Bar(x=[s], y=[counts.get(s, 0)], name=s, marker_color=STATUS_COLORS[s], text=[counts.get(s, 0)])
                     for s in CHECK_STATUSES])
    return _layout(fig, "Checks by status", showlegend=False, yaxis_title="checks")


def source_rows(sources: pd.DataFrame) -> go.Figure:
    """Rows read, loaded and rejected per source of a run."""
    fig = go.Figure([
        go.Bar(x=sources["table_name"], y=sources[f"rows_{what}"].fillna(0), name=what,
               marker_color=SOURCE_COLORS[what], text=sources[f"rows_{what}"].fillna(0))
        for what in ("read", "loaded", "rejected")
    ])
    return _layout(fig, "Rows per source", barmode="group", yaxis_title="rows")


# -- runs ----------------------------------------------------------------------------------


def step_durations(steps: pd.DataFrame) -> go.Figure:
    """Seconds per step over time, one line per step (and table)."""
    fig = go.Figure()
    labelled = steps.assign(label=[step_label(s, t) for s, t in zip(steps["step"], steps["table_name"])])
    for label, part in labelled.groupby("label", sort=True):
        fig.add_trace(go.Scatter(x=part["started_at"], y=part["seconds"], name=label, mode="lines+markers"))
    return _layout(fig, "Step durations", yaxis_title="seconds")


def step_rows(steps: pd.DataFrame) -> go.Figure:
    """Records read and rejected per ingested source over time."""
    fig = go.Figure()
    ingest = steps[steps["step"] == "ingest"]
    for table, part in ingest.groupby("table_name", sort=True):
        fig.add_trace(go.Scatter(x=part["started_at"], y=part["rows_read"], name=f"{table} read", mode="lines+markers"))
        fig.add_trace(go.Scatter(x=part["started_at"], y=part["rows_rejected"], name=f"{table} rejected",
                                 mode="lines+markers", line=dict(dash="dot")))
    return _layout(fig, "Records read and rejected per run", yaxis_title="records")


def rejected_reasons(rejected: pd.DataFrame) -> go.Figure:
    """Rejected records of a run by reason, one bar series per source table."""
    fig = go.Figure([go.Bar(x=part["reason"], y=part["records"], name=table, text=part["records"])
                     for table, part in rejected.groupby("source_table", sort=True)])
    return _layout(fig, "Rejected records by reason", barmode="group", yaxis_title="records")


# -- data quality --------------------------------------------------------------------------


def check_metric(results: pd.DataFrame, check: str) -> go.Figure:
    """One check's metric per run against its warn and fail thresholds (as they applied to each run)."""
    part = results[results["check_name"] == check].sort_values("checked_at")
    fig = go.Figure(go.Scatter(
        x=part["checked_at"], y=part["metric_value"], name="metric", mode="lines+markers",
        marker=dict(size=10, color=[STATUS_COLORS.get(s, "#000") for s in part["status"]]),
        text=part["status"], hovertemplate="%{x}<br>%{y} (%{text})<extra></extra>",
    ))
    for kind, dash in (("warn", "dash"), ("fail", "dot")):
        values = part[f"{kind}_threshold"]
        if values.notna().any():
            fig.add_trace(go.Scatter(x=part["checked_at"], y=values, name=kind, mode="lines",
                                     line=dict(dash=dash, color=STATUS_COLORS["WARN" if kind == "warn" else "FAILED"])))
    return _layout(fig, f"{check}: metric per run", yaxis_title="metric")


def status_grid(results: pd.DataFrame) -> go.Figure:
    """Checks × runs, each cell coloured by the check's status in that run."""
    runs = results.drop_duplicates("run_id").sort_values("checked_at")
    labels = {r.run_id: f"{r.checked_at:%m-%d %H:%M:%S} {r.run_id[-6:]}" for r in runs.itertuples()}
    grid = results.pivot_table(index="check_name", columns="run_id", values="status", aggfunc="first")
    grid = grid.reindex(columns=list(labels)).sort_index(ascending=False)
    rank = {s: i for i, s in enumerate(CHECK_STATUSES)}
    z = [[rank.get(v) if isinstance(v, str) else None for v in row] for row in grid.to_numpy()]
    text = [[v if isinstance(v, str) else "" for v in row] for row in grid.to_numpy()]
    n = len(CHECK_STATUSES)
    scale = []
    for i, s in enumerate(CHECK_STATUSES):  # one flat band per status
        scale += [[i / n, STATUS_COLORS[s]], [(i + 1) / n, STATUS_COLORS[s]]]
    fig = go.Figure(go.Heatmap(
        z=z, x=[labels[r] for r in grid.columns], y=list(grid.index), text=text, name="status",
        zmin=-0.5, zmax=n - 0.5, colorscale=scale, showscale=False, xgap=2, ygap=2,
        hovertemplate="%{y}<br>%{x}: %{text}<extra></extra>",
    ))
    return _layout(fig, "Check status per run", height=max(HEIGHT, 28 * len(grid.index) + 120),
                   xaxis=dict(type="category"))


def status_by(counts: pd.DataFrame, group: str, title: str) -> go.Figure:
    """Stacked check results per ``group`` (dimension or table), one series per status."""
    fig = go.Figure()
    for status in CHECK_STATUSES:
        part = counts[counts["status"] == status]
        if not part.empty:
            fig.add_trace(go.Bar(x=part[group], y=part["results"], name=status, marker_color=STATUS_COLORS[status]))
    return _layout(fig, title, barmode="stack", yaxis_title="check results")


# -- engagement ----------------------------------------------------------------------------


def events_per_day(daily: pd.DataFrame) -> go.Figure:
    """Events per day, stacked by event type."""
    fig = go.Figure([go.Bar(x=part["day"], y=part["events"], name=event_type)
                     for event_type, part in daily.groupby("event_type", sort=True, dropna=False)])
    return _layout(fig, "Events per day by type", barmode="stack", yaxis_title="events")


def funnel(stages: pd.DataFrame) -> go.Figure:
    """Users at each funnel stage (users with at least one such event)."""
    fig = go.Figure(go.Funnel(y=stages["stage"], x=stages["users"], name="users",
                              textinfo="value+percent initial"))
    return _layout(fig, "Funnel: users per stage")


def top_pages(top: pd.DataFrame) -> go.Figure:
    """The most viewed pages."""
    ordered = top.iloc[::-1]
    fig = go.Figure(go.Bar(y=ordered["page_url"], x=ordered["events"], orientation="h", name="events"))
    return _layout(fig, "Top pages", xaxis_title="events")


def regions(frame: pd.DataFrame) -> go.Figure:
    """Active customers per region."""
    fig = go.Figure(go.Bar(x=frame["region"], y=frame["customers"], name="customers", text=frame["customers"]))
    return _layout(fig, "Active customers by region", yaxis_title="customers")


def identities(e: Engagement) -> go.Figure:
    """Events of known customers, anonymous visitors and orphan user ids."""
    known = e.events - e.anonymous - e.orphans
    fig = go.Figure(go.Pie(labels=["known customer", "anonymous", "orphan user_id"],
                           values=[known, e.anonymous, e.orphans], name="events", hole=0.5, sort=False,
                           marker=dict(colors=["#2e7d32", "#90a4ae", "#c62828"])))
    return _layout(fig, "Who the events come from")
