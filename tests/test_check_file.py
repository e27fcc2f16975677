"""The checks file: the default declarations, validation with one-line errors, and user overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engagement.check_file import DEFAULT_FILE, load_checks
from engagement.exceptions import ConfigError, ExitCode
from engagement.model import CheckType
from tests.test_cli import GOOD, cli
from tests.conftest import write_files


def test_default_checks_are_the_designs_three_kinds() -> None:
    checks = {c.name: c for c in load_checks()}
    assert checks["raw_customer_id_not_null"].type is CheckType.NULL_COUNT
    assert (checks["raw_customer_id_not_null"].warn, checks["raw_customer_id_not_null"].fail) == ("0", "5%")
    assert checks["raw_customer_id_unique"].type is CheckType.DUPLICATE_COUNT
    assert {c.table for c in checks.values() if c.type is CheckType.ROW_COUNT} == {
        "raw_customer_demographics", "raw_clickstream_events", "dim_customer", "fact_click_events"}
    assert DEFAULT_FILE.name == "checks.yml"


ENTRY = "  - name: c1\n    type: null_count\n    table: dim_customer\n    column: email\n    warn: 0\n"
ACCEPTED = "  - name: a\n    type: accepted_values\n    table: fact_click_events\n    column: event_type\n    warn: 0\n    values: [a, 1]\n"
RANGE = "  - name: r\n    type: value_range\n    table: fact_click_events\n    column: duration_ms\n    warn: 0\n    min: 0\n    max: 10\n"
PATTERN = "  - name: p\n    type: pattern\n    table: dim_customer\n    column: email\n    warn: 0\n    pattern: '[a-z]+'\n"
FRESH = "  - name: fr\n    type: freshness\n    table: fact_click_events\n    column: event_timestamp\n    warn: 36h\n"
REJ = "  - name: rj\n    type: rejected_rows\n    table: raw_clickstream_events\n    warn: 1%\n"
VOL = "  - name: v\n    type: volume_change\n    table: raw_clickstream_events\n    warn: 50%\n    window: 3\n"
REF = ("  - name: f\n    type: referential_integrity\n    table: fact_click_events\n    column: user_id\n    warn: 0\n"
       "    ref_table: dim_customer\n    ref_column: customer_id\n")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("checks: [", ["not valid YAML", "line"]),
        ("other: 1\n", ["non-empty list under 'checks:'"]),
        ("checks:\n" + ENTRY.replace("null_count", "nul_count"), ["check c1", "type", "null_count"]),
        ("checks:\n" + ENTRY.replace("dim_customer", "dim_customers"), ["check c1", "'dim_customers'", "not a table"]),
        ("checks:\n" + ENTRY.replace("email", "e_mail"), ["dim_customer has no column 'e_mail'"]),
        ("checks:\n" + ENTRY.replace("warn: 0", "warn: lots"), ["threshold 'lots'"]),
        ("checks:\n" + ENTRY.replace("warn: 0", "warn: 0\n    owner: ann\n    colour: red"), ["colour"]),
        ("checks:\n" + ENTRY.replace("    column: email\n", ""), ["null_count needs a column"]),
        ("checks:\n" + ENTRY.replace("    warn: 0\n", ""), ["warn or a fail threshold"]),
        ("checks:\n" + ENTRY + ENTRY, ["'c1' is used twice"]),
        ("checks:\n  - name: r\n    type: row_count\n    table: dim_customer\n    fail: 5%\n", ["not shares"]),
        ("checks:\n" + ACCEPTED.replace("    values: [a, 1]\n", ""), ["accepted_values needs values"]),
        ("checks:\n" + ACCEPTED.replace("[a, 1]", "[]"), ["non-empty list"]),
        ("checks:\n" + ACCEPTED.replace("[a, 1]", "page_view"), ["non-empty list"]),
        ("checks:\n" + ACCEPTED.replace("[a, 1]", "[a, [b]]"), ["strings or numbers"]),
        ("checks:\n" + ACCEPTED.replace("[a, 1]", "[a, null]"), ["strings or numbers"]),
        ("checks:\n" + RANGE.replace("    min: 0\n    max: 10\n", ""), ["value_range needs a min or a max"]),
        ("checks:\n" + RANGE.replace("min: 0", "min: 11"), ["min 11 is above max 10"]),
        ("checks:\n" + RANGE.replace("max: 10", "max: ten"), ["max 'ten' must be a number"]),
        ("checks:\n" + RANGE.replace("min: 0", "min: true"), ["min True must be a number"]),
        ("checks:\n" + RANGE.replace("duration_ms", "page_url"), ["numeric column", "page_url is VARCHAR"]),
        ("checks:\n" + PATTERN.replace("    pattern: '[a-z]+'\n", ""), ["pattern needs pattern"]),
        ("checks:\n" + PATTERN.replace("'[a-z]+'", "'[a-z'"), ["pattern '[a-z'", "not a valid regular expression"]),
        ("checks:\n" + PATTERN.replace("'[a-z]+'", "'(?=a)b'"), ["POSIX ERE"]),
        ("checks:\n" + PATTERN.replace("'[a-z]+'", "'(a)\\1'"), ["check p", "RE2", "POSIX ERE"]),
        ("checks:\n" + PATTERN.replace("'[a-z]+'", "'a+?b'"), ["check p", "non-greedy", "Snowflake"]),
        ("checks:\n" + REF.replace("    ref_column: customer_id\n", ""), ["needs ref_column"]),
        ("checks:\n" + REF.replace("    ref_table: dim_customer\n", ""), ["needs ref_table"]),
        ("checks:\n" + REF.replace("ref_table: dim_customer", "ref_table: customers"), ["ref_table 'customers'", "not a table"]),
        ("checks:\n" + REF.replace("ref_column: customer_id", "ref_column: id"), ["dim_customer has no column 'id'"]),
        ("checks:\n" + REF.replace("    column: user_id\n", ""), ["referential_integrity needs a column"]),
        ("checks:\n" + ENTRY + "    values: [a]\n", ["values applies only to accepted_values"]),
        ("checks:\n" + ENTRY + "    pattern: a\n", ["pattern applies only to pattern"]),
        ("checks:\n" + ENTRY + "    max: 1\n", ["max applies only to value_range"]),
        ("checks:\n" + RANGE + "    ref_table: dim_customer\n", ["ref_table applies only to referential_integrity"]),
        ("checks:\n" + ENTRY.replace("name: c1", "name: bad name"), ["name must be an identifier"]),
        ("checks:\n" + FRESH.replace("36h", "soon"), ["freshness threshold 'soon'", "'36h', '2d' or '90m'"]),
        ("checks:\n" + FRESH.replace("36h", "5%"), ["freshness threshold '5%'"]),
        ("checks:\n" + FRESH.replace("event_timestamp", "page_url"), ["timestamp or date column", "page_url is VARCHAR"]),
        ("checks:\n" + FRESH.replace("    column: event_timestamp\n", ""), ["freshness needs a column"]),
        ("checks:\n" + ENTRY.replace("warn: 0", "warn: 2h"), ["threshold '2h'"]),
        ("checks:\n" + REJ.replace("raw_clickstream_events", "fact_click_events"), ["rejected_rows", "raw table"]),
        ("checks:\n" + REJ + "    column: payload\n", ["rejected_rows takes no column"]),
        ("checks:\n" + VOL.replace("window: 3", "window: 0"), ["window 0", "whole number of runs"]),
        ("checks:\n" + VOL.replace("window: 3", "window: 2.5"), ["window 2.5"]),
        ("checks:\n" + ENTRY + "    window: 3\n", ["window applies only to volume_change"]),
    ],
)
def test_invalid_checks_files_name_the_problem(tmp_path: Path, text: str, words: list[str]) -> None:
    path = tmp_path / "checks.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_checks(path)
    message = str(err.value)
    assert err.value.exit_code == ExitCode.USAGE and "\n" not in message
    for word in words:
        assert word in message, message


def test_the_value_check_keys_are_converted(tmp_path: Path) -> None:
    path = tmp_path / "checks.yml"
    path.write_text("checks:\n" + ACCEPTED + RANGE.replace("    min: 0\n", "") + PATTERN + REF)
    accepted, ranged, pattern, ref = load_checks(path)
    assert accepted.values == ("a", "1")
    assert (ranged.min, ranged.max) == (None, 10.0) and isinstance(ranged.max, float)
    assert pattern.pattern == "[a-z]+"
    assert (ref.ref_table, ref.ref_column) == ("dim_customer", "customer_id")


def test_the_default_value_checks() -> None:
    checks = {c.name: c for c in load_checks()}
    assert checks["fact_event_type_accepted"].values == ("page_view", "add_to_cart", "purchase", "search", "click")
    assert (checks["fact_duration_range"].min, checks["fact_duration_range"].max) == (0, 86_400_000)
    assert checks["dim_email_pattern"].pattern == r"^[^@ ]+@[^@ ]+\.[^@ ]+$"
    ref = checks["fact_user_known"]
    assert (ref.type, ref.column, ref.ref_table, ref.ref_column, ref.dimension) == (
        CheckType.REFERENTIAL_INTEGRITY, "user_id", "dim_customer", "customer_id", "consistency")


def test_a_missing_checks_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ENGAGEMENT_CHECKS_FILE"):
        load_checks(tmp_path / "nope.yml")


def test_user_checks_replace_the_defaults_and_run_alone(tmp_path: Path) -> None:
    write_files(tmp_path / "src", GOOD)
    (tmp_path / "mine.yml").write_text(
        "checks:\n"
        "  - name: emails_present\n    type: null_count\n    table: dim_customer\n    column: email\n"
        "    warn: 0\n    fail: 0\n    dimension: completeness\n    owner: crm-team\n"
        "  - name: enough_events\n    type: row_count\n    table: fact_click_events\n    warn: 10\n    fail: 1\n"
    )
    proc = cli(tmp_path, "run", "-s", "src", "-w", "w.duckdb", "--checks", "mine.yml", "--json")
    assert proc.returncode == 0, proc.stderr
    assert [(c["check_name"], c["status"]) for c in json.loads(proc.stdout)["checks"]] == [
        ("emails_present", "PASSED"), ("enough_events", "WARN")]

    alone = cli(tmp_path, "checks", "-w", "w.duckdb", "--json", env={"ENGAGEMENT_CHECKS_FILE": "mine.yml"})
    assert alone.returncode == 0, alone.stderr
    doc = json.loads(alone.stdout)
    assert [s["step"] for s in doc["steps"]] == ["checks"] and len(doc["checks"]) == 2
    runs = json.loads(cli(tmp_path, "status", "-w", "w.duckdb", "--json").stdout)
    assert runs[0]["run_id"] == doc["run_id"] and runs[0]["checks"] == "WARN"


def test_checks_command_exits_1_on_a_failed_check_and_2_on_a_bad_file(tmp_path: Path) -> None:
    write_files(tmp_path / "src", {"customers/c.csv": GOOD["customers/c.csv"]})
    assert cli(tmp_path, "run", "-s", "src", "-w", "w.duckdb").returncode == 1  # no events: row_count FAILED
    assert cli(tmp_path, "checks", "-w", "w.duckdb").returncode == 1
    (tmp_path / "bad.yml").write_text("checks: []\n")
    bad = cli(tmp_path, "checks", "-w", "w.duckdb", "--checks", "bad.yml")
    assert bad.returncode == 2 and bad.stderr.startswith("error: checks file") and "Traceback" not in bad.stderr


def test_checks_command_exits_0_when_nothing_failed_and_3_when_a_check_errored(tmp_path: Path) -> None:
    (tmp_path / "ok.yml").write_text("checks:\n" + ENTRY)  # dim_customer.email: WARN at most
    (tmp_path / "err.yml").write_text("checks:\n" + ENTRY + REJ)  # rejected_rows before any load: ERROR
    import duckdb

    duckdb.connect(str(tmp_path / "w.duckdb")).close()  # `checks` reads a warehouse; it never creates one
    empty = cli(tmp_path, "checks", "-w", "w.duckdb", "--checks", "ok.yml", "--json")
    assert empty.returncode == 0, empty.stderr
    errored = cli(tmp_path, "checks", "-w", "w.duckdb", "--checks", "err.yml", "--json")
    assert errored.returncode == 3
    statuses = {c["check_name"]: c["status"] for c in json.loads(errored.stdout)["checks"]}
    assert statuses == {"c1": "PASSED", "rj": "ERROR"}


def test_the_new_types_read_with_their_defaults(tmp_path: Path) -> None:
    path = tmp_path / "checks.yml"
    path.write_text("checks:\n" + FRESH + REJ + VOL.replace("    window: 3\n", ""))
    fresh, rejected, volume = load_checks(path)
    assert (fresh.type, fresh.warn, fresh.column) == (CheckType.FRESHNESS, "36h", "event_timestamp")
    assert (rejected.type, rejected.column, rejected.warn) == (CheckType.REJECTED_ROWS, None, "1%")
    assert (volume.type, volume.window) == (CheckType.VOLUME_CHANGE, 7)


def test_a_backreference_pattern_stops_the_run_before_anything_loads(tmp_path: Path) -> None:
    write_files(tmp_path / "src", GOOD)
    (tmp_path / "c.yml").write_text("checks:\n" + PATTERN.replace("'[a-z]+'", "'(a)\\1'"))
    proc = cli(tmp_path, "run", "-s", "src", "-w", "w.duckdb", "--checks", "c.yml")
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [proc.stderr.strip()]
    assert "check p" in proc.stderr and "RE2" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "w.duckdb").exists()  # nothing ran
