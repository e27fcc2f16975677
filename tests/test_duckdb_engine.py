"""What only the embedded engine does: its file, its lock, and warehouses made by older versions."""

from __future__ import annotations

from pathlib import Path

import pytest

from engagement.engines.duckdb import DuckDBEngine
from engagement.exceptions import WarehouseError


def test_a_warehouse_from_an_older_version_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    eng = DuckDBEngine(path)
    eng.setup()
    eng.con.execute('ALTER TABLE ingestion_logs DROP COLUMN "files"')  # as version 0.1 made it
    eng.close()
    eng = DuckDBEngine(path)
    try:
        eng.setup()
        columns = [r[0] for r in eng.con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'ingestion_logs'").fetchall()]
        assert "files" in columns
    finally:
        eng.close()


def test_a_missing_required_column_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "odd.duckdb"
    eng = DuckDBEngine(path)
    eng.setup()
    eng.con.execute('ALTER TABLE dim_customer DROP COLUMN "source_file"')
    eng.close()
    eng = DuckDBEngine(path)
    try:
        with pytest.raises(WarehouseError, match="lacks the required column source_file") as err:
            eng.setup()
        assert "\n" not in str(err.value) and "move that warehouse file away" in str(err.value)
    finally:
        eng.close()
