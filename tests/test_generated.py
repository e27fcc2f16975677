"""Generated data at scale: every count the generator's manifest promises comes out of the pipeline."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engagement.engines.base import Engine
from engagement.generate import KNOWN_EVENT_TYPES, generate
from engagement.model import DIM_CUSTOMER, FACT_EVENTS, INGESTION_LOGS
from engagement.pipeline import run_pipeline
from tests.test_cli import cli

# 200k events: far beyond Snowpark local testing (its MERGE is quadratic in memory).
pytestmark = [pytest.mark.slow, pytest.mark.engines("duckdb")]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("gen") / "src"
    # the last day is yesterday (UTC), so the data is as fresh as a nightly load's
    start = (datetime.now(UTC) - timedelta(days=5)).date()
    manifest = generate(out, customers=5_000, events=200_000, days=5, seed=11, defect_rate=0.05, start_date=start)
    return out, manifest


def test_counts_match_the_manifest_and_add_up(engine: Engine, generated) -> None:
    src, manifest = generated
    result = run_pipeline(engine, src)
    assert result.status.value == "SUCCEEDED", result.error
    ingest = {i.table: i for i in result.ingest}
    merges = {m.table: m for m in result.merges}
    for raw, target, key in (
        ("raw_customer_demographics", "dim_customer", "customers"),
        ("raw_clickstream_events", "fact_click_events", "clickstream"),
    ):
        want, got, merged = manifest[key], ingest[raw], merges[target]
        assert got.read == want["records"]
        assert {r: got.rejected.get(r, 0) for r in want["rejected"]} == want["rejected"]
        assert got.read == got.rejected_total + got.accepted
        assert merged.accepted == got.accepted == want["accepted"]
        assert merged.inserted == want["distinct_keys"] and merged.collapsed == want["collapsed"]
        assert merged.updated == merged.unchanged == 0
        assert result.tables[target] == want["distinct_keys"]

    fact = engine.read_table(FACT_EVENTS)
    customers = set(engine.read_table(DIM_CUSTOMER).customer_id)
    events = manifest["clickstream"]
    assert int(fact.user_id.isna().sum()) == events["anonymous"]
    assert int((fact.user_id.notna() & ~fact.user_id.isin(customers)).sum()) == events["orphans"]
    assert int((~fact.event_type.isin(KNOWN_EVENT_TYPES)).sum()) == events["unknown_event_type"]
    assert fact.event_timestamp.notna().all() and (fact.duration_ms.dropna() >= 0).all()
    # each defect kind is caught by the check meant for it, with the exact metric
    checks = {c.check_name: c for c in result.checks}
    assert checks["fact_user_known"].metric_value == events["orphans"]
    assert checks["fact_event_type_accepted"].metric_value == events["unknown_event_type"]
    assert checks["fact_duration_range"].metric_value == 0
    for name, key in (("customers_rejected", "customers"), ("clickstream_rejected", "clickstream")):
        rejected = manifest[key]["rejected"]
        assert checks[name].metric_value == sum(rejected.values())
        assert checks[name].rows_checked == manifest[key]["records"]
        assert sorted(checks[name].failing_sample) == sorted(f"{r}: {n}" for r, n in rejected.items())
    newest = max(fact.event_timestamp)
    assert checks["fact_event_freshness"].failing_sample == [newest.isoformat(sep=" ")]
    assert 0 < checks["fact_event_freshness"].metric_value < 48
    assert checks["clickstream_volume"].metric_value is None  # the first run: nothing to compare with
    assert checks["clickstream_volume"].rows_checked == events["records"]
    assert checks["dim_customer_id_unique"].metric_value == checks["fact_event_id_unique"].metric_value == 0
    assert all(c.status.value in ("PASSED", "WARN") for c in checks.values()), checks

    # the log rows say the same as the result
    logs = engine.read_table(INGESTION_LOGS, where={"run_id": result.run_id, "step": "ingest"})
    assert int(logs.rows_read.sum()) == manifest["customers"]["records"] + events["records"]
    assert (logs.rows_read == logs.rows_loaded + logs.rows_rejected).all()

    again = run_pipeline(engine, src)
    for m in again.merges:
        assert (m.inserted, m.updated) == (0, 0)
        assert m.unchanged == result.tables[m.table]
    volume = next(c for c in again.checks if c.check_name == "clickstream_volume")
    assert (volume.metric_value, volume.status.value) == (0, "PASSED")  # the same batch: no change


def test_cli_json_rejected_matches_the_manifest(tmp_path: Path) -> None:
    gen = cli(tmp_path, "generate", "--out", "src", "--customers", "300", "--events", "5000", "--days", "3",
              "--defect-rate", "0.1", "--seed", "3")
    assert gen.returncode == 0, gen.stderr
    manifest = json.loads((tmp_path / "src" / "manifest.json").read_text())
    proc = cli(tmp_path, "run", "--source", "src", "--warehouse", "w.duckdb", "--json")
    assert proc.returncode in (0, 1), proc.stderr
    doc = json.loads(proc.stdout)
    expected = {k: v for k, v in manifest["clickstream"]["rejected"].items() if v}
    assert doc["rejected"]["raw_clickstream_events"] == expected
    assert doc["tables"]["fact_click_events"] == manifest["clickstream"]["distinct_keys"]
    assert doc["tables"]["dim_customer"] == manifest["customers"]["distinct_keys"]
