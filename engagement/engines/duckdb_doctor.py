"""``engagement doctor`` on the embedded engine: the warehouse file, its lock, its tables, the disk.

Nothing is created: the file is opened read-only (through :class:`DuckDBEngine`, so the lock is
met exactly as a run meets it) and only when it exists; free space and write permission are
read from the nearest existing folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from engagement.config import Settings
from engagement.doctor import (
    GIB,
    CheckResult,
    failed,
    free_space,
    gib,
    guarded,
    nearest_existing,
    origin,
    passed,
    skipped,
    unexpected,
)
from engagement.engines.duckdb import TYPES, DuckDBEngine
from engagement.exceptions import WarehouseError, WarehouseLockedError
from engagement.model import TABLES, Table

MIN_FREE = 1 * GIB  # a run spills to <warehouse>.tmp/ and grows the file; under this it may stop half-way
RUN_FIX = "run `engagement run` once: it creates missing tables and adds new nullable columns"


def run_checks(settings: Settings, flags: Mapping[str, Any], *, dmf: bool = False,
               session: Any = None) -> Iterator[CheckResult]:
    """Every DuckDB item, in order; ``dmf`` and ``session`` do not apply here."""
    path = Path(settings.warehouse).absolute()
    yield passed("engine", f"duckdb (from {origin('engine', flags, '--engine')})")
    exists = path.is_file()
    yield guarded("warehouse file", lambda: file_check(path, origin("warehouse", flags, "--warehouse")))
    yield guarded("warehouse writable", lambda: writable_check(path))
    engine: DuckDBEngine | None = None
    if exists:
        engine, result = open_check(path, settings.schema_name)
        yield result
    else:
        yield skipped("opens read-only", "the warehouse file does not exist")
    if engine is None:
        yield skipped("tables", "the warehouse did not open")
    else:
        try:
            yield from table_checks(engine, settings.schema_name)
        except Exception as exc:  # the catalog read itself failed
            yield unexpected("tables", exc)
        finally:
            engine.close()
    yield guarded("disk space", lambda: disk_check(path))


def file_check(path: Path, source: str) -> CheckResult:
    """The warehouse is a file that exists (a run creates it; the doctor never does)."""
    where = f"{path.absolute()} (from {source})"
    if path.is_file():
        return passed("warehouse file", f"{where} exists, {path.stat().st_size / 1024**2:.1f} MiB")
    if path.exists():
        return failed("warehouse file", f"{where} is not a file", "pass --warehouse with a file path "
                      "(or set ENGAGEMENT_WAREHOUSE)")
    return failed("warehouse file", f"{where} does not exist",
                  "check --warehouse / ENGAGEMENT_WAREHOUSE, or run `engagement run` to create it")


def writable_check(path: Path) -> CheckResult:
    """A run opens the file read-write and writes ``<file>.wal`` beside it."""
    fix = "change the permissions, or pass another --warehouse"
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            return failed("warehouse writable", f"{path} is not readable and writable by this user", fix)
        if not os.access(path.parent, os.W_OK | os.X_OK):
            return failed("warehouse writable", f"{path.parent} is not writable: a run cannot write "
                          f"{path.name}.wal there", fix)
        return passed("warehouse writable", f"{path} and its folder are writable by this user")
    folder = nearest_existing(path.parent)
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        return failed("warehouse writable", f"a run cannot create {path}: {folder} is not a writable folder", fix)
    return passed("warehouse writable", f"a run can create {path} ({folder} is writable)")


def open_check(path: Path, schema: str) -> tuple[DuckDBEngine | None, CheckResult]:
    """Open read-only without waiting, as the dashboard does; a locked file names its holder."""
    name = "opens read-only"
    try:
        engine = DuckDBEngine(path, schema=schema, read_only=True, lock_wait=0.0)
    except WarehouseLockedError as exc:
        pid = re.search(r"process (\d+)", str(exc))
        who = holder(int(pid.group(1))) if pid else "another process"
        show = f" (`ps -o args= -p {pid.group(1)}` shows what it runs)" if pid else ""
        return None, failed(name, f"{path} is locked by {who}, which has it open for writing",
                            f"wait for it to finish{show}, or stop it; a run waits up to "
                            "ENGAGEMENT_DUCKDB_LOCK_WAIT seconds for it, then exits 3")
    except WarehouseError as exc:
        return None, failed(name, str(exc).removeprefix(f"cannot open warehouse {path}: "),
                            "check that --warehouse names a DuckDB file of this DuckDB version; else move it away")
    except Exception as exc:  # e.g. duckdb.Error for a file that is not a database
        return None, unexpected(name, exc)
    return engine, passed(name, f"{path} opened read-only (no other process is writing it)")


def holder(pid: int) -> str:
    """``process 123 (python3)``: its program name when /proc tells, never its arguments (they
    may hold a secret); ``ps -o args= -p 123`` shows them."""
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return f"process {pid}"
    return f"process {pid} ({name})" if name else f"process {pid}"


def table_checks(engine: DuckDBEngine, schema: str) -> Iterator[CheckResult]:
    """One line per model table, from a single read of ``duckdb_columns()``."""
    present = engine.con.execute(
        "SELECT count(*) FROM duckdb_schemas() WHERE database_name = current_database() AND schema_name = ?",
        [schema]).fetchone()[0]
    if not present:
        yield failed("schema", f"schema {schema} (ENGAGEMENT_SCHEMA) is not in {engine.path}", RUN_FIX)
        yield skipped("tables", f"schema {schema} is missing")
        return
    yield passed("schema", f"schema {schema} exists")
    columns: dict[str, dict[str, str]] = {}
    for table, column, data_type in engine.con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = ?", [schema]).fetchall():
        columns.setdefault(table, {})[column] = data_type
    for table in TABLES:
        yield guarded(f"table {table.name}", lambda t=table: table_check(t, columns.get(t.name)))


def table_check(table: Table, found: dict[str, str] | None) -> CheckResult:
    """The table exists with every column of the model, each of the model's type."""
    name = f"table {table.name}"
    if found is None:
        return failed(name, "missing", RUN_FIX)
    missing = [c for c in table.columns if c.name not in found]
    required = [c.name for c in missing if not c.nullable]
    if required:
        return failed(name, f"lacks the required column(s) {', '.join(required)} (made by an older version)",
                      "move that warehouse file away and run `engagement run` again")
    if missing:
        return failed(name, f"lacks column(s) {', '.join(c.name for c in missing)}", RUN_FIX)
    wrong = [f"{c.name} is {found[c.name]}, the model says {TYPES[c.type]}" for c in table.columns
             if found[c.name].upper() != TYPES[c.type]]
    if wrong:
        return failed(name, "; ".join(wrong), "move that warehouse file away and run `engagement run` again")
    return passed(name, f"all {len(table.columns)} columns of the model")


def disk_check(path: Path, min_free: int = MIN_FREE) -> CheckResult:
    """Free space on the file system that holds (or will hold) the warehouse."""
    folder, free = free_space(path.parent)
    if free < min_free:
        return failed("disk space", f"{gib(free)} free at {folder}, under {gib(min_free)} (a run grows "
                      f"the file and spills to {path.name}.tmp/ beside it)",
                      "free space there, or pass --warehouse on a larger disk")
    return passed("disk space", f"{gib(free)} free at {folder}")
