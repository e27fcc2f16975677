"""Starting the dashboard: the ``streamlit run`` command line, and a server in the background.

No Streamlit import here: ``engagement dashboard`` runs Streamlit in a child process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from engagement.config import Settings
from engagement.exceptions import ConfigError

APP = Path(__file__).resolve().parents[2] / "streamlit_app" / "app.py"
LOOPBACK = "127.0.0.1"


def app_path() -> Path:
    """``streamlit_app/app.py`` next to the package; a one-line error when it is not there."""
    if not APP.is_file():
        raise ConfigError(f"the dashboard app {APP} is missing; install engagement from its source folder (pip install -e .)")
    return APP


def streamlit_command(port: int, address: str = LOOPBACK) -> list[str]:
    """``python -m streamlit run streamlit_app/app.py`` bound to ``address:port``, headless, no telemetry."""
    return [
        sys.executable, "-m", "streamlit", "run", str(app_path()),
        "--server.address", address,
        "--server.port", str(port),
        "--server.headless", "true",
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "minimal",
    ]


def app_environment(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for the app: ``base`` (default: ours) plus the settings flags chose,
    so the app reads the warehouse the command was given."""
    env = dict(os.environ if base is None else base)
    env["ENGAGEMENT_WAREHOUSE"] = str(settings.warehouse.resolve())
    if "engine" in settings.model_fields_set:
        env["ENGAGEMENT_ENGINE"] = settings.engine
    if settings.snowflake_connection:
        env["ENGAGEMENT_SNOWFLAKE_CONNECTION"] = settings.snowflake_connection
    return env


def free_port(address: str = LOOPBACK) -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def healthy(url: str) -> bool:
    """Whether the Streamlit server at ``url`` answers its health check."""
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def serve(env: Mapping[str, str], port: int | None = None, timeout: float = 60.0,
          log: Path | None = None) -> Iterator[str]:
    """Run ``engagement dashboard`` in the background on a free loopback port; yield its URL once
    it answers, stop it afterwards. ``env`` is the child's whole environment; ``log`` collects its output."""
    port = port or free_port()
    url = f"http://{LOOPBACK}:{port}"
    sink = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    # A session of its own: stopping it stops everything it started.
    proc = subprocess.Popen([sys.executable, "-m", "engagement", "dashboard", "--port", str(port)],
                            env=dict(env), stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not healthy(url):
            if proc.poll() is not None:
                raise RuntimeError(f"the dashboard exited with code {proc.returncode} before answering"
                                   + (f"; see {log}" if log else ""))
            if time.monotonic() > deadline:
                raise TimeoutError(f"the dashboard did not answer on {url} within {timeout:g} s")
            time.sleep(0.2)
        yield url
    finally:
        _stop(proc)
        if log:
            sink.close()


def _stop(proc: subprocess.Popen) -> None:
    """TERM the process group ``proc`` leads, KILL it after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
