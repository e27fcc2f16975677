"""The monitoring dashboard: ``engagement dashboard`` (or ``streamlit run streamlit_app/app.py``).

Reads the warehouse the settings name (ENGAGEMENT_ENGINE, ENGAGEMENT_WAREHOUSE, the Snowflake
settings; in Streamlit in Snowflake, the active session). Pages live in ``views/``; data comes
from :mod:`engagement.insights`, figures from :mod:`engagement.dashboard.charts`.
"""

import streamlit as st

from engagement.dashboard import ui

st.set_page_config(page_title="engagement monitoring", page_icon=":material/monitoring:", layout="wide")
page = st.navigation([
    st.Page("views/overview.py", title="Overview", icon=":material/monitor_heart:", default=True),
    st.Page("views/runs.py", title="Runs", icon=":material/history:"),
    st.Page("views/quality.py", title="Data quality", icon=":material/fact_check:"),
    st.Page("views/engagement.py", title="Engagement", icon=":material/insights:"),
])
ui.sidebar_header()
ui.run_page(page)
