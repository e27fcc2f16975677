"""The dashboard in a real browser: `engagement dashboard` on a free loopback port, Chromium via Playwright.

Playwright cannot download its own browser here; it drives Debian's /usr/bin/chromium
(`.ci/run` installs it). Waits are on what the page shows, never a fixed sleep.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from engagement.dashboard.browser import CHROMIUM, browser_page, metric, wait_for_metric_change, wait_until_drawn
from engagement.dashboard.launch import serve
from tests.conftest import DashboardWarehouse

DRAWN = '[data-testid="stPlotlyChart"]:has(.main-svg)'  # a chart plotly has drawn
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs {CHROMIUM}: apt-get install chromium (.ci/run does)"),
]


def test_charts_draw_a_filter_applies_and_a_screenshot_is_saved(dashboard_warehouse: DashboardWarehouse,
                                                                  tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGEMENT_")}
    env["ENGAGEMENT_WAREHOUSE"] = str(dashboard_warehouse.path)
    m = dashboard_warehouse.manifest["clickstream"]
    start = date.fromisoformat(dashboard_warehouse.manifest["params"]["start_date"])
    with serve(env, log=tmp_path / "dashboard.log") as url, browser_page() as page:
        page.goto(url)
        wait_until_drawn(page)
        assert page.get_by_role("heading", name="Overview").is_visible()
        assert page.locator('[data-testid="stAlert"]').first.inner_text().startswith("Succeeded with")
        assert page.locator(DRAWN).count() == 2
        shot = tmp_path / "overview.png"
        page.screenshot(path=shot, full_page=True)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000

        page.goto(f"{url}/engagement")
        wait_until_drawn(page)
        assert page.locator(DRAWN).count() == 5
        before = metric(page, "Events")
        assert before == f"{m['distinct_keys']:,}"
        # The filter: the start of the event-day slider one day later, with the keyboard.
        page.locator('[data-testid="stSlider"] input[type="range"]').first.focus()
        page.keyboard.press("ArrowRight")
        after = wait_for_metric_change(page, "Events", before)
        (expected,) = dashboard_warehouse.sql(
            "SELECT count(*) FROM fact_click_events WHERE event_timestamp >= ?",
            [datetime.combine(start + timedelta(days=1), datetime.min.time())])[0]
        assert after == f"{expected:,}"
        page.screenshot(path=tmp_path / "engagement-filtered.png", full_page=True)
    assert "Traceback" not in (tmp_path / "dashboard.log").read_text()
