"""What the Snowflake engine needs from a real account, and nothing else: transactions,
query tags, warehouse resizing, DDL, loading through the internal stage, and small frames
of Python values. :class:`engagement.engines.snowpark_local.LocalBackend` is the same
interface on Snowpark local testing; the engine (:mod:`engagement.engines.snowpark`) calls
only this interface, so its rules, MERGEs, checks and logs are one code path on both.

Snowflake facts relied on (docs.snowflake.com):

* DDL autocommits: "each DDL statement executes as its own separate transaction", and a
  DDL statement inside an explicit transaction commits it first (sql-reference/transactions).
  Hence nothing here creates anything between ``BEGIN`` and ``COMMIT`` — no temporary table
  (Snowpark's ``create_dataframe`` of more than a few values, or with NOT NULL fields, creates
  one), no file format; resizing wraps the transaction instead of running inside it.
* A Parquet COPY reads pyarrow's TIMESTAMP(MICROS) as a timestamp only with
  ``USE_LOGICAL_TYPE = TRUE`` (sql-reference/sql/create-file-format, TYPE = PARQUET).
* ``SHOW WAREHOUSES LIKE`` takes a case-insensitive pattern in which ``_`` and ``%`` are
  wildcards (sql-reference/sql/show-warehouses), so the row is picked by its exact name.
* ``SHOW WAREHOUSES`` reports sizes as ``X-Small`` … ``6X-Large`` while ``ALTER WAREHOUSE``
  takes ``XSMALL`` … ``X6LARGE`` (sql-reference/sql/alter-warehouse): both are compared in
  one canonical form (:func:`engagement.config.canonical_size`).
"""

from __future__ import annotations

import json
import logging
import secrets
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq
import snowflake.snowpark.functions as F
from snowflake.snowpark import Column, DataFrame, Row, Session
from snowflake.snowpark.exceptions import SnowparkSQLException
from snowflake.snowpark.functions import col, lit
from snowflake.snowpark.types import DataType

from engagement.config import canonical_size
from engagement.engines.snowflake_ddl import TYPES as SQL_TYPES
from engagement.engines.snowflake_ddl import add_column_sql, columns_query, create_table_sql, qualified, views_sql
from engagement.engines.snowpark_types import snowpark_type
from engagement.exceptions import ConfigError, WarehouseError
from engagement.model import TABLES, ColumnType, Table

log = logging.getLogger("engagement")
STAGE = "ENGAGEMENT_STAGE"
SETUP_SCRIPT = "sql/01_setup.sql"
STAGE_SCRIPT = "sql/02_stages.sql"
TIMESTAMP_FORMAT = "YYYY-MM-DD HH24:MI:SS.FF6"  # how values() writes a datetime (Python: %Y-%m-%d %H:%M:%S.%f)


def row_value(row: Row, name: str) -> Any:
    """A field of a result row by case-insensitive name (SHOW / COPY output)."""
    return {k.lower(): v for k, v in row.as_dict().items()}.get(name.lower())


class RawLoader(Protocol):
    """Loads one raw table: ``add`` each file's records, ``upload`` before the step's transaction,
    ``finish`` inside it, ``cleanup`` after it (committed or not)."""

    def add(self, records: pa.Table) -> None: ...

    def upload(self) -> None: ...

    def finish(self, expected: int) -> None: ...

    def cleanup(self) -> None: ...


class StageLoader:
    """Each file's records as Parquet in a local folder, then ONE PUT of the whole folder (before
    the transaction), ONE COPY INTO (inside it) and ONE REMOVE (after it), so the statements of a
    load do not grow with its files.

    PUT and REMOVE stay outside ``BEGIN`` … ``COMMIT``: an explicit transaction "should contain
    only DML statements and query statements" (sql-reference/transactions), and neither can be
    rolled back. The folder in the stage is new for every attempt (``<run_id>/<raw table>/<token>/``),
    so a retried ingest never loads an earlier attempt's files.

    The COPY names each column (``$1:"name"::TYPE``) instead of MATCH_BY_COLUMN_NAME, which fails
    on an empty Parquet string ("an empty column value (for example, "col1": "") produces an
    error": sql-reference/sql/copy-into-table) — and an empty CSV field is one.
    """

    def __init__(self, session: Session, table: Table, table_name: str, stage_dir: str) -> None:
        self.session, self.table, self.table_name, self.stage_dir = session, table, table_name, stage_dir
        self.tmp = tempfile.TemporaryDirectory(prefix="engagement-stage-")
        self.files = 0
        self.uploaded = False

    def add(self, records: pa.Table) -> None:
        """Write one file's records as Parquet, to be PUT with the others."""
        if records.num_rows == 0:
            return
        self.files += 1
        pq.write_table(records, Path(self.tmp.name) / f"{self.files:05d}.parquet")

    def upload(self) -> None:
        """PUT every Parquet file in one statement."""
        if not self.files:
            return
        pattern = (Path(self.tmp.name) / "*.parquet").as_posix()
        self.uploaded = True  # before the PUT: a PUT cut short leaves files behind to remove
        try:
            self.session.file.put(pattern, self.stage_dir, auto_compress=False, overwrite=True, parallel=4)
        except Exception as exc:  # connector and Snowpark raise different types for this
            if "does not exist" in str(exc).lower():
                raise ConfigError(
                    f"stage {self.stage_dir.split('/')[0]} does not exist; run {STAGE_SCRIPT} once to create it"
                ) from None
            raise

    def finish(self, expected: int) -> None:
        """COPY the uploaded files into the raw table; raise unless every record arrived."""
        loaded = 0
        if self.uploaded:
            columns = [c.name for c in self.table.columns]
            result = (
                self.session.read.option("INFER_SCHEMA", False).option("USE_LOGICAL_TYPE", True)
                .parquet(self.stage_dir)
                .copy_into_table(self.table_name, target_columns=columns, force=True, transformations=[
                    F.sql_expr(f'$1:"{c.name}"::{SQL_TYPES[c.type]}') for c in self.table.columns])
            )
            loaded = sum(int(row_value(r, "rows_loaded") or 0) for r in result)
        if loaded != expected:
            raise WarehouseError(
                f"COPY INTO {self.table_name} loaded {loaded} rows from {self.stage_dir} but {expected} "
                "records were read; the load was rolled back"
            )

    def cleanup(self) -> None:
        """REMOVE the attempt's folder from the stage and the local files, loaded or not. Best effort:
        a REMOVE that fails is logged, and never fails a committed step nor hides the step's error."""
        try:
            if self.uploaded:
                self.session.sql(f"REMOVE {self.stage_dir}").collect()
        except Exception as exc:  # the connector's error types vary; its first line says what happened
            log.warning("could not remove staged files %s (remove them by hand): %s", self.stage_dir,
                        (str(exc).strip().splitlines() or [""])[0])
        finally:
            self.tmp.cleanup()


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value != value:
        return None
    return value


def _from_variant(value: Column, kind: ColumnType) -> Column:
    """A VARIANT element written by :func:`_jsonable` as the model type, parsed with an explicit format."""
    text = value.cast(snowpark_type(ColumnType.VARCHAR))
    if kind is ColumnType.TIMESTAMP:
        return F.to_timestamp_ntz(text, lit(TIMESTAMP_FORMAT))
    if kind is ColumnType.DATE:
        return F.to_date(text, lit("YYYY-MM-DD"))
    return value.cast(snowpark_type(kind))


class SnowflakeBackend:
    """A real account (see the module docstring)."""

    name = "snowflake"
    local = False
    stages = True

    def __init__(self, session: Session, load_size: str | None = None) -> None:
        self.session = session
        self.load_size = load_size

    def location(self, database: str, schema: str) -> str:
        """``snowflake://<account>/<DB>.<SCHEMA>``."""
        account = (self.session.get_current_account() or "").strip('"')
        return f"snowflake://{account}/{database.upper()}.{schema.upper()}"

    def query_tag(self, tag: str) -> None:
        """Tag the statements that follow (one ALTER SESSION, only when the tag changes)."""
        if self.session.query_tag != tag:
            self.session.query_tag = tag

    def filtered(self, frame: DataFrame, condition: Column) -> DataFrame:
        return frame.filter(condition)

    def parse_json(self, text: Column) -> Column:
        """TRY_PARSE_JSON allowing duplicate keys (the last wins), as DuckDB and Python's parser do.

        The default ('s', strict) returns NULL for a document with any duplicate key
        (docs: sql-reference/functions/try_parse_json); the reader already refuses documents
        that repeat a key of the model (engagement.json_documents), so only other keys reach here.
        """
        return F.call_function("TRY_PARSE_JSON", text, F.lit("d"))

    def is_null_number(self, column: Column) -> Column:
        return column.is_null()

    def nullable(self, column: Column, data_type: DataType) -> Column:
        return column

    @contextmanager
    def transaction(self, tables: Sequence[Sequence[str]], resize: bool) -> Iterator[None]:
        """One atomic step: ``BEGIN`` … ``COMMIT``, ``ROLLBACK`` on any error; resized around it."""
        with self._warehouse_size(resize):
            self.session.sql("BEGIN").collect()
            try:
                yield
            except BaseException:
                self.session.sql("ROLLBACK").collect()
                raise
            self.session.sql("COMMIT").collect()

    @contextmanager
    def _warehouse_size(self, resize: bool) -> Iterator[None]:
        """Run the block on a warehouse resized to ``load_size``, then restore its size."""
        warehouse = self.session.get_current_warehouse() if resize and self.load_size else None
        if not warehouse:
            yield
            return
        name = warehouse.strip('"')
        shown = self.session.sql(f"SHOW WAREHOUSES LIKE '{name}'").collect()
        exact = [r for r in shown if str(row_value(r, "name")) == name]
        previous = canonical_size(str(row_value(exact[0], "size"))) if exact else None
        if previous is None or previous == self.load_size:
            yield
            return
        self.session.sql(f"ALTER WAREHOUSE {warehouse} SET WAREHOUSE_SIZE = {self.load_size}").collect()
        try:
            yield
        finally:
            self.session.sql(f"ALTER WAREHOUSE {warehouse} SET WAREHOUSE_SIZE = {previous}").collect()

    def create_tables(self, database: str, schema: str) -> None:
        """Every model table that is missing, and the columns a newer model added."""
        for table in TABLES:
            try:
                self.session.sql(create_table_sql(table, database, schema)).collect()
            except SnowparkSQLException as exc:
                if "does not exist" not in str(exc).lower():
                    raise
                raise ConfigError(
                    f"schema {database.upper()}.{schema.upper()} does not exist or this role cannot "
                    f"use it; run {SETUP_SCRIPT} once, or set ENGAGEMENT_SNOWFLAKE_DATABASE / _SCHEMA"
                ) from None
        # One query finds the columns an older version lacked (normally none); one ALTER each.
        present = {(t.lower(), c.lower()) for t, c in self.session.sql(columns_query(database, schema)).collect()}
        for table in TABLES:
            for column in table.columns:
                if (table.name, column.name) not in present:
                    self.session.sql(add_column_sql(table, column.name, database, schema)).collect()
        for view in views_sql(database, schema):
            self.session.sql(view.rstrip(";")).collect()

    def raw_loader(self, run_id: str, raw: Table, database: str, schema: str) -> RawLoader:
        stage_dir = f"@{qualified(database, schema, STAGE)}/{run_id}/{raw.name}/{secrets.token_hex(4)}/"
        return StageLoader(self.session, raw, qualified(database, schema, raw), stage_dir)

    def values(self, table: Table, data: Sequence[Sequence[Any]]) -> DataFrame:
        """``data`` (rows in the table's column order) as a frame of one statement whatever its size:
        one JSON literal, flattened; no temporary table, so it may be used inside a transaction."""
        payload = json.dumps([[_jsonable(v) for v in row] for row in data], allow_nan=False, default=str)
        flat = self.session.table_function(F.flatten(F.parse_json(lit(payload))))
        return flat.select(*[_from_variant(col("VALUE")[i], c.type).alias(c.name)
                             for i, c in enumerate(table.columns)])
