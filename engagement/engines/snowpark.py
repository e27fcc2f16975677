"""The Snowflake engine: the model's rules compiled to Snowpark DataFrame expressions.

One engine for two back ends. ``local=False`` runs on a Snowflake account; ``local=True``
runs the very same DataFrame plans under Snowpark local testing (in memory, small inputs
only), with the few substitutes it needs kept in :mod:`engagement.engines.snowpark_local`.

Model tables and columns are used unquoted, so on Snowflake they are the upper-case names
users type (``ENGAGEMENT.MARKETING.DIM_CUSTOMER``). Records are split by the same readers
as the DuckDB engine (:mod:`engagement.readers`); validation, de-duplication and the MERGE
follow :class:`engagement.engines.duckdb.DuckDBEngine` rule for rule.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import Enum
from typing import Any

import pandas as pd
import pyarrow as pa
import snowflake.snowpark.functions as F
from snowflake.snowpark import Column, DataFrame, Row, Session, Window
from snowflake.snowpark import Table as SnowparkTable
from snowflake.snowpark.exceptions import SnowparkClientException, SnowparkSQLException
from snowflake.snowpark.functions import col, lit, when_matched, when_not_matched
from snowflake.snowpark.types import (
    DataType,
    DateType,
    DoubleType,
    LongType,
    StringType,
    TimestampTimeZone,
    TimestampType,
)

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
from engagement.engines.snowflake_backend import SnowflakeBackend, row_value
from engagement.engines.snowflake_ddl import qualified
from engagement.engines.snowflake_stage import ExternalStageRoot
from engagement.engines.snowpark_local import LocalBackend
from engagement.engines.snowpark_types import NTZ, TYPES, struct_type
from engagement.exceptions import ConfigError, MissingTableError, SourceError, WarehouseError
from engagement.model import (
    DATE_PATTERN,
    NOT_A_STRING,
    OUT_OF_YEARS,
    REJECTED,
    TABLES,
    TABLES_BY_NAME,
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
from engagement.readers import read_csv_records, read_file, read_json_records
from engagement.results import IngestCounts, MergeCounts, Metric
from engagement.sources import SourceFile

log = logging.getLogger("engagement")
BIGINT_MAX = 2**63 - 1
# Rows per log write go in one JSON literal up to this size; Snowflake advises at most 1 MB of
# query text per statement, literals included (docs: user-guide/query-size-limits).
LITERAL_BYTES = 500_000
__all__ = ["NTZ", "TYPES", "SnowparkEngine", "struct_type"]


REF_FOUND = "ENGAGEMENT_REF_FOUND"  # marks the reference keys a referential_integrity join found


def _null(data_type: DataType) -> Column:
    return lit(None).cast(data_type)


def _full_match(text: Column, pattern: str) -> Column:
    """REGEXP_LIKE: ``text`` matches ``pattern`` as a whole; NULL when ``text`` is NULL."""
    return F.regexp_like(text, lit(pattern))


def _utc(text: Column) -> Column:
    """An ISO 8601 text (already shape-checked) as a UTC instant without a zone.

    A value without a zone is UTC: ``+00:00`` is appended before the cast, so neither the
    session's TIMEZONE nor the machine's time zone plays any part.
    """
    zoned = (
        F.when(_full_match(text, ".*Z"),
               F.concat(F.substring(text, lit(1), F.length(text) - lit(1)), lit("+00:00")))
        .when(_full_match(text, ".*[+-][0-9]{2}:[0-9]{2}"), text)
        .otherwise(F.concat(text, lit("+00:00")))
    )
    instant = F.try_cast(zoned, TimestampType(TimestampTimeZone.TZ))
    return F.convert_timezone(lit("UTC"), instant).cast(NTZ)


def _plain(value: Any) -> Any:
    """A Python value Snowpark stores as is: enums as their value, numpy scalars as Python."""
    if isinstance(value, Enum):
        return value.value
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


class SnowparkEngine:
    """Snowflake through Snowpark; with ``local=True``, Snowpark local testing (in memory).

    Everything that differs between the two is a call on ``self.backend``
    (:class:`~engagement.engines.snowflake_backend.SnowflakeBackend` or
    :class:`~engagement.engines.snowpark_local.LocalBackend`); the rules, MERGEs, checks and
    logs below are one code path.
    """

    def __init__(self, session: Session, *, database: str, schema: str, local: bool = False,
                 load_size: str | None = None, external_stage: str | None = None) -> None:
        self.session = session
        self.database, self.schema = database, schema
        self.backend: SnowflakeBackend | LocalBackend = LocalBackend(session) if local \
            else SnowflakeBackend(session, load_size)
        self.load_size = load_size
        self.external_stage = external_stage
        self.name = self.backend.name
        self.run_id: str | None = None  # the run of the latest write, named in the query tag of reads

    # -- names and helpers -----------------------------------------------------------------

    @property
    def location(self) -> str:
        """``snowflake://<account>/<DB>.<SCHEMA>``, or the in-memory local session."""
        return self.backend.location(self.database, self.schema)

    def _name(self, table: Table | str) -> str:
        return qualified(self.database, self.schema, table)

    def _parts(self, table: Table) -> list[str]:
        return [self.database.upper(), self.schema.upper(), table.name.upper()]

    def _table(self, table: Table | str) -> SnowparkTable:
        return self.session.table(self._name(table))

    def _filtered(self, frame: DataFrame, condition: Column) -> DataFrame:
        return self.backend.filtered(frame, condition)

    def _timestamp(self, value: datetime) -> Column:
        return lit(value).cast(NTZ)

    def close(self) -> None:
        """Close the Snowpark session."""
        self.session.close()

    # -- steps: query tag, warehouse size, transaction --------------------------------------

    def _tag(self, run_id: str | None, step: str) -> None:
        """Every statement carries ``{"app": "engagement", "run_id": …, "step": …}`` (QUERY_HISTORY)."""
        if run_id:
            self.run_id = run_id
        self.backend.query_tag(json.dumps({"app": "engagement", "run_id": run_id or self.run_id, "step": step}))

    @contextmanager
    def _step(self, run_id: str | None, step: str, writes: Sequence[Table], resize: bool = False) -> Iterator[None]:
        """One atomic step under its own query tag: all of its writes commit together, or none does."""
        self._tag(run_id, step)
        with self.backend.transaction([self._parts(t) for t in writes], resize):
            yield

    # -- schema ----------------------------------------------------------------------------

    def setup(self) -> None:
        """Create every model table that is missing, and add the columns a newer model added."""
        self._tag(None, "setup")
        self.backend.create_tables(self.database, self.schema)

    # -- ingest ----------------------------------------------------------------------------

    def source_root(self, source: str) -> ExternalStageRoot | None:
        """An s3:// source read by Snowflake through ``external_stage`` when one is configured."""
        if not (self.external_stage and source.startswith("s3://")):
            return None
        if not self.backend.stages:
            raise ConfigError(f"{self.name} has no stages; unset ENGAGEMENT_SNOWFLAKE_EXTERNAL_STAGE "
                              "to read the s3:// source through this process")
        self._tag(None, "discover")
        return ExternalStageRoot.open(self._name(self.external_stage), source,
                                      lambda sql: self.session.sql(sql).collect())

    def _copy_from_stage(self, run: RunContext, source: Source, root: ExternalStageRoot,
                         files: Sequence[SourceFile], on_file: FileCallback | None) -> int:
        """COPY ``files`` into the raw table straight from the external stage; the records loaded."""
        loaded = 0
        statements = root.copy_statements(source, self._name(source.raw), files, run.run_id,
                                          run.started_at.isoformat(sep=" "))
        by_relpath = {f.relpath: f for f in files}
        for statement in statements:
            for row in self.session.sql(statement).collect():  # one row per file: its name and rows_loaded
                loaded += int(row_value(row, "rows_loaded") or 0)
                file = by_relpath.get(root.relpath_of(str(row_value(row, "file") or "")))
                if on_file and file is not None:
                    on_file(file, loaded)
        return loaded

    @staticmethod
    def _with_lineage(records: pa.Table, file: SourceFile, run: RunContext) -> pa.Table:
        n = records.num_rows
        return (
            records.append_column("source_file", pa.array([file.relpath] * n, pa.string()))
            .append_column("run_id", pa.array([run.run_id] * n, pa.string()))
            .append_column("loaded_at", pa.array([run.started_at] * n, pa.timestamp("us")))
        )

    def ingest(self, run: RunContext, source: Source, files: Sequence[SourceFile],
               on_file: FileCallback | None = None) -> IngestCounts:
        """Truncate and load ``source.raw`` from ``files``; append this run's rejects; count both."""
        raw = source.raw
        reader = read_csv_records if source.format is SourceFormat.CSV else read_json_records
        step = f"ingest:{raw.name}"
        if files and isinstance(files[0].root, ExternalStageRoot):
            with self._step(run.run_id, step, [raw, REJECTED], resize=True):
                self._table(raw).delete()
                read = self._copy_from_stage(run, source, files[0].root, files, on_file)
                self._append_rejects(run, source)
                rejected = self._rejected_counts(run, raw)
            return IngestCounts(raw.name, files=len(files), read=read, rejected=rejected)
        # The files are read and staged before the transaction (PUT is no DML) and the staged
        # copy removed after it, committed or not (see snowflake_backend.StageLoader).
        read = 0
        unreadable: dict[str, str] = {}
        loader = self.backend.raw_loader(run.run_id, raw, self.database, self.schema)
        try:
            for file in files:
                content = read_file(file, reader)
                if isinstance(content, SourceError):
                    unreadable[file.relpath] = str(content)
                    continue
                records = self._with_lineage(content, file, run)
                loader.add(records)
                read += records.num_rows
                if on_file:
                    on_file(file, read)
            self._tag(run.run_id, step)
            loader.upload()
            with self._step(run.run_id, step, [raw, REJECTED], resize=True):
                self._table(raw).delete()
                loader.finish(read)
                self._append_rejects(run, source)
                rejected = self._rejected_counts(run, raw)
        finally:
            loader.cleanup()
        return IngestCounts(raw.name, files=len(files) - len(unreadable), read=read, rejected=rejected,
                            unreadable=unreadable)

    def _append_rejects(self, run: RunContext, source: Source) -> None:
        for rejects in (self._malformed(source), self._filtered(self._checked(source), col("reason").is_not_null())):
            rows = rejects.select(
                lit(run.run_id).alias("run_id"),
                lit(source.raw.name).alias("source_table"),
                col("source_file"),
                col("source_row"),
                col("reason"),
                col("detail"),
                col("payload"),
                self._timestamp(run.started_at).alias("rejected_at"),
            )
            rows.write.save_as_table(self._name(REJECTED), mode="append", column_order="name")

    def _rejected_counts(self, run: RunContext, raw: Table) -> dict[str, int]:
        mine = self._table(REJECTED).filter((col("run_id") == lit(run.run_id)) & (col("source_table") == lit(raw.name)))
        return {r[0]: int(r[1]) for r in mine.group_by(col("reason")).agg(F.count(lit(1))).collect()}

    # -- rules compiled to Snowpark ----------------------------------------------------------

    def _extract(self, source: Source, objects: DataFrame) -> DataFrame:
        """Lineage, payload and, per field ``i``: ``_S{i}`` the text, ``_T{i}`` the text or NULL when
        missing or blank, ``_J{i}`` its JSON type (NULL when absent or JSON null)."""
        columns = [col("source_file"), col("source_row"), col("payload")]
        for i, f in enumerate(source.fields):
            if source.format is SourceFormat.CSV:
                text = F.trim(col(f.source))
                text = F.lower(text) if f.lower else text
                text = F.iff(text == lit(""), _null(StringType()), text)
                columns += [text.alias(f"_s{i}"), text.alias(f"_t{i}"),
                            F.iff(text.is_null(), _null(StringType()), lit("VARCHAR")).alias(f"_j{i}")]
            else:
                value = F.strip_null_value(F.get(col("_doc"), lit(f.source)))
                text = F.to_varchar(value)
                columns += [text.alias(f"_s{i}"),
                            F.iff(F.trim(text) == lit(""), _null(StringType()), text).alias(f"_t{i}"),
                            F.typeof(value).alias(f"_j{i}")]
        return objects.select(*columns)

    @staticmethod
    def _field_rule(i: int, f: Field) -> tuple[Column, Column | None, Column | None]:
        """(typed value, invalid condition, detail) for field ``i``, read from :meth:`_extract`'s columns."""
        s, t, j = col(f"_s{i}"), col(f"_t{i}"), col(f"_j{i}")
        label = f.source
        if f.rule is Rule.DATE:
            typed = F.try_cast(t, DateType())
            bad = t.is_not_null() & ~(_full_match(t, DATE_PATTERN) & typed.is_not_null())
            return typed, bad, F.concat(lit(f"{label} '"), t, lit("' is not a valid YYYY-MM-DD date"))
        if f.rule is Rule.TIMESTAMP:
            shaped = (j == lit("VARCHAR")) & F.coalesce(_full_match(t, TIMESTAMP_PATTERN), lit(False))
            # Converted only within YEARS: locally every branch runs, and convert_timezone raises
            # on a year 9999 with a negative offset.
            in_years = F.substring(t, lit(1), lit(4)).between(lit(str(YEARS[0])), lit(str(YEARS[1])))
            typed = _utc(F.iff(shaped & in_years, t, _null(StringType())))
            bad = t.is_not_null() & ~(shaped & typed.is_not_null())
            return typed, bad, F.concat(lit(f"{label} '"), s, lit("' is not ISO 8601"))
        if f.rule is Rule.NON_NEGATIVE_INT:
            # A JSON integer (not "300", 1.5 or true) >= 0 that fits BIGINT. The range is checked
            # on the digits: NUMBER(38,0) holds far more than BIGINT, and local testing compares
            # large numbers as floats (2**63 <= 2**63 - 1 there).
            fits = F.coalesce(
                _full_match(s, "[0-9]{1,18}") | (_full_match(s, "[0-9]{19}") & (s <= lit(str(BIGINT_MAX)))),
                lit(False),
            )
            ok = (j == lit("INTEGER")) & fits
            # Cast only a valid text: locally every branch is computed, and an out-of-range
            # value in a BIGINT column breaks the MERGE later even on a rejected row.
            typed = F.try_cast(F.iff(ok, s, _null(StringType())), LongType())
            bad = j.is_not_null() & ~ok
            return typed, bad, F.concat(lit(f"{label} must be an integer >= 0, got "), s)
        return t, None, None

    @staticmethod
    def _years_rule(i: int, f: Field) -> tuple[Column, Column]:
        """(invalid condition, detail): a date or timestamp of the right shape, its year outside YEARS."""
        t = col(f"_t{i}")
        pattern = DATE_PATTERN if f.rule is Rule.DATE else TIMESTAMP_PATTERN
        year = F.substring(t, lit(1), lit(4))
        bad = F.coalesce(_full_match(t, pattern), lit(False)) & ~year.between(lit(str(YEARS[0])), lit(str(YEARS[1])))
        return bad, F.concat(lit(f"{f.source} '"), t, lit(OUT_OF_YEARS))

    def _split(self, source: Source) -> tuple[DataFrame, Column, Column]:
        """The raw rows as (frame, well-formed condition, detail of a malformed row).

        Malformed rows (wrong field count, not UTF-8, not a JSON object) are told apart first
        and the field rules run only on the others: local testing evaluates every branch of an
        expression on every row, and field access raises on a JSON array there.
        """
        raw = self._table(source.raw)
        if source.format is SourceFormat.CSV:
            base = raw.select(col("source_file"), col("source_row"), col("raw_text").alias("payload"),
                              col("parse_error"), *[col(f.source) for f in source.fields])
            return base, col("parse_error").is_null(), col("parse_error")
        # A document the reader refused (parse_error) is never parsed: locally every branch runs,
        # and Python's parser raises on one nested 10,000 deep.
        parsed = F.iff(col("parse_error").is_null(), col("payload"), _null(StringType()))
        base = raw.select(col("source_file"), col("source_row"), col("payload"), col("parse_error"),
                          self.backend.parse_json(parsed).alias("_doc"), F.check_json(parsed).alias("_invalid"))
        well_formed = col("parse_error").is_null() & F.coalesce(F.is_object(col("_doc")), lit(False))
        not_object = F.iff(col("_invalid").is_null(), lit("not a JSON object"), lit("not valid JSON"))
        return base, well_formed, F.coalesce(col("parse_error"), not_object)

    def _malformed(self, source: Source) -> DataFrame:
        """The raw rows that are no record, with reason and detail (they are only ever rejects)."""
        base, well_formed, detail = self._split(source)
        return self._filtered(base, ~well_formed).select(
            col("source_file"), col("source_row"), col("payload"),
            lit(str(Reason.MALFORMED_ROW)).alias("reason"), detail.alias("detail"),
        )

    def _checked(self, source: Source) -> DataFrame:
        """The well-formed raw rows with their typed fields and, when a field rule rejects
        the row, its reason (missing_key before invalid_value) and detail."""
        typed, whens, invalid = [], [], []
        for i, f in enumerate(source.fields):
            value, bad, detail = self._field_rule(i, f)
            typed.append(value.alias(f.target))
            if f.key:
                whens.append((col(f"_t{i}").is_null(), Reason.MISSING_KEY, lit(f"{f.source} is missing or empty")))
            if f.required:
                invalid.append((col(f"_t{i}").is_null(), Reason.INVALID_VALUE, lit(f"{f.source} is missing")))
            if f.key and source.format is SourceFormat.JSON:
                invalid.append((col(f"_j{i}") != lit("VARCHAR"), Reason.INVALID_VALUE,
                                F.concat(lit(f.source + NOT_A_STRING), col(f"_s{i}"))))
            if f.rule in (Rule.DATE, Rule.TIMESTAMP):
                out_of_years, years_detail = self._years_rule(i, f)
                invalid.append((out_of_years, Reason.INVALID_VALUE, years_detail))
            if bad is not None:
                invalid.append((bad, Reason.INVALID_VALUE, detail))
        whens += invalid  # every missing_key before any invalid_value
        reason = F.when(whens[0][0], lit(str(whens[0][1])))
        detail = F.when(whens[0][0], whens[0][2])
        for condition, why, text in whens[1:]:
            reason, detail = reason.when(condition, lit(str(why))), detail.when(condition, text)
        reason, detail = reason.otherwise(_null(StringType())), detail.otherwise(_null(StringType()))

        base, well_formed, _ = self._split(source)
        return self._extract(source, self._filtered(base, well_formed)).select(
            col("source_file"), col("source_row"), col("payload"), *typed,
            reason.alias("reason"), detail.alias("detail"),
        )

    def _staged(self, source: Source) -> DataFrame:
        """Accepted rows, one per key: the newest copy wins (see ``Source.newest_by``)."""
        key = source.key_field.target
        order = ([col(source.newest_by).desc()] if source.newest_by else []) + [
            col("source_file").desc(), col("source_row").desc()
        ]
        columns = [f.target for f in source.fields] + ["source_file", "source_row"]
        accepted = self._filtered(self._checked(source), col("reason").is_null())
        ranked = accepted.select(
            *[col(c) for c in columns],
            F.row_number().over(Window.partition_by(col(key)).order_by(*order)).alias("_rn"),
            F.count(lit(1)).over(Window.partition_by(col(key))).alias("_copies"),
        )
        return self._filtered(ranked, col("_rn") == lit(1)).drop("_rn")

    # -- merge -----------------------------------------------------------------------------

    @staticmethod
    def _merge_rules(source: Source) -> tuple[Column, Column]:
        """(wins, changed) for a staged copy joined to its stored row (columns ``_t_<name>``).

        ``wins``: the copy replaces the stored row; ``changed``: an attribute differs.
        """
        def s(c: str) -> Column:
            return col(c)

        def t(c: str) -> Column:
            return col(f"_t_{c}")

        attrs = [f.target for f in source.fields if not f.key]
        changed = _any(~s(a).equal_null(t(a)) for a in attrs)
        if source.newest_by:
            # A copy replaces the stored row only when it is newer: the latest timestamp, then
            # the later file and line; a stale late copy never overwrites. The very same
            # position (a file corrected in place) wins when its content changed.
            # The stored values are NOT NULL; the coalesce only spares copies without a stored
            # row (whose rules go unused) a comparison with NULL, which raises locally.
            keys = [source.newest_by, "source_file", "source_row"]

            def stored(k: str) -> Column:
                return F.coalesce(t(k), s(k))

            newer = s(keys[-1]) > stored(keys[-1])
            for k in reversed(keys[:-1]):
                newer = (s(k) > stored(k)) | ((s(k) == stored(k)) & newer)
            same = _all(s(k) == stored(k) for k in keys)
            return newer | (same & changed), changed
        # A dimension: the latest load wins; an identical copy elsewhere moves the lineage only.
        moved = ~s("source_file").equal_null(t("source_file")) | ~s("source_row").equal_null(t("source_row"))
        return changed | moved, changed

    def merge(self, run: RunContext, source: Source) -> MergeCounts:
        """Validate, type and de-duplicate the raw table, then MERGE it into ``source.target``."""
        target_table = source.target
        key = source.key_field.target
        columns = [f.target for f in source.fields] + ["source_file", "source_row"]
        with self._step(run.run_id, f"merge:{target_table.name}", [target_table], resize=True):
            target = self._table(target_table)
            # Each copy next to its stored row: a LEFT join on the shared key column name
            # (locally a hash join; an expression join is a cross product there). The rules are
            # decided here, once, for the counts and for the MERGE, whose clauses then only
            # read columns (locally, expressions in MERGE clauses misalign their rows).
            stored = target.select(
                col(key), lit(True).alias("_matched"),
                *[col(c).alias(f"_t_{c}") for c in [*columns, "updated_at", "run_id"] if c != key],
            )
            wins, changed = self._merge_rules(source)
            now, run_id = self._timestamp(run.started_at), lit(run.run_id)
            decided = self._staged(source).join(stored, on=key, how="left").select(
                *[col(c) for c in columns], col("_copies"), col("_matched"),
                (col("_matched").is_not_null() & wins).alias("_wins"),
                (col("_matched").is_not_null() & wins & changed).alias("_updated"),
                # updated_at and run_id move only when an attribute changed.
                F.iff(changed, now, col("_t_updated_at")).alias("_updated_at"),
                F.iff(changed, run_id, col("_t_run_id")).alias("_run_id"),
            )

            (accepted, distinct, matched, updated), = decided.agg(
                F.sum(col("_copies")),
                F.count(lit(1)),
                F.count(col("_matched")),
                F.sum(F.iff(col("_updated"), lit(1), lit(0))),
            ).collect()

            result = target.merge(
                decided,
                target[key] == decided[key],
                [
                    when_matched(decided["_wins"]).update({
                        **{c: decided[c] for c in columns if c != key},
                        "updated_at": decided["_updated_at"],
                        "run_id": decided["_run_id"],
                    }),
                    when_not_matched().insert({
                        **{c: decided[c] for c in columns}, "created_at": now, "updated_at": now, "run_id": run_id,
                    }),
                ],
            )
            accepted, distinct, matched, updated = (_count(v) for v in (accepted, distinct, matched, updated))
            # The MERGE's own counts must agree with the classification; its rows_updated also
            # counts copies that only moved the lineage (same attributes, a newer position).
            log.info("MERGE INTO %s: %s", target_table.name, result)
            if int(result.rows_inserted) != distinct - matched or int(result.rows_updated) < updated:
                raise WarehouseError(
                    f"MERGE INTO {target_table.name} reported {result} but {distinct - matched} new keys and "
                    f"{updated} changed rows were counted; the step was rolled back"
                )
        return MergeCounts.from_totals(target_table.name, accepted=accepted, distinct=distinct,
                                       inserted=distinct - matched, updated=updated)

    # -- checks and logs -------------------------------------------------------------------

    def _value_rows(self, check: Check) -> tuple[DataFrame, Column, Column]:
        """A value check's rows, its column, and when a value is bad (NULL never is)."""
        frame = self._table(check.table)
        name = check.column or ""
        column = col(name)
        text = column.cast(StringType())
        if check.type is CheckType.ACCEPTED_VALUES:
            ok = text.isin(list(check.values or ()))
        elif check.type is CheckType.VALUE_RANGE:
            number = column.cast(DoubleType())
            ok = _all([*([number >= lit(check.min)] if check.min is not None else []),
                       *([number <= lit(check.max)] if check.max is not None else [])])
        elif check.type is CheckType.PATTERN:
            ok = _full_match(text, check.pattern or "")
        elif check.type is CheckType.REFERENTIAL_INTEGRITY:
            # A LEFT join on a shared column name (an expression join is quadratic locally): the
            # distinct, non-null reference keys renamed to the checked column, with a marker.
            ref = self._table(check.ref_table or "")
            ref = self._filtered(ref, col(check.ref_column or "").is_not_null())
            keys = ref.select(col(check.ref_column or "").cast(StringType()).alias(name),
                              lit(True).alias(REF_FOUND)).distinct()
            frame = frame.select(text.alias(name)).join(keys, on=name, how="left")
            column = col(name)
            ok = col(REF_FOUND).is_not_null()
        else:
            raise ValueError(f"check type {check.type} is not supported by the Snowflake engine")
        # Bad: a value that is not known to be ok. Locally every branch runs on every row; iff and
        # coalesce keep a NULL condition from reaching a boolean operator.
        return frame, column, column.is_not_null() & F.iff(F.coalesce(ok, lit(False)), lit(False), lit(True))

    def _measure(self, check: Check, now: datetime) -> list[Column]:
        """The aggregates that measure ``check`` in its table's shared pass."""
        if check.type in (CheckType.ROW_COUNT, CheckType.VOLUME_CHANGE):
            return [F.count(lit(1))]
        column = col(check.column or "")
        if check.type is CheckType.FRESHNESS:  # see checks.freshness_metric
            kind = TABLES_BY_NAME[check.table].column(check.column or "").type
            # A date is after the check time from the next day on (a date is its midnight).
            at, kind_type = ((lit(now.date()), DateType()) if kind is ColumnType.DATE
                             else (self._timestamp(now), NTZ))
            future = F.coalesce(column > at, lit(False))
            return [F.max(F.iff(future, _null(kind_type), column)),
                    F.sum(F.iff(future, lit(1), lit(0))), F.max(column)]
        text = F.trim(column.cast(StringType()))
        value = F.iff(text == lit(""), _null(StringType()), text)
        if check.type is CheckType.NULL_COUNT:
            return [F.sum(F.iff(value.is_null(), lit(1), lit(0)))]
        if check.type is CheckType.DUPLICATE_COUNT:
            return [F.count(value) - F.count_distinct(value)]
        _, _, bad = self._value_rows(check)
        return [F.sum(F.iff(bad, lit(1), lit(0)))]

    def _table_pass(self, table: str, checks: Sequence[Check], now: datetime) -> tuple[list[Any], int]:
        """One aggregate over ``table`` measuring every check in ``checks``: their values and the row count."""
        parts = [self._measure(c, now) for c in checks]
        # Each measure named: two checks may measure the same expression (row counts).
        named = [m.alias(f"_M{i}") for i, m in enumerate(m for p in parts for m in p)]
        row = self._table(table).agg(*named, F.count(lit(1)).alias("_ROWS")).collect()[0]
        *flat, total = list(row)
        values = [None if _missing(v) else v for v in flat]
        return [v if c.type is CheckType.FRESHNESS else _count(v)
                for c, v in zip(checks, regroup(values, [len(p) for p in parts]), strict=True)], _count(total)

    def _own_pass(self, check: Check, context: CheckContext) -> Metric:
        """The checks measured apart from their table's shared pass."""
        if check.type is CheckType.REJECTED_ROWS:
            load = context.loads.get(check.table)
            by_reason: dict[str, int] = {}
            if load is not None:
                rejected = self._filtered(self._table(REJECTED), (col("run_id") == lit(load.run_id))
                                          & (col("source_table") == lit(check.table)))
                rows = rejected.group_by(col("reason")).agg(F.count(lit(1)).alias("n")).collect()
                by_reason = {str(r[0]): _count(r[1]) for r in rows}
            return rejected_metric(by_reason, load, check.table)
        frame, _, bad = self._value_rows(check)
        (measured, total), = frame.agg(F.sum(F.iff(bad, lit(1), lit(0))), F.count(lit(1))).collect()
        return Metric(float(_count(measured)), _count(total))

    def _sample(self, check: Check) -> list[str]:
        """Up to 5 distinct failing values, the smallest first."""
        frame, column, bad = self._value_rows(check)
        # Only the value and the flag go through the filter (locally a stored frame refuses
        # the join's marker, declared NOT NULL, holding NULL).
        flagged = frame.select(column.alias("v"), bad.alias("bad"))
        failing = self._filtered(flagged, col("bad")).select(col("v")).distinct()
        return sample_text(r[0] for r in failing.sort(col("v").asc()).limit(SAMPLE_SIZE).collect())

    def metrics(self, checks: Sequence[Check], context: CheckContext) -> list[Metric]:
        self._tag(context.run_id, "checks")
        return measure_checks(checks, context, table_pass=self._table_pass, own_pass=self._own_pass,
                              sample=self._sample, errors=(SnowparkClientException, ValueError, KeyError))

    def write_log(self, table: Table, rows: Sequence[dict[str, Any]], key: Sequence[str] = ()) -> None:
        """Append ``rows`` to a log table; with ``key``, replace rows having the same key.

        One statement, atomic by itself (no transaction, no temporary table): an INSERT, or with
        ``key`` a MERGE that updates the rows with the same key and inserts the others, of the
        rows as one JSON literal. Past ``LITERAL_BYTES`` of rows (some 2,500 files' bookkeeping)
        the rows are split, one statement each, in one transaction. A key given twice in
        ``rows`` keeps its last row.
        """
        if not rows:
            return
        if key:
            rows = list({tuple(_plain(r.get(k)) for k in key): r for r in rows}.values())
        data = [[_plain(row.get(c)) for c in table.column_names] for row in rows]
        run_id = next((r.get("run_id") for r in rows if r.get("run_id")), None)
        chunks = list(_by_size(data, LITERAL_BYTES))
        if len(chunks) == 1:
            self._tag(run_id, f"log:{table.name}")
            self._write_values(table, chunks[0], key)
            return
        with self._step(run_id, f"log:{table.name}", [table]):  # several statements: one transaction
            for chunk in chunks:
                self._write_values(table, chunk, key)

    def _write_values(self, table: Table, data: Sequence[Sequence[Any]], key: Sequence[str]) -> None:
        values = self.backend.values(table, data)
        if not key:
            values.write.save_as_table(self._name(table), mode="append", column_order="name")
            return
        target = self._table(table)
        target.merge(values, _all(target[k].equal_null(values[k]) for k in key), [
            when_matched().update({c: values[c] for c in table.column_names if c not in key}),
            when_not_matched().insert({c: values[c] for c in table.column_names}),
        ])

    def table_counts(self) -> dict[str, int]:
        """Row count of every model table."""
        self._tag(None, "count")
        return {t.name: int(self._table(t).count()) for t in TABLES}

    def read_table(self, table: Table, *, where: dict[str, Any] | None = None,
                   order_by: Sequence[str] = (), limit: int | None = None) -> pd.DataFrame:
        """Rows of a model table as pandas: lower-case columns in model order, None for NULL."""
        self._tag(None, f"read:{table.name}")
        frame: DataFrame = self._table(table)
        for name, value in (where or {}).items():
            frame = frame.filter(col(table.column(name).name) == lit(value))
        if order_by:
            parts = [o.split() for o in order_by]
            # NULLS LAST both ways, as in the DuckDB engine.
            frame = frame.sort([
                col(table.column(p[0]).name).desc_nulls_last() if p[1:] == ["desc"]
                else col(table.column(p[0]).name).asc_nulls_last()
                for p in parts
            ])
        if limit is not None:
            frame = frame.limit(int(limit))
        collected = frame.select(*[col(c) for c in table.column_names]).collect()
        return _to_pandas(table, collected)

    # -- aggregates for people (the dashboard; see engagement.aggregate) --------------------

    def aggregate(self, query: Aggregate) -> pd.DataFrame:
        """Run ``query`` inside Snowflake (or local testing); only the aggregated rows come back."""
        from engagement.engines.snowpark_aggregate import aggregate_rows

        self._tag(None, f"read:{'+'.join(query.tables)}")
        try:
            rows = aggregate_rows(query, self._table, self.backend)
        except SnowparkSQLException as exc:
            if "does not exist" not in str(exc).lower():
                raise
            tables = " / ".join(query.tables)
            raise MissingTableError(
                f"{self.database.upper()}.{self.schema.upper()} has no {tables} yet (or this role cannot read it); "
                "run `engagement run --engine snowflake` first"
            ) from None
        return typed_frame(query, rows)


def _any(conditions: Iterable[Column]) -> Column:
    items = list(conditions)
    out = items[0]
    for c in items[1:]:
        out = out | c
    return out


def _all(conditions: Iterable[Column]) -> Column:
    items = list(conditions)
    out = items[0]
    for c in items[1:]:
        out = out & c
    return out


def _by_size(rows: Sequence[Sequence[Any]], limit: int) -> Iterator[Sequence[Sequence[Any]]]:
    """``rows`` in consecutive chunks whose JSON text stays under ``limit`` bytes (one row at least)."""
    chunk: list[Sequence[Any]] = []
    size = 0
    for row in rows:
        # as the statement will carry it: Snowpark's string literal doubles each backslash
        text = json.dumps(row, default=str)
        n = len(text) + text.count("\\")
        if chunk and size + n > limit:
            yield chunk
            chunk, size = [], 0
        chunk.append(row)
        size += n
    yield chunk


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value is pd.NaT


def _count(value: Any) -> int:
    """An aggregate as an int: a SUM over no rows is NULL on Snowflake (and NaN locally)."""
    return 0 if _missing(value) else int(value)


def _to_pandas(table: Table, rows: list[Row]) -> pd.DataFrame:
    """Collected rows as a frame typed like the DuckDB engine's: Int64, datetime64, object with None."""
    data: dict[str, Any] = {}
    for i, c in enumerate(table.columns):
        values = [None if _missing(r[i]) else r[i] for r in rows]
        if c.type is ColumnType.BIGINT:
            data[c.name] = pd.array([None if v is None else int(v) for v in values], dtype="Int64")
        elif c.type is ColumnType.DOUBLE:
            data[c.name] = pd.Series([None if v is None else float(v) for v in values], dtype="float64")
        elif c.type in (ColumnType.DATE, ColumnType.TIMESTAMP):
            data[c.name] = pd.Series(pd.to_datetime(values), dtype="datetime64[us]")
        else:
            data[c.name] = pd.Series(values, dtype=object)
    return pd.DataFrame(data, columns=table.column_names)
