"""S3 sources on Snowflake through an external stage (engagement.engines.snowflake_stage).

No account is reachable here and Snowpark local testing has no stages, so these tests pin
what can be pinned offline: how DESC STAGE and LIST rows (in the shape Snowflake documents)
become source files, and the COPY statements built from them. The SQL has not run on an account.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engagement.config import Settings
from engagement.engines import create_engine
from engagement.engines.snowflake_stage import COPY_FILES_LIMIT, ExternalStageRoot, sql_string, stage_url
from engagement.exceptions import ConfigError, SourceError
from engagement.model import SOURCES_BY_RAW
from engagement.sources import SourceFile

NAME = '"ENGAGEMENT"."MARKETING"."LANDING"'  # DESC STAGE takes the name (docs: sql-reference/sql/desc-stage)
STAGE = f"@{NAME}"  # LIST and COPY take the location
DESC = [{"parent_property": "STAGE_LOCATION", "property": "URL", "property_value": '["s3://acme-landing/marketing/"]'}]
LIST = [
    {"name": "s3://acme-landing/marketing/engagement/customers/customers_2026-01-01.csv", "size": 120, "md5": "aa"},
    {"name": "s3://acme-landing/marketing/engagement/clickstream/dt=2026-01-01/part-0000.jsonl.gz", "size": 50,
     "md5": "bb"},
    {"name": "s3://acme-landing/marketing/engagement/clickstream/dt=2026-01-01/extra-0000.json", "size": 30,
     "md5": "cc"},
    {"name": "s3://acme-landing/marketing/engagement/clickstream/README.txt", "size": 5, "md5": "dd"},
    {"name": "s3://acme-landing/marketing/other/customers/x.csv", "size": 1, "md5": "ee"},
]
CLICKSTREAM = SOURCES_BY_RAW["raw_clickstream_events"]
CUSTOMERS = SOURCES_BY_RAW["raw_customer_demographics"]


class Statements:
    """Answers DESC STAGE and LIST with the rows above, and keeps every statement it was given."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, sql: str) -> list[dict]:
        self.seen.append(sql)
        return DESC if sql.startswith("DESC STAGE") else LIST if sql.startswith("LIST") else []


def test_the_stage_url_is_read_from_desc_stage() -> None:
    assert stage_url(DESC) == "s3://acme-landing/marketing/"
    assert stage_url([{"property": "URL", "property_value": "s3://b/p"}]) == "s3://b/p/"
    assert stage_url([{"property": "URL", "property_value": ""}]) == ""


def test_files_come_from_one_list_with_their_md5_as_version() -> None:
    sql = Statements()
    root = ExternalStageRoot.open(NAME, "s3://acme-landing/marketing/engagement", sql)
    assert root.path == "engagement"
    clicks = root.files(CLICKSTREAM.patterns)
    customers = root.files(CUSTOMERS.patterns)
    assert [(f.relpath, f.size, f.version) for f in clicks] == [
        ("clickstream/dt=2026-01-01/extra-0000.json", 30, "cc"),
        ("clickstream/dt=2026-01-01/part-0000.jsonl.gz", 50, "bb"),
    ]
    assert [f.relpath for f in customers] == ["customers/customers_2026-01-01.csv"]
    assert sql.seen == [f"DESC STAGE {NAME}", f"LIST {STAGE}/engagement/", f"LIST {STAGE}/engagement/"]
    with pytest.raises(SourceError, match="read by Snowflake through stage"):
        root.read(clicks[0].relpath)


@pytest.mark.parametrize("url", ["s3://acme-landing/elsewhere", "s3://other-bucket/marketing"])
def test_a_stage_that_does_not_hold_the_source_is_a_one_line_error(url: str) -> None:
    with pytest.raises(ConfigError, match="does not hold") as err:
        ExternalStageRoot.open(NAME, url, Statements())
    assert "\n" not in str(err.value)


def test_a_missing_stage_is_a_one_line_error() -> None:
    def fails(sql: str) -> list:
        raise RuntimeError("SQL compilation error:\nStage 'ENGAGEMENT.MARKETING.LANDING' does not exist")

    with pytest.raises(ConfigError, match="cannot be used .SQL compilation error: Stage .* does not exist") as err:
        ExternalStageRoot.open(NAME, "s3://acme-landing/marketing", fails)
    assert "\n" not in str(err.value) and "sql/02_stages.sql" in str(err.value)


def test_clickstream_copies_lines_and_arrays_with_lineage_and_force() -> None:
    root = ExternalStageRoot.open(NAME, "s3://acme-landing/marketing/engagement", Statements())
    files = root.files(CLICKSTREAM.patterns)
    lines, arrays = root.copy_statements(CLICKSTREAM, "RAW", files, "run-1", "2026-11-26 10:00:00")
    assert "FILES = ('engagement/clickstream/dt=2026-01-01/part-0000.jsonl.gz')" in lines
    assert "FIELD_DELIMITER = NONE" in lines and "RTRIM($1, '\\r') AS payload" in lines
    assert "FILES = ('engagement/clickstream/dt=2026-01-01/extra-0000.json')" in arrays
    assert "STRIP_OUTER_ARRAY = TRUE" in arrays and "TO_JSON($1) AS payload" in arrays
    for statement in (lines, arrays):
        assert statement.startswith(
            "COPY INTO RAW (payload, parse_error, source_file, source_row, run_id, loaded_at) FROM (SELECT ")
        # source_file is the path under the source root, as the embedded engine stores it
        assert "SUBSTR(METADATA$FILENAME, 12) AS source_file" in statement
        assert "METADATA$FILE_ROW_NUMBER AS source_row" in statement
        # Snowflake's own load metadata would skip a file loaded by an earlier run; ours decides
        assert statement.endswith("ON_ERROR = ABORT_STATEMENT FORCE = TRUE")
        assert "'run-1' AS run_id" in statement


def test_customers_copy_flags_rows_without_five_fields() -> None:
    root = ExternalStageRoot.open(NAME, "s3://acme-landing/marketing", Statements())
    files = root.files(tuple(p.replace("customers/", "engagement/customers/") for p in CUSTOMERS.patterns))
    assert files, "the customers file is listed"
    (statement,) = root.copy_statements(CUSTOMERS, "RAW", files, "r", "2026-11-26 10:00:00")
    assert "SKIP_HEADER = 1" in statement and "ERROR_ON_COLUMN_COUNT_MISMATCH = FALSE" in statement
    assert "WHEN $5 IS NULL THEN 'fewer than 5 fields' WHEN $6 IS NOT NULL THEN 'more than 5 fields'" in statement
    assert "SUBSTR(METADATA$FILENAME, 1) AS source_file" in statement  # the source is the stage's root


def test_the_statement_count_grows_per_thousand_files_not_per_file() -> None:
    root = ExternalStageRoot(STAGE, "s3://b/p", "", Statements())
    many = [SourceFile(root, f"clickstream/dt=2026-01-01/part-{i:05d}.jsonl", 1, "x") for i in range(COPY_FILES_LIMIT + 1)]
    assert len(root.copy_statements(CLICKSTREAM, "RAW", many[:1], "r", "t")) == 1
    assert len(root.copy_statements(CLICKSTREAM, "RAW", many[:COPY_FILES_LIMIT], "r", "t")) == 1
    assert len(root.copy_statements(CLICKSTREAM, "RAW", many, "r", "t")) == 2


def test_names_are_quoted_as_snowflake_string_literals() -> None:
    assert sql_string("it's a\\b") == "'it\\'s a\\\\b'"


def test_snowpark_local_refuses_an_external_stage(tmp_path: Path) -> None:
    settings = Settings(engine="snowpark-local", snowflake_external_stage="LANDING", warehouse=tmp_path / "w.duckdb")
    engine = create_engine(settings)
    try:
        with pytest.raises(ConfigError, match="snowpark-local has no stages"):
            engine.source_root("s3://acme-landing/marketing")
        assert engine.source_root(str(tmp_path)) is None  # a folder is read by this process
    finally:
        engine.close()


def test_the_external_stage_setting_is_an_identifier() -> None:
    with pytest.raises(ConfigError, match="ENGAGEMENT_SNOWFLAKE_EXTERNAL_STAGE"):
        Settings(snowflake_external_stage="LANDING; DROP TABLE x")


def test_a_copy_result_names_its_file_by_url_or_by_path_in_the_stage() -> None:
    root = ExternalStageRoot.open(NAME, "s3://acme-landing/marketing/engagement", Statements())
    rel = "clickstream/dt=2026-01-01/part-0000.jsonl.gz"
    assert root.relpath_of(f"s3://acme-landing/marketing/engagement/{rel}") == rel
    assert root.relpath_of(f"engagement/{rel}") == rel
