"""`engagement dashboard`: the command line it runs, its errors, and a real server answering."""

from __future__ import annotations

import os
import socket
import urllib.request
from pathlib import Path

import pytest

from engagement.config import load_settings
from engagement.dashboard.launch import app_environment, healthy, serve, streamlit_command
from tests.test_cli import assert_one_line_error, cli


def test_help_names_port_and_address(tmp_path: Path) -> None:
    proc = cli(tmp_path, "dashboard", "--help")
    assert proc.returncode == 0
    for word in ("--port", "--address", "--warehouse", "127.0.0.1", "Overview"):
        assert word in proc.stdout


def test_streamlit_runs_headless_on_loopback_without_telemetry() -> None:
    command = streamlit_command(8999)
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4].endswith("streamlit_app/app.py")
    flags = dict(zip(command[5::2], command[6::2]))
    assert flags["--server.address"] == "127.0.0.1" and flags["--server.port"] == "8999"
    assert flags["--server.headless"] == "true" and flags["--browser.gatherUsageStats"] == "false"


def test_the_app_reads_the_warehouse_the_command_was_given(tmp_path: Path) -> None:
    env = app_environment(load_settings(warehouse=Path("rel/w.duckdb"), engine="duckdb"), base={"PATH": "/bin"})
    assert env == {"PATH": "/bin", "ENGAGEMENT_WAREHOUSE": str(Path("rel/w.duckdb").resolve()),
                   "ENGAGEMENT_ENGINE": "duckdb"}


@pytest.mark.parametrize(("args", "words"), [
    (("--engine", "snowpark-local"), ("snowpark-local keeps nothing",)),
    (("--engine", "oracle"), ("ENGAGEMENT_ENGINE", "duckdb, snowflake, snowpark-local")),
])
def test_bad_configuration_is_one_line_exit_2(tmp_path: Path, args: tuple[str, ...], words: tuple[str, ...]) -> None:
    proc = cli(tmp_path, "dashboard", *args)
    assert proc.returncode == 2
    assert_one_line_error(proc, *words)


def test_a_port_out_of_range_is_a_usage_error(tmp_path: Path) -> None:
    proc = cli(tmp_path, "dashboard", "--port", "0")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def _other_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent for a UDP connect
            address = s.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


def test_the_server_answers_on_loopback_only(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGEMENT_")}
    env["ENGAGEMENT_WAREHOUSE"] = str(tmp_path / "none.duckdb")
    with serve(env, log=tmp_path / "dashboard.log") as url:
        assert healthy(url)
        with urllib.request.urlopen(url, timeout=5) as page:
            assert page.status == 200 and b"<title>" in page.read()
        other = _other_address()
        if other is not None:
            port = int(url.rsplit(":", 1)[1])
            with socket.socket() as s, pytest.raises(OSError):
                s.settimeout(2)
                s.connect((other, port))
    assert "dashboard on http://127.0.0.1:" in (tmp_path / "dashboard.log").read_text()
