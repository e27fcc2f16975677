"""The dashboard in a real browser: Playwright driving Debian's Chromium.

Used by ``tests/test_dashboard_browser.py`` and ``docs/screenshot.py`` (the README's
screenshot is taken exactly as the test sees the page). Needs the dev extras (playwright)
and ``/usr/bin/chromium`` (``.ci/run`` installs it with apt); Playwright's own browser
download is not used. Waits are on what the page shows, never a fixed sleep.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
# What lets Chromium run headless in a container without reaching out to the network.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CHART = '[data-testid="stPlotlyChart"] .main-svg'
RUNNING = '[data-testid="stStatusWidget"]'
STALE = '[data-stale="true"]'
TIMEOUT_MS = 60_000


@contextmanager
def browser_page(width: int = 1440, height: int = 1100) -> Iterator[Any]:
    """A Playwright page in the system Chromium, closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def wait_until_drawn(page: Any, charts: bool = True, timeout_ms: int = TIMEOUT_MS) -> None:
    """Until the page's script has finished: charts drawn, no status widget, nothing stale."""
    page.wait_for_selector('[data-testid="stMain"]', timeout=timeout_ms)
    if charts:
        page.wait_for_selector(CHART, timeout=timeout_ms)
    page.wait_for_selector(RUNNING, state="hidden", timeout=timeout_ms)
    page.wait_for_function(f"document.querySelectorAll('{STALE}').length === 0", timeout=timeout_ms)


def metric(page: Any, label: str) -> str:
    """The value shown by the ``st.metric`` labelled ``label``."""
    box = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return box.locator('[data-testid="stMetricValue"]').inner_text().strip()


def wait_for_metric_change(page: Any, label: str, before: str, timeout_ms: int = TIMEOUT_MS) -> str:
    """Until the metric ``label`` shows something else than ``before`` and the page settled; the new value."""
    page.wait_for_function(
        """([label, before]) => [...document.querySelectorAll('[data-testid="stMetric"]')]
             .some(m => m.innerText.includes(label)
                        && m.querySelector('[data-testid="stMetricValue"]').innerText.trim() !== before)""",
        arg=[label, before], timeout=timeout_ms,
    )
    wait_until_drawn(page, timeout_ms=timeout_ms)
    return metric(page, label)
