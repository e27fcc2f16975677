"""Contract of the customer CSV source, through the real pipeline: what loads, what is rejected, why."""

from __future__ import annotations

import pytest

from conftest import CSV_HEADER, rows

RAW = "raw_customer_demographics"
DIM = "dim_customer"


def customers(text: str | bytes, name: str = "customers/a.csv") -> dict[str, str | bytes]:
    return {name: text}


def csv(*lines: str, eol: str = "\n", header: str = CSV_HEADER) -> str:
    return eol.join([header, *lines]) + eol


def dim(engine) -> dict[str, dict]:
    return {r["customer_id"]: r for r in rows(engine, DIM, "customer_id")}


def rejects(engine, result) -> list[dict]:
    return [r for r in rows(engine, "rejected_records", "source_row")
            if r["run_id"] == result.run_id and r["source_table"] == RAW]


def day(value) -> str | None:
    return None if value is None else str(value)[:10]


def counts(result):
    (ingest,) = [i for i in result.ingest if i.table == RAW]
    (merge,) = [m for m in result.merges if m.table == DIM]
    return ingest, merge


def only_reject(engine, result) -> dict:
    found = rejects(engine, result)
    assert len(found) == 1, found
    return found[0]


# -- parsing ---------------------------------------------------------------------------------


def test_rfc4180_quoting_and_utf8_survive(engine, source, run):
    text = csv(
        'c1,"Smith, José",jose@x.com,EU,2024-01-05',
        'c2,"Zoë ""Z"" Ünal",zoe@x.com,EU,',
        'c3,"李雷\nsecond line",li@x.com,CN,2024-03-01',
        "c4,Ann,ann@x.com,US,",
    )
    result = run(source(customers(text)))
    assert result.status == "SUCCEEDED"
    got = dim(engine)
    assert got["c1"]["first_name"] == "Smith, José"
    assert got["c2"]["first_name"] == 'Zoë "Z" Ünal'
    assert got["c3"]["first_name"] == "李雷\nsecond line"
    assert got["c3"]["first_name"].encode("utf-8") == "李雷\nsecond line".encode("utf-8")
    ingest, merge = counts(result)
    assert (ingest.read, ingest.rejected_total, merge.inserted) == (4, 0, 4)
    assert [r["source_row"] for r in rows(engine, DIM, "customer_id")] == [2, 3, 4, 6]


def test_lf_and_crlf_files_in_one_run(engine, source, run):
    result = run(source({
        "customers/a.csv": csv("c1,Ann,a@x,EU,2024-01-01", "c2,Bob,b@x,US,", eol="\n"),
        "customers/b.csv": csv("c3,Cid,c@x,EU,2024-01-03", 'c4,"Dee\r\nSmith",d@x,US,', eol="\r\n"),
    }))
    assert result.status == "SUCCEEDED"
    got = dim(engine)
    assert set(got) == {"c1", "c2", "c3", "c4"}
    for r in got.values():  # no stray CR at the end of a value
        assert not any(isinstance(v, str) and v.endswith("\r") for v in r.values())
    assert day(got["c3"]["signup_date"]) == "2024-01-03"
    assert got["c2"]["region"] == "US" and got["c4"]["region"] == "US"
    assert got["c4"]["first_name"] == "Dee\r\nSmith"
    assert counts(result)[0].rejected_total == 0


def test_utf8_bom_is_ignored(engine, source, run):
    result = run(source(customers("\ufeff" + csv("c1,Ann,a@x,EU,2024-01-01"))))
    assert counts(result)[0].rejected_total == 0
    assert list(dim(engine)) == ["c1"]


def test_blank_lines_are_skipped_but_counted(engine, source, run):
    text = f"{CSV_HEADER}\n\nc1,Ann,a@x,EU,\n\n\nc2,Bob,b@x,EU,\n\n"
    result = run(source(customers(text)))
    ingest, merge = counts(result)
    assert (ingest.read, ingest.rejected_total) == (2, 0)
    assert {k: r["source_row"] for k, r in dim(engine).items()} == {"c1": 3, "c2": 6}


def test_gzip_loads_like_plain(engine, source, run):
    text = "\ufeff" + csv('c1,"Zoë, Z",Z@X.COM,EU,2024-01-01', "", "c2,Bob", "c3,Cid,c@x,US,", eol="\r\n")
    result = run(source(customers(text, "customers/a.csv.gz")))
    ingest, merge = counts(result)
    assert (ingest.files, ingest.read, ingest.rejected) == (1, 3, {"malformed_row": 1})
    got = dim(engine)
    assert set(got) == {"c1", "c3"}
    assert (got["c1"]["first_name"], got["c1"]["email"]) == ("Zoë, Z", "z@x.com")
    assert got["c1"]["source_file"] == "customers/a.csv.gz"
    assert {k: r["source_row"] for k, r in got.items()} == {"c1": 2, "c3": 5}
    assert only_reject(engine, result)["source_row"] == 4


# -- malformed rows --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "found"),
    [
        ("c1,Ann,a@x,EU", 4),
        ("c1,Ann,a@x,EU,2024-01-01,extra", 6),
        ("c1", 1),
        (",,,,,", 6),
        ('c1,"Ann, a@x",EU,2024-01-01', 4),  # the quoted comma does not split
    ],
)
def test_wrong_field_count_is_malformed_row(engine, source, run, line, found):
    result = run(source(customers(csv(line, "c9,Ok,ok@x,EU,"))))
    rej = only_reject(engine, result)
    assert rej["reason"] == "malformed_row"
    assert rej["detail"] == f"expected 5 fields, found {found}"
    assert rej["payload"] == line
    assert (rej["source_file"], rej["source_row"]) == ("customers/a.csv", 2)
    assert list(dim(engine)) == ["c9"]


def test_malformed_multiline_record_payload_is_its_raw_text(engine, source, run):
    result = run(source(customers(csv('c1,"two\nlines",a@x,EU', "c2,Bob,b@x,EU,"))))
    rej = only_reject(engine, result)
    assert (rej["reason"], rej["source_row"]) == ("malformed_row", 2)
    assert rej["payload"] == 'c1,"two\nlines",a@x,EU'
    assert dim(engine)["c2"]["source_row"] == 4


def test_invalid_utf8_line_is_malformed_and_the_rest_loads(engine, source, run):
    data = csv("c1,José,a@x,EU,").encode() + b"c2,B\xe9atrice,b@x,FR,\n" + "c3,李雷,c@x,CN,\n".encode()
    result = run(source(customers(data)))
    rej = only_reject(engine, result)
    assert (rej["reason"], rej["detail"], rej["source_row"]) == ("malformed_row", "not valid UTF-8", 3)
    assert rej["payload"].startswith("c2,B")
    got = dim(engine)
    assert set(got) == {"c1", "c3"}
    assert got["c1"]["first_name"] == "José" and got["c3"]["first_name"] == "李雷"


@pytest.mark.parametrize(
    "header",
    [
        "id,first_name,email,region,signup_date",
        "customer_id,first_name,email,region",
        "customer_id,first_name,email,region,signup_date,extra",
        "c0,Zed,z@x,EU,2024-01-01",  # no header at all: the first data line is taken as the header
    ],
)
def test_bad_header_rejects_every_line_of_that_file(engine, source, run, header):
    bad = f"{header}\nc1,Ann,a@x,EU,\n\nc2,Bob,b@x,EU,\n"
    result = run(source({"customers/a.csv": bad, "customers/b.csv": csv("c3,Cid,c@x,EU,")}))
    found = rejects(engine, result)
    assert [(r["source_file"], r["source_row"], r["reason"]) for r in found] == [
        ("customers/a.csv", 1, "malformed_row"),
        ("customers/a.csv", 2, "malformed_row"),
        ("customers/a.csv", 4, "malformed_row"),
    ]
    assert [r["payload"] for r in found] == [header, "c1,Ann,a@x,EU,", "c2,Bob,b@x,EU,"]
    assert all("header" in r["detail"] for r in found)
    ingest, _ = counts(result)
    assert (ingest.read, ingest.rejected_total) == (4, 3)
    assert list(dim(engine)) == ["c3"]  # the other file is unaffected


def test_header_in_another_order_is_mapped_by_name(engine, source, run):
    text = "region,email,signup_date,first_name,customer_id\nEU,A@x,2024-01-01,Ann,c1\n"
    result = run(source(customers(text)))
    assert counts(result)[0].rejected_total == 0
    r = dim(engine)["c1"]
    assert (r["first_name"], r["email"], r["region"], day(r["signup_date"])) == ("Ann", "a@x", "EU", "2024-01-01")


# -- values ----------------------------------------------------------------------------------


def test_values_trimmed_empty_is_null_email_lowercased(engine, source, run):
    result = run(source(customers(csv(
        "  c1  ,  Ann Lee  , Ann.Lee@Example.COM ,  EU , 2024-01-01 ",
        'c2,"",  ,"   ",',
        "c3,ÉLISE,ÉLISE@X.FR,FR,",
    ))))
    assert counts(result)[0].rejected_total == 0
    got = dim(engine)
    assert set(got) == {"c1", "c2", "c3"}
    c1, c2 = got["c1"], got["c2"]
    assert (c1["first_name"], c1["email"], c1["region"], day(c1["signup_date"])) == (
        "Ann Lee", "ann.lee@example.com", "EU", "2024-01-01"
    )
    assert (c2["first_name"], c2["email"], c2["region"], c2["signup_date"]) == (None, None, None, None)
    assert (got["c3"]["first_name"], got["c3"]["email"]) == ("ÉLISE", "élise@x.fr")


@pytest.mark.parametrize("key", ["", "   ", '""', '"  "'])
def test_empty_customer_id_is_missing_key(engine, source, run, key):
    line = f"{key},Ann,a@x,EU,2024-01-01"
    result = run(source(customers(csv(line, "c2,Bob,b@x,EU,"))))
    rej = only_reject(engine, result)
    assert (rej["reason"], rej["source_row"], rej["payload"]) == ("missing_key", 2, line)
    assert list(dim(engine)) == ["c2"]


@pytest.mark.parametrize(
    "value", ["2024-13-01", "2024-02-30", "2023-02-29", "01/02/2024", "2024-1-5", "2024-01-05T00:00", "soon"]
)
def test_bad_signup_date_is_invalid_value(engine, source, run, value):
    line = f"c1,Ann,a@x,EU,{value}"
    result = run(source(customers(csv(line, "c2,Bob,b@x,EU,2024-01-01"))))
    rej = only_reject(engine, result)
    assert (rej["reason"], rej["source_row"], rej["payload"]) == ("invalid_value", 2, line)
    assert value in rej["detail"]
    assert list(dim(engine)) == ["c2"]


@pytest.mark.parametrize(("value", "stored"), [("", None), ("  ", None), ("2024-02-29", "2024-02-29"),
                                               (" 2024-12-31 ", "2024-12-31")])
def test_good_or_empty_signup_date_loads(engine, source, run, value, stored):
    result = run(source(customers(csv(f"c1,Ann,a@x,EU,{value}"))))
    assert counts(result)[0].rejected_total == 0
    assert day(dim(engine)["c1"]["signup_date"]) == stored


def test_rule_order_malformed_then_missing_key_then_invalid_value(engine, source, run):
    result = run(source(customers(csv(
        ",Ann,a@x,EU,not-a-date,extra",  # wrong field count wins over the empty key and bad date
        ",Bob,b@x,EU,not-a-date",  # empty key wins over the bad date
        "c3,Cid,c@x,EU,not-a-date",
    ))))
    assert [(r["source_row"], r["reason"]) for r in rejects(engine, result)] == [
        (2, "malformed_row"), (3, "missing_key"), (4, "invalid_value")
    ]
    assert counts(result)[0].rejected == {"malformed_row": 1, "missing_key": 1, "invalid_value": 1}


# -- duplicates and lineage ------------------------------------------------------------------


def test_duplicate_customer_last_occurrence_wins(engine, source, run):
    result = run(source({
        "customers/b.csv": csv("c1,B1,b1@x,EU,", "c2,B2,b2@x,EU,", "c1,B1-later,b1@x,EU,"),
        "customers/a.csv": csv("c1,A1,a1@x,EU,", "c3,A3,a3@x,EU,", "c3,A3-later,a3@x,EU,"),
    }))
    got = dim(engine)
    assert {k: r["first_name"] for k, r in got.items()} == {"c1": "B1-later", "c2": "B2", "c3": "A3-later"}
    assert (got["c1"]["source_file"], got["c1"]["source_row"]) == ("customers/b.csv", 4)
    assert (got["c3"]["source_file"], got["c3"]["source_row"]) == ("customers/a.csv", 4)
    ingest, merge = counts(result)
    assert (ingest.read, merge.accepted, merge.inserted, merge.collapsed) == (6, 6, 3, 3)


def test_rejected_copy_does_not_shadow_an_accepted_one(engine, source, run):
    result = run(source(customers(csv("c1,Good,a@x,EU,2024-01-01", "c1,Bad,a@x,EU,2024-99-99"))))
    assert dim(engine)["c1"]["first_name"] == "Good"
    _, merge = counts(result)
    assert (merge.accepted, merge.inserted, merge.collapsed) == (1, 1, 0)


def test_lineage_is_relative_path_and_physical_start_line(engine, source, run):
    text = f"{CSV_HEADER}\r\n\r\nc1,\"a\r\nb\r\nc\",x@x,EU,\r\nc2,Bob,b@x,EU,\r\n"
    run(source(customers(text, "customers/2024-01-01.csv")))
    raw = rows(engine, RAW, "source_row")
    assert [(r["source_file"], r["source_row"]) for r in raw] == [
        ("customers/2024-01-01.csv", 3), ("customers/2024-01-01.csv", 6)
    ]
    assert {k: (r["source_file"], r["source_row"]) for k, r in dim(engine).items()} == {
        "c1": ("customers/2024-01-01.csv", 3), "c2": ("customers/2024-01-01.csv", 6)
    }
