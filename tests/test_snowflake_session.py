"""Connecting to Snowflake the way users configure it; every failure is one line, exit 2, no secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engagement.config import load_settings
from engagement.engines.snowflake_session import session_configs
from tests.conftest import CSV_HEADER, write_files

SECRET = "hunter2-do-not-print"


def engagement(cwd: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ENGAGEMENT_", "SNOWFLAKE_"))}
    return subprocess.run([sys.executable, "-m", "engagement", *args], cwd=cwd, env={**base, **env},
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    sf = tmp_path / "sfhome"
    sf.mkdir()
    (sf / "connections.toml").write_text(f'[dev]\naccount = "xy12345"\nuser = "ann"\npassword = "{SECRET}"\n')
    (sf / "connections.toml").chmod(0o600)
    write_files(tmp_path / "src", {"customers/c.csv": f"{CSV_HEADER}\nC1,Ann,a@x.com,NA,2024-01-01\n"})
    return sf


def test_wrong_connection_name_names_the_known_ones(tmp_path: Path, home: Path) -> None:
    proc = engagement(tmp_path, "run", "--engine", "snowflake", "--connection", "prod", "-s", "src",
                      env={"SNOWFLAKE_HOME": str(home)})
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "'prod'" in err and "dev" in err and "connections.toml" in err
    assert SECRET not in proc.stdout + proc.stderr


def test_missing_credentials_say_what_to_set(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    write_files(tmp_path / "src", {"customers/c.csv": f"{CSV_HEADER}\n"})
    proc = engagement(tmp_path, "run", "--engine", "snowflake", "-s", "src", env={"SNOWFLAKE_HOME": str(empty)})
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1
    for word in ("no Snowflake credentials", "connections.toml", "SNOWFLAKE_ACCOUNT", "--connection"):
        assert word in err


def test_configs_from_a_connection_name_and_settings() -> None:
    settings = load_settings(engine="snowflake", snowflake_connection="dev", snowflake_warehouse="ENGAGEMENT_WH",
                             snowflake_role="ENGAGEMENT_ROLE")
    configs = session_configs(settings, environ={"SNOWFLAKE_ACCOUNT": "ignored-when-a-name-is-given"})
    assert configs == {"application": "engagement", "connection_name": "dev", "warehouse": "ENGAGEMENT_WH",
                       "role": "ENGAGEMENT_ROLE", "database": "ENGAGEMENT", "schema": "MARKETING"}


def test_configs_from_snowflake_environment_variables() -> None:
    env = {"SNOWFLAKE_ACCOUNT": "xy12345", "SNOWFLAKE_USER": "ann", "SNOWFLAKE_PASSWORD": SECRET,
           "SNOWFLAKE_WAREHOUSE": "WH"}
    configs = session_configs(load_settings(engine="snowflake"), environ=env)
    assert configs["account"] == "xy12345" and configs["password"] == SECRET and configs["warehouse"] == "WH"
    assert "connection_name" not in configs


def test_settings_warehouse_and_role_win_over_the_environment() -> None:
    env = {"SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_WAREHOUSE": "FROM_ENV"}
    configs = session_configs(load_settings(engine="snowflake", snowflake_warehouse="FROM_SETTINGS"), environ=env)
    assert configs["warehouse"] == "FROM_SETTINGS"
