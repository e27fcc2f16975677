"""Finding the input files of each source under a source root (a folder or ``s3://bucket/prefix``), in path order.

A root lists its files with their size and a *version* (a local file's modification
time, an S3 object's ETag): with the path, what tells a file already loaded from a
new or changed one, the way Snowflake's COPY load metadata does.
"""

from __future__ import annotations

import gzip
import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from engagement.exceptions import ConfigError, SourceError
from engagement.model import SOURCES, Source


class Root(Protocol):
    """Where source files are: lists them and reads one."""

    url: str  # shown to people: a folder path or s3://bucket/prefix

    def files(self, patterns: tuple[str, ...]) -> list[SourceFile]: ...

    def read(self, relpath: str) -> bytes: ...


@dataclass(frozen=True)
class SourceFile:
    """One input file. ``relpath`` (POSIX, relative to the root) orders files and is stored as lineage."""

    root: Root = field(repr=False, compare=False)
    relpath: str
    size: int
    version: str = ""  # mtime in ns (folder) or ETag (S3)
    # The root's own name for the file when ``relpath`` had to be made printable (see readable_name).
    stored_name: str = field(default="", repr=False, compare=False)

    @property
    def compressed(self) -> bool:
        return self.relpath.endswith(".gz")

    @property
    def location(self) -> str:
        return f"{self.root.url.rstrip('/')}/{self.relpath}"

    def read_bytes(self) -> bytes:
        """The file's content, gunzipped when it ends in ``.gz``."""
        try:
            data = self.root.read(self.stored_name or self.relpath)
            return gzip.decompress(data) if self.compressed else data
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise SourceError(f"cannot read {self.location}: {exc}; fix or remove the file and rerun") from exc


@cache
def _glob(pattern: str) -> re.Pattern[str]:
    """A ``Path.glob`` pattern (``*``, ``?``, ``**/``) as a regular expression over relative POSIX paths."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:[^/]+/)*", i + 3
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def matches(relpath: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``relpath`` matches one of the source's glob patterns."""
    return any(_glob(p).match(relpath) for p in patterns)


def readable_name(name: str) -> str:
    """A file name as valid UTF-8 text: bytes that are not UTF-8 (kept by the OS as surrogate
    escapes) become ``\\xNN``, so ``caf\\xe9.jsonl`` is lineage a warehouse can store and a person can read."""
    return os.fsencode(name).decode("utf-8", errors="backslashreplace")


@dataclass(frozen=True)
class LocalRoot:
    """A folder. ``skipped`` collects the warnings of the matches that are no regular file."""

    path: Path
    skipped: list[str] = field(default_factory=list, compare=False, repr=False)

    @property
    def url(self) -> str:
        return str(self.path)

    def files(self, patterns: tuple[str, ...]) -> list[SourceFile]:
        found: dict[str, SourceFile] = {}
        for pattern in patterns:
            for path in self.path.glob(pattern):
                if not path.is_file():
                    if not path.is_dir():  # a dangling link, a FIFO, a socket: named, then the run goes on
                        self.skipped.append(f"skipped source {readable_name(str(path))}: not a regular file "
                                            "(a broken link or a pipe?); remove it or point it at a file")
                    continue
                stat = path.stat()
                name = path.relative_to(self.path).as_posix()
                rel = readable_name(name)
                found[rel] = SourceFile(self, rel, stat.st_size, str(stat.st_mtime_ns),
                                        stored_name=name if rel != name else "")
        return [found[k] for k in sorted(found)]

    def read(self, relpath: str) -> bytes:
        return (self.path / relpath).read_bytes()


class S3Root:
    """``s3://bucket/prefix`` through boto3: the standard AWS credential chain, and the standard
    ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``) for S3-compatible stores. Objects are
    listed page by page and read one at a time."""

    def __init__(self, url: str, client: Any = None) -> None:
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise ConfigError(f"source {url} names no bucket; use s3://bucket/prefix")
        self.bucket, self.prefix = bucket, prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        if client is None:
            import boto3

            client = boto3.client("s3")
        self.client = client

    def check(self) -> None:
        """Raise a one-line ConfigError when the bucket is missing or cannot be read."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
        except NoCredentialsError:
            raise ConfigError(f"source {self.url}: no AWS credentials found; set AWS_PROFILE or "
                              "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (the standard AWS chain)") from None
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "NoSuchBucket":
                raise ConfigError(f"source {self.url}: bucket {self.bucket} does not exist; "
                                  "check --source (or ENGAGEMENT_SOURCE)") from None
            if code in ("AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise ConfigError(f"source {self.url}: access denied ({code}); check the AWS credentials "
                                  "and that they may s3:ListBucket and s3:GetObject there") from None
            raise ConfigError(f"source {self.url}: S3 said {code or exc}; check --source and the AWS settings") from None
        except BotoCoreError as exc:
            raise ConfigError(f"source {self.url}: cannot reach S3 ({exc}); check the network or AWS_ENDPOINT_URL") from None

    def files(self, patterns: tuple[str, ...]) -> list[SourceFile]:
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(self.prefix):]
                if rel and matches(rel, patterns):
                    found.append(SourceFile(self, rel, int(obj["Size"]), str(obj.get("ETag", "")).strip('"')))
        return sorted(found, key=lambda f: f.relpath)

    def read(self, relpath: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.prefix + relpath)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise OSError(str(exc)) from None


def check_root(root: str | Path) -> Root:
    """The source root named by ``root``, or a one-line ConfigError when it cannot be used."""
    if str(root).startswith("s3://"):
        s3 = S3Root(str(root))
        s3.check()
        return s3
    path = Path(root).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"source folder {path} does not exist; pass --source DIR (or set ENGAGEMENT_SOURCE), "
            "or create sample data with `engagement generate --out DIR`"
        )
    return LocalRoot(path)


def list_files(root: Root, source: Source) -> list[SourceFile]:
    """The files of ``source`` under ``root``, sorted by their relative path."""
    return root.files(source.patterns)


def describe_patterns(source: Source) -> str:
    return ", ".join(p for p in source.patterns if not p.endswith(".gz")) + " (optionally .gz)"


def no_files_warning(source: Source, where: str) -> str:
    """The warning of a run whose root (``where``) holds no file of ``source`` (its raw table is emptied)."""
    return f"no {source.name} files under {where} (expected {describe_patterns(source)}): {source.raw.name} is emptied"


def discover(root: Root) -> dict[str, list[SourceFile]]:
    """Files per source name. Raises SourceError when the root holds no input file at all."""
    files = {s.name: list_files(root, s) for s in SOURCES}
    if not any(files.values()):
        expected = "; ".join(describe_patterns(s) for s in SOURCES)
        raise SourceError(f"no input files under {root.url}: expected {expected}")
    return files
