"""Aggregate queries declared as data: what the dashboard asks a warehouse for.

An :class:`Aggregate` names a model table (or another aggregate, whose rows it then
aggregates further), filters, the columns to group by, the measures, an optional lookup
of a dimension by its key, an order and a limit. Each
engine compiles it to its own dialect (DuckDB SQL with quoted identifiers, Snowpark
DataFrame operations) and runs it inside the warehouse. Only the aggregated rows come
back, as a pandas frame typed the same way on every engine (:func:`typed_frame`).

Semantics are SQL's: a comparison with NULL matches nothing (use ``IS_NULL``),
``COUNT`` of a column counts its non-NULL values, ``SUM``/``MIN``/``MAX`` over no rows
are NULL, and without ``by`` the result has exactly one row. With ``by`` and no
measures the result holds the distinct combinations of the grouped values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import pandas as pd

from engagement.identifiers import IDENTIFIER
from engagement.model import TABLES_BY_NAME, ColumnType


class Fn(StrEnum):
    """Aggregate functions."""

    COUNT = "count"  # rows (no column) or the column's non-NULL values
    COUNT_DISTINCT = "count_distinct"
    SUM = "sum"
    MIN = "min"
    MAX = "max"


class Op(StrEnum):
    """Comparison operators of a :class:`Condition`."""

    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    IN = "in"
    IS_NULL = "is null"
    NOT_NULL = "is not null"


class Grain(StrEnum):
    """Truncation of a timestamp before grouping."""

    DAY = "day"  # the UTC calendar date


NULL_OPS = (Op.IS_NULL, Op.NOT_NULL)
COUNTS = (Fn.COUNT, Fn.COUNT_DISTINCT)


@dataclass(frozen=True)
class Condition:
    """``column op value``; ``value`` is a tuple for ``IN`` and absent for the NULL tests."""

    column: str
    op: Op
    value: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "op", Op(self.op))
        if self.op is Op.IN:
            if isinstance(self.value, (str, bytes)) or not isinstance(self.value, Iterable):
                raise ValueError(f"condition on {self.column}: IN needs a list of values, got {self.value!r}")
            values = tuple(self.value)
            if not values:
                raise ValueError(f"condition on {self.column}: IN needs at least one value")
            object.__setattr__(self, "value", values)
        elif self.op in NULL_OPS:
            if self.value is not None:
                raise ValueError(f"condition on {self.column}: {self.op.value} takes no value")
        elif self.value is None:
            raise ValueError(f"condition on {self.column}: {self.op.value} needs a value (use IS_NULL for NULL)")

    @property
    def values(self) -> tuple[Any, ...]:
        """The compared values: one for a comparison, several for IN, none for the NULL tests."""
        if self.op is Op.IN:
            return self.value
        return () if self.op in NULL_OPS else (self.value,)


@dataclass(frozen=True)
class Group:
    """A grouping column, optionally truncated (``grain``), named ``name`` in the result."""

    column: str
    grain: Grain | None = None
    name: str | None = None

    @property
    def output(self) -> str:
        return self.name or self.column


@dataclass(frozen=True)
class Measure:
    """``fn(column)`` over the rows matching ``where`` (all rows of the group without it)."""

    name: str
    fn: Fn
    column: str | None = None
    where: tuple[Condition, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "fn", Fn(self.fn))
        object.__setattr__(self, "where", tuple(self.where))


@dataclass(frozen=True)
class Lookup:
    """A LEFT join of ``table`` by its key ``key`` to the base table's column ``on``.

    The lookup side is reduced to one row per key first (so a duplicated key never
    multiplies rows); ``columns`` of it become available by their own names, NULL for
    rows without a match. Putting ``key`` in ``columns`` tells matched rows apart.
    """

    table: str
    key: str
    on: str
    columns: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))


@dataclass(frozen=True)
class Aggregate:
    """One aggregate query over a model table, or over the rows of another aggregate (whose
    result names are then the columns). Validated against the model when built."""

    table: str | Aggregate
    measures: tuple[Measure, ...] = ()
    by: tuple[Group, ...] = ()
    where: tuple[Condition, ...] = ()
    lookup: Lookup | None = None
    order_by: tuple[str, ...] = ()  # result names, each optionally followed by " desc"
    limit: int | None = None
    _types: dict[str, ColumnType] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by = tuple(Group(b) if isinstance(b, str) else b for b in self.by)
        object.__setattr__(self, "by", by)
        for name in ("measures", "where", "order_by"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        self._validate()

    # -- what engines use --------------------------------------------------------------------

    @property
    def nested(self) -> Aggregate | None:
        """The aggregate this one reads, or None when it reads a model table."""
        return self.table if isinstance(self.table, Aggregate) else None

    @property
    def source(self) -> str:
        """The model table at the bottom (for messages and errors)."""
        return self.table.source if isinstance(self.table, Aggregate) else self.table

    @property
    def tables(self) -> list[str]:
        """Every model table the query reads, without repeats."""
        inner = self.table.tables if isinstance(self.table, Aggregate) else [self.table]
        return list(dict.fromkeys([*inner, *([self.lookup.table] if self.lookup else [])]))

    @property
    def outputs(self) -> list[str]:
        """The result's column names, in order: the groups, then the measures."""
        return [g.output for g in self.by] + [m.name for m in self.measures]

    def column_type(self, name: str) -> ColumnType:
        """The type of a column of the base table or of the lookup."""
        return self._types[name]

    def sort_keys(self) -> list[tuple[str, bool]]:
        """``order_by`` as (result name, descending)."""
        out = []
        for item in self.order_by:
            name, _, direction = item.partition(" ")
            out.append((name, direction.strip().lower() == "desc"))
        return out

    def output_type(self, name: str) -> ColumnType:
        """The logical type of a result column (counts are BIGINT; a day is a DATE)."""
        for g in self.by:
            if g.output == name:
                return ColumnType.DATE if g.grain is Grain.DAY else self.column_type(g.column)
        m = next(m for m in self.measures if m.name == name)
        if m.fn in COUNTS:
            return ColumnType.BIGINT
        return self.column_type(m.column or "")

    # -- validation --------------------------------------------------------------------------

    def _validate(self) -> None:
        if isinstance(self.table, Aggregate):
            types = {name: self.table.output_type(name) for name in self.table.outputs}
        elif self.table in TABLES_BY_NAME:
            types = {c.name: c.type for c in TABLES_BY_NAME[self.table].columns}
        else:
            raise ValueError(f"aggregate: {self.table!r} is not a table of the model")
        if self.lookup is not None:
            types.update(self._lookup_types(self.lookup, types))
        self._types.update(types)
        if not self.by and not self.measures:
            raise ValueError(f"aggregate on {self.source}: give at least one group or measure")
        for c in self.where:
            self._check_condition(c)
        for g in self.by:
            self._check_column(g.column, "group")
            if g.grain is Grain.DAY and types[g.column] not in (ColumnType.TIMESTAMP, ColumnType.DATE):
                raise ValueError(f"aggregate on {self.source}: day grain needs a timestamp, {g.column} is {types[g.column]}")
        for m in self.measures:
            if m.column is None:
                if m.fn is not Fn.COUNT:
                    raise ValueError(f"aggregate on {self.source}: measure {m.name} ({m.fn}) needs a column")
            else:
                self._check_column(m.column, f"measure {m.name}")
                if m.fn is Fn.SUM and types[m.column] not in (ColumnType.BIGINT, ColumnType.DOUBLE):
                    raise ValueError(f"aggregate on {self.source}: cannot sum {m.column} ({types[m.column]})")
            for c in m.where:
                self._check_condition(c)
        names = self.outputs
        for name in names:
            if not IDENTIFIER.match(name):
                raise ValueError(f"aggregate on {self.source}: result name {name!r} is not a plain identifier")
        if len({n.lower() for n in names}) != len(names):
            raise ValueError(f"aggregate on {self.source}: result names repeat: {', '.join(names)}")
        for name, _ in self.sort_keys():
            if name not in names:
                raise ValueError(f"aggregate on {self.source}: cannot order by {name!r}, not in {', '.join(names)}")
        if self.limit is not None and (isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1):
            raise ValueError(f"aggregate on {self.source}: limit must be a positive integer, got {self.limit!r}")

    def _lookup_types(self, lookup: Lookup, base: dict[str, ColumnType]) -> dict[str, ColumnType]:
        if lookup.table not in TABLES_BY_NAME:
            raise ValueError(f"aggregate: lookup {lookup.table!r} is not a table of the model")
        other = {c.name: c.type for c in TABLES_BY_NAME[lookup.table].columns}
        if lookup.key not in other:
            raise ValueError(f"aggregate: lookup table {lookup.table} has no column {lookup.key!r}")
        if lookup.on not in base:
            raise ValueError(f"aggregate: {self.source} has no column {lookup.on!r} to look up {lookup.table} by")
        if not lookup.columns:
            raise ValueError(f"aggregate: lookup of {lookup.table} brings no columns")
        out = {}
        for name in lookup.columns:
            if name not in other:
                raise ValueError(f"aggregate: lookup table {lookup.table} has no column {name!r}")
            if name in base:
                raise ValueError(f"aggregate: lookup column {lookup.table}.{name} has the name of a column of {self.source}")
            out[name] = other[name]
        return out

    def _check_column(self, name: str, what: str) -> None:
        if name not in self._types:
            raise ValueError(f"aggregate on {self.source}: {what} names an unknown column {name!r}")

    def _check_condition(self, c: Condition) -> None:
        self._check_column(c.column, "a condition")
        kind = self._types[c.column]
        for v in c.values:
            if not _fits(v, kind):
                raise ValueError(f"aggregate on {self.source}: {c.column} is {kind}, cannot compare it with {v!r}")


def _fits(value: Any, kind: ColumnType) -> bool:
    """Whether a Python value can be compared with a column of ``kind`` the same way on every engine."""
    if kind is ColumnType.VARCHAR:
        return isinstance(value, str)
    if kind is ColumnType.BIGINT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is ColumnType.DOUBLE:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is ColumnType.TIMESTAMP:
        return isinstance(value, datetime) and value.tzinfo is None
    return isinstance(value, date) and not isinstance(value, datetime)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def typed_frame(query: Aggregate, rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """The rows an engine fetched for ``query`` as the frame every engine returns.

    Columns are the query's result names in order. Counts are ``int64`` (0, never NULL);
    other BIGINT values ``Int64``; DOUBLE ``float64``; DATE and TIMESTAMP
    ``datetime64[us]``; text ``object`` with None for NULL.
    """
    data: dict[str, Any] = {}
    counts = {m.name for m in query.measures if m.fn in COUNTS}
    for i, name in enumerate(query.outputs):
        values = [None if _missing(r[i]) else r[i] for r in rows]
        kind = query.output_type(name)
        if name in counts:
            data[name] = pd.Series([0 if v is None else int(v) for v in values], dtype="int64")
        elif kind is ColumnType.BIGINT:
            data[name] = pd.array([None if v is None else int(v) for v in values], dtype="Int64")
        elif kind is ColumnType.DOUBLE:
            data[name] = pd.Series([None if v is None else float(v) for v in values], dtype="float64")
        elif kind in (ColumnType.DATE, ColumnType.TIMESTAMP):
            data[name] = pd.Series(pd.to_datetime(values), dtype="datetime64[us]")
        else:
            data[name] = pd.Series([None if v is None else str(v) for v in values], dtype=object)
    return pd.DataFrame(data, columns=query.outputs)
