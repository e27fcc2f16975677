"""Aggregate queries (:mod:`engagement.aggregate`) compiled to DuckDB SQL.

Identifiers are always quoted; values are always bound parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engagement.aggregate import Aggregate, Condition, Fn, Grain, Op
from engagement.identifiers import quote

FUNCTIONS = {Fn.COUNT: "count", Fn.SUM: "sum", Fn.MIN: "min", Fn.MAX: "max"}


def aggregate_sql(query: Aggregate, table_sql: Callable[[str], str]) -> tuple[str, list[Any]]:
    """``query`` as one SELECT and its parameters; ``table_sql`` names a model table (schema-qualified)."""
    params: list[Any] = []  # in the order their ? appear: SELECT, FROM (a nested query), WHERE

    def ref(column: str) -> str:
        side = "l" if query.lookup is not None and column in query.lookup.columns else "b"
        return f"{side}.{quote(column)}"

    def condition(c: Condition) -> str:
        column = ref(c.column)
        if c.op is Op.IS_NULL:
            return f"{column} IS NULL"
        if c.op is Op.NOT_NULL:
            return f"{column} IS NOT NULL"
        params.extend(c.values)
        if c.op is Op.IN:
            return f"{column} IN ({', '.join('?' for _ in c.values)})"
        return f"{column} {'<>' if c.op is Op.NE else c.op.value} ?"

    def conditions(items: tuple[Condition, ...]) -> str:
        return " AND ".join(f"({condition(c)})" for c in items)

    selected = []
    for g in query.by:
        value = f"CAST({ref(g.column)} AS DATE)" if g.grain is Grain.DAY else ref(g.column)
        selected.append(f"{value} AS {quote(g.output)}")
    for m in query.measures:
        if m.fn is Fn.COUNT_DISTINCT:
            value = f"count(DISTINCT {ref(m.column or '')})"
        else:
            value = f"{FUNCTIONS[m.fn]}({ref(m.column) if m.column else '*'})"
        if m.where:
            value += f" FILTER (WHERE {conditions(m.where)})"
        selected.append(f"{value} AS {quote(m.name)}")

    if query.nested is not None:
        inner, inner_params = aggregate_sql(query.nested, table_sql)
        source = f"({inner}) AS b"
        params.extend(inner_params)
    else:
        source = f"{table_sql(query.table)} AS b"
    if query.lookup is not None:
        lk = query.lookup
        # One row per key: a duplicated key on the lookup side never multiplies the base rows.
        picked = ", ".join(f"max({quote(c)}) AS {quote(c)}" for c in lk.columns)
        source += (
            f" LEFT JOIN (SELECT {quote(lk.key)} AS _lookup_key, {picked} FROM {table_sql(lk.table)} "
            f"GROUP BY {quote(lk.key)}) AS l ON b.{quote(lk.on)} = l._lookup_key"
        )
    sql = f"SELECT {', '.join(selected)} FROM {source}"
    if query.where:
        sql += f" WHERE {conditions(query.where)}"
    if query.by:
        sql += f" GROUP BY {', '.join(str(i + 1) for i in range(len(query.by)))}"
    keys = query.sort_keys()
    if keys:
        sql += " ORDER BY " + ", ".join(f"{quote(n)} {'DESC' if desc else 'ASC'} NULLS LAST" for n, desc in keys)
    if query.limit is not None:
        sql += f" LIMIT {int(query.limit)}"
    return sql, params
