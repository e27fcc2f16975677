"""Unit tests of the readers: how source bytes are split into records (no warehouse involved).

Readers decide only structure (record boundaries, line numbers, raw text, CSV
fields, parse errors); validity rules are the engine's and are tested through
the pipeline in test_rules_*.py.
"""

from __future__ import annotations

import json

import pytest

from engagement.readers import read_ahead, read_csv_records, read_json_records

HEADER = "customer_id,first_name,email,region,signup_date"


def records(table) -> list[dict]:
    return table.to_pylist()


# -- CSV ------------------------------------------------------------------------------------


def test_csv_line_numbers_count_blank_lines_and_multiline_records():
    data = (
        f"{HEADER}\n"  # line 1
        "\n"  # 2 (blank)
        "c1,Ann,a@x,EU,2024-01-01\n"  # 3
        'c2,"two\nlines",b@x,EU,\n'  # 4-5: one record
        "\n"  # 6 (blank)
        "\n"  # 7 (blank)
        'c3,"three\n\nlines, with comma",c@x,US,\n'  # 8-10: one record, blank line inside the quotes
        "c4,Dan,d@x,US,2024-01-04"  # 11, no final newline
    ).encode()
    recs = records(read_csv_records(data))
    assert [r["customer_id"] for r in recs] == ["c1", "c2", "c3", "c4"]
    assert [r["source_row"] for r in recs] == [3, 4, 8, 11]
    assert recs[1]["first_name"] == "two\nlines"
    assert recs[2]["first_name"] == "three\n\nlines, with comma"
    assert recs[1]["raw_text"] == 'c2,"two\nlines",b@x,EU,'
    assert all(r["parse_error"] is None for r in recs)


def test_csv_quoting_rfc4180():
    data = (
        f"{HEADER}\n"
        'c1,"Smith, Jr.","say ""hi""@x",EU,\n'
        '"c2","","",,\n'
    ).encode()
    recs = records(read_csv_records(data))
    assert (recs[0]["first_name"], recs[0]["email"]) == ("Smith, Jr.", 'say "hi"@x')
    # Readers keep fields as read: empty-to-NULL and trimming are the engine's job.
    assert (recs[1]["customer_id"], recs[1]["first_name"], recs[1]["region"]) == ("c2", "", "")


def test_csv_crlf_endings_are_not_part_of_values():
    data = (f"{HEADER}\r\nc1,Ann,a@x,EU,2024-01-01\r\n\r\nc2,\"multi\r\nline\",b@x,US,\r\n").encode()
    recs = records(read_csv_records(data))
    assert [r["source_row"] for r in recs] == [2, 4]
    assert recs[0]["signup_date"] == "2024-01-01"
    assert recs[0]["raw_text"] == "c1,Ann,a@x,EU,2024-01-01"
    assert recs[1]["signup_date"] == ""
    assert recs[1]["raw_text"] == 'c2,"multi\r\nline",b@x,US,'
    assert all(r["parse_error"] is None for r in recs)


def test_csv_bom_is_ignored():
    data = ("\ufeff" + HEADER + "\nc1,Ann,a@x,EU,\n").encode()
    recs = records(read_csv_records(data))
    assert len(recs) == 1
    assert recs[0]["parse_error"] is None
    assert recs[0]["customer_id"] == "c1"


def test_csv_bom_is_not_part_of_a_rejected_header_line():
    recs = records(read_csv_records(("\ufeff" + "id,name\nc1,Ann\n").encode()))
    assert [r["raw_text"] for r in recs] == ["id,name", "c1,Ann"]
    assert all(r["parse_error"] for r in recs)


def test_csv_header_only_or_empty_file_has_no_records():
    assert read_csv_records(f"{HEADER}\n".encode()).num_rows == 0
    assert read_csv_records(b"").num_rows == 0
    assert read_csv_records(b"\n\n").num_rows == 0


def test_csv_whitespace_only_line_is_blank_but_a_quoted_empty_line_is_a_record():
    recs = records(read_csv_records(f"{HEADER}\n  \t \r\n\"\"\nc2,Bob,b@x,EU,\n".encode()))
    assert [(r["source_row"], r["parse_error"]) for r in recs] == [(3, "expected 5 fields, found 1"), (4, None)]


@pytest.mark.parametrize(
    ("line", "found"),
    [("c1,Ann,a@x,EU", 4), ("c1,Ann,a@x,EU,2024-01-01,extra", 6), ("just-one", 1)],
)
def test_csv_wrong_field_count_is_a_parse_error(line, found):
    recs = records(read_csv_records(f"{HEADER}\n{line}\nc2,Bob,b@x,EU,\n".encode()))
    assert recs[0]["parse_error"] == f"expected 5 fields, found {found}"
    assert recs[0]["raw_text"] == line
    assert recs[0]["source_row"] == 2
    assert recs[1]["parse_error"] is None


def test_csv_header_in_another_order_is_mapped_by_name():
    data = b"email,signup_date,customer_id,region,first_name\na@x,2024-01-01,c1,EU,Ann\n"
    (rec,) = records(read_csv_records(data))
    assert rec["parse_error"] is None
    assert (rec["customer_id"], rec["first_name"], rec["email"], rec["region"], rec["signup_date"]) == (
        "c1", "Ann", "a@x", "EU", "2024-01-01"
    )


def test_csv_bad_header_makes_every_line_a_record_with_a_parse_error():
    data = b"id,name,email,region,signup_date\nc1,Ann,a@x,EU,\n\nc2,Bob,b@x,EU,\n"
    recs = records(read_csv_records(data))
    assert [r["source_row"] for r in recs] == [1, 2, 4]
    assert recs[0]["raw_text"] == "id,name,email,region,signup_date"
    assert all(r["parse_error"] and "header" in r["parse_error"] for r in recs)


def test_csv_invalid_utf8_line_is_flagged_and_the_others_decode():
    data = (f"{HEADER}\nc1,José,a@x,EU,\n".encode() + b"c2,Bad\xff\xfe,b@x,EU,\n" + "c3,李雷,c@x,CN,\n".encode())
    recs = records(read_csv_records(data))
    assert [r["source_row"] for r in recs] == [2, 3, 4]
    assert [r["parse_error"] for r in recs] == [None, "not valid UTF-8", None]
    assert recs[0]["first_name"] == "José"
    assert recs[2]["first_name"] == "李雷"
    assert recs[1]["raw_text"].startswith("c2,Bad")


# -- JSON -----------------------------------------------------------------------------------


def test_ndjson_line_numbers_count_blank_lines():
    data = b'{"event_id":"e1"}\n\n   \n{"event_id":"e2"}\n\n{"event_id":"e3"}'
    recs = records(read_json_records(data))
    assert [r["source_row"] for r in recs] == [1, 4, 6]
    assert [json.loads(r["payload"])["event_id"] for r in recs] == ["e1", "e2", "e3"]
    assert all(r["parse_error"] is None for r in recs)


def test_ndjson_crlf_and_bom():
    data = "\ufeff".encode() + b'{"event_id":"e1"}\r\n\r\n{"event_id":"e2"}\r\n'
    recs = records(read_json_records(data))
    assert [r["payload"] for r in recs] == ['{"event_id":"e1"}', '{"event_id":"e2"}']
    assert [r["source_row"] for r in recs] == [1, 3]


def test_ndjson_keeps_lines_that_are_not_objects_with_the_readers_verdict():
    data = b'{"event_id":"e1"}\nnot json\n[1,2]\n42\n'
    recs = records(read_json_records(data))
    assert [r["payload"] for r in recs] == ['{"event_id":"e1"}', "not json", "[1,2]", "42"]
    assert [r["source_row"] for r in recs] == [1, 2, 3, 4]
    assert [r["parse_error"] for r in recs] == [
        None, "not valid JSON (Expecting value)", "not a JSON object", "not a JSON object"
    ]


@pytest.mark.parametrize(
    "text",
    [
        '[{"event_id":"e1"},{"event_id":"e2"},7]',
        '\ufeff\n  [\n  {"event_id": "e1"},\n\n  {"event_id": "e2"},\n  7\n]\n',
        '[{"event_id":"e1"},\r\n{"event_id":"e2"},\r\n7]\r\n',
    ],
    ids=["one-line", "pretty-with-bom", "crlf"],
)
def test_json_array_file_gives_one_record_per_element(text):
    recs = records(read_json_records(text.encode()))
    assert [r["source_row"] for r in recs] == [1, 2, 3]
    assert [json.loads(r["payload"]) for r in recs] == [{"event_id": "e1"}, {"event_id": "e2"}, 7]
    assert [r["parse_error"] for r in recs] == [None, None, "not a JSON object"]


def test_json_array_elements_keep_non_ascii_text():
    recs = records(read_json_records('[{"event_id":"e1","page_url":"/café/李"}]'.encode()))
    assert json.loads(recs[0]["payload"])["page_url"] == "/café/李"


def test_ndjson_whose_first_line_is_an_array_is_still_ndjson():
    data = b'[1,2]\n{"event_id":"e1"}\n'
    recs = records(read_json_records(data))
    assert [r["payload"] for r in recs] == ["[1,2]", '{"event_id":"e1"}']
    assert [r["source_row"] for r in recs] == [1, 2]


def test_broken_array_file_falls_back_to_one_record_per_line():
    lines = ["[", '{"event_id":"e1"},', "", '{"event_id":"e2",', "]"]
    recs = records(read_json_records("\n".join(lines).encode()))
    assert [r["source_row"] for r in recs] == [1, 2, 4, 5]
    assert [r["payload"] for r in recs] == ["[", '{"event_id":"e1"},', '{"event_id":"e2",', "]"]


def test_json_invalid_utf8_line_is_flagged_and_the_others_kept():
    data = (
        "\ufeff".encode() + b'{"event_id":"e1","page_url":"/caf\xc3\xa9"}\r\n'
        b'{"event_id":"e2","page_url":"/\xff"}\n'
        b"\n"
        b'{"event_id":"e3"}\n'
    )
    recs = records(read_json_records(data))
    assert [r["source_row"] for r in recs] == [1, 2, 4]
    assert [r["parse_error"] for r in recs] == [None, "not valid UTF-8", None]
    assert json.loads(recs[0]["payload"]) == {"event_id": "e1", "page_url": "/café"}
    assert recs[2]["payload"] == '{"event_id":"e3"}'
    assert recs[1]["payload"]  # kept (with replacement characters), never empty


def test_read_ahead_keeps_the_order_and_reads_each_item_once() -> None:
    calls: list[int] = []

    def read(i: int) -> int:
        calls.append(i)
        return i * 10

    assert list(read_ahead([3, 1, 2], read)) == [(3, 30), (1, 10), (2, 20)]
    assert sorted(calls) == [1, 2, 3]
    assert list(read_ahead([], read)) == []


def test_read_ahead_raises_a_read_error_at_its_item() -> None:
    def read(i: int) -> int:
        if i == 2:
            raise ValueError("bad file 2")
        return i

    seen = []
    with pytest.raises(ValueError, match="bad file 2"):
        for item, _ in read_ahead([1, 2, 3], read):
            seen.append(item)
    assert seen == [1]
