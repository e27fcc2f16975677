"""Checks a command makes before it creates any file or folder: each failure is one line naming the fix."""

from __future__ import annotations

import os
from pathlib import Path

from engagement.exceptions import ConfigError

DUCKDB_MAGIC = b"DUCK"  # a DuckDB database file holds these bytes at offset 8


def check_warehouse(path: Path, *, must_exist: bool) -> None:
    """A DuckDB warehouse ``path`` that is usable: not a folder, a DuckDB database if it exists, and (for a
    command that only reads it, ``must_exist``) there already."""
    fix = "pass --warehouse FILE (or set ENGAGEMENT_WAREHOUSE)"
    if path.is_dir():
        raise ConfigError(f"warehouse {path} is a folder, not a DuckDB file; {fix}")
    if path.exists():
        try:
            with path.open("rb") as f:
                head = f.read(12)
        except OSError as exc:
            raise ConfigError(f"warehouse {path} cannot be read ({exc.strerror}); {fix} naming a readable file") from None
        if head and head[8:12] != DUCKDB_MAGIC:
            raise ConfigError(f"warehouse {path} is not a DuckDB database; {fix} naming a .duckdb file "
                              "(or a new path, which `engagement run` creates)")
        if not must_exist and not os.access(path, os.W_OK):
            raise ConfigError(f"warehouse {path} cannot be written by this user (or its file system is "
                              f"read-only); {fix} naming a file this user can write")
        return
    if must_exist:
        raise ConfigError(f"warehouse {path} does not exist; {fix} naming an existing one, "
                          "or create it with `engagement run`")
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ConfigError(f"warehouse {path}: {parent} is a file, not a folder; {fix} under a folder")
    if parent is not None and not os.access(parent, os.W_OK | os.X_OK):  # also a read-only file system, for root
        raise ConfigError(f"warehouse {path}: {parent} cannot be written by this user; {fix} "
                          "under a folder this user can write")


def check_source(source: str) -> None:
    """A local source that names a folder (S3 sources are checked when opened)."""
    if source.startswith("s3://"):
        return
    fix = "pass --source DIR (or set ENGAGEMENT_SOURCE)"
    if not source.strip():
        raise ConfigError(f"the source is empty; {fix} naming the folder to read")
    path = Path(source).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"source {path} is a file, not a folder; {fix} naming the folder that holds it")
    if not path.exists():
        raise ConfigError(f"source folder {path} does not exist; {fix}, "
                          "or create sample data with `engagement generate --out DIR`")
