"""The checks that look beyond one table's rows, on every engine: freshness (against a clock),
rejected_rows (against the latest load), volume_change (against earlier runs); and a check
that cannot be measured, which ERRORs alone while the checks sharing its table pass still run."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from engagement.checks import CheckContext, evaluate_all
from engagement.engines.base import Engine
from engagement.history import check_context
from engagement.model import DQ_CHECK_LOGS, Check, CheckType
from engagement.pipeline import run_checks_only
from engagement.results import CheckResult, RunResult
from tests.conftest import CSV_HEADER

FACT, DIM = "fact_click_events", "dim_customer"
RAW_C, RAW_E = "raw_customer_demographics", "raw_clickstream_events"


def _events(n: int, day: str = "2026-01-01", first: int = 1) -> str:
    return "".join(
        f'{{"event_id":"e{i}","user_id":"C1","event_type":"click","timestamp":"{day}T{i % 24:02d}:00:00Z"}}\n'
        for i in range(first, first + n)
    )


# customers: 4 records read, 1 missing_key + 1 malformed_row; events: 5 read, 1 malformed + 2 invalid
SOURCE = {
    "customers/c.csv": f"{CSV_HEADER}\nC1,Ann,a@x.com,EU,2024-01-01\nC2,Bob,b@x.com,EU,2024-03-05\n,No,n@x.com,EU,\nC3,Short\n",
    "clickstream/dt=2026-01-01/p.jsonl": (
        '{"event_id":"a","timestamp":"2026-01-01T08:00:00Z"}\n'
        '{"event_id":"b","timestamp":"2026-01-01T09:30:00+01:00"}\n'  # 08:30 UTC: the newest
        "not json\n"
        '{"event_id":"c","timestamp":"2026-01-01T25:00:00Z"}\n'
        '{"event_id":"d","timestamp":"2026-01-01T07:00:00Z","duration_ms":"300"}\n'
    ),
}


def _measure(engine: Engine, checks: list[Check], now: datetime, run_id: str = "check") -> dict[str, CheckResult]:
    """Measure ``checks`` on the warehouse as it is, at the time ``now``."""
    context = check_context(engine, checks, run_id, now)
    return {r.check_name: r for r in evaluate_all(checks, engine.metrics(checks, context))}


def _by_name(result: RunResult) -> dict[str, CheckResult]:
    assert result.status.value == "SUCCEEDED", result.error
    return {c.check_name: c for c in result.checks}


@pytest.fixture
def loaded(engine: Engine, source: Callable[..., Path], run) -> Engine:
    assert run(source(SOURCE), checks=[]).status.value == "SUCCEEDED"
    return engine


def test_freshness_is_hours_since_the_newest_value_with_edges(loaded: Engine) -> None:
    def fresh(name: str, warn: str | None, fail: str | None, table: str = FACT, column: str = "event_timestamp") -> Check:
        return Check(name, CheckType.FRESHNESS, table, column, warn=warn, fail=fail, dimension="timeliness")

    checks = [
        fresh("at", "24h", "1d"),  # exactly 24 h old: no breach
        fresh("warn", "1439m", "1d"),  # a minute less: WARN
        fresh("fail", None, "23.99h"),
        fresh("days", "0.5d", None),
        fresh("signup", "0", None, DIM, "signup_date"),  # a DATE column: its midnight
    ]
    got = _measure(loaded, checks, now=datetime(2026, 1, 2, 8, 30))
    assert {n: (r.metric_value, r.status.value) for n, r in got.items()} == {
        "at": (24, "PASSED"), "warn": (24, "WARN"), "fail": (24, "FAILED"), "days": (24, "WARN"),
        "signup": ((datetime(2026, 1, 2, 8, 30) - datetime(2024, 3, 5)).total_seconds() / 3600, "WARN"),
    }
    assert got["at"].failing_sample == ["2026-01-01 08:30:00"]
    assert (got["at"].warn_threshold, got["at"].fail_threshold) == (24, 24)
    assert got["warn"].message == (
        "fact_click_events.event_timestamp: newest value 2026-01-01 08:30:00 is 24 h old "
        "(warn: > 1439m, fail: > 1d, in hours) -> WARN"
    )


def test_freshness_of_an_empty_table_fails(engine: Engine) -> None:
    engine.setup()
    checks = [Check("f", CheckType.FRESHNESS, FACT, "event_timestamp", warn="1h", fail="2h"),
              Check("w", CheckType.FRESHNESS, FACT, "event_timestamp", warn="1h")]
    got = _measure(engine, checks, datetime(2026, 1, 1))
    assert (got["f"].metric_value, got["f"].status.value) == (None, "FAILED")
    assert got["w"].status.value == "WARN"
    assert "has no value at all" in got["f"].message


def test_rejected_rows_counts_the_latest_load_per_source(engine: Engine, source: Callable[..., Path], run) -> None:
    def rejected(name: str, table: str, warn: str | None, fail: str | None) -> Check:
        return Check(name, CheckType.REJECTED_ROWS, table, warn=warn, fail=fail, dimension="validity")

    checks = [
        rejected("c_at", RAW_C, "2", "50%"),  # 2 of 4 records: 50% is no breach
        rejected("c_fail", RAW_C, None, "49%"),
        rejected("e_warn", RAW_E, "2", "3"),  # 3 of 5
        rejected("e_at", RAW_E, "60%", None),
    ]
    result = run(source(SOURCE), checks=checks)
    got = _by_name(result)
    assert {n: (r.metric_value, r.rows_checked, r.status.value) for n, r in got.items()} == {
        "c_at": (2, 4, "PASSED"), "c_fail": (2, 4, "FAILED"), "e_warn": (3, 5, "WARN"), "e_at": (3, 5, "PASSED"),
    }
    assert got["c_at"].failing_sample == ["malformed_row: 1", "missing_key: 1"]
    assert got["e_warn"].failing_sample == ["invalid_value: 2", "malformed_row: 1"]
    assert got["e_warn"].message == (
        f"raw_clickstream_events: 3 of 5 records rejected in run {result.run_id} (warn: > 2, fail: > 3) -> WARN"
    )
    # a clean load next: the rejects of the earlier run no longer count
    clean = {"customers/c.csv": f"{CSV_HEADER}\nC1,Ann,a@x.com,EU,2024-01-01\n", "clickstream/p.jsonl": _events(2)}
    again = _by_name(run(source(clean, "clean"), checks=checks))
    assert {n: (r.metric_value, r.rows_checked) for n, r in again.items()} == {
        "c_at": (0, 1), "c_fail": (0, 1), "e_warn": (0, 2), "e_at": (0, 2),
    }
    # `engagement checks` alone measures the latest load (the clean run), not its own run
    alone = _by_name(run_checks_only(engine, checks=checks))
    assert {n: r.metric_value for n, r in alone.items()} == {n: 0 for n in got}


def test_rejected_rows_before_any_load_is_an_error(engine: Engine) -> None:
    engine.setup()
    got = _measure(engine, [Check("r", CheckType.REJECTED_ROWS, RAW_C, warn="0")], datetime(2026, 1, 1))
    assert got["r"].status.value == "ERROR" and "has not been loaded yet" in got["r"].message


def test_volume_change_compares_with_the_mean_of_earlier_runs(engine: Engine, source: Callable[..., Path], run) -> None:
    def volume(name: str, warn: str | None, fail: str | None, window: int = 7) -> Check:
        return Check(name, CheckType.VOLUME_CHANGE, RAW_E, warn=warn, fail=fail, window=window, dimension="consistency")

    checks = [volume("at", "50%", None), volume("warn", "49%", "75%"), volume("last", "10", "20", window=1)]
    history = []
    for n in (4, 8, 3):  # batches of 4, 8 and 3 events
        history.append(_by_name(run(source({"clickstream/p.jsonl": _events(n)}, f"b{n}"), checks=checks)))
    first, second, third = history
    assert all((r.metric_value, r.status.value, r.rows_checked) == (None, "PASSED", 4) for r in first.values())
    assert "no earlier run to compare with yet" in first["at"].message
    # 8 against a mean of 4: +4 rows, 100% of the baseline
    assert {n: (r.metric_value, r.status.value) for n, r in second.items()} == {
        "at": (4, "WARN"), "warn": (4, "FAILED"), "last": (4, "PASSED"),
    }
    # 3 against the mean of 4 and 8 (6): 3 rows off = 50%; against the last run only (8): 5 rows off
    assert {n: (r.metric_value, r.status.value) for n, r in third.items()} == {
        "at": (3, "PASSED"), "warn": (3, "WARN"), "last": (5, "PASSED"),
    }
    assert third["at"].message == (
        "raw_clickstream_events: 3 rows vs a mean of 6 over the last 2 run(s) (-50.0%), 3 rows off "
        "(warn: > 50%) -> PASSED"
    )


def test_a_check_that_errors_is_logged_and_the_others_still_run(engine: Engine, source: Callable[..., Path], run) -> None:
    checks = [
        Check("rows", CheckType.ROW_COUNT, DIM, fail="1"),
        Check("broken", CheckType.NULL_COUNT, DIM, "no_such_column", warn="0"),
        Check("ids", CheckType.DUPLICATE_COUNT, DIM, "customer_id", fail="0"),
        Check("orphans", CheckType.REFERENTIAL_INTEGRITY, FACT, "no_such_column", warn="0",
              ref_table=DIM, ref_column="customer_id"),
        Check("fresh", CheckType.FRESHNESS, FACT, "event_timestamp", warn="1000000h"),
    ]
    result = run(source(SOURCE), checks=checks)
    got = _by_name(result)
    assert {n: r.status.value for n, r in got.items()} == {
        "rows": "PASSED", "broken": "ERROR", "ids": "PASSED", "orphans": "ERROR", "fresh": "PASSED",
    }
    assert got["rows"].metric_value == 2 and got["ids"].metric_value == 0
    assert got["broken"].metric_value is None and "\n" not in got["broken"].message
    logged = engine.read_table(DQ_CHECK_LOGS, where={"run_id": result.run_id})
    assert dict(zip(logged.check_name, logged.status)) == {n: r.status.value for n, r in got.items()}


def test_context_reads_loads_and_history_from_the_log_tables(loaded: Engine) -> None:
    checks = [Check("v", CheckType.VOLUME_CHANGE, RAW_E, warn="1", window=3),
              Check("r", CheckType.REJECTED_ROWS, RAW_C, warn="1")]
    context = check_context(loaded, checks, "now", datetime(2026, 1, 1))
    assert isinstance(context, CheckContext) and context.history == {"v": []}
    assert context.loads[RAW_C].rows_read == 4
