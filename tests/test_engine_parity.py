"""`engagement run --json` gives the same answer on every offline engine."""

from __future__ import annotations

import json

import pytest

from tests.conftest import PARITY_SOURCE as SOURCE
from tests.conftest import write_files
from tests.test_cli import cli

ENGINES = ["duckdb", "snowpark-local"]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("parity")
    write_files(root / "src", SOURCE)
    out = {}
    for engine in ENGINES:
        proc = cli(root, "run", "--engine", engine, "--source", "src", "--warehouse", f"{engine}.duckdb", "--json")
        assert proc.returncode in (0, 1), proc.stderr
        out[engine] = json.loads(proc.stdout)
    return out


@pytest.mark.parametrize("key", ["status", "tables", "rejected"])
def test_same_tables_rejects_and_status(results: dict[str, dict], key: str) -> None:
    assert results["duckdb"][key] == results["snowpark-local"][key]


def test_same_checks(results: dict[str, dict]) -> None:
    def view(doc: dict) -> list[tuple]:
        # freshness is measured against each run's own clock: compare the newest value it found
        return [(c["check_name"], c["table_name"], c["column_name"], c["rows_checked"], c["status"],
                 c["failing_sample"] if c["check_name"] == "fact_event_freshness" else c["metric_value"])
                for c in doc["checks"]]

    assert view(results["duckdb"]) == view(results["snowpark-local"])


def test_same_step_counts(results: dict[str, dict]) -> None:
    def view(doc: dict) -> list[dict]:
        return [{k: v for k, v in s.items() if k not in ("seconds",)} for s in doc["steps"]]

    assert view(results["duckdb"]) == view(results["snowpark-local"])
    assert results["snowpark-local"]["engine"] == "snowpark-local"
