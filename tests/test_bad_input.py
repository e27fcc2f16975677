"""Bad input never kills a run, never poisons the warehouse, never loses a record (issue 13).

Every test runs on every offline engine (``engine`` is parametrized) and asserts the exact
verdict: reason, detail, source row and payload of each reject, and the counts.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import CSV_HEADER, rows

from engagement.model import NOT_A_STRING, OUT_OF_YEARS

RAW = "raw_clickstream_events"
T0 = "2026-01-01T10:00:00Z"


def ev(event_id: object = "e1", timestamp: object = T0, **extra: object) -> dict:
    return {"event_id": event_id, "timestamp": timestamp, **extra}


def line(doc: object) -> str:
    return doc if isinstance(doc, str) else json.dumps(doc, ensure_ascii=False)


def verdicts(engine, result, table: str = RAW) -> list[tuple]:
    """(file, row, reason, detail, payload) of this run's rejects of ``table``, in file order."""
    found = [r for r in rows(engine, "rejected_records")
             if r["run_id"] == result.run_id and r["source_table"] == table]
    return sorted((r["source_file"], r["source_row"], r["reason"], r["detail"], r["payload"]) for r in found)


def keys(engine, table: str, key: str) -> list[str]:
    return sorted(str(r[key]) for r in rows(engine, table))


def ingest_of(result, table: str = RAW):
    (ingest,) = [i for i in result.ingest if i.table == table]
    return ingest


# -- 1. dates and timestamps outside what every engine and pandas hold -----------------------


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00",
                                   "2263-01-01T00:00:00Z", "1899-12-31T23:59:59Z"])
def test_timestamp_outside_the_years_is_invalid_value(engine, source, run, value):
    doc = ev("e1", value)
    result = run(source({"clickstream/a.jsonl": line(doc) + "\n" + line(ev("ok")) + "\n"}))
    assert verdicts(engine, result) == [
        ("clickstream/a.jsonl", 1, "invalid_value", f"timestamp '{value}{OUT_OF_YEARS}", line(doc))
    ]
    assert keys(engine, "fact_click_events", "event_id") == ["ok"]
    assert [c.message for c in result.checks if c.status.value == "ERROR"] == []


@pytest.mark.parametrize("value", ["0000-01-01", "2263-01-01", "9999-12-31", "1899-12-31"])
def test_date_outside_the_years_is_invalid_value(engine, source, run, value):
    text = f"{CSV_HEADER}\nC1,Ann,a@x.com,NA,{value}\nC2,Bo,b@x.com,NA,2200-01-01\nC3,Cy,c@x.com,NA,2199-12-31\n"
    result = run(source({"customers/a.csv": text}))
    assert verdicts(engine, result, "raw_customer_demographics") == [
        ("customers/a.csv", 2, "invalid_value", f"signup_date '{value}{OUT_OF_YEARS}",
         f"C1,Ann,a@x.com,NA,{value}"),
        ("customers/a.csv", 3, "invalid_value", f"signup_date '2200-01-01{OUT_OF_YEARS}",
         "C2,Bo,b@x.com,NA,2200-01-01"),
    ]
    assert keys(engine, "dim_customer", "customer_id") == ["C3"]


# -- 2. a CSV field of any size ---------------------------------------------------------------


@pytest.mark.parametrize("newlines", [False, True], ids=["one-line", "embedded-newlines"])
def test_a_quoted_csv_field_over_the_csv_modules_limit_loads(engine, source, run, newlines):
    name = ("ab\n" if newlines else "abc") * 50_000  # 150,000 characters, over 131,072
    text = f'{CSV_HEADER}\nC1,"{name}",a@x.com,NA,2024-01-01\nC2,Bo,b@x.com,NA,2024-01-02\n'
    result = run(source({"customers/a.csv": text}))
    ingest = ingest_of(result, "raw_customer_demographics")
    assert (ingest.read, ingest.rejected) == (2, {})
    stored = {r["customer_id"]: r for r in rows(engine, "dim_customer")}
    assert sorted(stored) == ["C1", "C2"]
    assert stored["C1"]["first_name"] == name  # TRIM removes spaces only, on every engine
    assert stored["C2"]["source_row"] == (50_003 if newlines else 3)


# -- 3, 6, 8. one bad element is one reject, in either container, with the bytes as read ------

BAD_DOCUMENTS = {
    "lone-surrogate": ('{"event_id":"s","timestamp":"' + T0 + '","page_url":"\\ud800"}',
                       "not valid JSON (a lone UTF-16 surrogate escape)"),
    "deep": ("[" * 10_000 + "]" * 10_000, "not valid JSON (nested deeper than 200 levels)"),
    "deep-object": ('{"event_id":"d","timestamp":"' + T0 + '","x":' + "[" * 300 + "]" * 300 + "}",
                    "not valid JSON (nested deeper than 200 levels)"),
    "trailing-comma": ('{"event_id":"t","timestamp":"' + T0 + '",}',
                       "not valid JSON (Expecting property name enclosed in double quotes)"),
    "nan": ('{"event_id":NaN,"timestamp":"' + T0 + '"}', "not valid JSON (NaN is not JSON)"),
    "infinity": ('{"event_id":"i","timestamp":"' + T0 + '","duration_ms":-Infinity}',
                 "not valid JSON (-Infinity is not JSON)"),
    "huge-number": ('{"event_id":"h","timestamp":"' + T0 + '","duration_ms":1e400}',
                    "not valid JSON (the number 1e400 is too large for a double)"),
    "duplicate-key": ('{"event_id":"a","timestamp":"' + T0 + '","event_id":"b"}',
                      "not valid JSON (the key 'event_id' appears twice)"),
    "duplicate-timestamp": ('{"event_id":"a","timestamp":"' + T0 + '","timestamp":"2027-01-01T00:00:00Z"}',
                            "not valid JSON (the key 'timestamp' appears twice)"),
}


@pytest.mark.parametrize("container", ["ndjson", "array"])
def test_each_bad_document_is_one_reject_in_either_container(engine, source, run, container):
    docs = [line(ev("first")), *(d for d, _ in BAD_DOCUMENTS.values()), line(ev("last"))]
    if container == "ndjson":
        name, text = "clickstream/a.jsonl", "".join(d + "\n" for d in docs)
    else:
        name, text = "clickstream/a.json", "[\n" + ",\n".join(docs) + "\n]"
    result = run(source({name: text}))
    assert verdicts(engine, result) == [
        (name, row, "malformed_row", detail, doc)
        for row, (doc, detail) in enumerate(BAD_DOCUMENTS.values(), start=2)
    ]
    ingest = ingest_of(result)
    assert (ingest.read, ingest.rejected) == (len(docs), {"malformed_row": len(BAD_DOCUMENTS)})
    assert keys(engine, "fact_click_events", "event_id") == ["first", "last"]


def test_array_payload_is_the_text_as_read(engine, source, run):
    element = '{ "event_id" : "e1" , "timestamp" : "' + T0 + '", "duration_ms": -1, "x": 1.0E+2 }'
    result = run(source({"clickstream/a.json": f"[{element}]"}))
    assert verdicts(engine, result) == [
        ("clickstream/a.json", 1, "invalid_value", "duration_ms must be an integer >= 0, got -1", element)
    ]


# -- 7. only ASCII space, tab and CR are blank ------------------------------------------------


@pytest.mark.parametrize("char", ["\x1e", "\x0c", "\x0b", "\u00a0", "\u3000"], ids=ascii)
def test_a_line_of_other_whitespace_is_a_record(engine, source, run, char):
    text = line(ev("e1")) + "\n \t\r\n" + char + "\n" + line(ev("e2")) + "\n"
    result = run(source({"clickstream/a.jsonl": text}))
    assert verdicts(engine, result) == [
        ("clickstream/a.jsonl", 3, "malformed_row", "not valid JSON (Expecting value)", char)
    ]
    assert (ingest_of(result).read, ingest_of(result).rejected_total) == (3, 1)


@pytest.mark.parametrize("char", ["\x0c", "\u00a0"], ids=ascii)
def test_a_csv_line_of_other_whitespace_is_a_record(engine, source, run, char):
    text = f"{CSV_HEADER}\nC1,Ann,a@x.com,NA,2024-01-01\n \t\n{char}\n"
    result = run(source({"customers/a.csv": text}))
    assert verdicts(engine, result, "raw_customer_demographics") == [
        ("customers/a.csv", 4, "malformed_row", "expected 5 fields, found 1", char)
    ]


# -- 9. keys are JSON strings ----------------------------------------------------------------


@pytest.mark.parametrize("key", [{}, [], {"a": 1}, True, 1.5, 123], ids=repr)
def test_a_key_that_is_not_a_json_string_is_invalid_value(engine, source, run, key):
    doc = ev(key)
    result = run(source({"clickstream/a.jsonl": line(doc) + "\n" + line(ev("123")) + "\n"}))
    got = verdicts(engine, result)
    assert [(g[1], g[2], g[4]) for g in got] == [(1, "invalid_value", line(doc))]
    assert got[0][3].startswith("event_id" + NOT_A_STRING)
    assert keys(engine, "fact_click_events", "event_id") == ["123"]


# -- 4. a file name that is not UTF-8 ---------------------------------------------------------


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems refuse names that are not UTF-8")
def test_a_file_name_that_is_not_utf8_loads_with_a_readable_lossless_name(engine, source, run, tmp_path):
    root = source({"clickstream/ok.jsonl": line(ev("e1")) + "\n"})
    folder = os.fsencode(root / "clickstream")
    with open(os.path.join(folder, b"caf\xe9.jsonl"), "w") as f:
        f.write(line(ev("e2")) + "\nnot json\n")
    result = run(root)
    stored = {r["event_id"]: r["source_file"] for r in rows(engine, "fact_click_events")}
    assert stored == {"e1": "clickstream/ok.jsonl", "e2": "clickstream/caf\\xe9.jsonl"}
    assert [v[:3] for v in verdicts(engine, result)] == [("clickstream/caf\\xe9.jsonl", 2, "malformed_row")]
    # a second run sees the same file as loaded
    again = run(root)
    assert sum(i.read for i in again.ingest if i.table == RAW) == 0
    assert {r["event_id"]: r["source_file"] for r in rows(engine, "fact_click_events")} == stored
    assert Path(os.fsdecode(os.path.join(folder, b"caf\xe9.jsonl"))).exists()


# -- 5. freshness ignores (and flags) values after the check time ----------------------------


def _freshness(result):
    (check,) = [c for c in result.checks if c.check_name == "fact_event_freshness"]
    return check


def test_future_dated_events_do_not_hide_stale_data(engine, source, run):
    docs = [ev("old", T0), ev("future", "2199-01-01T00:00:00Z")]
    result = run(source({"clickstream/a.jsonl": "".join(line(d) + "\n" for d in docs)}))
    check = _freshness(result)
    assert check.status.value == "FAILED"
    assert "newest value 2026-01-01 10:00:00 is " in check.message
    assert "1 value(s) after the check time ignored, the latest 2199-01-01 00:00:00" in check.message
    assert check.failing_sample == ["2026-01-01 10:00:00", "after the check time: 1"]


def test_future_dated_events_make_a_fresh_table_warn(engine, source, run):
    from datetime import UTC, datetime, timedelta

    recent = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    docs = [ev("recent", recent), ev("future", "2199-01-01T00:00:00Z")]
    result = run(source({"clickstream/a.jsonl": "".join(line(d) + "\n" for d in docs)}))
    check = _freshness(result)
    assert check.status.value == "WARN", check.message
    assert check.metric_value is not None and 0.9 < check.metric_value < 1.5


def test_only_future_dated_events_are_as_stale_as_none(engine, source, run):
    result = run(source({"clickstream/a.jsonl": line(ev("future", "2199-01-01T00:00:00Z")) + "\n"}))
    check = _freshness(result)
    assert check.status.value == "FAILED"
    assert "has no value at or before the check time" in check.message


# -- one bad file stops only itself ----------------------------------------------------------


def test_an_unreadable_file_is_left_out_and_the_others_load(engine, source, run):
    from engagement.results import StepStatus

    root = source({"clickstream/a.jsonl": line(ev("e1")) + "\n", "customers/a.csv": f"{CSV_HEADER}\nC1,A,a@x,NA,2024-01-01\n"})
    (root / "clickstream" / "b.jsonl.gz").write_bytes(b"not gzip at all")
    result = run(root)
    assert result.status is StepStatus.ERROR
    assert result.error == ("1 file(s) left out, the others loaded: cannot read "
                            f"{root}/clickstream/b.jsonl.gz: Not a gzipped file (b'no'); fix or remove the file and rerun")
    assert keys(engine, "fact_click_events", "event_id") == ["e1"]
    assert keys(engine, "dim_customer", "customer_id") == ["C1"]
    assert result.checks, "the checks still ran"
    assert (ingest_of(result).files, ingest_of(result).read) == (1, 1)
    # fixed, the next run loads it (it was never recorded as loaded)
    import gzip

    (root / "clickstream" / "b.jsonl.gz").write_bytes(gzip.compress((line(ev("e2")) + "\n").encode()))
    again = run(root)
    assert again.status is StepStatus.SUCCEEDED, again.error
    assert keys(engine, "fact_click_events", "event_id") == ["e1", "e2"]


# -- 16. odd offsets get the same instant on every engine ------------------------------------


def test_odd_offsets_are_the_same_instant_on_every_engine(engine, source, run):
    import pandas as pd

    cases = {
        "2026-01-01T00:00:00+23:59": "2025-12-31 00:01:00",
        "2026-01-01T00:00:00-23:59": "2026-01-01 23:59:00",
        "2026-01-01T00:00:00+00:01": "2025-12-31 23:59:00",
        "2026-01-01T00:00:00+14:00": "2025-12-31 10:00:00",
        "1900-01-01T00:00:00+01:00": "1899-12-31 23:00:00",
        "2199-12-31T23:59:59-01:00": "2200-01-01 00:59:59",
    }
    docs = [ev(f"e{i}", value) for i, value in enumerate(cases)]
    result = run(source({"clickstream/a.jsonl": "".join(line(d) + "\n" for d in docs)}))
    assert verdicts(engine, result) == []
    stored = {r["event_id"]: pd.Timestamp(r["event_timestamp"]) for r in rows(engine, "fact_click_events")}
    assert {d["timestamp"]: stored[d["event_id"]] for d in docs} == {k: pd.Timestamp(v) for k, v in cases.items()}


@pytest.mark.engines("duckdb")
def test_a_view_named_like_a_model_table_is_one_line_exit_2(engine_name, tmp_path):
    import duckdb

    warehouse = tmp_path / "w.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE VIEW dim_customer AS SELECT 1 AS customer_id")
    root = tmp_path / "src" / "customers"
    root.mkdir(parents=True)
    (root / "a.csv").write_text(f"{CSV_HEADER}\nC1,A,a@x,NA,2024-01-01\n")
    done = cli_run(tmp_path / "src", warehouse, tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "has a view named dim_customer where the model keeps a table" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1

@contextmanager
def tmpfs(path: Path, options: str) -> Iterator[None]:
    """A tmpfs mounted on ``path`` for the test (skipped where this machine does not allow mount)."""
    import shutil
    import subprocess

    path.mkdir()
    if shutil.which("mount") is None or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip(f"needs a tmpfs mounted with {options}, which this machine does not allow")
    try:
        yield
    finally:
        subprocess.run(["umount", str(path)], check=False)


def cli_run(source: Path, warehouse: Path, tmp_path: Path, **env: str):
    """``engagement run`` as a user starts it, with its own log folder."""
    import subprocess

    return subprocess.run([sys.executable, "-m", "engagement", "run", "--source", str(source),
                           "--warehouse", str(warehouse)], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "ENGAGEMENT_LOG_DIR": str(tmp_path / "logs"), "COLUMNS": "200", **env})


def test_a_full_disk_is_one_line_and_exit_3(tmp_path):
    disk = tmp_path / "disk"
    src = tmp_path / "src" / "clickstream"
    src.mkdir(parents=True)
    docs = "".join(line(ev(f"e{i}", page_url="/p/" + "x" * 200)) + "\n" for i in range(40_000))
    (src / "a.jsonl").write_text(docs)  # about 10 MB: more than the disk holds
    with tmpfs(disk, "size=2m"):
        done = cli_run(tmp_path / "src", disk / "w.duckdb", tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr
    # The step that hit it is an ERROR step whose message is that line (in the summary and ingestion_logs).
    assert "error: the disk is full" in done.stdout + done.stderr, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "please report" not in done.stderr

def test_a_read_only_warehouse_folder_or_log_folder_is_one_line_exit_2(tmp_path):
    ro = tmp_path / "ro"
    src = tmp_path / "src" / "clickstream"
    src.mkdir(parents=True)
    (src / "a.jsonl").write_text(line(ev("e1")) + "\n")
    cases = {"warehouse": ({}, ro / "w" / "w.duckdb", "cannot be written by this user"),
             "log-folder": ({"ENGAGEMENT_LOG_DIR": str(ro / "logs")}, tmp_path / "wh" / "w.duckdb",
                            "ENGAGEMENT_LOG_DIR")}
    with tmpfs(ro, "ro,size=1m"):
        for name, (env, warehouse, words) in cases.items():
            done = cli_run(tmp_path / "src", warehouse, tmp_path, **env)
            assert done.returncode == 2, (name, done.stderr)
            assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1, (name, done.stderr)
            assert "unexpected" not in done.stderr
    assert not (tmp_path / "wh").exists()
