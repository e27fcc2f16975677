"""Aggregate queries (:mod:`engagement.aggregate`) compiled to Snowpark DataFrame operations.

The same plan runs on Snowflake and under Snowpark local testing. Two habits keep local
testing right: the lookup is a LEFT join on a shared column name (an expression join is
a cross product there), and every condition is made a boolean that is never NULL so a
NULL never reaches an operator (see ``_condition``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import snowflake.snowpark.functions as F
from snowflake.snowpark import Column, DataFrame
from snowflake.snowpark.types import DataType
from snowflake.snowpark.functions import col, lit

from engagement.aggregate import Aggregate, Condition, Fn, Grain, Measure, Op
from engagement.engines.snowpark import _all
from engagement.engines.snowpark_types import snowpark_type
from engagement.model import ColumnType

FUNCTIONS = {Fn.COUNT: F.count, Fn.SUM: F.sum, Fn.MIN: F.min, Fn.MAX: F.max}


def _literal(value: Any, kind: ColumnType) -> Column:
    return lit(value).cast(snowpark_type(kind))


class Backend(Protocol):
    """What the aggregates need from :mod:`engagement.engines.snowflake_backend` or its local twin."""

    def filtered(self, frame: DataFrame, condition: Column) -> DataFrame: ...

    def is_null_number(self, column: Column) -> Column: ...

    def nullable(self, column: Column, data_type: DataType) -> Column: ...


def _condition(query: Aggregate, c: Condition, backend: Backend) -> Column:
    """The condition as a boolean that is never NULL: a comparison with NULL is false, as in a WHERE."""
    column = col(c.column)
    kind = query.column_type(c.column)
    numeric = kind in (ColumnType.BIGINT, ColumnType.DOUBLE)
    missing = backend.is_null_number(column) if numeric else column.is_null()
    if c.op is Op.IS_NULL:
        return missing
    if c.op is Op.NOT_NULL:
        return ~missing
    # The coalesce keeps NULL away from the operator (local testing raises on it, or answers
    # True for NULL != x); the iff then makes the NULL rows false, as SQL does.
    values = [_literal(v, kind) for v in c.values]
    safe = F.coalesce(column, values[0])
    if c.op is Op.IN:
        test = safe.isin(values)
    else:
        test = {
            Op.EQ: safe == values[0],
            Op.NE: safe != values[0],
            Op.LT: safe < values[0],
            Op.LE: safe <= values[0],
            Op.GT: safe > values[0],
            Op.GE: safe >= values[0],
        }[c.op]
    return F.iff(missing, lit(False), test)


def _measure_input(query: Aggregate, m: Measure, backend: Backend) -> Column | None:
    """What the measure aggregates, as a column of its own: the column, NULL where ``where``
    does not hold; 1/0 for a count of matching rows; None for a plain row count."""
    if m.column is None:
        if not m.where:
            return None
        return F.iff(_all(_condition(query, c, backend) for c in m.where), lit(1), lit(0))
    if not m.where:
        return col(m.column)
    keep = _all(_condition(query, c, backend) for c in m.where)
    return F.iff(keep, col(m.column), lit(None).cast(snowpark_type(query.column_type(m.column))))


def _measure(m: Measure, value: Column | None) -> Column:
    if value is None:
        return F.count(lit(1)).alias(m.name)
    if m.fn is Fn.COUNT_DISTINCT:
        return F.count_distinct(value).alias(m.name)
    if m.column is None:  # the 1/0 of a count of matching rows
        return F.sum(value).alias(m.name)
    return FUNCTIONS[m.fn](value).alias(m.name)


def aggregate_rows(query: Aggregate, table: Callable[[str], DataFrame], backend: Backend) -> list[tuple[Any, ...]]:
    """Run ``query``; ``table`` opens a model table; ``backend`` filters frames and says how NULL
    looks (see snowpark_local)."""
    return [tuple(row) for row in aggregate_frame(query, table, backend).collect()]


def aggregate_frame(query: Aggregate, table: Callable[[str], DataFrame], backend: Backend) -> DataFrame:
    """``query`` as a lazy frame with its result names as columns (a nested query reads one)."""
    if query.nested is not None:
        frame = aggregate_frame(query.nested, table, backend)
    else:
        frame = table(query.table)
    if query.lookup is not None:
        lk = query.lookup
        # One row per key, the key renamed to the base column it matches: a join on a shared name.
        key = col(lk.key)
        picked = [F.max(col(c)) for c in lk.columns]
        # columns are nullable after a LEFT join (the key too: the base's NULLs); local testing must be told
        key = backend.nullable(key, snowpark_type(query.column_type(lk.on)))
        picked = [backend.nullable(p, snowpark_type(query.column_type(c))) for p, c in zip(picked, lk.columns)]
        keys = table(lk.table).select(key.alias(lk.on), *[col(c) for c in lk.columns])
        keyed = keys.group_by(col(lk.on)).agg(*[p.alias(c) for p, c in zip(picked, lk.columns)])
        frame = frame.join(keyed, on=lk.on, how="left")
    if query.where:
        frame = backend.filtered(frame, _all(_condition(query, c, backend) for c in query.where))
    # Grouping values and measure inputs become columns of their own first (_g0…, _m0…), and the
    # aggregation reads only plain columns: local testing cannot group by an aliased column, and
    # evaluates an expression inside an aggregate against misaligned rows (a NULL group's sums
    # come out NaN). On Snowflake these are projections the optimizer folds away.
    for i, g in enumerate(query.by):
        frame = frame.with_column(f"_g{i}", F.to_date(col(g.column)) if g.grain is Grain.DAY else col(g.column))
    measures = []
    for i, m in enumerate(query.measures):
        value = _measure_input(query, m, backend)
        if value is not None:
            frame = frame.with_column(f"_m{i}", value)
            value = col(f"_m{i}")
        measures.append(_measure(m, value))
    if query.by:
        grouped = frame.group_by(*[col(f"_g{i}") for i in range(len(query.by))]).agg(*measures)
        result = grouped.select(*[col(f"_g{i}").alias(g.output) for i, g in enumerate(query.by)],
                                *[col(m.name) for m in query.measures])
    else:
        result = frame.agg(*measures)
    keys = query.sort_keys()
    if keys:
        result = result.sort([col(n).desc_nulls_last() if desc else col(n).asc_nulls_last() for n, desc in keys])
    if query.limit is not None:
        result = result.limit(int(query.limit))
    return result
