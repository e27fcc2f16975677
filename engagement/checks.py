"""Turning check measurements into outcomes: thresholds, statuses and messages."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from engagement.model import Check, CheckType
from engagement.results import CheckResult, CheckStatus, Metric


SAMPLE_SIZE = 5  # failing values kept per check


def sample_text(values: Iterable[Any]) -> list[str]:
    """Failing values as the sample shows them: text, sorted, whole numbers without ``.0``
    (engines return a BIGINT as int, float or Decimal), NULL/NaN left out."""
    out = set()
    for v in values:
        if v is None or (isinstance(v, float) and v != v):
            continue
        if isinstance(v, (float, Decimal)) and math.isfinite(v) and v == int(v):
            v = int(v)
        out.add(str(v))
    return sorted(out)[:SAMPLE_SIZE]


def threshold(spec: str | None, total: int) -> float | None:
    """An absolute threshold, or a ``N%`` share of ``total`` rows."""
    if spec is None:
        return None
    spec = spec.strip()
    if spec.endswith("%"):
        return float(spec[:-1]) / 100.0 * total
    return float(spec)


def _bound(value: float | None, missing: str) -> str:
    if value is None:
        return missing
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _range(check: Check) -> str:
    return f"[{_bound(check.min, '-inf')}, {_bound(check.max, '+inf')}]"


def evaluate(check: Check, metric: Metric) -> CheckResult:
    """The outcome of one check. Counts of bad rows go WARN/FAILED *above* their
    thresholds; ``row_count`` goes WARN/FAILED *below* its minimums."""
    warn, fail = threshold(check.warn, metric.total), threshold(check.fail, metric.total)
    spec = ", ".join(f"{k}: {'<' if check.type is CheckType.ROW_COUNT else '>'} {v}"
                     for k, v in (("warn", check.warn), ("fail", check.fail)) if v is not None)
    subject = f"{check.table}.{check.column}" if check.column else check.table
    if metric.error is not None or metric.value is None:
        status = CheckStatus.ERROR
        message = f"{check.name}: could not measure {subject}: {metric.error}"
    else:
        value = metric.value
        if check.type is CheckType.ROW_COUNT:
            breached = lambda limit: limit is not None and value < limit  # noqa: E731
        else:
            breached = lambda limit: limit is not None and value > limit  # noqa: E731
        status = CheckStatus.FAILED if breached(fail) else CheckStatus.WARN if breached(warn) else CheckStatus.PASSED
        what = {
            CheckType.NULL_COUNT: "null or empty values",
            CheckType.DUPLICATE_COUNT: "duplicate values",
            CheckType.ROW_COUNT: "rows",
            CheckType.ACCEPTED_VALUES: "values not in the accepted set",
            CheckType.VALUE_RANGE: f"values outside {_range(check)}",
            CheckType.PATTERN: f"values not matching {check.pattern}",
            CheckType.REFERENTIAL_INTEGRITY: f"values not found in {check.ref_table}.{check.ref_column}",
        }[check.type]
        message = f"{subject}: {value:g} {what} of {metric.total} rows ({spec}) -> {status.value}"
    return CheckResult(
        check_name=check.name,
        table_name=check.table,
        column_name=check.column,
        metric_value=metric.value,
        rows_checked=metric.total if metric.error is None else None,
        warn_threshold=warn,
        fail_threshold=fail,
        thresholds=spec,
        status=status,
        dimension=check.dimension,
        message=message,
        failing_sample=metric.sample,
        owner=check.owner,
    )


def evaluate_all(checks: Sequence[Check], metrics: Sequence[Metric]) -> list[CheckResult]:
    return [evaluate(c, m) for c, m in zip(checks, metrics, strict=True)]
