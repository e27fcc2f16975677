"""Reading the checks file (YAML): validated, with one-line errors that say what to fix."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from engagement.exceptions import ConfigError
from engagement.model import TABLES_BY_NAME, Check, CheckType

DEFAULT_FILE = Path(__file__).with_name("checks.yml")
DIMENSIONS = ("completeness", "uniqueness", "validity", "timeliness", "consistency")
THRESHOLD = re.compile(r"^\d+(\.\d+)?%?$")


class _CheckSpec(BaseModel):
    """One entry of the checks file."""

    model_config = ConfigDict(extra="forbid")

    name: str
    type: CheckType
    table: str
    column: str | None = None
    warn: str | None = None
    fail: str | None = None
    dimension: str = "completeness"
    owner: str | None = None
    description: str = ""

    @field_validator("warn", "fail", mode="before")
    @classmethod
    def _threshold(cls, value: Any) -> str | None:
        if value is None:
            return None
        text = str(value).strip()
        if isinstance(value, bool) or not THRESHOLD.match(text):
            raise ValueError(f"threshold {value!r} must be a number >= 0 or a share such as '5%'")
        return text

    @field_validator("dimension")
    @classmethod
    def _dimension(cls, value: str) -> str:
        if value not in DIMENSIONS:
            raise ValueError(f"dimension {value!r} must be one of {', '.join(DIMENSIONS)}")
        return value

    @model_validator(mode="after")
    def _table_and_column(self) -> _CheckSpec:
        table = TABLES_BY_NAME.get(self.table)
        if table is None:
            raise ValueError(f"table {self.table!r} is not a table of the model ({', '.join(TABLES_BY_NAME)})")
        if self.type is CheckType.ROW_COUNT:
            if self.column:
                raise ValueError("row_count takes no column")
            if any(t and t.endswith("%") for t in (self.warn, self.fail)):
                raise ValueError("row_count thresholds are row counts, not shares")
        elif not self.column:
            raise ValueError(f"{self.type.value} needs a column")
        elif self.column not in table.column_names:
            raise ValueError(f"{self.table} has no column {self.column!r}")
        if self.warn is None and self.fail is None:
            raise ValueError("give a warn or a fail threshold (or both)")
        return self


def _problem(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


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
    checks, seen = [], set()
    for i, entry in enumerate(entries, start=1):
        label = entry.get("name", f"#{i}") if isinstance(entry, dict) else f"#{i}"
        try:
            spec = _CheckSpec.model_validate(entry)
        except ValidationError as exc:
            raise ConfigError(f"checks file {path}, check {label}: {_problem(exc)}") from None
        if spec.name in seen:
            raise ConfigError(f"checks file {path}: the name {spec.name!r} is used twice; names must be unique")
        seen.add(spec.name)
        checks.append(Check(**spec.model_dump()))
    return tuple(checks)
