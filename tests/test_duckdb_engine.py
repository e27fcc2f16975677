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


def test_a_duplicated_target_key_fails_its_uniqueness_check(tmp_path: Path) -> None:
    from engagement.pipeline import run_checks_only, run_pipeline
    from tests.conftest import PARITY_SOURCE, write_files

    eng = DuckDBEngine(tmp_path / "w.duckdb")
    try:
        assert run_pipeline(eng, write_files(tmp_path / "src", PARITY_SOURCE)).status == "SUCCEEDED"
        statuses = {c.check_name: c.status for c in run_checks_only(eng).checks}
        assert statuses["dim_customer_id_unique"] == statuses["fact_event_id_unique"] == "PASSED"
        # What a broken MERGE (or a hand-made INSERT) would leave behind:
        eng.con.execute("INSERT INTO dim_customer SELECT * FROM dim_customer LIMIT 1")
        checks = {c.check_name: c for c in run_checks_only(eng).checks}
        assert (checks["dim_customer_id_unique"].status, checks["dim_customer_id_unique"].metric_value) == ("FAILED", 1)
        assert checks["fact_event_id_unique"].status == "PASSED"
    finally:
        eng.close()


def test_a_raw_table_loaded_by_an_older_version_is_judged_at_the_merge(tmp_path: Path) -> None:
    """Earlier versions kept no _validated_<raw> table; the MERGE builds it from the raw table."""
    from engagement.pipeline import ingest_phase, start_run, transform_phase
    from tests.conftest import PARITY_SOURCE, write_files

    source = write_files(tmp_path / "src", PARITY_SOURCE)
    merged = {}
    for name, drop in (("kept", False), ("dropped", True)):
        eng = DuckDBEngine(tmp_path / f"{name}.duckdb")
        try:
            run_id = start_run(eng, source)
            ingest_phase(eng, run_id)
            if drop:
                eng.con.execute("DROP TABLE _validated_raw_clickstream_events")
                eng.con.execute("DROP TABLE _validated_raw_customer_demographics")
            result = transform_phase(eng, run_id)
            merged[name] = (
                [(m.table, m.accepted, m.inserted, m.updated, m.unchanged, m.collapsed) for m in result.merges],
                eng.con.execute("SELECT * EXCLUDE (created_at, updated_at, run_id) FROM fact_click_events "
                                "ORDER BY event_id").fetchall(),
            )
        finally:
            eng.close()
    assert merged["dropped"] == merged["kept"]
    assert merged["kept"][1], "the fixture loads events"
