"""The checks as Snowflake data metric functions (DMFs), for teams that monitor natively.

:func:`dmf_script` turns the checks file into SQL: a schedule per table, and per check
one association (``ALTER TABLE … ADD DATA METRIC FUNCTION``) of a system DMF where one
measures what the pipeline measures, else of a custom DMF created alongside, with an
``EXPECTATION`` carrying the fail threshold when it is absolute. Snowflake then measures
on its own schedule into ``SNOWFLAKE.LOCAL.DATA_QUALITY_MONITORING_RESULTS``. Two of our
types depend on the pipeline's own logs (``rejected_rows``, ``volume_change``) and have
no DMF equivalent; the script says so instead of guessing.

The script can be run again: a DMF cannot be associated twice with the same columns, so
each association is first dropped (tolerating "not associated yet"), then added anew,
which also carries a changed threshold to Snowflake.

Snowflake documentation this follows:

- https://docs.snowflake.com/en/sql-reference/functions/dmf_freshness — FRESHNESS takes
  DATE, TIMESTAMP_LTZ or TIMESTAMP_TZ only (not the model's TIMESTAMP_NTZ); seconds since
  MAX(column), measured at the scheduled time.
- https://docs.snowflake.com/en/sql-reference/functions/dmf_data_metric_schedule_time —
  DATA_METRIC_SCHEDULED_TIME() (TIMESTAMP_LTZ) is the documented clock of a custom freshness DMF.
- https://docs.snowflake.com/en/sql-reference/functions/convert_timezone — the 2-argument
  form returns TIMESTAMP_TZ in the target zone; cast to NTZ it is UTC wall-clock time.
- https://docs.snowflake.com/en/sql-reference/functions/dmf_duplicate_count — DUPLICATE_COUNT
  counts values that have duplicates *including NULLs*; the pipeline counts extra copies of
  trimmed, non-blank values, hence a custom DMF.
- https://docs.snowflake.com/en/sql-reference/functions/dmf_accepted_values — "You cannot
  associate this function with the same column more than once."
- https://docs.snowflake.com/en/sql-reference/sql/alter-view (dataMetricFunctionAction,
  shared with ALTER TABLE) — ``{ ADD | DROP } DATA METRIC FUNCTION <name> ON (…)``; no
  IF [NOT] EXISTS form.
- https://docs.snowflake.com/en/sql-reference/sql/execute-immediate and
  https://docs.snowflake.com/en/sql-reference/snowflake-scripting/exception and
  https://docs.snowflake.com/en/sql-reference/snowflake-scripting/null — an anonymous block
  run through EXECUTE IMMEDIATE $$…$$ (works in Snowsight, SnowSQL and the connectors) whose
  ``WHEN OTHER THEN NULL`` handler lets the script go on.
- https://docs.snowflake.com/en/sql-reference/sql/create-data-metric-function — the custom
  DMF signature ``(arg_t TABLE(arg_c <type>)) RETURNS NUMBER AS $$…$$``.
"""

from __future__ import annotations

from collections.abc import Sequence

from engagement.checks import threshold
from engagement.engines.snowflake_ddl import TYPES, ident, qualified
from engagement.model import TABLES_BY_NAME, Check, CheckType, ColumnType

SCHEDULE = "TRIGGER_ON_CHANGES"
SYSTEM = {
    CheckType.NULL_COUNT: "SNOWFLAKE.CORE.NULL_COUNT",
    CheckType.ROW_COUNT: "SNOWFLAKE.CORE.ROW_COUNT",
    CheckType.FRESHNESS: "SNOWFLAKE.CORE.FRESHNESS",  # DATE columns only, see _is_system
    CheckType.ACCEPTED_VALUES: "SNOWFLAKE.CORE.ACCEPTED_VALUES",
    CheckType.REFERENTIAL_INTEGRITY: "SNOWFLAKE.CORE.REFERENTIAL_INTEGRITY_COUNT",
}
NO_DMF = {
    CheckType.REJECTED_ROWS: "counts rejected_records of the latest load; it stays a pipeline check",
    CheckType.VOLUME_CHANGE: "compares with earlier runs' counts in dq_check_logs; Snowflake's ROW_COUNT "
                             "history (DATA_QUALITY_MONITORING_RESULTS) can chart the same trend",
}
# The column types SNOWFLAKE.CORE.FRESHNESS accepts, of those the model has (TIMESTAMP is NTZ).
FRESHNESS_SYSTEM_TYPES = {ColumnType.DATE}
# The model's timestamps are UTC without a zone; the DMF's clock is a TIMESTAMP_LTZ.
NOW_UTC_NTZ = "CONVERT_TIMEZONE('UTC', SNOWFLAKE.CORE.DATA_METRIC_SCHEDULED_TIME())::TIMESTAMP_NTZ"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _text(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _column_type(check: Check) -> ColumnType:
    return TABLES_BY_NAME[check.table].column(check.column or "").type


def _is_system(check: Check) -> bool:
    """Whether a system DMF measures ``check`` as the pipeline does (on a type it accepts)."""
    if check.type is CheckType.FRESHNESS:
        return _column_type(check) in FRESHNESS_SYSTEM_TYPES
    return check.type in SYSTEM


def _expectation(check: Check) -> str:
    """The fail (else warn) threshold as an EXPECTATION, when it is absolute; '' when it is a share."""
    spec = check.fail or check.warn
    if spec is None or spec.endswith("%"):
        return ""
    limit = threshold(spec, 0) or 0.0
    if check.type is CheckType.FRESHNESS:
        limit *= 3600  # our thresholds are hours; both freshness DMFs return seconds
    op = ">=" if check.type is CheckType.ROW_COUNT else "<="
    return f"\n    EXPECTATION {ident(check.name)} (VALUE {op} {_number(limit)})"


def _custom_body(check: Check) -> tuple[str, str]:
    """The SELECT of a custom DMF over ``arg_t(arg_c)``, and what its value counts (for the comment)."""
    if check.type is CheckType.DUPLICATE_COUNT:
        # As the engines count: extra copies of a trimmed, non-empty value; NULL and blank never count.
        value = "NULLIF(TRIM(CAST(arg_c AS VARCHAR)), '')"
        return (f"SELECT COUNT({value}) - COUNT(DISTINCT {value}) FROM arg_t",
                "extra copies of a trimmed, non-blank value")
    if check.type is CheckType.FRESHNESS:
        return (f"SELECT TIMESTAMPDIFF(SECOND, MAX(arg_c), {NOW_UTC_NTZ}) FROM arg_t",
                "seconds since the newest value (UTC)")
    if check.type is CheckType.VALUE_RANGE:
        bounds = [f"arg_c < {_number(check.min)}" if check.min is not None else "",
                  f"arg_c > {_number(check.max)}" if check.max is not None else ""]
        bad = " OR ".join(b for b in bounds if b)
    elif check.type is CheckType.PATTERN:
        bad = f"NOT REGEXP_LIKE(arg_c, {_text(check.pattern or '')})"
    else:
        raise ValueError(f"check type {check.type} has no custom DMF")
    return f"SELECT COUNT_IF(arg_c IS NOT NULL AND ({bad})) FROM arg_t", "rows whose value is bad"


def _custom(check: Check, database: str, schema: str) -> tuple[str, str]:
    """A custom DMF for ``check``: its CREATE statement and its name."""
    name = f"{ident(database)}.{ident(schema)}.{ident('DMF_' + check.name)}"
    body, counts = _custom_body(check)
    create = (
        f"CREATE OR REPLACE DATA METRIC FUNCTION {name}(arg_t TABLE(arg_c {TYPES[_column_type(check)]}))\n"
        f"    RETURNS NUMBER\n    COMMENT = {_text(f'engagement check {check.name}: {counts}')}\n"
        f"    AS $$ {body} $$;"
    )
    return create, name


def _arguments(check: Check, database: str, schema: str) -> str:
    """The ON (…) argument list of the association."""
    col = (check.column or "").upper()
    if check.type is CheckType.ROW_COUNT:
        return "()"
    if check.type is CheckType.ACCEPTED_VALUES:
        return f"({col}, {col} -> {col} IN ({', '.join(_text(v) for v in check.values or ())}))"
    if check.type is CheckType.REFERENTIAL_INTEGRITY:
        ref = qualified(database, schema, check.ref_table or "")
        return f"({col}, TABLE({ref}({(check.ref_column or '').upper()})))"
    return f"({col})"


def drop_association(table: str, function: str, on: str) -> str:
    """Drops an association if there is one: ALTER TABLE … DROP has no IF EXISTS form, and it
    fails on a first run (nothing associated yet, or the custom DMF not created yet). Any other
    failure surfaces in the ADD that follows."""
    return (f"EXECUTE IMMEDIATE $$\nBEGIN\n    ALTER TABLE {table} DROP DATA METRIC FUNCTION {function}\n"
            f"        ON {on};\nEXCEPTION\n    WHEN OTHER THEN NULL;\nEND;\n$$;")


def _attach(check: Check, database: str, schema: str) -> list[str]:
    """The statements that (re)associate ``check``: drop the old association, (re)create a custom
    DMF, add the association."""
    if check.type in NO_DMF:
        return [f"-- {check.name} ({check.type.value}): no DMF; it {NO_DMF[check.type]}."]
    table = qualified(database, schema, check.table)
    on = _arguments(check, database, schema)
    statements = [f"-- {check.name}: {check.description.strip() or check.type.value}"]
    if _is_system(check):
        function, create = SYSTEM[check.type], ""
    else:
        create, function = _custom(check, database, schema)
    # Dropped before the CREATE OR REPLACE, so the DMF is replaced while nothing uses it.
    statements.append(drop_association(table, function, on))
    if create:
        statements.append(create)
    statements.append(f"ALTER TABLE {table} ADD DATA METRIC FUNCTION {function}\n    ON {on}{_expectation(check)};")
    return statements


def dmf_script(checks: Sequence[Check], database: str, schema: str) -> str:
    """The SQL attaching ``checks`` as data metric functions to the tables of ``database.schema``."""
    header = (
        "-- engagement: the data-quality checks as Snowflake data metric functions (optional).\n"
        "-- Generated by `engagement sql --dmf` from the checks file; do not edit by hand.\n"
        "-- Run after 03_tables.sql as ENGAGEMENT_ROLE (it owns the tables), with the grants of the DMF section\n"
        "-- of 01_setup.sql: CREATE DATA METRIC FUNCTION on the schema, the SNOWFLAKE.DATA_METRIC_USER database\n"
        "-- role, EXECUTE DATA METRIC FUNCTION on the account. Results: SNOWFLAKE.LOCAL.DATA_QUALITY_MONITORING_RESULTS.\n"
        "-- Safe to run again: each association is dropped, then added anew (one per check).\n"
        "-- Custom DMFs count as the pipeline does where the system DMF would not: duplicate_count (extra copies\n"
        "-- of trimmed, non-blank values; SNOWFLAKE.CORE.DUPLICATE_COUNT also counts NULLs and untrimmed copies)\n"
        "-- and freshness on a TIMESTAMP_NTZ column (SNOWFLAKE.CORE.FRESHNESS takes DATE, TIMESTAMP_LTZ, TIMESTAMP_TZ).\n"
        "-- Differences that remain: NULL_COUNT counts NULLs only (the pipeline also counts blank texts),\n"
        "-- freshness is in seconds, and a share threshold ('5%') has no EXPECTATION.\n"
    )
    tables = list(dict.fromkeys(c.table for c in checks if c.type not in NO_DMF))
    parts = [header, "-- Measure each table whenever it changes (a MERGE or a load)."]
    parts += [f"ALTER TABLE {qualified(database, schema, t)} SET DATA_METRIC_SCHEDULE = '{SCHEDULE}';" for t in tables]
    for check in checks:
        parts.append("")
        parts += _attach(check, database, schema)
    return "\n".join(parts) + "\n"
