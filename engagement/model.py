"""The data model, declared once: tables, columns, keys, validation rules and checks.

Every engine, the CLI, the notebooks and the dashboard read this module; nothing
else names a table or a column rule. Engines *compile* the declarations below
into their own dialect (DuckDB SQL, Snowpark DataFrame expressions), so a rule
changed here changes everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ColumnType(StrEnum):
    """Logical column types; each engine maps them to its own."""

    VARCHAR = "VARCHAR"
    BIGINT = "BIGINT"
    DOUBLE = "DOUBLE"
    DATE = "DATE"
    TIMESTAMP = "TIMESTAMP"  # always UTC, without a zone


class Reason(StrEnum):
    """Why a record was rejected; stored in ``rejected_records.reason``.

    Rules are evaluated in this order and the first that applies wins.
    """

    MALFORMED_ROW = "malformed_row"  # not 5 CSV fields / not a JSON object
    MISSING_KEY = "missing_key"  # the key is missing, null or empty
    INVALID_VALUE = "invalid_value"  # a value breaks its field's rule


class Rule(StrEnum):
    """Validation rule kinds a field can carry (see :class:`Field`)."""

    TEXT = "text"  # any string; empty means NULL (a JSON key: a JSON string, see KEY_RULE)
    DATE = "date"  # YYYY-MM-DD, a real calendar date, a year within YEARS
    TIMESTAMP = "timestamp"  # ISO 8601, T or space, Z / +-HH:MM / none (UTC), a year within YEARS
    NON_NEGATIVE_INT = "non_negative_int"  # a JSON integer >= 0


# Dates and timestamps are accepted for these years (as written, before any offset): every
# engine, pandas (datetime64[ns] ends in 2262) and the dashboard hold them.
YEARS = (1900, 2199)
# Patterns are part of the contract; engines must use these, not their own.
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
TIMESTAMP_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?$"
)




# Reject details, written once: "<field> '<value>" + OUT_OF_YEARS; "<field>" + NOT_A_STRING + value.
OUT_OF_YEARS = f"' is outside the years {YEARS[0]} to {YEARS[1]}"
NOT_A_STRING = " must be a JSON string, got "


@dataclass(frozen=True)
class Column:
    """A physical column of a warehouse table."""

    name: str
    type: ColumnType
    nullable: bool = True
    description: str = ""


@dataclass(frozen=True)
class Field:
    """A field of a source record and the rule that validates it.

    ``source`` is the CSV header name or the JSON key. ``target`` is the column
    of the dimension or fact it lands in.
    """

    source: str
    target: str
    type: ColumnType
    rule: Rule = Rule.TEXT
    key: bool = False  # missing/empty -> Reason.MISSING_KEY
    required: bool = False  # missing/empty -> Reason.INVALID_VALUE
    lower: bool = False  # lower-cased after trimming


@dataclass(frozen=True)
class Table:
    """A warehouse table: its columns, key and Snowflake cluster keys."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    cluster_by: tuple[str, ...] = ()
    description: str = ""

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")


def _cols(*spec: tuple[str, ColumnType] | tuple[str, ColumnType, bool]) -> tuple[Column, ...]:
    return tuple(Column(s[0], s[1], *(s[2:] if len(s) > 2 else ())) for s in spec)


V, BI, D, DT, TS = (
    ColumnType.VARCHAR,
    ColumnType.BIGINT,
    ColumnType.DATE,
    ColumnType.DOUBLE,
    ColumnType.TIMESTAMP,
)

# Raw rows carry ``parse_error`` when the reader could not split the record
# (wrong field count, not UTF-8, wrong CSV header): such a row is malformed.
# Lineage every raw row carries: which file, which record in it, which run.
LINEAGE = _cols(("source_file", V, False), ("source_row", BI, False), ("run_id", V, False), ("loaded_at", TS, False))
# Audit columns of the dimension and the fact. ``source_file``/``source_row``
# name the copy that won; ``updated_at`` moves only when an attribute changed.
AUDIT = _cols(
    ("source_file", V, False),
    ("source_row", BI, False),
    ("created_at", TS, False),
    ("updated_at", TS, False),
    ("run_id", V, False),
)

CUSTOMER_FIELDS = (
    Field("customer_id", "customer_id", V, key=True),
    Field("first_name", "first_name", V),
    Field("email", "email", V, lower=True),
    Field("region", "region", V),
    Field("signup_date", "signup_date", D, rule=Rule.DATE),
)
CSV_HEADER = tuple(f.source for f in CUSTOMER_FIELDS)

EVENT_FIELDS = (
    Field("event_id", "event_id", V, key=True),
    Field("user_id", "user_id", V),
    Field("event_type", "event_type", V),
    Field("page_url", "page_url", V),
    Field("duration_ms", "duration_ms", BI, rule=Rule.NON_NEGATIVE_INT),
    Field("timestamp", "event_timestamp", TS, rule=Rule.TIMESTAMP, required=True),
)

RAW_CUSTOMERS = Table(
    "raw_customer_demographics",
    _cols(*((f.source, V) for f in CUSTOMER_FIELDS))
    + _cols(("parse_error", V), ("raw_text", V, False))
    + LINEAGE,
    cluster_by=("customer_id",),
    description="Customer CSV records as read (strings), truncated and reloaded by each load.",
)
RAW_EVENTS = Table(
    "raw_clickstream_events",
    _cols(("payload", V, False), ("parse_error", V)) + LINEAGE,
    cluster_by=("source_file",),
    description="Clickstream JSON documents as read, truncated and reloaded by each load.",
)
DIM_CUSTOMER = Table(
    "dim_customer",
    tuple(Column(f.target, f.type, not f.key) for f in CUSTOMER_FIELDS) + AUDIT,
    key=("customer_id",),
    cluster_by=("customer_id",),
    description="One row per customer; the last occurrence loaded wins.",
)
FACT_EVENTS = Table(
    "fact_click_events",
    tuple(Column(f.target, f.type, not (f.key or f.required)) for f in EVENT_FIELDS) + AUDIT,
    key=("event_id",),
    cluster_by=("TO_DATE(event_timestamp)", "user_id"),
    description="One row per event; the latest timestamp wins, also across runs.",
)
REJECTED = Table(
    "rejected_records",
    _cols(
        ("run_id", V, False),
        ("source_table", V, False),
        ("source_file", V, False),
        ("source_row", BI, False),
        ("reason", V, False),
        ("detail", V),
        ("payload", V, False),
        ("rejected_at", TS, False),
    ),
    description="Append-only: every record refused, with its reason and raw text.",
)
INGESTION_LOGS = Table(
    "ingestion_logs",
    _cols(
        ("run_id", V, False),
        ("step", V, False),
        ("table_name", V),
        ("status", V, False),
        ("started_at", TS, False),
        ("finished_at", TS),
        ("files", BI),
        ("files_skipped", BI),  # files already loaded, unchanged since: not read again
        ("rows_read", BI),
        ("rows_loaded", BI),
        ("rows_rejected", BI),
        ("rows_inserted", BI),
        ("rows_updated", BI),
        ("rows_unchanged", BI),
        ("rows_collapsed", BI),
        ("error_message", V),
        ("engine", V, False),
        ("source", V),
        ("notebook", V),  # the executed notebook of the step, when the run went through papermill
    ),
    key=("run_id", "step", "table_name"),
    description="One row per run step (and one 'run' row per run); updated when the step ends.",
)
DQ_CHECK_LOGS = Table(
    "dq_check_logs",
    _cols(
        ("run_id", V, False),
        ("check_name", V, False),
        ("table_name", V, False),
        ("column_name", V),
        ("metric_value", DT),
        ("rows_checked", BI),  # the rows the metric was measured over (the base of % thresholds)
        ("warn_threshold", DT),
        ("fail_threshold", DT),
        ("thresholds", V),
        ("status", V, False),
        ("dimension", V),
        ("owner", V),
        ("message", V),
        ("failing_sample", V),
        ("checked_at", TS, False),
    ),
    description="One row per check per run.",
)

LOADED_FILES = Table(
    "loaded_files",
    _cols(
        ("source_table", V, False),
        ("source_file", V, False),
        ("size", BI, False),
        ("version", V, False),
        ("run_id", V, False),
        ("state", V, False),
        ("loaded_at", TS, False),
    ),
    key=("source_table", "source_file"),
    description=(
        "Load metadata, like Snowflake's COPY history: one row per source file, with the size and "
        "version (mtime or ETag) it was loaded at. state is INGESTED once in a raw table and MERGED once "
        "in its target; a MERGED file whose size and version have not changed is not read again."
    ),
)

TABLES: tuple[Table, ...] = (
    RAW_CUSTOMERS,
    RAW_EVENTS,
    DIM_CUSTOMER,
    FACT_EVENTS,
    REJECTED,
    INGESTION_LOGS,
    DQ_CHECK_LOGS,
    LOADED_FILES,
)
TABLES_BY_NAME = {t.name: t for t in TABLES}


class SourceFormat(StrEnum):
    CSV = "csv"
    JSON = "json"  # NDJSON or one top-level array of objects


@dataclass(frozen=True)
class Source:
    """A kind of input file: where it lies, how it parses, where it lands."""

    name: str  # folder under the source root
    format: SourceFormat
    patterns: tuple[str, ...]  # globs relative to the source root
    raw: Table
    target: Table
    fields: tuple[Field, ...]
    # Ordering of duplicate keys: highest wins. "timestamp" = latest event time
    # first; lineage (file path, record number) always breaks ties.
    newest_by: str | None = None

    @property
    def key_field(self) -> Field:
        return next(f for f in self.fields if f.key)


def _with_gz(*globs: str) -> tuple[str, ...]:
    return tuple(g for base in globs for g in (base, base + ".gz"))


CUSTOMERS = Source(
    name="customers",
    format=SourceFormat.CSV,
    patterns=_with_gz("customers/*.csv"),
    raw=RAW_CUSTOMERS,
    target=DIM_CUSTOMER,
    fields=CUSTOMER_FIELDS,
)
CLICKSTREAM = Source(
    name="clickstream",
    format=SourceFormat.JSON,
    patterns=_with_gz("clickstream/**/*.json", "clickstream/**/*.jsonl", "clickstream/**/*.ndjson"),
    raw=RAW_EVENTS,
    target=FACT_EVENTS,
    fields=EVENT_FIELDS,
    newest_by="event_timestamp",
)
SOURCES: tuple[Source, ...] = (CUSTOMERS, CLICKSTREAM)
SOURCES_BY_RAW = {s.raw.name: s for s in SOURCES}


class CheckType(StrEnum):
    NULL_COUNT = "null_count"
    DUPLICATE_COUNT = "duplicate_count"
    ROW_COUNT = "row_count"
    ACCEPTED_VALUES = "accepted_values"
    VALUE_RANGE = "value_range"
    PATTERN = "pattern"
    REFERENTIAL_INTEGRITY = "referential_integrity"
    FRESHNESS = "freshness"
    REJECTED_ROWS = "rejected_rows"
    VOLUME_CHANGE = "volume_change"


@dataclass(frozen=True)
class Check:
    """A data-quality check: a metric on a table (and column) against thresholds.

    Checks are declared in ``engagement/checks.yml`` (or a user's file, see
    :mod:`engagement.check_file`).

    For every type but ``row_count`` the metric is a count of bad rows and the
    check goes WARN above ``warn`` and FAILED above ``fail``; a threshold
    ending in ``%`` is a share of the table's rows. For ``row_count`` the
    thresholds are minimums: WARN/FAILED *below* them. The bad rows, per type
    (NULL values are never bad, except for ``null_count``):

    - ``null_count``: the column is NULL or empty (after trimming).
    - ``duplicate_count``: extra copies of a (trimmed, non-empty) value.
    - ``accepted_values``: the value is not one of ``values`` (compared as text).
    - ``value_range``: the (numeric) value is below ``min`` or above ``max``;
      either bound may be left out.
    - ``pattern``: the text does not match the regular expression ``pattern``
      as a whole (POSIX ERE syntax, which Python, DuckDB and Snowflake share).
    - ``referential_integrity``: the value has no match in
      ``ref_table.ref_column``.

    Three types measure something other than bad rows (all WARN/FAILED *above*):

    - ``freshness``: hours since the newest value of a timestamp ``column`` at or before the
      check time (later values are ignored, and make the check at least WARN);
      thresholds are durations (``36h``, ``2d``, ``90m``; a bare number is hours).
    - ``rejected_rows``: records of a raw table's source that the latest load of
      it (normally this run's) rejected; ``%`` is a share of the records read.
    - ``volume_change``: how far the table's row count moved from the mean of its
      last ``window`` measurements (runs); ``%`` is a share of that mean. With no
      history yet it passes and says so.
    """

    name: str
    type: CheckType
    table: str
    column: str | None = None
    warn: str | None = None
    fail: str | None = None
    dimension: str = "completeness"
    owner: str | None = None
    description: str = ""
    values: tuple[str, ...] | None = None  # accepted_values
    min: float | None = None  # value_range
    max: float | None = None  # value_range
    pattern: str | None = None  # pattern
    ref_table: str | None = None  # referential_integrity
    ref_column: str | None = None  # referential_integrity
    window: int | None = None  # volume_change: how many earlier runs the baseline averages
