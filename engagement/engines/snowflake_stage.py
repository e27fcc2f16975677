"""S3 sources on Snowflake through an external stage: Snowflake lists and reads the files itself.

With ``ENGAGEMENT_SNOWFLAKE_EXTERNAL_STAGE=LANDING`` (a stage whose URL covers the source,
created as in ``sql/02_stages.sql``), ``engagement run --engine snowflake --source
s3://bucket/prefix`` never downloads a file: one ``LIST`` finds the files (size and MD5, the
load metadata the incremental loads compare) and ``COPY INTO ... FROM @LANDING`` loads each
raw table, a fixed number of statements whatever the number of files or rows
(``FILES =`` takes 1,000 names, so one COPY per 1,000 new files of a format).

Records are split by Snowflake's file formats rather than by :mod:`engagement.readers`, so a
few edge cases differ from the embedded engine (the README lists them):

* NDJSON is read line by line (CSV format, no field delimiter); ``source_row`` is Snowflake's
  ``METADATA$FILE_ROW_NUMBER``, which does not count blank lines.
* ``*.json`` files are JSON arrays (``STRIP_OUTER_ARRAY``), one record per element; a
  ``*.jsonl`` / ``*.ndjson`` file is always read as lines.
* Customer CSVs are read by position after the header (the usual column order);
  ``raw_text`` is the five fields joined by commas; a row with other than five fields gets a
  ``parse_error``.
* A file that is not UTF-8, or a JSON array file that does not parse, stops the COPY (the
  load is rolled back) instead of rejecting records.

None of this runs offline: Snowpark local testing has no stages. ``tests/test_snowflake_stage.py``
checks the statements it builds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from engagement.exceptions import ConfigError, SourceError
from engagement.model import CSV_HEADER, Source, SourceFormat
from engagement.sources import SourceFile, matches

COPY_FILES_LIMIT = 1000  # Snowflake's maximum for FILES = (...)

# Every line as one field, exactly as written (no quoting, no escapes, no trimming).
LINES_FORMAT = (
    "TYPE = CSV FIELD_DELIMITER = NONE RECORD_DELIMITER = '\\n' FIELD_OPTIONALLY_ENCLOSED_BY = NONE "
    "ESCAPE = NONE ESCAPE_UNENCLOSED_FIELD = NONE SKIP_BLANK_LINES = TRUE TRIM_SPACE = FALSE "
    "EMPTY_FIELD_AS_NULL = FALSE NULL_IF = () ENCODING = 'UTF8' COMPRESSION = AUTO"
)
ARRAY_FORMAT = "TYPE = JSON STRIP_OUTER_ARRAY = TRUE COMPRESSION = AUTO"
# RFC 4180 as the embedded reader splits it: quotes double inside quoted fields, and a
# backslash is an ordinary character everywhere (ESCAPE_UNENCLOSED_FIELD defaults to '\\',
# which would turn an unquoted `a\tb` into a tab: sql-reference/sql/create-file-format, TYPE = CSV).
CSV_FORMAT = (
    "TYPE = CSV SKIP_HEADER = 1 FIELD_DELIMITER = ',' FIELD_OPTIONALLY_ENCLOSED_BY = '\"' "
    "ESCAPE = NONE ESCAPE_UNENCLOSED_FIELD = NONE "
    "ERROR_ON_COLUMN_COUNT_MISMATCH = FALSE SKIP_BLANK_LINES = TRUE TRIM_SPACE = FALSE "
    "EMPTY_FIELD_AS_NULL = FALSE NULL_IF = () ENCODING = 'UTF8' COMPRESSION = AUTO"
)


def sql_string(value: str) -> str:
    """A Snowflake string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def stage_url(desc_rows: Sequence[Any]) -> str:
    """The URL of a stage from its ``DESC STAGE`` rows (property URL, value ``["s3://b/p/"]``)."""
    for row in desc_rows:
        if str(row["property"]).upper() == "URL":
            value = str(row["property_value"] or "")
            urls = json.loads(value) if value.startswith("[") else [value]
            if urls and urls[0]:
                return urls[0].rstrip("/") + "/"
    return ""


@dataclass(frozen=True)
class ExternalStageRoot:
    """The files under ``url`` (s3://bucket/prefix), seen through the external stage ``stage``.

    ``path`` is where ``url`` is inside the stage ('' at its root). Built by
    :meth:`engagement.engines.snowpark.SnowparkEngine.source_root`.
    """

    stage: str  # the stage's location: @ and its qualified, quoted name
    url: str  # s3://bucket/prefix, no trailing slash
    path: str
    run_sql: Callable[[str], list[Any]]

    @classmethod
    def open(cls, name: str, url: str, run_sql: Callable[[str], list[Any]]) -> ExternalStageRoot:
        """Check that the stage ``name`` (qualified, quoted) exists and covers ``url``; one-line
        ConfigError otherwise. DESC STAGE takes the stage's name; ``@`` is only for its location
        (LIST, COPY, PUT): sql-reference/sql/desc-stage."""
        stage = f"@{name}"
        try:
            rows = run_sql(f"DESC STAGE {name}")
        except Exception as exc:  # the connector's error types vary; its text says what happened
            said = " ".join(str(exc).split())[:300]
            raise ConfigError(f"external stage {stage} cannot be used ({said}); create it as in "
                              "sql/02_stages.sql, or unset ENGAGEMENT_SNOWFLAKE_EXTERNAL_STAGE") from None
        base = stage_url(rows)
        wanted = url.rstrip("/") + "/"
        if not base or not wanted.startswith(base):
            raise ConfigError(f"external stage {stage} points at {base or 'no URL'}, which does not hold {url}; "
                              "use a stage whose URL is a prefix of --source")
        return cls(stage, url.rstrip("/"), wanted[len(base):].strip("/"), run_sql)

    def in_stage(self, relpath: str) -> str:
        """The path of ``relpath`` inside the stage, as COPY's FILES names it."""
        return f"{self.path}/{relpath}" if self.path else relpath

    def relpath_of(self, name: str) -> str:
        """The path under the source root of a file as Snowflake names it: by its URL (LIST, and the
        COPY result on an external stage) or by its path in the stage (METADATA$FILENAME)."""
        for prefix in (self.url + "/", self.path + "/" if self.path else ""):
            if prefix and name.startswith(prefix):
                return name[len(prefix):]
        return name

    def files(self, patterns: tuple[str, ...]) -> list[SourceFile]:
        """One LIST; each file with its size and MD5 (S3's ETag for a single-part upload)."""
        where = f"{self.stage}/{self.path}/" if self.path else f"{self.stage}/"
        found = []
        for row in self.run_sql(f"LIST {where}"):
            name = str(row["name"])
            if not name.startswith(self.url + "/"):
                continue
            rel = self.relpath_of(name)
            if rel and matches(rel, patterns):
                found.append(SourceFile(self, rel, int(row["size"]), str(row["md5"] or "")))
        return sorted(found, key=lambda f: f.relpath)

    def read(self, relpath: str) -> bytes:
        raise SourceError(f"{self.url}/{relpath} is read by Snowflake through stage {self.stage}, "
                          "not by this process; use --engine snowflake")

    def copy_statements(self, source: Source, table: str, files: Sequence[SourceFile], run_id: str,
                        loaded_at: str) -> list[str]:
        """The COPY INTO statements that load ``files`` into the raw table ``table``."""
        lineage = [
            f"SUBSTR(METADATA$FILENAME, {len(self.path) + 2 if self.path else 1}) AS source_file",
            "METADATA$FILE_ROW_NUMBER AS source_row",
            f"{sql_string(run_id)} AS run_id",
            f"{sql_string(loaded_at)}::TIMESTAMP_NTZ AS loaded_at",
        ]
        if source.format is SourceFormat.CSV:
            n = len(CSV_HEADER)
            fields = [f"${i}" for i in range(1, n + 1)]
            groups = [(
                CSV_FORMAT,
                [f"{c} AS {name}" for c, name in zip(fields, CSV_HEADER)]
                + [f"CASE WHEN ${n} IS NULL THEN 'fewer than {n} fields' WHEN ${n + 1} IS NOT NULL "
                   f"THEN 'more than {n} fields' END AS parse_error",
                   "CONCAT_WS(',', " + ", ".join(f"COALESCE({c}, '')" for c in fields) + ") AS raw_text"],
                list(files),
            )]
        else:
            arrays = [f for f in files if f.relpath.removesuffix(".gz").endswith(".json")]
            lines = [f for f in files if not f.relpath.removesuffix(".gz").endswith(".json")]
            groups = [
                (LINES_FORMAT, ["RTRIM($1, '\\r') AS payload", "NULL AS parse_error"], lines),
                (ARRAY_FORMAT, ["TO_JSON($1) AS payload", "NULL AS parse_error"], arrays),
            ]
        statements = []
        for file_format, columns, group in groups:
            for chunk in _chunks(group, COPY_FILES_LIMIT):
                select = ", ".join(columns + lineage)
                names = [c.rsplit(" AS ", 1)[1] for c in columns + lineage]
                listed = ", ".join(sql_string(self.in_stage(f.relpath)) for f in chunk)
                statements.append(
                    f"COPY INTO {table} ({', '.join(names)}) FROM (SELECT {select} FROM {self.stage}) "
                    f"FILES = ({listed}) FILE_FORMAT = ({file_format}) ON_ERROR = ABORT_STATEMENT FORCE = TRUE"
                )
        return statements


def _chunks(items: Sequence[SourceFile], size: int) -> Iterator[Sequence[SourceFile]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
