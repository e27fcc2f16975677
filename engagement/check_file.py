"""Reading the checks file (YAML): validated, with one-line errors that say what to fix."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

from engagement.exceptions import ConfigError
from engagement.model import TABLES_BY_NAME, Check, CheckType

DEFAULT_FILE = Path(__file__).with_name("checks.yml")
DIMENSIONS = ("completeness", "uniqueness", "validity", "timeliness", "consistency")
THRESHOLD = re.compile(r"^\d+(\.\d+)?%?$")
KEYS = tuple(f.name for f in dataclasses.fields(Check))
REQUIRED = ("name", "type", "table")


def _threshold(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if isinstance(value, bool) or not THRESHOLD.match(text):
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
    try:
        kind = CheckType(entry["type"])
    except ValueError:
        raise ValueError(f"type {entry['type']!r} must be one of {', '.join(t.value for t in CheckType)}") from None
    warn, fail = _threshold(entry.get("warn")), _threshold(entry.get("fail"))
    dimension = entry.get("dimension", "completeness")
    if dimension not in DIMENSIONS:
        raise ValueError(f"dimension {dimension!r} must be one of {', '.join(DIMENSIONS)}")
    table, column = TABLES_BY_NAME.get(entry["table"]), entry.get("column")
    if table is None:
        raise ValueError(f"table {entry['table']!r} is not a table of the model ({', '.join(TABLES_BY_NAME)})")
    if kind is CheckType.ROW_COUNT:
        if column:
            raise ValueError("row_count takes no column")
        if any(t and t.endswith("%") for t in (warn, fail)):
            raise ValueError("row_count thresholds are row counts, not shares")
    elif not column:
        raise ValueError(f"{kind.value} needs a column")
    elif column not in table.column_names:
        raise ValueError(f"{table.name} has no column {column!r}")
    if warn is None and fail is None:
        raise ValueError("give a warn or a fail threshold (or both)")
    return Check(**{**entry, "name": str(entry["name"]), "type": kind, "warn": warn, "fail": fail,
                    "dimension": dimension})


def load_checks(path: Path | None = None) -> tuple[Check, ...]:
    """The checks of ``path`` (default: the package's ``checks.yml``), validated."""
    path = path or DEFAULT_FILE
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"checks file {path}: {exc.strerror}; fix --checks or ENGAGEMENT_CHECKS_FILE") from None
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
