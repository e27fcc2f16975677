"""The value checks (accepted_values, value_range, pattern, referential_integrity) on every engine:
exact counts, NULLs never counted, thresholds at their edges, and the failing sample."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from engagement.checks import sample_text
from engagement.model import Check, CheckType
from engagement.results import RunResult
from tests.conftest import CSV_HEADER


def _event(event_id: str, user: str | None, kind: str | None, duration: int | None) -> str:
    fields = [f'"event_id":"{event_id}"', '"timestamp":"2026-01-01T10:00:00Z"']
    if user is not None:
        fields.append(f'"user_id":"{user}"')
    if kind is not None:
        fields.append(f'"event_type":"{kind}"')
    fields.append(f'"duration_ms":{"null" if duration is None else duration}')
    return "{" + ",".join(fields) + "}\n"


# 5 customers (email: 1 NULL, 3 not e-mail-shaped); 6 events (user_id: 1 NULL, 3 unknown (C8, C9
# twice); event_type: 1 NULL, 3 not accepted (hover twice, scroll); duration_ms: 1 NULL).
SOURCE = {
    "customers/c.csv": (
        f"{CSV_HEADER}\n"
        "C1,Ann,ann@x.com,EMEA,2024-01-01\n"
        "C2,Bob,not-an-email,NA,2024-02-01\n"
        "C3,Cy,,NA,2024-02-01\n"
        "C4,Di,di@x,NA,2024-02-01\n"
        "C5,Ed,ed smith@x.com,NA,2024-02-01\n"
    ),
    "clickstream/dt=2026-01-01/p.jsonl": (
        _event("e1", "C1", "page_view", 5)
        + _event("e2", "C2", "hover", 100)
        + _event("e3", "C9", "scroll", None)
        + _event("e4", None, None, 60)
        + _event("e5", "C9", "purchase", 0)
        + _event("e6", "C8", "hover", 7)
    ),
}
FACT, DIM = "fact_click_events", "dim_customer"
ACCEPTED = ("page_view", "add_to_cart", "purchase", "search", "click")


def _edges(name: str, kind: CheckType, table: str, column: str, metric: int, **keys) -> list[Check]:
    """Checks whose thresholds sit at the metric's edges: equal is no breach, one less is."""
    def check(suffix: str, warn: str | None, fail: str | None) -> Check:
        return Check(f"{name}_{suffix}", kind, table, column, warn=warn, fail=fail, dimension="validity", **keys)

    return [
        check("at", str(metric), str(metric)),  # PASSED
        check("warn", str(metric - 1), str(metric)),  # WARN
        check("fail", None, str(metric - 1)),  # FAILED
    ]


def _outcome(result: RunResult) -> dict[str, tuple]:
    assert result.status.value == "SUCCEEDED", result.error
    return {c.check_name: (c.metric_value, c.status.value, c.failing_sample) for c in result.checks}


EDGE_STATUS = {"at": "PASSED", "warn": "WARN", "fail": "FAILED"}


def _assert_edges(got: dict[str, tuple], name: str, metric: int, sample: list[str]) -> None:
    for suffix, status in EDGE_STATUS.items():
        assert got[f"{name}_{suffix}"] == (metric, status, sample), (suffix, got[f"{name}_{suffix}"])


@pytest.fixture
def src(source: Callable[..., Path]) -> Path:
    return source(SOURCE)


def test_accepted_values_counts_values_outside_the_set(src: Path, run) -> None:
    checks = _edges("types", CheckType.ACCEPTED_VALUES, FACT, "event_type", 3, values=ACCEPTED)
    checks += [
        # a share of the table's 6 rows: 50% is 3 (no breach), 49% is 2.94 (breach)
        Check("types_50", CheckType.ACCEPTED_VALUES, FACT, "event_type", fail="50%", values=ACCEPTED),
        Check("types_49", CheckType.ACCEPTED_VALUES, FACT, "event_type", fail="49%", values=ACCEPTED),
        Check("one_type", CheckType.ACCEPTED_VALUES, FACT, "event_type", warn="0", values=("hover",)),
    ]
    got = _outcome(run(src, checks=checks))
    _assert_edges(got, "types", 3, ["hover", "scroll"])
    assert got["types_50"][:2] == (3, "PASSED") and got["types_49"][:2] == (3, "FAILED")
    assert got["one_type"] == (3, "WARN", ["page_view", "purchase", "scroll"])
    result = next(c for c in run(src, checks=checks[:1]).checks)
    assert result.message.startswith(f"{FACT}.event_type: 3 values not in the accepted set of 6 rows")


def test_value_range_counts_numbers_outside_the_bounds(src: Path, run) -> None:
    checks = _edges("dur", CheckType.VALUE_RANGE, FACT, "duration_ms", 3, min=1.0, max=50.0)
    checks += [
        Check("dur_min", CheckType.VALUE_RANGE, FACT, "duration_ms", warn="0", min=10.0),
        Check("dur_max", CheckType.VALUE_RANGE, FACT, "duration_ms", warn="0", max=60.0),
        Check("dur_inclusive", CheckType.VALUE_RANGE, FACT, "duration_ms", warn="0", min=0.0, max=100.0),
    ]
    got = _outcome(run(src, checks=checks))
    _assert_edges(got, "dur", 3, ["0", "100", "60"])  # the NULL duration is not counted
    assert got["dur_min"] == (3, "WARN", ["0", "5", "7"])
    assert got["dur_max"] == (1, "WARN", ["100"])
    assert got["dur_inclusive"] == (0, "PASSED", [])


def test_pattern_counts_texts_not_matching_as_a_whole(src: Path, run) -> None:
    email = r"^[^@ ]+@[^@ ]+\.[^@ ]+$"
    checks = _edges("email", CheckType.PATTERN, DIM, "email", 3, pattern=email)
    checks += [
        # whole-string: "x" alone would match inside every e-mail but not all of one
        Check("unanchored", CheckType.PATTERN, DIM, "email", warn="0", pattern="[a-z]+@x[.]com"),
        Check("ids", CheckType.PATTERN, DIM, "customer_id", warn="0", pattern="C[0-9]"),
    ]
    got = _outcome(run(src, checks=checks))
    _assert_edges(got, "email", 3, ["di@x", "ed smith@x.com", "not-an-email"])  # NULL e-mail not counted
    assert got["unanchored"] == (3, "WARN", ["di@x", "ed smith@x.com", "not-an-email"])
    assert got["ids"] == (0, "PASSED", [])


def test_referential_integrity_counts_orphans_not_anonymous_rows(src: Path, run) -> None:
    keys = {"ref_table": DIM, "ref_column": "customer_id"}
    checks = _edges("users", CheckType.REFERENTIAL_INTEGRITY, FACT, "user_id", 3, **keys)
    checks += [
        Check("users_pct", CheckType.REFERENTIAL_INTEGRITY, FACT, "user_id", warn="49%", fail="50%", **keys),
        Check("customers_have_events", CheckType.REFERENTIAL_INTEGRITY, DIM, "customer_id", warn="0",
              ref_table=FACT, ref_column="user_id"),
    ]
    got = _outcome(run(src, checks=checks))
    _assert_edges(got, "users", 3, ["C8", "C9"])  # C9 twice, one sample value; the NULL user is no orphan
    assert got["users_pct"] == (3, "WARN", ["C8", "C9"])
    # a reference column with NULLs and repeats: each checked row is counted once
    assert got["customers_have_events"] == (3, "WARN", ["C3", "C4", "C5"])


def test_the_sample_is_at_most_5_sorted_texts() -> None:
    assert sample_text([9.0, None, float("nan"), 10, 1.5, "b", "a", 9]) == ["1.5", "10", "9", "a", "b"]
    assert sample_text(str(i) for i in range(10)) == ["0", "1", "2", "3", "4"]
