"""The packaging files agree with each other, and the CLI starts without heavy imports."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert sorted(p for p in pip if not p.startswith("-e")) == sorted(project["dependencies"])
    editable = [p for p in pip if p.startswith("-e")]
    assert len(editable) == 1 and editable[0].startswith("-e .[") and editable[0].endswith("]"), editable
    extras = editable[0].removeprefix("-e .[").removesuffix("]").split(",")
    # every extra but airflow, which is large and only for scheduling with Airflow (airflow_dags/README.md)
    wanted = sorted(e for e in project["optional-dependencies"] if e != "airflow")
    assert sorted(extras) == wanted, "environment.yml installs every extra but airflow"
    python = next(d for d in conda if d.startswith("python="))
    minimum = project["requires-python"].removeprefix(">=")
    assert python == f"python={minimum}"


def test_cli_import_does_not_load_heavy_libraries() -> None:
    # (the bare ``snowflake`` namespace is pre-loaded by the Snowpark wheel's .pth file)
    code = (
        "import sys, engagement.cli\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('streamlit', 'papermill', 'plotly', 'pandas', 'duckdb')"
        " or m.startswith(('snowflake.snowpark', 'snowflake.connector'))]\n"
        "print(','.join(sorted(heavy)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_console_script_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["engagement"] == "engagement.cli:main"
