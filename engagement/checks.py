"""Turning check measurements into outcomes: thresholds, statuses and messages."""

from __future__ import annotations

from collections.abc import Sequence

from engagement.model import Check, CheckType
from engagement.results import CheckResult, CheckStatus, Metric


def threshold(spec: str | None, total: int) -> float | None:
    """An absolute threshold, or a ``N%`` share of ``total`` rows."""
    if spec is None:
        return None
    spec = spec.strip()
    if spec.endswith("%"):
        return float(spec[:-1]) / 100.0 * total
    return float(spec)


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
        }[check.type]
        message = f"{subject}: {value:g} {what} of {metric.total} rows ({spec}) -> {status.value}"
    return CheckResult(
        check_name=check.name,
        table_name=check.table,
        column_name=check.column,
        metric_value=metric.value,
        warn_threshold=warn,
        fail_threshold=fail,
        thresholds=spec,
        status=status,
        dimension=check.dimension,
        message=message,
        failing_sample=metric.sample,
    )


def evaluate_all(checks: Sequence[Check], metrics: Sequence[Metric]) -> list[CheckResult]:
    return [evaluate(c, m) for c, m in zip(checks, metrics, strict=True)]
