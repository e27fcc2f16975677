"""Reading the checks file (YAML): validated, with one-line errors that say what to fix."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any

import yaml

from engagement.exceptions import ConfigError
from engagement.identifiers import IDENTIFIER
from engagement.model import SOURCES_BY_RAW, TABLES_BY_NAME, Check, CheckType, ColumnType, Table

DEFAULT_FILE = Path(__file__).with_name("checks.yml")
DIMENSIONS = ("completeness", "uniqueness", "validity", "timeliness", "consistency")
THRESHOLD = re.compile(r"^\d+(\.\d+)?%?$")
DURATION = re.compile(r"^\d+(\.\d+)?[mhd]?$")  # freshness: minutes, hours (the default) or days
DEFAULT_WINDOW = 7
KEYS = tuple(f.name for f in dataclasses.fields(Check))
REQUIRED = ("name", "type", "table")
# The keys only some types take, and which.
TYPE_KEYS = {
    "values": CheckType.ACCEPTED_VALUES,
    "min": CheckType.VALUE_RANGE,
    "max": CheckType.VALUE_RANGE,
    "pattern": CheckType.PATTERN,
    "ref_table": CheckType.REFERENTIAL_INTEGRITY,
    "ref_column": CheckType.REFERENTIAL_INTEGRITY,
    "window": CheckType.VOLUME_CHANGE,
}
NO_COLUMN = (CheckType.ROW_COUNT, CheckType.REJECTED_ROWS, CheckType.VOLUME_CHANGE)
NUMERIC = (ColumnType.BIGINT, ColumnType.DOUBLE)


def _threshold(value: Any, kind: CheckType) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if kind is CheckType.FRESHNESS:
        if isinstance(value, bool) or not DURATION.match(text):
            raise ValueError(f"freshness threshold {value!r} must be a duration such as '36h', '2d' or '90m'")
    elif isinstance(value, bool) or not THRESHOLD.match(text):
        raise ValueError(f"threshold {value!r} must be a number >= 0 or a share such as '5%'")
    return text


def _check(entry: Any) -> Check:
    """One entry of the file as a Check, or a ValueError saying what is wrong with it."""
    if not isinstance(entry, dict):
        raise ValueError(f"each check is a mapping of {', '.join(KEYS)}")
    unknown = sorted(set(entry) - set(KEYS))
    if unknown:
        raise ValueError(f"unknown key {', '.join(unknown)}; the keys are {', '.join(KEYS)}")
    missing = [k for k in REQUIRED if entry.get(k) in (None, "")]
    if missing:
        raise ValueError(f"{', '.join(missing)} is required")
    for key in (*REQUIRED, "column", "dimension"):
        if entry.get(key) is not None and not isinstance(entry[key], str):  # [dim_customer] is a YAML list
            raise ValueError(
                f"{key} must be one name, not {entry[key]!r}; write it without brackets, "
                f"e.g. {key}: {'dim_customer' if key == 'table' else 'name'}")
    if not IDENTIFIER.match(str(entry["name"])):
        raise ValueError("name must be an identifier (letters, digits and _, starting with a letter or _): "
                         "it names the check in tables, alerts and Snowflake DMF expectations")
    try:
        kind = CheckType(entry["type"])
    except ValueError:
        raise ValueError(f"type {entry['type']!r} must be one of {', '.join(t.value for t in CheckType)}") from None
    warn, fail = _threshold(entry.get("warn"), kind), _threshold(entry.get("fail"), kind)
    dimension = entry.get("dimension", "completeness")
    if dimension not in DIMENSIONS:
        raise ValueError(f"dimension {dimension!r} must be one of {', '.join(DIMENSIONS)}")
    table, column = TABLES_BY_NAME.get(entry["table"]), entry.get("column")
    if table is None:
        raise ValueError(f"table {entry['table']!r} is not a table of the model ({', '.join(TABLES_BY_NAME)})")
    if kind in NO_COLUMN:
        if column:
            raise ValueError(f"{kind.value} takes no column")
        if kind is CheckType.ROW_COUNT and any(t and t.endswith("%") for t in (warn, fail)):
            raise ValueError("row_count thresholds are row counts, not shares")
        if kind is CheckType.REJECTED_ROWS and table.name not in SOURCES_BY_RAW:
            raise ValueError(f"rejected_rows measures a source by its raw table: one of {', '.join(SOURCES_BY_RAW)}")
    elif not column:
        raise ValueError(f"{kind.value} needs a column")
    elif column not in table.column_names:
        raise ValueError(f"{table.name} has no column {column!r}")
    if warn is None and fail is None:
        raise ValueError("give a warn or a fail threshold (or both)")
    return Check(**{**entry, "name": str(entry["name"]), "type": kind, "warn": warn, "fail": fail,
                    "dimension": dimension, **_type_keys(kind, entry, table)})


def _number(key: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{key} {value!r} must be a number")
    return float(value)


def _type_keys(kind: CheckType, entry: dict[str, Any], table: Table) -> dict[str, Any]:
    """The keys only some check types take, validated and converted."""
    for key, owner in TYPE_KEYS.items():
        if entry.get(key) is not None and kind is not owner:
            raise ValueError(f"{key} applies only to {owner.value} checks")
    if kind is CheckType.ACCEPTED_VALUES:
        values = entry.get("values")
        if (not isinstance(values, list) or not values
                or any(isinstance(v, bool) or not isinstance(v, (str, int, float)) for v in values)):
            raise ValueError("accepted_values needs values: a non-empty list of strings or numbers")
        return {"values": tuple(str(v) for v in values)}
    if kind is CheckType.VALUE_RANGE:
        low, high = _number("min", entry.get("min")), _number("max", entry.get("max"))
        if low is None and high is None:
            raise ValueError("value_range needs a min or a max (or both)")
        if low is not None and high is not None and low > high:
            raise ValueError(f"min {entry['min']!r} is above max {entry['max']!r}")
        column = table.column(entry["column"])
        if column.type not in NUMERIC:
            raise ValueError(f"value_range needs a numeric column; {table.name}.{column.name} is {column.type.value}")
        return {"min": low, "max": high}
    if kind is CheckType.PATTERN:
        pattern = entry.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            raise ValueError("pattern needs pattern: a regular expression (POSIX ERE syntax)")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {exc}") from None
        _engine_dialects(pattern)
        if re.search(r"(?<!\\)\(\?", pattern):  # (?=...), (?i) ...; an escaped \(? is fine
            raise ValueError(f"pattern {pattern!r} uses (?...), which Snowflake and DuckDB do not share; use POSIX ERE")
        return {"pattern": pattern}
    if kind is CheckType.REFERENTIAL_INTEGRITY:
        missing = [k for k in ("ref_table", "ref_column") if entry.get(k) in (None, "")]
        if missing:
            raise ValueError(f"referential_integrity needs {' and '.join(missing)}")
        ref = TABLES_BY_NAME.get(entry["ref_table"])
        if ref is None:
            raise ValueError(f"ref_table {entry['ref_table']!r} is not a table of the model ({', '.join(TABLES_BY_NAME)})")
        if entry["ref_column"] not in ref.column_names:
            raise ValueError(f"{ref.name} has no column {entry['ref_column']!r}")
        return {"ref_table": ref.name, "ref_column": str(entry["ref_column"])}
    if kind is CheckType.FRESHNESS:
        column = table.column(entry["column"])
        if column.type not in (ColumnType.TIMESTAMP, ColumnType.DATE):
            raise ValueError(f"freshness needs a timestamp or date column; {table.name}.{column.name} is {column.type.value}")
    if kind is CheckType.VOLUME_CHANGE:
        window = entry.get("window", DEFAULT_WINDOW)
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window {window!r} must be a whole number of runs >= 1")
        return {"window": window}
    return {}


def load_checks(path: Path | None = None) -> tuple[Check, ...]:
    """The checks of ``path`` (default: the package's ``checks.yml``), validated."""
    path = path or DEFAULT_FILE
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"checks file {path}: {exc.strerror}; fix --checks or ENGAGEMENT_CHECKS_FILE") from None
    except UnicodeDecodeError:
        raise ConfigError(f"checks file {path} is not UTF-8 text; save it as UTF-8 (or fix --checks)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"checks file {path} is not valid YAML{at}; fix the file") from None
    entries = doc.get("checks") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"checks file {path} needs a non-empty list under 'checks:'; see {DEFAULT_FILE.name}")
    checks: list[Check] = []
    for i, entry in enumerate(entries, start=1):
        label = entry.get("name", f"#{i}") if isinstance(entry, dict) else f"#{i}"
        try:
            check = _check(entry)
        except ValueError as exc:
            raise ConfigError(f"checks file {path}, check {label}: {exc}") from None
        if any(c.name == check.name for c in checks):
            raise ConfigError(f"checks file {path}: the name {check.name!r} is used twice; names must be unique")
        checks.append(check)
    return tuple(checks)


# Snowflake's regexp functions take "most of the POSIX ERE syntax", with one named exception:
# non-greedy quantifiers (*?, ??, +?) are not supported
# (https://docs.snowflake.com/sql-reference/functions-regexp, General usage notes).
NON_GREEDY = re.compile(r"(?<!\\)[*+?}]\?")


def _engine_dialects(pattern: str) -> None:
    """Refuse a pattern DuckDB (RE2) or Snowflake (POSIX ERE) would reject only once the load ran."""
    try:
        from engagement.engines.duckdb import regex_problem
    except ImportError:  # Streamlit in Snowflake ships no DuckDB: only Snowflake's rule below applies there
        regex_problem = None
    reason = regex_problem(pattern) if regex_problem else None
    if reason:
        raise ValueError(f"pattern {pattern!r} is not valid in DuckDB's RE2 dialect ({reason}); use POSIX ERE")
    if NON_GREEDY.search(pattern):
        raise ValueError(f"pattern {pattern!r} uses a non-greedy quantifier (*?, +?, ??), which Snowflake does not support")
