"""Contract of the clickstream JSON source, through the real pipeline, plus the run-wide accounting rules."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import CSV_HEADER, rows

RAW = "raw_clickstream_events"
FACT = "fact_click_events"
T0 = "2026-01-01T10:00:00Z"
MISSING = object()  # a field left out of the document


def ev(event_id="e1", timestamp=T0, **extra) -> dict:
    doc = {"event_id": event_id, "timestamp": timestamp}
    doc.update(extra)
    return {k: v for k, v in doc.items() if v is not MISSING}


def line(doc) -> str:
    return doc if isinstance(doc, str) else json.dumps(doc, ensure_ascii=False)


def ndjson(*docs, eol: str = "\n") -> str:
    return "".join(line(d) + eol for d in docs)


def clicks(text: str | bytes, name: str = "clickstream/a.jsonl") -> dict[str, str | bytes]:
    return {name: text}


def fact(engine) -> dict[str, dict]:
    return {r["event_id"]: r for r in rows(engine, FACT, "event_id")}


def rejects(engine, result, table: str = RAW) -> list[dict]:
    found = [r for r in rows(engine, "rejected_records", "source_row")
             if r["run_id"] == result.run_id and r["source_table"] == table]
    return sorted(found, key=lambda r: (r["source_file"], r["source_row"]))


def only_reject(engine, result) -> dict:
    found = rejects(engine, result)
    assert len(found) == 1, found
    return found[0]


def counts(result, raw: str = RAW, target: str = FACT):
    (ingest,) = [i for i in result.ingest if i.table == raw]
    (merge,) = [m for m in result.merges if m.table == target]
    return ingest, merge


def ts(value) -> pd.Timestamp:
    return pd.Timestamp(value)


# -- file shapes -----------------------------------------------------------------------------


def test_ndjson_and_array_files_and_their_source_rows(engine, source, run):
    array = "[\n" + ",\n".join(line(ev(f"arr{i}")) for i in (1, 2, 3)) + "\n]\n"
    result = run(source({
        "clickstream/a.jsonl": ndjson(ev("nd1"), "", ev("nd2")),
        "clickstream/b.json": array,
        "clickstream/2026/01/c.ndjson": ndjson(ev("nd3")),
    }))
    assert result.status == "SUCCEEDED"
    got = {k: (r["source_file"], r["source_row"]) for k, r in fact(engine).items()}
    assert got == {
        "nd1": ("clickstream/a.jsonl", 1),
        "nd2": ("clickstream/a.jsonl", 3),
        "arr1": ("clickstream/b.json", 1),
        "arr2": ("clickstream/b.json", 2),
        "arr3": ("clickstream/b.json", 3),
        "nd3": ("clickstream/2026/01/c.ndjson", 1),
    }
    ingest, _ = counts(result)
    assert (ingest.files, ingest.read, ingest.rejected_total) == (3, 6, 0)


def test_crlf_bom_and_blank_lines_in_ndjson(engine, source, run):
    text = "\ufeff" + ndjson(ev("e1"), "   ", ev("e2", page_url="/p"), eol="\r\n") + "\r\n"
    result = run(source(clicks(text)))
    assert counts(result)[0].rejected_total == 0
    got = fact(engine)
    assert {k: r["source_row"] for k, r in got.items()} == {"e1": 1, "e2": 3}
    assert got["e2"]["page_url"] == "/p"


def test_gzip_loads_like_plain(engine, source, run):
    result = run(source({
        "clickstream/a.jsonl.gz": ndjson(ev("e1"), "bad", ev("e2")),
        "clickstream/b.json.gz": "[" + line(ev("e3")) + "]",
    }))
    ingest, merge = counts(result)
    assert (ingest.files, ingest.read, ingest.rejected) == (2, 4, {"malformed_row": 1})
    assert {k: (r["source_file"], r["source_row"]) for k, r in fact(engine).items()} == {
        "e1": ("clickstream/a.jsonl.gz", 1), "e2": ("clickstream/a.jsonl.gz", 3), "e3": ("clickstream/b.json.gz", 1)
    }


def test_invalid_utf8_line_is_malformed_and_the_rest_loads(engine, source, run):
    data = (ndjson(ev("e1", page_url="/café")).encode() + b'{"event_id":"e2","page_url":"/\xff"}\n'
            + ndjson(ev("e3", page_url="/李")).encode())
    result = run(source(clicks(data)))
    rej = only_reject(engine, result)
    assert (rej["reason"], rej["detail"], rej["source_row"]) == ("malformed_row", "not valid UTF-8", 2)
    assert rej["payload"]
    got = fact(engine)
    assert {k: r["page_url"] for k, r in got.items()} == {"e1": "/café", "e3": "/李"}


def test_broken_array_file_keeps_each_line_as_a_record(engine, source, run):
    text = "[\n" + line(ev("e1")) + ",\n" + line(ev("e2")) + "\n" + line(ev("e3")) + "\n]\n"  # missing comma
    result = run(source(clicks(text, "clickstream/a.json")))
    ingest, _ = counts(result)
    assert (ingest.read, ingest.rejected) == (5, {"malformed_row": 3})
    assert [(r["source_row"], r["payload"]) for r in rejects(engine, result)] == [
        (1, "["), (2, line(ev("e1")) + ","), (5, "]")
    ]
    assert {k: r["source_row"] for k, r in fact(engine).items()} == {"e2": 3, "e3": 4}


# -- malformed, missing key ------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    ['{"event_id": "e1", "timestamp": ', "not json", "[1, 2]", "42"],
    ids=["invalid-json", "not-json", "array", "scalar"],
)
def test_ndjson_line_that_is_not_an_object_is_malformed(engine, source, run, bad):
    result = run(source(clicks(ndjson(ev("ok"), bad))))
    rej = only_reject(engine, result)
    assert (rej["reason"], rej["source_row"], rej["payload"]) == ("malformed_row", 2, bad)
    assert list(fact(engine)) == ["ok"]


def test_more_ndjson_lines_that_are_not_objects_are_malformed(engine, source, run):
    bad = ['[{"event_id":"e1","timestamp":"2026-01-01T10:00:00Z"}]', '"text"', "null", "true", "-1.5",
           '{"event_id":"e1"} {"event_id":"e2"}', "{'event_id': 'e1'}", '{event_id: "e1"}']
    result = run(source(clicks(ndjson(ev("ok"), *bad))))
    assert [(r["source_row"], r["reason"], r["payload"]) for r in rejects(engine, result)] == [
        (i, "malformed_row", b) for i, b in enumerate(bad, start=2)
    ]
    assert list(fact(engine)) == ["ok"]


def test_array_element_that_is_not_an_object_is_malformed(engine, source, run):
    elements = [ev("ok"), [1, 2], 42, "text", None, True, ev("ok2")]
    result = run(source(clicks(json.dumps(elements), "clickstream/a.json")))
    found = rejects(engine, result)
    assert [(r["source_row"], r["reason"]) for r in found] == [(i, "malformed_row") for i in (2, 3, 4, 5, 6)]
    assert [json.loads(r["payload"]) for r in found] == elements[1:6]
    assert list(fact(engine)) == ["ok", "ok2"]


@pytest.mark.parametrize("event_id", [MISSING, None, "", "   "], ids=["absent", "null", "empty", "blank"])
def test_missing_event_id_is_missing_key(engine, source, run, event_id):
    doc = ev(event_id)
    result = run(source(clicks(ndjson(doc, ev("ok")))))
    rej = only_reject(engine, result)
    assert (rej["reason"], rej["source_row"], rej["payload"]) == ("missing_key", 1, line(doc))
    assert list(fact(engine)) == ["ok"]


def test_rule_order_malformed_then_missing_key_then_invalid_value(engine, source, run):
    result = run(source(clicks(ndjson(
        '[{"timestamp": "bad"}]',
        ev(MISSING, "not-a-time", duration_ms=-1),  # missing key wins over the bad values
        ev(None, MISSING),
        ev("e4", "not-a-time", duration_ms="x"),  # two bad values: one reject
    ))))
    assert [(r["source_row"], r["reason"]) for r in rejects(engine, result)] == [
        (1, "malformed_row"), (2, "missing_key"), (3, "missing_key"), (4, "invalid_value")
    ]


# -- timestamp -------------------------------------------------------------------------------


def test_valid_timestamps_are_stored_in_utc(engine, source, run):
    cases = {
        "2026-01-01T10:00:00Z": "2026-01-01 10:00:00",
        "2026-01-01T10:00:00+02:00": "2026-01-01 08:00:00",
        "2026-01-01T01:30:00-05:30": "2026-01-01 07:00:00",
        "2026-01-01T23:30:00-01:00": "2026-01-02 00:30:00",
        "2026-01-01T11:00:00": "2026-01-01 11:00:00",  # no zone = UTC
        "2026-01-01 12:00:00": "2026-01-01 12:00:00",
        "2026-01-01 13:00:00+00:00": "2026-01-01 13:00:00",
        "2026-01-01T10:00:00.5Z": "2026-01-01 10:00:00.5",
        "2026-01-01T10:00:00.123456+01:00": "2026-01-01 09:00:00.123456",
        "2024-02-29T00:00:00Z": "2024-02-29 00:00:00",
    }
    docs = [ev(f"e{i:02}", value) for i, value in enumerate(cases)]
    result = run(source(clicks(ndjson(*docs))))
    assert counts(result)[0].rejected_total == 0
    got = fact(engine)
    assert {d["timestamp"]: ts(got[d["event_id"]]["event_timestamp"]) for d in docs} == {
        k: ts(v) for k, v in cases.items()
    }


@pytest.mark.parametrize(
    "value",
    [MISSING, None, 1767261600, "2026-01-01T24:00:00Z", "2026-02-30T10:00:00Z", "01/01/2026 10:00:00"],
    ids=["absent", "null", "number", "hour-24", "feb-30", "not-iso"],
)
def test_bad_timestamp_is_invalid_value(engine, source, run, value):
    doc = ev("e1", value)
    result = run(source(clicks(ndjson(doc, ev("ok")))))
    rej = only_reject(engine, result)
    assert (rej["reason"], rej["source_row"], rej["payload"]) == ("invalid_value", 1, line(doc))
    assert "timestamp" in rej["detail"]
    assert list(fact(engine)) == ["ok"]


def test_more_bad_timestamps_are_invalid_value(engine, source, run):
    bad = ["", "  ", 1767261600.5, True, {"t": T0}, [T0], "2026-13-01T10:00:00Z", "2026-01-01T10:60:00Z",
           "2026-01-01", "2026-01-01T10:00Z", "2026-01-01T10:00:00+0200", "2026-01-01T10:00:00 Z",
           " 2026-01-01T10:00:00Z", "2026-01-01T10:00:00+24:00", "2026-01-01T10:00:00.Z", "yesterday"]
    docs = [ev(f"e{i:02}", value) for i, value in enumerate(bad)]
    result = run(source(clicks(ndjson(*docs, ev("ok")))))
    assert [(r["source_row"], r["reason"], r["payload"]) for r in rejects(engine, result)] == [
        (i, "invalid_value", line(d)) for i, d in enumerate(docs, start=1)
    ]
    assert list(fact(engine)) == ["ok"]


# -- duration_ms -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [-1, 1.5, "300", True, 2**63], ids=repr)
def test_bad_duration_is_invalid_value(engine, source, run, value):
    doc = ev("e1", duration_ms=value)
    result = run(source(clicks(ndjson(doc, ev("ok", duration_ms=5)))))
    rej = only_reject(engine, result)
    assert (rej["reason"], rej["source_row"], rej["payload"]) == ("invalid_value", 1, line(doc))
    assert "duration_ms" in rej["detail"]
    assert list(fact(engine)) == ["ok"]


def test_more_bad_durations_are_invalid_value(engine, source, run):
    bad = [1.0, 1e3, "", False, {"ms": 3}, [3], -2**63, 10**30]
    docs = [ev(f"e{i:02}", duration_ms=value) for i, value in enumerate(bad)]
    result = run(source(clicks(ndjson(*docs, ev("ok")))))
    assert [(r["source_row"], r["reason"], r["payload"]) for r in rejects(engine, result)] == [
        (i, "invalid_value", line(d)) for i, d in enumerate(docs, start=1)
    ]
    assert list(fact(engine)) == ["ok"]


def test_good_absent_or_null_duration_loads(engine, source, run):
    cases = {"absent": (MISSING, None), "null": (None, None), "zero": (0, 0), "some": (1234, 1234),
             "max": (2**63 - 1, 2**63 - 1)}
    result = run(source(clicks(ndjson(*(ev(k, duration_ms=v) for k, (v, _) in cases.items())))))
    assert counts(result)[0].rejected_total == 0
    assert {k: r["duration_ms"] for k, r in fact(engine).items()} == {k: want for k, (_, want) in cases.items()}


# -- optional, unknown and extra fields ------------------------------------------------------


def test_anonymous_unknown_user_unknown_type_and_extra_fields_are_kept(engine, source, run):
    anon = ev("anon", event_type="page_view", page_url="/a")
    ghost = ev("ghost", user_id="no-such-customer", event_type="teleport", page_url="/b",
               campaign={"id": 7, "tags": ["x"]}, referrer="https://ex.com")
    known = ev("known", user_id="c1", event_type="click", page_url="/c", duration_ms=10)
    result = run(source({
        "customers/a.csv": f"{CSV_HEADER}\nc1,Ann,a@x,EU,\n",
        "clickstream/a.jsonl": ndjson(anon, ghost, known),
    }))
    assert counts(result)[0].rejected_total == 0
    got = fact(engine)
    assert (got["anon"]["user_id"], got["anon"]["event_type"]) == (None, "page_view")
    assert (got["ghost"]["user_id"], got["ghost"]["event_type"], got["ghost"]["page_url"]) == (
        "no-such-customer", "teleport", "/b"
    )
    assert (got["known"]["user_id"], got["known"]["duration_ms"]) == ("c1", 10)
    assert "campaign" not in got["ghost"] and "referrer" not in got["ghost"]
    raw = {json.loads(r["payload"])["event_id"]: json.loads(r["payload"]) for r in rows(engine, RAW, "source_row")}
    assert raw["ghost"]["campaign"] == {"id": 7, "tags": ["x"]}
    assert raw["ghost"]["referrer"] == "https://ex.com"


# -- duplicates ------------------------------------------------------------------------------


def test_duplicate_event_latest_timestamp_wins_in_one_run(engine, source, run):
    result = run(source({
        "clickstream/a.jsonl": ndjson(
            ev("e1", "2026-01-01T09:00:00Z", page_url="/a-latest"),  # 09:00Z
            ev("e2", "2026-01-01T10:00:00Z", page_url="/a-tie"),
            ev("e3", "2026-01-01T10:00:00Z", page_url="/a3-first"),
            ev("e3", "2026-01-01T10:00:00Z", page_url="/a3-later-line"),
        ),
        "clickstream/b.jsonl": ndjson(
            ev("e1", "2026-01-01T10:00:00+02:00", page_url="/b-older"),  # 08:00Z: older despite a later file
            ev("e2", "2026-01-01T12:00:00+02:00", page_url="/b-tie"),  # same instant: the later file wins
        ),
    }))
    got = fact(engine)
    assert {k: r["page_url"] for k, r in got.items()} == {"e1": "/a-latest", "e2": "/b-tie", "e3": "/a3-later-line"}
    assert (got["e1"]["source_file"], got["e1"]["source_row"]) == ("clickstream/a.jsonl", 1)
    assert (got["e3"]["source_file"], got["e3"]["source_row"]) == ("clickstream/a.jsonl", 4)
    _, merge = counts(result)
    assert (merge.accepted, merge.inserted, merge.collapsed) == (6, 3, 3)


def test_late_older_copy_does_not_overwrite_across_runs(engine, source, run):
    run(source(clicks(ndjson(ev("e1", "2026-01-02T10:00:00Z", page_url="/new"),
                             ev("e2", "2026-01-02T10:00:00Z", page_url="/v1"))), "run1"))
    before = fact(engine)
    late = source({"clickstream/z-late.jsonl": ndjson(
        ev("e1", "2026-01-01T10:00:00Z", page_url="/stale"),  # older: loses, even from a later file
        ev("e2", "2026-01-02T10:00:01Z", page_url="/v2"),  # newer: wins
    )}, "run2")
    result = run(late)
    got = fact(engine)
    assert got["e1"] == before["e1"]
    assert (got["e2"]["page_url"], got["e2"]["source_file"]) == ("/v2", "clickstream/z-late.jsonl")
    assert ts(got["e2"]["event_timestamp"]) == ts("2026-01-02 10:00:01")
    _, merge = counts(result)
    assert (merge.inserted, merge.updated, merge.unchanged) == (0, 1, 1)


# -- accounting and run-wide behaviour ------------------------------------------------------


def test_every_record_read_is_accounted_for(engine, source, run):
    files = {
        "customers/a.csv": f"{CSV_HEADER}\nc1,Ann,a@x,EU,\nc1,Ann2,a@x,EU,\n,NoKey,n@x,EU,\nc2,Bad,b@x,EU,2024-13-01\n"
                           "c3,Short\n\nc4,Dee,d@x,US,2024-01-01\n",
        "clickstream/a.jsonl": ndjson(ev("e1"), ev("e1", "2026-01-01T11:00:00Z"), "oops", ev(None),
                                      ev("e2", "bad"), ev("e3", duration_ms=-5), ev("e4"), "", ev("e5")),
        "clickstream/b.json": json.dumps([ev("e5", page_url="/b"), 3, ev("e6")]),
    }
    # (records read, rejected) per raw table, counted by hand from the files
    expected = [{"raw_customer_demographics": (6, 3), RAW: (11, 5)},
                {"raw_customer_demographics": (8, 3), RAW: (14, 5)}]
    results = []
    for label, want in zip(("run1", "run2"), expected):
        if label == "run2":
            files["customers/a.csv"] += "c5,Eve,e@x,EU,\nc4,Dee,d@x,FR,2024-01-01\n"
            files["clickstream/c.jsonl"] = ndjson(ev("e7"), ev("e1", "2026-01-01T12:00:00Z"), ev("e2"))
        result = run(source(files, label))
        results.append(result)
        assert result.status == "SUCCEEDED"
        for raw, target in (("raw_customer_demographics", "dim_customer"), (RAW, FACT)):
            ingest, merge = counts(result, raw, target)
            assert (ingest.read, ingest.rejected_total) == want[raw]
            assert ingest.read == ingest.rejected_total + ingest.accepted
            assert len(rows(engine, raw)) == ingest.read
            assert len(rejects(engine, result, raw)) == ingest.rejected_total
            assert merge.accepted == ingest.accepted
            assert merge.accepted == merge.inserted + merge.updated + merge.unchanged + merge.collapsed
            assert len(rows(engine, target)) == sum(
                m.inserted for r in results for m in r.merges if m.table == target
            )
    first, second = results
    assert counts(first, "raw_customer_demographics", "dim_customer")[1].collapsed == 1
    _, dim2 = counts(second, "raw_customer_demographics", "dim_customer")
    assert (dim2.inserted, dim2.updated, dim2.unchanged, dim2.collapsed) == (1, 1, 1, 2)
    _, fact2 = counts(second)
    assert (fact2.inserted, fact2.updated, fact2.unchanged, fact2.collapsed) == (2, 1, 3, 3)


def test_rejected_records_is_append_only_across_runs(engine, source, run):
    first = run(source(clicks(ndjson("bad-1", ev("e1"))), "run1"))
    before = rows(engine, "rejected_records", "source_row")
    assert len(before) == 1
    second = run(source(clicks(ndjson(ev("e1"), "bad-2", ev(None))), "run2"))
    after = rows(engine, "rejected_records", "source_row")
    assert [r for r in after if r["run_id"] == first.run_id] == before
    assert sorted((r["source_row"], r["reason"], r["payload"]) for r in after if r["run_id"] == second.run_id) == [
        (2, "malformed_row", "bad-2"), (3, "missing_key", line(ev(None)))
    ]
    assert len(after) == 3
    third = run(source(clicks(ndjson("bad-1", ev("e1"))), "run1"))  # the same input again: its own rejects
    assert len(rejects(engine, third)) == 1
    assert len(rows(engine, "rejected_records")) == 4


def test_raw_tables_hold_only_what_the_current_run_read(engine, source, run):
    run(source({
        "customers/a.csv": f"{CSV_HEADER}\nc1,Ann,a@x,EU,\n",
        "customers/b.csv": f"{CSV_HEADER}\nc2,Bob,b@x,EU,\nc3,Cid,c@x,EU,\n",
        "clickstream/a.jsonl": ndjson(ev("e1"), ev("e2")),
        "clickstream/b.jsonl": ndjson(ev("e3")),
    }, "big"))
    assert len(rows(engine, "raw_customer_demographics")) == 3
    result = run(source({
        "customers/b.csv": f"{CSV_HEADER}\nc2,Bob,b@x,EU,\n",
        "clickstream/b.jsonl": ndjson(ev("e3"), "junk"),
    }, "small"))
    raw_c = rows(engine, "raw_customer_demographics", "source_row")
    raw_e = rows(engine, RAW, "source_row")
    assert [(r["source_file"], r["customer_id"], r["run_id"]) for r in raw_c] == [
        ("customers/b.csv", "c2", result.run_id)
    ]
    assert [(r["source_file"], r["payload"], r["run_id"]) for r in raw_e] == [
        ("clickstream/b.jsonl", line(ev("e3")), result.run_id), ("clickstream/b.jsonl", "junk", result.run_id)
    ]
