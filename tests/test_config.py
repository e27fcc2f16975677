"""Settings precedence: flags > environment > .env > defaults; bad values are one-line ConfigErrors."""

from __future__ import annotations

from pathlib import Path

import pytest

from engagement.config import load_settings
from engagement.exceptions import ConfigError, ExitCode


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("ENGAGEMENT_SOURCE", "ENGAGEMENT_WAREHOUSE", "ENGAGEMENT_ENGINE", "ENGAGEMENT_SCHEMA"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults() -> None:
    s = load_settings()
    assert s.warehouse == Path("warehouse/engagement.duckdb")
    assert s.engine == "duckdb" and s.schema_name == "main"


def test_dotenv_then_environment_then_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("ENGAGEMENT_WAREHOUSE=from_dotenv.duckdb\nENGAGEMENT_SOURCE=dotenv_src\n")
    assert load_settings().warehouse == Path("from_dotenv.duckdb")
    monkeypatch.setenv("ENGAGEMENT_WAREHOUSE", "from_env.duckdb")
    assert load_settings().warehouse == Path("from_env.duckdb")
    assert load_settings().source == "dotenv_src"
    assert load_settings(warehouse=Path("from_flag.duckdb")).warehouse == Path("from_flag.duckdb")
    assert load_settings(warehouse=None).warehouse == Path("from_env.duckdb")  # a flag not given


@pytest.mark.parametrize("name", ["bad name", "1abc", 'x"; drop', ""])
def test_schema_identifier_is_validated(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("ENGAGEMENT_SCHEMA", name)
    with pytest.raises(ConfigError, match="ENGAGEMENT_SCHEMA") as err:
        load_settings()
    assert err.value.exit_code == ExitCode.USAGE
    assert "\n" not in str(err.value)


def test_quoted_schema_is_used(tmp_path: Path) -> None:
    from engagement.engines import create_engine

    eng = create_engine(load_settings(warehouse=tmp_path / "w.duckdb", schema_name="Mixed_Case$1"))
    try:
        eng.setup()
        assert eng.table_counts()["dim_customer"] == 0
    finally:
        eng.close()


def _cli_flags() -> set[str]:
    import typer.main

    from engagement.cli import app

    group = typer.main.get_command(app)
    return {opt for cmd in group.commands.values() for p in cmd.params for opt in getattr(p, "opts", [])}


@pytest.mark.parametrize("name", ["DUCKDB_LOCK_WAIT", "ALERT_ATTEMPTS", "SMTP_PORT", "DASHBOARD_PORT", "FULL_REFRESH"])
def test_a_config_error_suggests_only_flags_that_exist(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    import re

    monkeypatch.setenv(f"ENGAGEMENT_{name}", "many")
    try:
        load_settings()
    except ConfigError as err:
        flags = set(re.findall(r"--[a-z][a-z-]+", str(err)))
        assert flags <= _cli_flags(), str(err)
        assert f"ENGAGEMENT_{name}" in str(err)
