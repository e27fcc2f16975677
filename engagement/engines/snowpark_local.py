"""Substitutes for what Snowpark *local testing* lacks. Used only by ``SnowparkEngine(local=True)``.

Local testing (``Session.builder.config("local_testing", True)``) runs DataFrame plans in
pandas, in memory. It is how the Snowflake engine is proven offline; it is not a warehouse.
Each substitute below exists only because local testing lacks something or gets it wrong,
and none of them runs against an account. Each one, and what real Snowflake does instead:

``install_patches()``
    ``@patch`` implementations, registered once per process, of SQL functions local testing
    does not implement: ``TRIM``, ``REGEXP_LIKE``, ``TRY_PARSE_JSON``, ``IS_OBJECT``,
    ``TYPEOF``, ``CHECK_JSON``. Also replacements for built-in emulations that are wrong:
    ``GET`` and ``STRIP_NULL_VALUE`` put their results on a fresh row index (after a filter
    the values land on other rows) and ``GET`` raises on a JSON array; ``TO_CHAR`` of a
    VARIANT string JSON-escapes it (``é`` becomes ``\\u00e9``); ``CONVERT_TIMEZONE`` raises
    on zero rows and may declare a result NOT NULL that holds NULL. On Snowflake all of these
    are native functions and nothing is patched. Patches are process-global: they apply to
    every local session in the process.
``LocalRawLoader``
    Appends each file's records with ``create_dataframe(rows, schema)`` and
    ``save_as_table(mode="append", column_order="name")``. Snowflake: the engine writes the
    records as Parquet, PUTs them to ``@ENGAGEMENT_STAGE`` and runs ``COPY INTO`` (local
    testing has no ``copy_into_table``).
``snapshot_restore()``
    Copies the tables a step writes and copies them back if the step raises. Snowflake:
    ``BEGIN`` / ``COMMIT`` / ``ROLLBACK`` (local testing has no ``session.sql``, hence no
    transactions).
``filtered()``
    A filter whose result is stored afresh (``cache_result``), so that expressions computed
    on it line up with its rows again (local testing keeps the pre-filter pandas index, and
    built-in functions return a fresh one), and that survives an empty input (filtering an
    empty frame can lose every column locally). Snowflake: a plain ``filter``; the frame
    stays one lazy query.
``is_null()``
    IS NULL for a numeric column: local testing keeps a NULL number as NaN, which
    ``Column.is_null()`` does not see. Snowflake: ``is_null()``.
``nullable()``
    A column declared nullable: after a LEFT join local testing keeps the NOT NULL of the
    joined table's column, and storing the frame (``filtered()``) then refuses the NULLs
    the join brought. Snowflake: the column as it is.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import snowflake.snowpark.functions as F
from snowflake.snowpark import Column, DataFrame, Session
from snowflake.snowpark.mock import ColumnEmulator, ColumnType, patch
from snowflake.snowpark.mock._functions import MockedFunctionRegistry
from snowflake.snowpark.types import (
    BooleanType,
    DataType,
    StringType,
    StructType,
    TimestampTimeZone,
    TimestampType,
    VariantType,
)

from engagement.engines.snowpark_types import struct_type
from engagement.model import Table

SNAPSHOT_SUFFIX = "__ENGAGEMENT_SNAPSHOT"


# -- patches ---------------------------------------------------------------------------------
# A patch receives one ColumnEmulator (a pandas Series) per argument; a literal argument
# arrives as a Series too (one value, or one per row). Results must keep the input's index.


def _missing(value: Any) -> bool:
    """SQL NULL as local testing stores it: None, or NaN in a column pandas made float."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _constant(arg: Any, size: int) -> list[Any]:
    """A literal argument as one value per row."""
    if isinstance(arg, ColumnEmulator):
        if len(arg) == size:
            return list(arg)
        return [arg.iloc[0] if len(arg) else None] * size
    return [arg] * size


def _result(values: list[Any], like: ColumnEmulator, sf_type: Any) -> ColumnEmulator:
    return ColumnEmulator(values, index=like.index, sf_type=ColumnType(sf_type, True), dtype=object)


def _strict_json(text: str) -> Any:
    """``json.loads`` without Python's extensions (NaN, Infinity), which Snowflake rejects."""
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


_UNPARSED = object()


def _parse(value: Any) -> Any:
    if _missing(value):
        return _UNPARSED
    try:
        return _strict_json(str(value))
    except ValueError:
        return _UNPARSED


def _trim(e: ColumnEmulator, trim_string: ColumnEmulator | None = None) -> ColumnEmulator:
    """TRIM: removes blanks only (Snowflake's default), or the given characters."""
    chars = _constant(trim_string, len(e)) if trim_string is not None else [" "] * len(e)
    values = [None if _missing(v) else str(v).strip(c) for v, c in zip(e, chars)]
    return _result(values, e, StringType())


def _regexp_like(subject: ColumnEmulator, pattern: ColumnEmulator,
                 parameters: ColumnEmulator | None = None) -> ColumnEmulator:
    """REGEXP_LIKE: the whole subject must match; NULL in, NULL out.

    ``fullmatch`` also keeps ``$`` from matching before a final newline, as Python's
    ``re.match`` (behind local ``Column.rlike``) would.
    """
    patterns = _constant(pattern, len(subject))
    values = [None if _missing(v) or _missing(p) else re.fullmatch(str(p), str(v), re.S) is not None
              for v, p in zip(subject, patterns)]
    return _result(values, subject, BooleanType())


def _try_parse_json(e: ColumnEmulator) -> ColumnEmulator:
    """TRY_PARSE_JSON: the parsed value, or NULL for invalid text.

    Local testing cannot hold a JSON ``null`` apart from SQL NULL; both become None.
    """
    values = [None if (v := _parse(x)) is _UNPARSED else v for x in e]
    return _result(values, e, VariantType())


def _is_object(col: ColumnEmulator) -> ColumnEmulator:
    return _result([None if v is None else isinstance(v, dict) for v in col], col, BooleanType())


def _sf_typeof(value: Any) -> str | None:
    """Snowflake's TYPEOF names for parsed JSON values."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "INTEGER"
    if isinstance(value, float):  # Snowflake says DECIMAL for 1.5, DOUBLE for 1e3; only INTEGER matters here
        return "DECIMAL"
    if isinstance(value, str):
        return "VARCHAR"
    if isinstance(value, dict):
        return "OBJECT"
    if isinstance(value, list):
        return "ARRAY"
    return type(value).__name__.upper()


def _typeof(col: ColumnEmulator) -> ColumnEmulator:
    return _result([_sf_typeof(v) for v in col], col, StringType())


def _check_json(col: ColumnEmulator) -> ColumnEmulator:
    """CHECK_JSON: NULL when the text is valid JSON (or NULL), else the error."""
    values = []
    for v in col:
        if _missing(v):
            values.append(None)
            continue
        try:
            _strict_json(str(v))
            values.append(None)
        except ValueError as exc:
            values.append(str(exc))
    return _result(values, col, StringType())


def _get(col: ColumnEmulator, key: ColumnEmulator) -> ColumnEmulator:
    """GET(object, key) / GET(array, index), NULL for anything else; keeps the row index."""
    values = []
    for obj, k in zip(col, _constant(key, len(col))):
        if isinstance(obj, dict):
            values.append(obj.get(k))
        elif isinstance(obj, list) and isinstance(k, int) and 0 <= k < len(obj):
            values.append(obj[k])
        else:
            values.append(None)
    return _result(values, col, col.sf_type.datatype if col.sf_type else VariantType())


def _strip_null_value(col: ColumnEmulator) -> ColumnEmulator:
    # A JSON null is already None locally (see _try_parse_json); on Snowflake this turns a
    # variant null into SQL NULL.
    return _result([None if _missing(v) else v for v in col], col,
                   col.sf_type.datatype if col.sf_type else VariantType())


# Built-in implementations that a patch below wraps, captured by install_patches().
_BUILTINS: dict[str, Callable[..., ColumnEmulator]] = {}


def _convert_timezone(*args: ColumnEmulator) -> ColumnEmulator:
    """The built-in CONVERT_TIMEZONE, fixed for no rows (it raises) and for NULLs (it can
    declare a result NOT NULL that holds NULL, which a later write then refuses)."""
    if any(isinstance(a, ColumnEmulator) and len(a) == 0 for a in args):
        return ColumnEmulator([], sf_type=ColumnType(TimestampType(TimestampTimeZone.TZ), True), dtype=object)
    result = _BUILTINS["convert_timezone"](*args)
    result.sf_type = ColumnType(result.sf_type.datatype, True)
    return result


def _variant_text(value: Any) -> str | None:
    """A JSON value as Snowflake's TO_VARCHAR shows it: a string as is, anything else as JSON."""
    if _missing(value):
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _to_char(c: ColumnEmulator, format: ColumnEmulator | None = None) -> ColumnEmulator:
    """TO_CHAR (TO_VARCHAR); for a VARIANT, without the built-in's damage (it JSON-escapes strings:
    ``é`` becomes ``\\u00e9``, ``"`` becomes ``\\"``, and strips quotes at both ends)."""
    if c.sf_type is not None and isinstance(c.sf_type.datatype, VariantType):
        return _result([_variant_text(v) for v in c], c, StringType())
    return _BUILTINS["to_char"](c, format)


PATCHES: dict[str, Callable[..., ColumnEmulator]] = {
    "trim": _trim,
    "regexp_like": _regexp_like,
    "try_parse_json": _try_parse_json,
    "is_object": _is_object,
    "typeof": _typeof,
    "check_json": _check_json,
    "get": _get,
    "strip_null_value": _strip_null_value,
    "convert_timezone": _convert_timezone,
    "to_char": _to_char,
}


def installed_patches() -> dict[str, bool]:
    """For each patched function: whether the registered implementation is ours."""
    registry = MockedFunctionRegistry.get_or_create()
    found = {}
    for name, impl in PATCHES.items():
        function = registry.get_function(name)
        found[name] = function is not None and function.impl is impl
    return found


def install_patches() -> None:
    """Register every patch once per process; later calls change nothing."""
    registry = MockedFunctionRegistry.get_or_create()
    for name, is_ours in installed_patches().items():
        if is_ours:
            continue
        if name in ("convert_timezone", "to_char"):
            _BUILTINS[name] = registry.get_function(name).impl
        patch(name)(PATCHES[name])


# -- raw load ----------------------------------------------------------------------------------


class LocalRawLoader:
    """Loads records into a raw table in memory (Snowflake: Parquet, PUT, COPY INTO): the
    files' records are gathered and written once, like the one COPY INTO on Snowflake."""

    def __init__(self, session: Session, table_name: str, schema: StructType) -> None:
        self.session, self.table_name, self.schema = session, table_name, schema
        self.batches: list[pa.Table] = []

    def add(self, records: pa.Table) -> None:
        """Keep one file's records (columns named like the raw table, lineage included)."""
        if records.num_rows:
            self.batches.append(records)

    def upload(self) -> None:
        """Nothing to upload: the records stay in memory."""

    def cleanup(self) -> None:
        """Nothing staged to remove."""

    def finish(self, expected: int) -> None:
        """Append every kept record to the table in one write."""
        if not self.batches:
            return
        names = [f.name.lower() for f in self.schema.fields]
        rows = [list(r) for batch in self.batches for r in zip(*(batch.column(n).to_pylist() for n in names))]
        # A list of lists with an explicit schema keeps None as NULL and ints as ints
        # (pandas input would turn them into NaN and floats); append by name, never by position.
        frame = self.session.create_dataframe(rows, self.schema)
        frame.write.save_as_table(self.table_name, mode="append", column_order="name")
        self.batches = []


# -- transactions and frames -------------------------------------------------------------------


@contextmanager
def snapshot_restore(session: Session, tables: Sequence[Sequence[str]]) -> Iterator[None]:
    """Restore ``tables`` (each ``[database, schema, name]``) if the block raises.

    The local stand-in for a transaction: a copy of each table is taken before the block
    and copied back on any exception, so the step leaves the previous state.
    """
    copies = [(list(t), [*t[:-1], t[-1] + SNAPSHOT_SUFFIX]) for t in tables]
    for table, copy in copies:
        session.table(table).write.save_as_table(copy, mode="overwrite")
    try:
        yield
    except BaseException:
        for table, copy in copies:
            # mode="truncate" keeps the table's own schema (types and NOT NULL flags).
            session.table(copy).write.save_as_table(table, mode="truncate")
        raise
    finally:
        for _, copy in copies:
            session.table(copy).drop_table()


def materialize(frame: DataFrame) -> DataFrame:
    """A frame stored afresh, so later expressions align with its rows."""
    return frame.cache_result()


def filtered(frame: DataFrame, condition: Column) -> DataFrame:
    """``frame.filter(condition)``, stored afresh (see :func:`materialize`).

    Filtering an *empty* frame on a condition such as ``is_null()`` or a literal loses every
    column locally (storing the result then raises, or stores no columns); an empty frame is
    therefore returned as is.
    """
    try:
        stored = materialize(frame.filter(condition))
        if stored.columns:
            return stored
    except ValueError:  # pandas: "No objects to concatenate"
        pass
    if frame.count() == 0:
        return frame
    raise RuntimeError("local testing lost the columns of a filtered frame that has rows")


def is_null(column: Column) -> Column:
    """IS NULL for a numeric column under local testing, where a NULL number is NaN."""
    return column.is_null() | column.equal_nan()


def nullable(column: Column, data_type: DataType) -> Column:
    """The same values, declared nullable (see the module's notes)."""
    return F.iff(column.is_null(), F.lit(None).cast(data_type), column)


# -- the back end ------------------------------------------------------------------------------


class LocalBackend:
    """:class:`engagement.engines.snowflake_backend.SnowflakeBackend`'s interface on local testing:
    snapshots for transactions, in-memory loads, ``create_dataframe`` for values, no tags."""

    name = "snowpark-local"
    local = True
    stages = False  # no PUT, COPY or LIST locally

    def __init__(self, session: Session) -> None:
        self.session = session
        install_patches()

    def location(self, database: str, schema: str) -> str:
        return "snowpark-local (in memory)"

    def query_tag(self, tag: str) -> None:
        """Nothing: local testing runs no ALTER SESSION."""

    def filtered(self, frame: DataFrame, condition: Column) -> DataFrame:
        return filtered(frame, condition)

    def parse_json(self, text: Column) -> Column:
        """Python's parser: duplicate keys allowed, the last wins (as on Snowflake with 'd')."""
        return F.try_parse_json(text)

    def is_null_number(self, column: Column) -> Column:
        return is_null(column)

    def nullable(self, column: Column, data_type: DataType) -> Column:
        return nullable(column, data_type)

    @contextmanager
    def transaction(self, tables: Sequence[Sequence[str]], resize: bool) -> Iterator[None]:
        with snapshot_restore(self.session, tables):
            yield

    def create_tables(self, database: str, schema: str) -> None:
        """An empty frame with each model table's schema, kept if present (no session.sql locally)."""
        from engagement.engines.snowflake_ddl import qualified
        from engagement.model import TABLES

        for table in TABLES:
            empty = self.session.create_dataframe([], struct_type(table))
            empty.write.save_as_table(qualified(database, schema, table), mode="ignore")

    def raw_loader(self, run_id: str, raw: Table, database: str, schema: str) -> LocalRawLoader:
        from engagement.engines.snowflake_ddl import qualified

        return LocalRawLoader(self.session, qualified(database, schema, raw), struct_type(raw))

    def values(self, table: Table, data: Sequence[Sequence[Any]]) -> DataFrame:
        return self.session.create_dataframe([list(r) for r in data], struct_type(table))
