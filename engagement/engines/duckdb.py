"""The embedded engine: one DuckDB warehouse file, rules compiled to DuckDB SQL."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from engagement.aggregate import Aggregate, typed_frame
from engagement.checks import (
    SAMPLE_SIZE,
    CheckContext,
    measure_checks,
    regroup,
    rejected_metric,
    sample_text,
)
from engagement.engines.base import FileCallback, RunContext
from engagement.engines.duckdb_aggregate import aggregate_sql
from engagement.exceptions import (
    ConfigError,
    MissingTableError,
    SourceError,
    WarehouseError,
    WarehouseLockedError,
)
from engagement.identifiers import quote
from engagement.model import (
    DATE_PATTERN,
    NOT_A_STRING,
    OUT_OF_YEARS,
    REJECTED,
    TABLES,
    TIMESTAMP_PATTERN,
    YEARS,
    Check,
    CheckType,
    ColumnType,
    Field,
    Reason,
    Rule,
    Source,
    SourceFormat,
    Table,
)
from engagement.readers import (
    iter_batches,
    read_ahead,
    read_file,
    read_csv_records,
    read_json_records,
)
from engagement.results import IngestCounts, MergeCounts, Metric
from engagement.sources import SourceFile
from engagement.views import CURRENT_REJECTED_RECORDS, current_rejected_records_sql

TYPES = {
    ColumnType.VARCHAR: "VARCHAR",
    ColumnType.BIGINT: "BIGINT",
    ColumnType.DOUBLE: "DOUBLE",
    ColumnType.DATE: "DATE",
    ColumnType.TIMESTAMP: "TIMESTAMP",
}
LOCK_PID = re.compile(r"PID (\d+)")


def regex_problem(pattern: str) -> str | None:
    """Why DuckDB's regexp (RE2: no backreferences, no lookaround) refuses ``pattern``, or None."""
    con = duckdb.connect(":memory:")
    try:
        con.execute("SELECT regexp_matches('', ?)", [pattern]).fetchall()
    except duckdb.Error as exc:
        return (str(exc).strip().splitlines() or [""])[0]
    finally:
        con.close()
    return None


def lit(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


class DuckDBEngine:
    """The embedded default engine: a single DuckDB file, no account needed."""

    name = "duckdb"

    def __init__(self, path: str | Path, *, schema: str = "main", read_only: bool = False,
                 memory_limit: str | None = None, lock_wait: float = 0.0) -> None:
        self.path = Path(path)
        self.schema = schema
        self.read_only = read_only
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            raise ConfigError(f"warehouse {self.path} does not exist yet; check --warehouse, or run `engagement run` first")
        self.con = self._connect(lock_wait)
        self.con.execute("SET TimeZone = 'UTC'")
        if memory_limit:
            # DuckDB spills what passes the limit to <warehouse>.tmp/ (sorts, joins, the MERGE)
            self.con.execute(f"SET memory_limit = {lit(memory_limit)}")

    def _connect(self, lock_wait: float) -> duckdb.DuckDBPyConnection:
        """Open the file; while another process holds it, retry for up to ``lock_wait`` seconds."""
        deadline, pause = time.monotonic() + lock_wait, 0.05
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=self.read_only)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise WarehouseError(f"cannot open warehouse {self.path}: {exc}") from None
                if time.monotonic() + pause > deadline:
                    pid = LOCK_PID.search(str(exc))
                    who = f"process {pid.group(1)}" if pid else "another process"
                    waited = f" (waited {lock_wait:g} s)" if lock_wait else ""
                    raise WarehouseLockedError(
                        f"warehouse {self.path} is in use by {who}{waited}; wait for it to finish, "
                        "or pass another --warehouse"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.5)

    # -- helpers ---------------------------------------------------------------------------

    @property
    def location(self) -> str:
        return str(self.path.resolve())

    def _t(self, table: Table | str) -> str:
        name = table.name if isinstance(table, Table) else table
        return f"{quote(self.schema)}.{quote(name)}"

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def close(self) -> None:
        self.con.close()

    # -- schema ----------------------------------------------------------------------------

    def setup(self) -> None:
        with self._transaction():
            self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(self.schema)}")
            views = [name for (name,) in self.con.execute(
                "SELECT view_name FROM duckdb_views() WHERE schema_name = ? AND NOT internal", [self.schema]).fetchall()
                if name in {t.name for t in TABLES}]
            if views:
                raise ConfigError(
                    f"warehouse {self.path} has a view named {views[0]} where the model keeps a table; "
                    f"drop or rename it (DROP VIEW {views[0]}), or pass another --warehouse")
            for table in TABLES:
                self.con.execute(self._create_sql(table, table.name, "CREATE TABLE IF NOT EXISTS"))
                self._add_missing_columns(table)
            self.con.execute(f"CREATE OR REPLACE VIEW {self._t(CURRENT_REJECTED_RECORDS)} AS "
                             f"{current_rejected_records_sql(self._t)}")

    def source_root(self, source: str) -> None:
        """None: the embedded engine reads every source through this process."""
        return

    def _create_sql(self, table: Table, name: str, verb: str) -> str:
        """``verb`` (CREATE TABLE …) ``name`` with the columns, types and NOT NULLs of the model table."""
        cols = ", ".join(f"{quote(c.name)} {TYPES[c.type]}{'' if c.nullable else ' NOT NULL'}" for c in table.columns)
        # No PRIMARY KEY: the MERGE keeps keys unique and the checks verify it; an ART
        # index on 10M keys would cost memory and slow every load.
        return f"{verb} {self._t(name)} ({cols})"

    def _add_missing_columns(self, table: Table) -> None:
        """Bring a table made by an older version up to the model: add its new nullable columns."""
        present = {
            name for (name,) in self.con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?",
                [self.schema, table.name],
            ).fetchall()
        }
        for c in table.columns:
            if c.name in present:
                continue
            if not c.nullable:
                raise WarehouseError(
                    f"{table.name} in {self.path} lacks the required column {c.name} (made by an older version); "
                    "move that warehouse file away and run again"
                )
            self.con.execute(f"ALTER TABLE {self._t(table)} ADD COLUMN {quote(c.name)} {TYPES[c.type]}")

    # -- ingest ----------------------------------------------------------------------------

    def ingest(self, run: RunContext, source: Source, files: Sequence[SourceFile],
               on_file: FileCallback | None = None) -> IngestCounts:
        raw = source.raw
        reader = read_csv_records if source.format is SourceFormat.CSV else read_json_records
        read = 0
        # The files go to a private loading table, one commit each: DuckDB keeps a transaction's
        # new rows in memory, so one transaction over 10M records held them all (GBs). The raw
        # table is swapped for it below in one transaction, with the rejects: a crash before
        # then leaves the raw table (and rejected_records) as they were.
        loading, validated = f"_loading_{raw.name}", self._validated_name(source)
        loading_validated = f"_loading{validated}"
        self.con.execute(self._create_sql(raw, loading, "CREATE OR REPLACE TABLE"))
        unreadable: dict[str, str] = {}
        for file, records in read_ahead(files, lambda f: read_file(f, reader)):
            if isinstance(records, SourceError):
                unreadable[file.relpath] = str(records)
                continue
            with self._transaction():
                for batch in iter_batches(records):
                    self.con.register("_batch", batch)
                    cols = ", ".join(quote(n) for n in batch.column_names)
                    self.con.execute(
                        f"INSERT INTO {self._t(loading)} ({cols}, source_file, run_id, loaded_at) "
                        f"SELECT {cols}, ?, ?, ? FROM _batch",
                        [file.relpath, run.run_id, run.started_at],
                    )
                    self.con.unregister("_batch")
            read += records.num_rows
            del records  # before the next file is read ahead: two in memory, not three
            if on_file:
                on_file(file, read)
        with self._transaction():
            # The rules run once, here; the rejects and the MERGE read their outcome.
            self.con.execute(
                f"CREATE OR REPLACE TABLE {self._t(loading_validated)} AS "
                f"{self._validated_rows_sql(source, self._t(loading))}"
            )
            for table, new_table in ((raw.name, loading), (validated, loading_validated)):
                self.con.execute(f"DROP TABLE IF EXISTS {self._t(table)}")
                self.con.execute(f"ALTER TABLE {self._t(new_table)} RENAME TO {quote(table)}")
            self.con.execute(
                f"INSERT INTO {self._t(REJECTED)} "
                "(run_id, source_table, source_file, source_row, reason, detail, payload, rejected_at) "
                f"SELECT ?, ?, source_file, source_row, reason, detail, payload, ? "
                f"FROM {self._t(validated)} WHERE reason IS NOT NULL",
                [run.run_id, raw.name, run.started_at],
            )
            rejected = dict(
                self.con.execute(
                    f"SELECT reason, count(*) FROM {self._t(REJECTED)} WHERE run_id = ? AND source_table = ? "
                    "GROUP BY reason",
                    [run.run_id, raw.name],
                ).fetchall()
            )
        return IngestCounts(raw.name, files=len(files) - len(unreadable), read=read, rejected=rejected,
                            unreadable=unreadable)

    # -- rules compiled to SQL -------------------------------------------------------------

    @staticmethod
    def _years_sql(i: int, f: Field) -> tuple[str, str]:
        """(invalid condition, detail): a date or timestamp of the right shape, its year outside YEARS."""
        t = f"_t{i}"
        pattern = DATE_PATTERN if f.rule is Rule.DATE else TIMESTAMP_PATTERN
        bad = (f"regexp_full_match({t}, {lit(pattern)}) "
               f"AND NOT (substr({t}, 1, 4) BETWEEN '{YEARS[0]}' AND '{YEARS[1]}')")
        return bad, f"{lit(f.source + ' ' + chr(39))} || {t} || {lit(OUT_OF_YEARS)}"

    def _field_sql(self, i: int, f: Field) -> tuple[str, str | None, str]:
        """(typed value, invalid condition, detail) for field ``i`` of a source.

        They read the columns :meth:`_validated_sql` extracts once per row:
        ``_s{i}`` the value as text, ``_t{i}`` the same but NULL when missing or
        blank, ``_j{i}`` its JSON type (JSON sources, for the rules that read it; NULL when absent or null).
        """
        s, t, j = f"_s{i}", f"_t{i}", f"_j{i}"
        label = f.source
        if f.rule is Rule.DATE:
            bad = f"NOT (regexp_full_match({t}, {lit(DATE_PATTERN)}) AND TRY_CAST({t} AS DATE) IS NOT NULL)"
            return f"TRY_CAST({t} AS DATE)", bad, f"'{label} ''' || {t} || ''' is not a valid YYYY-MM-DD date'"
        if f.rule is Rule.TIMESTAMP:
            ok = (
                f"{j} = 'VARCHAR' AND regexp_full_match({t}, {lit(TIMESTAMP_PATTERN)}) "
                f"AND TRY_CAST({t} AS TIMESTAMPTZ) IS NOT NULL"
            )
            typed = f"CAST(TRY_CAST({t} AS TIMESTAMPTZ) AS TIMESTAMP)"
            return typed, f"NOT ({ok})", f"'{label} ''' || {s} || ''' is not ISO 8601'"
        if f.rule is Rule.NON_NEGATIVE_INT:
            # coalesce: an integer too large for BIGINT must be rejected, not stored as NULL
            ok = f"{j} IN ('BIGINT', 'UBIGINT') AND coalesce(TRY_CAST({s} AS BIGINT) >= 0, false)"
            detail = f"'{label} must be an integer >= 0, got ' || {s}"
            return f"TRY_CAST({s} AS BIGINT)", f"({j} IS NOT NULL AND NOT ({ok}))", detail
        return t, None, "NULL"

    @staticmethod
    def _validated_name(source: Source) -> str:
        """The table of ``source.raw``'s rows judged by the rules (see :meth:`ingest`)."""
        return f"_validated_{source.raw.name}"

    def _validated_rows_sql(self, source: Source, raw: str) -> str:
        """What the validated table keeps of :meth:`_validated_sql`: the raw text of rejected rows only."""
        return (
            "SELECT * REPLACE (CASE WHEN reason IS NOT NULL THEN payload END AS payload) "
            f"FROM ({self._validated_sql(source, raw)})"
        )

    def _validated_sql(self, source: Source, raw: str) -> str:
        """Every row of the relation ``raw`` (shaped like ``source.raw``) with its typed fields
        and, when rejected, its reason and detail.

        Each field is extracted once (json_valid, then one json_transform per row); every rule reads
        the extracted columns.
        """
        extract = []
        if source.format is SourceFormat.CSV:
            base = f"SELECT *, raw_text AS payload FROM {raw}"
            for i, f in enumerate(source.fields):
                value = f"NULLIF(TRIM({quote(f.source)}), '')"
                value = f"lower({value})" if f.lower else value
                extract += [f"{value} AS _s{i}", f"{value} AS _t{i}"]
            malformed, malformed_detail = "parse_error IS NOT NULL", "parse_error"
        else:
            # A field whose rule looks at its JSON type is kept as JSON; the others are read as
            # text straight away (the same text ->> '$' gives, without parsing the value again).
            typed_json = {Rule.TIMESTAMP, Rule.NON_NEGATIVE_INT}

            def as_json(f: Field) -> bool:  # a key must be a JSON string: its type is read too
                return f.rule in typed_json or f.key

            spec = lit(json.dumps({f.source: "JSON" if as_json(f) else "VARCHAR" for f in source.fields}))
            # Valid JSON that opens with "{" is an object: an anchored regex is cheaper than json_type
            # (a third parse of the document).
            is_object = (
                r"parse_error IS NULL AND json_valid(payload) AND regexp_matches(payload, '^[ \t\r\n]*\{')"
            )
            base = f"SELECT *, CASE WHEN {is_object} THEN json_transform(payload, {spec}) END AS _doc FROM {raw}"
            for i, f in enumerate(source.fields):
                field = f"_doc.{quote(f.source)}"
                if as_json(f):
                    extract += [f"{field} ->> '$' AS _s{i}", f"json_type({field}) AS _j{i}"]
                else:
                    extract += [f"{field} AS _s{i}"]
            malformed = "_doc IS NULL"
            malformed_detail = (
                "coalesce(parse_error, CASE WHEN json_valid(payload) THEN 'not a JSON object' ELSE 'not valid JSON' END)"
            )
        values, whens = [], [f"WHEN {malformed} THEN {lit(Reason.MALFORMED_ROW)}"]
        details = [f"WHEN {malformed} THEN {malformed_detail}"]
        invalid_whens, invalid_details = [], []
        for i, f in enumerate(source.fields):
            typed, bad, detail = self._field_sql(i, f)
            values.append(f"{typed} AS {quote(f.target)}")
            if f.key:
                whens.append(f"WHEN _t{i} IS NULL THEN {lit(Reason.MISSING_KEY)}")
                details.append(f"WHEN _t{i} IS NULL THEN '{f.source} is missing or empty'")
            if f.required:
                invalid_whens.append(f"WHEN _t{i} IS NULL THEN {lit(Reason.INVALID_VALUE)}")
                invalid_details.append(f"WHEN _t{i} IS NULL THEN '{f.source} is missing'")
            if f.key and source.format is SourceFormat.JSON:
                bad_key = f"_j{i} <> 'VARCHAR'"
                invalid_whens.append(f"WHEN {bad_key} THEN {lit(Reason.INVALID_VALUE)}")
                invalid_details.append(f"WHEN {bad_key} THEN {lit(f.source + NOT_A_STRING)} || _s{i}")
            if f.rule in (Rule.DATE, Rule.TIMESTAMP):
                years, years_detail = self._years_sql(i, f)
                invalid_whens.append(f"WHEN {years} THEN {lit(Reason.INVALID_VALUE)}")
                invalid_details.append(f"WHEN {years} THEN {years_detail}")
            if bad:
                guard = "" if f.rule is Rule.NON_NEGATIVE_INT else f"_t{i} IS NOT NULL AND "
                invalid_whens.append(f"WHEN {guard}{bad} THEN {lit(Reason.INVALID_VALUE)}")
                invalid_details.append(f"WHEN {guard}{bad} THEN {detail}")
        whens += invalid_whens  # every missing_key before any invalid_value
        details += invalid_details
        if source.format is SourceFormat.JSON:
            texts = [f"CASE WHEN NULLIF(TRIM(_s{i}), '') IS NOT NULL THEN _s{i} END AS _t{i}"
                     for i in range(len(source.fields))]
            extracted = f"SELECT *, {', '.join(texts)} FROM (SELECT *, {', '.join(extract)} FROM ({base}))"
        else:
            extracted = f"SELECT *, {', '.join(extract)} FROM ({base})"
        # The detail is worked out for rejected rows only: CASE evaluates THEN on the rows it selects.
        return (
            f"SELECT source_file, source_row, payload, {', '.join(values)}, reason, "
            f"CASE WHEN reason IS NOT NULL THEN CASE {' '.join(details)} END END AS detail "
            f"FROM (SELECT *, CASE {' '.join(whens)} END AS reason FROM ({extracted}))"
        )

    def _staged_sql(self, source: Source) -> str:
        """Accepted rows, one per key: the newest copy wins (see ``Source.newest_by``).

        ``_copies`` counts the accepted copies of the key. Only keys sent more than once go
        through the window that picks the newest: a window over every row (all columns,
        10M of them) spilled to disk and cost more than the rest of the MERGE.
        """
        order = ([f"{quote(source.newest_by)} DESC"] if source.newest_by else []) + [
            "source_file DESC",
            "source_row DESC",
        ]
        key = quote(source.key_field.target)
        validated = self._t(self._validated_name(source))
        accepted = f"(SELECT * EXCLUDE (reason, detail, payload) FROM {validated} WHERE reason IS NULL)"
        repeated = f"(SELECT {key} FROM {accepted} GROUP BY {key} HAVING count(*) > 1)"
        return (
            f"SELECT *, 1 AS _copies FROM {accepted} ANTI JOIN {repeated} USING ({key}) "
            f"UNION ALL "
            f"SELECT * FROM (SELECT *, count(*) OVER (PARTITION BY {key}) AS _copies "
            f"FROM {accepted} SEMI JOIN {repeated} USING ({key}) "
            f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {', '.join(order)}) = 1)"
        )

    # -- merge -----------------------------------------------------------------------------

    def _ensure_validated(self, source: Source) -> None:
        """Judge the raw table now when it was loaded by a version that did not keep the outcome."""
        name = self._validated_name(source)
        exists = self.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?", [self.schema, name]
        ).fetchone()[0]
        if not exists:
            self.con.execute(
                f"CREATE TABLE {self._t(name)} AS {self._validated_rows_sql(source, self._t(source.raw))}"
            )

    def merge(self, run: RunContext, source: Source) -> MergeCounts:
        target = source.target
        key = quote(source.key_field.target)
        attrs = [quote(f.target) for f in source.fields if not f.key]
        changed = " OR ".join(f"s.{a} IS DISTINCT FROM t.{a}" for a in attrs)
        if source.newest_by:
            # A copy replaces the stored row only when it is newer: the latest timestamp,
            # then the later file and line; a stale late copy never overwrites.
            # The very same position (a file corrected in place) wins when its content changed.
            newest = quote(source.newest_by)
            copy, stored = f"(s.{newest}, s.source_file, s.source_row)", f"(t.{newest}, t.source_file, t.source_row)"
            wins = f"({copy} > {stored} OR ({copy} = {stored} AND ({changed})))"
        else:
            # A dimension: the latest load wins; an identical copy elsewhere moves the lineage only.
            moved = "s.source_file IS DISTINCT FROM t.source_file OR s.source_row IS DISTINCT FROM t.source_row"
            wins = f"({changed} OR {moved})"
        # The staged rows are computed twice (counts, then MERGE) rather than written to a
        # temporary table: at 10M rows writing them costs more than the second dedup.
        staged = f"({self._staged_sql(source)})"
        with self._transaction():
            self._ensure_validated(source)
            accepted, distinct, inserted, updated = self.con.execute(
                f"SELECT coalesce(sum(s._copies), 0), count(*), count(*) FILTER (WHERE t.{key} IS NULL), "
                f"count(*) FILTER (WHERE t.{key} IS NOT NULL AND {wins} AND ({changed})) "
                f"FROM {staged} s LEFT JOIN {self._t(target)} t ON s.{key} = t.{key}"
            ).fetchone()
            all_cols = [quote(f.target) for f in source.fields] + ["source_file", "source_row"]
            sets = ", ".join(f"{c} = s.{c}" for c in all_cols if c != key)
            self.con.execute(
                f"MERGE INTO {self._t(target)} AS t USING {staged} AS s ON t.{key} = s.{key} "
                f"WHEN MATCHED AND {wins} THEN UPDATE SET {sets}, "
                f"updated_at = CASE WHEN {changed} THEN $now ELSE t.updated_at END, "
                f"run_id = CASE WHEN {changed} THEN $run ELSE t.run_id END "
                f"WHEN NOT MATCHED THEN INSERT ({', '.join(all_cols)}, created_at, updated_at, run_id) "
                f"VALUES ({', '.join('s.' + c for c in all_cols)}, $now, $now, $run)",
                {"now": run.started_at, "run": run.run_id},
            )
        return MergeCounts.from_totals(target.name, accepted=accepted, distinct=distinct,
                                       inserted=inserted, updated=updated)

    # -- checks and logs -------------------------------------------------------------------

    def _bad_sql(self, check: Check) -> str:
        """When a row of ``t`` fails a value check (accepted_values, value_range, pattern)."""
        col = f"t.{quote(check.column or '')}"
        text = f"CAST({col} AS VARCHAR)"
        if check.type is CheckType.ACCEPTED_VALUES:
            bad = f"{text} NOT IN ({', '.join(lit(v) for v in check.values or ())})"
        elif check.type is CheckType.VALUE_RANGE:
            number = f"CAST({col} AS DOUBLE)"
            bad = " OR ".join([*([f"{number} < {check.min!r}"] if check.min is not None else []),
                               *([f"{number} > {check.max!r}"] if check.max is not None else [])])
        elif check.type is CheckType.PATTERN:
            bad = f"NOT regexp_full_match({text}, {lit(check.pattern or '')})"
        else:
            raise ValueError(f"check type {check.type} is not supported by the DuckDB engine")
        return f"{col} IS NOT NULL AND ({bad})"

    def _measure_sql(self, check: Check, now: datetime) -> list[str]:
        """The aggregates over ``t`` that measure ``check`` in its table's shared pass."""
        if check.type in (CheckType.ROW_COUNT, CheckType.VOLUME_CHANGE):
            return ["count(*)"]
        col = f"t.{quote(check.column or '')}"
        if check.type is CheckType.FRESHNESS:  # see checks.freshness_metric
            at = f"TIMESTAMP {lit(now.isoformat(sep=' '))}"
            return [f"max({col}) FILTER (WHERE {col} <= {at})", f"count(*) FILTER (WHERE {col} > {at})",
                    f"max({col})"]
        value = f"NULLIF(TRIM(CAST({col} AS VARCHAR)), '')"
        if check.type is CheckType.NULL_COUNT:
            return [f"count(*) FILTER (WHERE {value} IS NULL)"]
        if check.type is CheckType.DUPLICATE_COUNT:
            return [f"count({value}) - count(DISTINCT {value})"]
        return [f"count(*) FILTER (WHERE {self._bad_sql(check)})"]

    def _table_pass(self, table: str, checks: Sequence[Check], now: datetime) -> tuple[list[Any], int]:
        """One scan of ``table`` measuring every check in ``checks``: their values and the row count."""
        parts = [self._measure_sql(c, now) for c in checks]
        measures = ", ".join(m for p in parts for m in p)
        *flat, total = self.con.execute(f"SELECT {measures}, count(*) FROM {self._t(table)} t").fetchone()
        return regroup(flat, [len(p) for p in parts]), int(total)

    def _failing_source(self, check: Check) -> tuple[str, str]:
        """The rows a value check reads (FROM clause) and when one of them fails."""
        if check.type is not CheckType.REFERENTIAL_INTEGRITY:
            return f"{self._t(check.table)} t", self._bad_sql(check)
        # DISTINCT keys: the LEFT JOIN keeps exactly one row per checked row.
        text = f"CAST(t.{quote(check.column or '')} AS VARCHAR)"
        keys = f"SELECT DISTINCT CAST({quote(check.ref_column or '')} AS VARCHAR) AS k FROM {self._t(check.ref_table or '')}"
        return (f"{self._t(check.table)} t LEFT JOIN ({keys}) r ON {text} = r.k",
                f"t.{quote(check.column or '')} IS NOT NULL AND r.k IS NULL")

    def _sample(self, check: Check) -> list[str]:
        """Up to 5 distinct failing values, the smallest in the column's own order (as on Snowflake)."""
        source, bad = self._failing_source(check)
        col = f"t.{quote(check.column or '')}"
        rows = self.con.execute(f"SELECT DISTINCT {col} AS v FROM {source} WHERE {bad} ORDER BY v LIMIT {SAMPLE_SIZE}")
        return sample_text(v for (v,) in rows.fetchall())

    def _own_pass(self, check: Check, context: CheckContext) -> Metric:
        """The checks measured apart from their table's shared pass."""
        if check.type is CheckType.REJECTED_ROWS:
            load = context.loads.get(check.table)
            by_reason: dict[str, int] = {}
            if load is not None:
                by_reason = dict(self.con.execute(
                    f"SELECT reason, count(*) FROM {self._t(REJECTED)} WHERE run_id = ? AND source_table = ? "
                    "GROUP BY reason", [load.run_id, check.table]).fetchall())
            return rejected_metric(by_reason, load, check.table)
        source, bad = self._failing_source(check)
        value, total = self.con.execute(f"SELECT count(*) FILTER (WHERE {bad}), count(*) FROM {source}").fetchone()
        return Metric(float(value), int(total))

    def metrics(self, checks: Sequence[Check], context: CheckContext) -> list[Metric]:
        return measure_checks(checks, context, table_pass=self._table_pass, own_pass=self._own_pass,
                              sample=self._sample, errors=(duckdb.Error, ValueError))

    def write_log(self, table: Table, rows: Sequence[dict[str, Any]], key: Sequence[str] = ()) -> None:
        if not rows:
            return
        frame = pd.DataFrame(list(rows), columns=table.column_names)
        cols = ", ".join(quote(c) for c in table.column_names)
        with self._transaction():
            self.con.register("_rows", frame)
            if key:
                match = " AND ".join(f"t.{quote(k)} IS NOT DISTINCT FROM r.{quote(k)}" for k in key)
                self.con.execute(f"DELETE FROM {self._t(table)} t WHERE EXISTS (SELECT 1 FROM _rows r WHERE {match})")
            self.con.execute(f"INSERT INTO {self._t(table)} ({cols}) SELECT {cols} FROM _rows")
            self.con.unregister("_rows")

    def table_counts(self) -> dict[str, int]:
        union = " UNION ALL ".join(f"SELECT {lit(t.name)}, count(*) FROM {self._t(t)}" for t in TABLES)
        return {name: int(n) for name, n in self.con.execute(union).fetchall()}

    def read_table(self, table: Table, *, where: dict[str, Any] | None = None,
                   order_by: Sequence[str] = (), limit: int | None = None) -> pd.DataFrame:
        sql = f"SELECT * FROM {self._t(table)}"
        params: list[Any] = []
        if where:
            sql += " WHERE " + " AND ".join(f"{quote(table.column(k).name)} = ?" for k in where)
            params = list(where.values())
        if order_by:
            parts = [o.split() for o in order_by]
            sql += " ORDER BY " + ", ".join(
                f"{quote(table.column(p[0]).name)} {'DESC' if p[1:] == ['desc'] else 'ASC'}" for p in parts
            )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self.con.execute(sql, params).df()

    # -- aggregates for people (the dashboard; see engagement.aggregate) --------------------

    def aggregate(self, query: Aggregate) -> pd.DataFrame:
        """Run ``query`` inside DuckDB; only the aggregated rows come back."""
        sql, params = aggregate_sql(query, self._t)
        try:
            rows = self.con.execute(sql, params).fetchall()
        except duckdb.CatalogException as exc:
            tables = " / ".join(query.tables)
            raise MissingTableError(
                f"warehouse {self.path} has no {tables} yet; run `engagement run` first"
            ) from exc
        return typed_frame(query, rows)
