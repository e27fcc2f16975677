"""The monitoring dashboard's building blocks: reading the warehouse (:mod:`.access`),
figures (:mod:`.charts`, plotly only) and widgets (:mod:`.ui`, Streamlit).

The app itself is ``streamlit_app/app.py`` (``engagement dashboard`` starts it); its pages
stay thin: they ask :mod:`engagement.insights` for data and draw it with these helpers.
Nothing here is imported by the CLI, so ``engagement`` starts without Streamlit or plotly.
"""
