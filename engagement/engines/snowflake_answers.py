"""How the offline account answers each statement (see :mod:`engagement.engines.snowflake_recorder`)."""

from __future__ import annotations

import fnmatch
import glob
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify
from snowflake.connector.cursor import ResultMetadata

from engagement.engines.snowflake_catalog import (
    FIXED,
    FLATTEN,
    REAL,
    SQLGLOT_TYPES,
    STRING,
    TEXT,
    VARIANT,
    Answer,
    Catalog,
    ProgrammingError,
    _meta,
    _name,
    _text_answer,
)

class LogTables:
    """The rows of the bookkeeping tables (``loaded_files``, ``ingestion_logs``), kept from the
    statements that write them, so that an offline run sees what earlier offline runs recorded:
    a second plan on the same connection finds its files merged, as a real second run would.

    Writes are the engine's one-statement MERGE / INSERT of a JSON literal (rows in the model's
    column order); reads are the engine's plain selects with equality filters, order and limit.
    """

    KEPT = ("LOADED_FILES", "INGESTION_LOGS")
    WRITE = re.compile(r'\s*(MERGE|INSERT)\s+INTO\s+"[^"]+"\."[^"]+"\."([^"]+)"', re.I)
    LITERAL = re.compile(r"parse_json\('((?:[^']|'')*)'\)", re.I)

    def __init__(self) -> None:
        from engagement.model import TABLES

        self.columns = {t.name.upper(): [c.name.upper() for c in t.columns] for t in TABLES}
        self.rows: dict[str, list[dict[str, Any]]] = {name: [] for name in self.KEPT}

    def write(self, sql: str) -> None:
        match = self.WRITE.match(sql)
        literal = self.LITERAL.search(sql)
        if not match or match.group(2) not in self.KEPT or not literal:
            return
        text = re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), literal.group(1).replace("''", "'"))
        table = match.group(2)
        new = [dict(zip(self.columns[table], row)) for row in json.loads(text)]
        if match.group(1).upper() == "MERGE":
            keys = re.findall(r'EQUAL_NULL\("(\w+)"', sql.split(" ON ", 1)[-1].split(" WHEN ", 1)[0])
            fresh = {tuple(r[k] for k in keys) for r in new}
            self.rows[table] = [r for r in self.rows[table] if tuple(r[k] for k in keys) not in fresh]
        self.rows[table] += new

    def select(self, tree: exp.Expression, names: Sequence[str]) -> list[tuple[Any, ...]] | None:
        """The rows a plain select of a kept table returns, or None when it is not one."""
        tables = {t.name.upper() for t in tree.find_all(exp.Table)}
        plain = all(isinstance(s.unalias(), (exp.Column, exp.Star)) for s in tree.selects)
        if len(tables) != 1 or not tables <= set(self.KEPT) or not plain or not isinstance(tree, exp.Select) \
                or tree.find(exp.AggFunc) or tree.find(exp.Join) or tree.find(exp.Union) or tree.find(exp.Group):
            return None
        (table,) = tables
        rows = self.rows[table]
        for eq in tree.find_all(exp.EQ):
            if isinstance(eq.left, exp.Column) and isinstance(eq.right, exp.Literal):
                name, value = eq.left.name.upper(), eq.right.this
                rows = [r for r in rows if r.get(name) is not None and str(r[name]) == value]
        for ordered in reversed(tree.args.get("order").expressions if tree.args.get("order") else []):
            name = ordered.this.name.upper()
            present = sorted((r for r in rows if r.get(name) is not None), key=lambda r: r[name],
                             reverse=bool(ordered.args.get("desc")))
            rows = present + [r for r in rows if r.get(name) is None]
        limit = tree.args.get("limit")
        if limit is not None:
            rows = rows[:int(limit.expression.this)]
        return [tuple(r.get(n.upper()) for n in names) for r in rows]


class Answers:
    """How the offline account answers one statement (see the module docstring)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.logs = LogTables()
        self.put_files: dict[str, list[str]] = {}  # stage prefix -> local Parquet files PUT there
        self.handlers: list[tuple[re.Pattern[str], Callable[[re.Match[str]], Answer]]] = [
            (re.compile(r"\s*SELECT\s+CURRENT_(\w+)\(\)\s*$", re.I), self._current),
            (re.compile(r"\s*SHOW\s+WAREHOUSES\s+LIKE\s+" + STRING, re.I), self._show_warehouses),
            (re.compile(r"\s*SHOW\s+GRANTS\s+TO\s+ROLE\s+(\S+)", re.I), self._show_grants),
            (re.compile(r"\s*DESC(?:RIBE)?\s+STAGE\s+(\S+)", re.I), self._desc_stage),
            (re.compile(r"\s*LIST\s+(@\S+)", re.I), self._list),
            (re.compile(r"\s*PUT\s+'file://([^']+)'\s+'?(@[^'\s]+)", re.I), self._put),
            (re.compile(r"\s*COPY\s+INTO\s+(\S+).*?\bFROM\s+\(?\s*(?:SELECT\b.*?\bFROM\s+)?'?(@[^'\s)]+)", re.I | re.S),
             self._copy),
            (re.compile(r".*\bINFORMATION_SCHEMA\.COLUMNS\b", re.I | re.S), self._columns),
            (re.compile(r"\s*DELETE\s", re.I), lambda m: ([_meta("number of rows deleted", FIXED)], [(0,)])),
            (re.compile(r"\s*UPDATE\s", re.I),
             lambda m: ([_meta("number of rows updated", FIXED), _meta("number of multi-joined rows updated", FIXED)],
                        [(0, 0)])),
            (re.compile(r"\s*MERGE\s", re.I | re.S), self._merge),
            (re.compile(r"\s*INSERT\s", re.I), lambda m: ([_meta("number of rows inserted", FIXED)], [(0,)])),
        ]

    def answer(self, sql: str) -> Answer:
        self.logs.write(sql)
        for pattern, handler in self.handlers:
            match = pattern.match(sql)
            if match:
                return handler(match)
        if re.match(r"\s*(\(|SELECT|WITH)\b", sql, re.I):
            return self._query(sql)
        return _text_answer(["status"], [("Statement executed successfully.",)])

    # -- metadata -----------------------------------------------------------------------------

    def _current(self, m: re.Match[str]) -> Answer:
        value = {"ROLE": self.catalog.role, "WAREHOUSE": self.catalog.warehouse, "DATABASE": self.catalog.database,
                 "SCHEMA": self.catalog.schema, "ACCOUNT": self.catalog.account, "USER": self.catalog.user,
                 "REGION": "OFFLINE", "VERSION": "9.0.0"}.get(m.group(1).upper())
        return _text_answer([f"CURRENT_{m.group(1).upper()}()"], [(value,)])

    def _show_warehouses(self, m: re.Match[str]) -> Answer:
        pattern = m.group(1).replace("\\_", "\x00").replace("_", "?").replace("%", "*").replace("\x00", "_")
        seen = [*self.catalog.other_warehouses, (self.catalog.warehouse, self.catalog.warehouse_size)]
        rows = [(name, "STARTED", "STANDARD", size) for name, size in seen
                if fnmatch.fnmatchcase(name.upper(), pattern.upper())]
        return _text_answer(["name", "state", "type", "size"], rows)

    def _show_grants(self, m: re.Match[str]) -> Answer:
        role = _name(m.group(1))
        held = self.catalog.grants if role == self.catalog.role else self.catalog.role_grants.get(role, set())
        rows = [("", privilege, kind, name, "ROLE", role, "false", "SYSADMIN") for privilege, kind, name in sorted(held)]
        return _text_answer(["created_on", "privilege", "granted_on", "name", "granted_to", "grantee_name",
                             "grant_option", "granted_by"], rows)

    def _desc_stage(self, m: re.Match[str]) -> Answer:
        name = _name(m.group(1))
        if name.startswith("@") or m.group(1).startswith("@"):
            raise ProgrammingError(f"SQL compilation error: syntax error line 1 unexpected '@' in DESC STAGE {m.group(1)}")
        if name not in self.catalog.stages:
            raise ProgrammingError(f"SQL compilation error: Stage '{name}' does not exist or not authorized.")
        url = self.catalog.stages[name]
        return _text_answer(["parent_property", "property", "property_type", "property_value", "property_default"],
                            [("STAGE_LOCATION", "URL", "String", f'["{url}"]' if url else "", "")])

    def _list(self, m: re.Match[str]) -> Answer:
        where = _name(m.group(1).split("/")[0])
        rows = [(url, size, md5, "Mon, 30 Nov 2026 00:00:00 GMT")
                for url, size, md5 in self.catalog.stage_files.get(where, [])]
        return _text_answer(["name", "size", "md5", "last_modified"], rows)

    def _columns(self, m: re.Match[str]) -> Answer:
        rows = [(name.split(".")[2], column) for name, columns in self.catalog.tables.items() for column, _ in columns]
        return _text_answer(["TABLE_NAME", "COLUMN_NAME"], rows)

    # -- loads ----------------------------------------------------------------------------------

    def _put(self, m: re.Match[str]) -> Answer:
        files = sorted(glob.glob(m.group(1)))
        self.put_files[_stage_prefix(m.group(2))] = files
        rows = [(Path(f).name, Path(f).name, Path(f).stat().st_size, Path(f).stat().st_size, "NONE", "NONE",
                 "UPLOADED", "") for f in files]
        return _text_answer(["source", "target", "source_size", "target_size", "source_compression",
                             "target_compression", "status", "message"], rows)

    def _copy(self, m: re.Match[str]) -> Answer:
        import pyarrow.parquet as pq

        prefix = _stage_prefix(m.group(2))
        rows = []
        for staged, files in self.put_files.items():
            if staged.startswith(prefix):
                for f in files:
                    n = pq.read_metadata(f).num_rows
                    rows.append((f"{staged}{Path(f).name}", "LOADED", n, n, 1, 0, None, None, None, None))
        names = ["file", "status", "rows_parsed", "rows_loaded", "error_limit", "errors_seen", "first_error",
                 "first_error_line", "first_error_character", "first_error_column_name"]
        return [_meta(n, FIXED if n.startswith(("rows", "error")) else TEXT) for n in names], rows

    def _merge(self, m: re.Match[str]) -> Answer:
        names = [label for clause, label in (("INSERT", "number of rows inserted"), ("UPDATE", "number of rows updated"),
                                             ("DELETE", "number of rows deleted"))
                 if re.search(rf"\bTHEN\s+{clause}\b", m.string, re.I)]
        return [_meta(n, FIXED) for n in names], [tuple(0 for _ in names)]

    # -- queries --------------------------------------------------------------------------------

    def columns(self, sql: str) -> list[ResultMetadata]:
        """The output columns of a query, resolved against the catalog's tables."""
        for pattern, handler in self.handlers:
            if pattern.match(sql):
                return handler(pattern.match(sql))[0]  # type: ignore[arg-type]
        if FLATTEN.match(sql):
            return [_meta(n, FIXED if n in ("SEQ", "INDEX") else VARIANT if n in ("VALUE", "THIS") else TEXT)
                    for n in ("SEQ", "KEY", "PATH", "INDEX", "VALUE", "THIS")]
        try:
            tree = sqlglot.parse_one(sql, read="snowflake")
            tree = qualify(tree, schema=self.catalog.schema_for_sqlglot(), dialect="snowflake",
                           validate_qualify_columns=False, identify=False)
            tree = annotate_types(tree, schema=self.catalog.schema_for_sqlglot(), dialect="snowflake")
        except SqlglotError as exc:
            raise ProgrammingError(f"the offline account cannot resolve the columns of: {sql[:200]} ({exc})") from exc
        if not isinstance(tree, exp.Query):
            return _text_answer(["status"], [])[0]
        metas = []
        for select in tree.selects:
            type_code = SQLGLOT_TYPES.get(select.type.this if select.type else None, TEXT)  # type: ignore[arg-type]
            metas.append(_meta(select.alias_or_name, type_code))
        return metas

    def _query(self, sql: str) -> Answer:
        metas = self.columns(sql)
        tree = sqlglot.parse_one(sql, read="snowflake")
        kept = self.logs.select(tree, [m.name for m in metas])
        if kept is not None:
            return metas, kept
        if isinstance(tree, exp.Select) and not tree.args.get("group") and tree.selects and all(
                s.find(exp.AggFunc) is not None for s in tree.selects):
            return metas, [tuple(0 if m.type_code in (FIXED, REAL) else None for m in metas)]
        return metas, []


def _stage_prefix(location: str) -> str:
    stage, _, path = location.partition("/")
    return f"@{_name(stage)}/{path}"


