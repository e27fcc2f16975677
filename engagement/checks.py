"""Turning check measurements into outcomes: thresholds, statuses and messages."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from engagement.model import Check, CheckType
from engagement.results import CheckResult, CheckStatus, Metric

SAMPLE_SIZE = 5  # failing values kept per check
HOURS = {"m": 1 / 60, "h": 1.0, "d": 24.0}  # freshness threshold units, in hours


@dataclass(frozen=True)
class Load:
    """The latest successful load of a raw table: the run that did it and the records it read."""

    run_id: str
    rows_read: int


@dataclass(frozen=True)
class CheckContext:
    """What a check needs beyond the tables: the time, the run, the loads and the history.

    The pipeline builds it from the log tables (:func:`engagement.pipeline.check_context`).
    """

    run_id: str
    now: datetime  # naive UTC, like the warehouse's timestamps
    loads: Mapping[str, Load] = field(default_factory=dict)  # raw table name -> its latest load
    history: Mapping[str, Sequence[int]] = field(default_factory=dict)  # check name -> earlier row counts, newest first


def _instant(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    raise ValueError(f"the value {str(value)[:40]!r} is not a date or timestamp; "
                     "fix or remove the rows holding it and rerun")


def _missing(value: Any) -> bool:
    return value is None or value != value  # noqa: PLR0124 - None or NaT


def freshness_metric(measured: tuple[Any, Any, Any], total: int, now: datetime) -> Metric:
    """Hours from the newest value not after ``now`` to ``now``; no value at all breaches every threshold.

    ``measured`` is (newest value not after now, how many are after now, the latest of those).
    Values after the check time are ignored, else one future-dated event hides stale data;
    they make the check at least WARN, and the message says how many there are.
    """
    newest, future, latest = measured
    future = int(future or 0)
    warning = None
    if future:
        warning = (f"{future} value(s) after the check time ignored, the latest "
                   f"{_instant(latest).isoformat(sep=' ')}")
    if _missing(newest):  # nothing has arrived (or only future-dated values): as stale as it gets
        note = "has no value at or before the check time" if future else "has no value at all"
        return Metric(None, total, note=f"{note}: nothing has arrived", warning=warning)
    newest = _instant(newest)
    hours = (now - newest).total_seconds() / 3600
    sample = [newest.isoformat(sep=" ")] + ([f"after the check time: {future}"] if future else [])
    return Metric(round(hours, 3), total, sample, warning=warning)


def volume_metric(count: int, history: Sequence[int], window: int) -> Metric:
    """How far ``count`` is from the mean of the last ``window`` counts: the metric is the
    distance in rows, ``total`` the mean (so a % threshold is a share of the baseline)."""
    earlier = list(history)[:window]
    if not earlier:
        return Metric(None, count, note=f"{count} rows; no earlier run to compare with yet")
    baseline = sum(earlier) / len(earlier)
    change = count - baseline
    share = f"{change / baseline:+.1%}" if baseline else "from 0"
    note = f"{count} rows vs a mean of {baseline:g} over the last {len(earlier)} run(s) ({share})"
    return Metric(abs(change), round(baseline), note=note, rows=count)


def rejected_metric(by_reason: Mapping[str, int], load: Load | None, table: str) -> Metric:
    """The records the latest load of ``table`` rejected, out of those it read; the sample
    gives the count per reason."""
    if load is None:
        return Metric(None, 0, error=f"{table} has not been loaded yet; run `engagement run`")
    rejected = sum(by_reason.values())
    sample = [f"{reason}: {n}" for reason, n in sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))]
    return Metric(float(rejected), load.rows_read, sample[:SAMPLE_SIZE], note=f"in run {load.run_id}")


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
    """An absolute threshold, a ``N%`` share of ``total`` rows, or a duration in hours (``36h``, ``2d``, ``90m``)."""
    if spec is None:
        return None
    spec = spec.strip()
    if spec.endswith("%"):
        return float(spec[:-1]) / 100.0 * total
    if spec[-1:] in HOURS:
        return float(spec[:-1]) * HOURS[spec[-1]]
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
    if metric.error is not None:
        status = CheckStatus.ERROR
        message = f"{check.name}: could not measure {subject}: {metric.error}"
    elif metric.value is None:
        # freshness of an empty column: breaches every threshold; volume_change's first run: passes
        if check.type is CheckType.FRESHNESS:
            status = CheckStatus.FAILED if fail is not None else CheckStatus.WARN
        else:
            status = CheckStatus.PASSED
        flagged = f"; {metric.warning}" if metric.warning else ""
        message = f"{subject}: {metric.note}{flagged} ({spec}) -> {status.value}"
    else:
        value = metric.value
        if check.type is CheckType.ROW_COUNT:
            breached = lambda limit: limit is not None and value < limit
        else:
            breached = lambda limit: limit is not None and value > limit
        status = CheckStatus.FAILED if breached(fail) else CheckStatus.WARN if breached(warn) else CheckStatus.PASSED
        if metric.warning and status is CheckStatus.PASSED:
            status = CheckStatus.WARN
        what = {
            CheckType.NULL_COUNT: "null or empty values",
            CheckType.DUPLICATE_COUNT: "duplicate values",
            CheckType.ROW_COUNT: "rows",
            CheckType.ACCEPTED_VALUES: "values not in the accepted set",
            CheckType.VALUE_RANGE: f"values outside {_range(check)}",
            CheckType.PATTERN: f"values not matching {check.pattern}",
            CheckType.REFERENTIAL_INTEGRITY: f"values not found in {check.ref_table}.{check.ref_column}",
        }.get(check.type)
        if check.type is CheckType.FRESHNESS:
            newest = metric.sample[0] if metric.sample else "?"
            flagged = f"; {metric.warning}" if metric.warning else ""
            message = (f"{subject}: newest value {newest} is {value:g} h old{flagged} ({spec}, in hours)"
                       f" -> {status.value}")
        elif check.type is CheckType.VOLUME_CHANGE:
            message = f"{subject}: {metric.note}, {value:g} rows off ({spec}) -> {status.value}"
        elif check.type is CheckType.REJECTED_ROWS:
            message = (f"{subject}: {value:g} of {metric.total} records rejected {metric.note} ({spec})"
                       f" -> {status.value}")
        else:
            message = f"{subject}: {value:g} {what} of {metric.total} rows ({spec}) -> {status.value}"
    return CheckResult(
        check_name=check.name,
        table_name=check.table,
        column_name=check.column,
        metric_value=metric.value,
        rows_checked=metric.rows if metric.error is None else None,
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


# Types measured by one aggregate over their own table, shared with the table's other such checks.
SHARED_PASS = frozenset(CheckType) - {CheckType.REFERENTIAL_INTEGRITY, CheckType.REJECTED_ROWS}
# Types whose failing values are worth a sample query when some rows fail.
SAMPLED = frozenset({CheckType.ACCEPTED_VALUES, CheckType.VALUE_RANGE, CheckType.PATTERN,
                     CheckType.REFERENTIAL_INTEGRITY})


def regroup(flat: Sequence[Any], sizes: Sequence[int]) -> list[Any]:
    """A shared pass's values per check: one value, or a tuple for a check of several measures."""
    out, i = [], 0
    for n in sizes:
        out.append(flat[i] if n == 1 else tuple(flat[i:i + n]))
        i += n
    return out


def table_passes(checks: Sequence[Check]) -> dict[str, list[int]]:
    """The positions of the checks that share one pass over each table, by table, in order."""
    passes: dict[str, list[int]] = {}
    for i, check in enumerate(checks):
        if check.type in SHARED_PASS:
            passes.setdefault(check.table, []).append(i)
    return passes


def finish_metric(check: Check, value: Any, total: int, context: CheckContext) -> Metric:
    """A shared-pass aggregate (a count, or the newest value for freshness) as the check's Metric."""
    if check.type is CheckType.FRESHNESS:
        return freshness_metric(value, total, context.now)
    if check.type is CheckType.VOLUME_CHANGE:
        return volume_metric(int(value), context.history.get(check.name, ()), check.window or 7)
    return Metric(float(value or 0), total)


def error_metric(exc: BaseException) -> Metric:
    """A check that could not be measured: the first line of the engine's error."""
    return Metric(None, 0, error=(str(exc).strip().splitlines() or [type(exc).__name__])[0])


def measure_checks(
    checks: Sequence[Check],
    context: CheckContext,
    *,
    table_pass: Callable[[str, Sequence[Check], datetime], tuple[list[Any], int]],
    own_pass: Callable[[Check, CheckContext], Metric],
    sample: Callable[[Check], list[str]],
    errors: tuple[type[BaseException], ...],
) -> list[Metric]:
    """Every check's Metric, in order, from an engine's three queries: ``table_pass`` (one
    aggregate over a table for all its shared-pass checks), ``own_pass`` (a check measured
    alone) and ``sample`` (failing values). An ``errors`` exception makes that check ERROR
    and the others are still measured; so does any error turning a value into a Metric."""
    out: list[Metric | None] = [None] * len(checks)

    def finish(i: int, value: Any, total: int) -> Metric:
        try:
            return finish_metric(checks[i], value, total, context)
        except Exception as exc:  # noqa: BLE001 - one check's odd value never takes the others down
            return error_metric(exc)

    for table, positions in table_passes(checks).items():
        try:
            values, total = table_pass(table, [checks[i] for i in positions], context.now)
        except errors:
            # One check broke the shared query: measure each alone to find it.
            for i in positions:
                try:
                    (value,), total = table_pass(table, [checks[i]], context.now)
                    out[i] = finish(i, value, total)
                except errors as exc:
                    out[i] = error_metric(exc)
            continue
        for i, value in zip(positions, values, strict=True):
            out[i] = finish(i, value, total)
    for i, check in enumerate(checks):
        try:
            metric = out[i] = out[i] or own_pass(check, context)
            if check.type in SAMPLED and metric.error is None and metric.value:
                metric.sample = sample(check)
        except Exception as exc:  # noqa: BLE001 - one check that cannot be measured is its own ERROR
            out[i] = error_metric(exc)
    return [m for m in out if m is not None]
