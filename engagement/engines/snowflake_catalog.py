"""The offline account behind :mod:`engagement.engines.snowflake_recorder`: what it holds
(:class:`Catalog`) and what it records (:class:`Statement`), with the connector's result shapes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp
from snowflake.connector.cursor import ResultMetadata

from engagement.model import TABLES, ColumnType

# The connector's type codes (snowflake.connector.constants.FIELD_TYPES).
FIXED, REAL, TEXT, DATE, TIMESTAMP_LTZ, TIMESTAMP_NTZ, BOOLEAN, VARIANT = 0, 1, 2, 3, 6, 8, 13, 5
MODEL_TYPES = {
    ColumnType.VARCHAR: ("VARCHAR", TEXT),
    ColumnType.BIGINT: ("NUMBER(38,0)", FIXED),
    ColumnType.DOUBLE: ("FLOAT", REAL),
    ColumnType.DATE: ("DATE", DATE),
    ColumnType.TIMESTAMP: ("TIMESTAMP_NTZ", TIMESTAMP_NTZ),
}
SQLGLOT_TYPES = {
    exp.DataType.Type.BIGINT: FIXED, exp.DataType.Type.INT: FIXED, exp.DataType.Type.DECIMAL: FIXED,
    exp.DataType.Type.DOUBLE: REAL, exp.DataType.Type.FLOAT: REAL, exp.DataType.Type.DATE: DATE,
    exp.DataType.Type.TIMESTAMP: TIMESTAMP_NTZ, exp.DataType.Type.TIMESTAMPNTZ: TIMESTAMP_NTZ,
    exp.DataType.Type.TIMESTAMPTZ: 7, exp.DataType.Type.TIMESTAMPLTZ: TIMESTAMP_LTZ,
    exp.DataType.Type.BOOLEAN: BOOLEAN, exp.DataType.Type.VARIANT: VARIANT,
}


@dataclass
class Catalog:
    """What the offline account holds: the session's context, objects and grants.

    ``tables`` maps ``DB.SCHEMA.TABLE`` (upper case) to its columns as ``(NAME, SQL type)``.
    ``grants`` are ``(privilege, object type, object name)`` held by ``role``; ``role_grants``
    those of other roles (``("USAGE", "ROLE", name)`` in ``grants`` grants role ``name`` to
    ``role``, as SHOW GRANTS shows it; ``"PUBLIC"`` is the role every role inherits).
    """

    account: str = "OFFLINE"
    user: str = "ENGAGEMENT_SVC"
    role: str = "ENGAGEMENT_ROLE"
    warehouse: str = "ENGAGEMENT_WH"
    warehouse_size: str = "X-Small"
    other_warehouses: list[tuple[str, str]] = field(default_factory=list)  # (name, size) the role also sees
    database: str = "ENGAGEMENT"
    schema: str = "MARKETING"
    tables: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    stages: dict[str, str] = field(default_factory=dict)  # DB.SCHEMA.STAGE -> URL ('' internal)
    stage_files: dict[str, list[tuple[str, int, str]]] = field(default_factory=dict)  # stage -> (url, size, md5)
    grants: set[tuple[str, str, str]] = field(default_factory=set)
    role_grants: dict[str, set[tuple[str, str, str]]] = field(default_factory=dict)

    @classmethod
    def from_model(cls, database: str = "ENGAGEMENT", schema: str = "MARKETING", **kwargs: Any) -> Catalog:
        """An account set up as ``sql/01``–``03`` do: every model table, the internal stage, the grants."""
        db, sch = database.upper(), schema.upper()
        catalog = cls(database=db, schema=sch, **kwargs)
        for table in TABLES:
            catalog.tables[f"{db}.{sch}.{table.name.upper()}"] = [
                (c.name.upper(), MODEL_TYPES[c.type][0]) for c in table.columns]
        catalog.stages[f"{db}.{sch}.ENGAGEMENT_STAGE"] = ""
        catalog.grants |= {
            ("USAGE", "WAREHOUSE", catalog.warehouse), ("OPERATE", "WAREHOUSE", catalog.warehouse),
            ("USAGE", "DATABASE", db), ("USAGE", "SCHEMA", f"{db}.{sch}"),
            ("CREATE TABLE", "SCHEMA", f"{db}.{sch}"), ("CREATE VIEW", "SCHEMA", f"{db}.{sch}"),
            ("CREATE STAGE", "SCHEMA", f"{db}.{sch}"),
            ("CREATE FILE FORMAT", "SCHEMA", f"{db}.{sch}"),
            ("READ", "STAGE", f"{db}.{sch}.ENGAGEMENT_STAGE"), ("WRITE", "STAGE", f"{db}.{sch}.ENGAGEMENT_STAGE"),
        }
        # sql/03_tables.sql runs as the role, which therefore owns the tables
        catalog.grants |= {("OWNERSHIP", "TABLE", name) for name in catalog.tables}
        return catalog

    def schema_for_sqlglot(self) -> dict[str, Any]:
        nested: dict[str, Any] = {}
        for name, columns in self.tables.items():
            db, sch, table = name.split(".")
            nested.setdefault(db, {}).setdefault(sch, {})[table] = dict(columns)
        return nested


@dataclass(frozen=True)
class Statement:
    """One statement the client sent: its text, the query tag in force, and whether it was a describe."""

    sql: str
    query_tag: str | None
    describe: bool = False


Answer = tuple[list[ResultMetadata], list[tuple[Any, ...]]]


def _meta(name: str, type_code: int = TEXT, nullable: bool = True) -> ResultMetadata:
    precision, scale = (38, 0) if type_code == FIXED else (None, None)
    return ResultMetadata(name, type_code, None, 16777216 if type_code == TEXT else None, precision, scale, nullable)


def _text_answer(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> Answer:
    return [_meta(n) for n in names], [tuple(r) for r in rows]


def _name(text: str) -> str:
    """A (possibly quoted, possibly qualified) identifier as Snowflake resolves it."""
    parts = []
    for part in re.findall(r'"(?:[^"]|"")*"|[^.]+', text.strip().lstrip("@")):
        parts.append(part[1:-1].replace('""', '"') if part.startswith('"') else part.upper())
    return ".".join(parts)


FLATTEN = re.compile(r"\s*SELECT\s+\*\s+FROM\s+TABLE\s*\(\s*FLATTEN\s*\(", re.I)
STRING = r"'((?:[^'\\]|\\.|'')*)'"


class ProgrammingError(Exception):
    """An error the offline account raises (replaced by the connector's type in :class:`RecordingCursor`)."""


