"""Finding the input files of each source under a source root, in path order."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

from engagement.exceptions import ConfigError, SourceError
from engagement.model import SOURCES, Source


@dataclass(frozen=True)
class SourceFile:
    """One input file. ``relpath`` (POSIX, relative to the root) orders files and is stored as lineage."""

    root: Path
    relpath: str
    size: int

    @property
    def path(self) -> Path:
        return self.root / self.relpath

    @property
    def compressed(self) -> bool:
        return self.relpath.endswith(".gz")

    def read_bytes(self) -> bytes:
        """The file's content, gunzipped when it ends in ``.gz``."""
        try:
            data = self.path.read_bytes()
            return gzip.decompress(data) if self.compressed else data
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise SourceError(f"cannot read {self.path}: {exc}; fix or remove the file and rerun") from exc


def check_root(root: str | Path) -> Path:
    """Return ``root`` as a Path, or raise a one-line ConfigError when it is no folder."""
    path = Path(root).expanduser()
    if str(root).startswith("s3://"):
        raise ConfigError(f"source {root}: S3 sources are not supported yet; copy the files to a local folder")
    if not path.is_dir():
        raise ConfigError(
            f"source folder {path} does not exist; pass --source DIR (or set ENGAGEMENT_SOURCE), "
            "or create sample data with `engagement generate --out DIR`"
        )
    return path


def list_files(root: Path, source: Source) -> list[SourceFile]:
    """The files of ``source`` under ``root``, sorted by their relative path."""
    found: dict[str, SourceFile] = {}
    for pattern in source.patterns:
        for path in root.glob(pattern):
            if path.is_file():
                rel = path.relative_to(root).as_posix()
                found[rel] = SourceFile(root, rel, path.stat().st_size)
    return [found[k] for k in sorted(found)]


def describe_patterns(source: Source) -> str:
    return ", ".join(p for p in source.patterns if not p.endswith(".gz")) + " (optionally .gz)"


def no_files_warning(source: Source, root: str | Path) -> str:
    """The warning of a run whose root holds no file of ``source`` (its raw table is emptied)."""
    return f"no {source.name} files under {root} (expected {describe_patterns(source)}): {source.raw.name} is emptied"


def discover(root: Path) -> dict[str, list[SourceFile]]:
    """Files per source name. Raises SourceError when the root holds no input file at all."""
    files = {s.name: list_files(root, s) for s in SOURCES}
    if not any(files.values()):
        expected = "; ".join(describe_patterns(s) for s in SOURCES)
        raise SourceError(f"no input files under {root}: expected {expected}")
    return files
