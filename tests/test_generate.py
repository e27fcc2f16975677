"""The synthetic source generator: layout, defects and an exact manifest.

An independent reference reader (``csv``, ``json``, ``gzip`` only) applies the
contract's rules on its own and must reproduce every count of the manifest.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from engagement.generate import generate

HEADER = ["customer_id", "first_name", "email", "region", "signup_date"]
KNOWN = {"page_view", "add_to_cart", "purchase", "search", "click"}
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TS_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|([+-])(\d{2}):(\d{2}))?$"
)
SMALL = dict(customers=300, events=5_000, days=3, seed=7, defect_rate=0.1)


# --------------------------------------------------------------------------- reference reader


def _text(path: Path) -> str:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    return data.decode("utf-8")


def _real_date(text: str) -> bool:
    if not DATE_RE.match(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _instant(value: object) -> datetime | None:
    """The UTC instant of a contract timestamp, or None when it is not one."""
    if not isinstance(value, str):
        return None
    m = TS_RE.match(value)
    if not m:
        return None
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    try:
        local = datetime(y, mo, d, h, mi, s)
    except ValueError:
        return None
    frac = m.group(7)
    if frac:
        local += timedelta(microseconds=int((frac[1:] + "000000")[:6]))
    if m.group(9):
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            return None
        off = timedelta(hours=oh, minutes=om)
        local = local - off if m.group(9) == "+" else local + off
    return local.replace(tzinfo=timezone.utc)


def _valid_duration(obj: dict) -> bool:
    v = obj.get("duration_ms")
    return v is None or (type(v) is int and v >= 0)


@dataclass
class Customers:
    records: int = 0
    rejected: Counter = field(default_factory=Counter)
    accepted: list = field(default_factory=list)  # (customer_id, fields) in load order
    raw_rows: list = field(default_factory=list)  # csv rows as parsed, for feature checks


def read_customers(root: Path, files: list[str]) -> Customers:
    out = Customers()
    for rel in files:
        rows = list(csv.reader(io.StringIO(_text(root / rel), newline="")))
        assert rows[0] == HEADER, rel
        for row in rows[1:]:
            if not row:  # a blank line
                continue
            out.records += 1
            out.raw_rows.append(row)
            if len(row) != 5:
                out.rejected["malformed_row"] += 1
                continue
            vals = [v.strip() for v in row]
            if not vals[0]:
                out.rejected["missing_key"] += 1
            elif vals[4] and not _real_date(vals[4]):
                out.rejected["invalid_value"] += 1
            else:
                out.accepted.append((vals[0], [v or None for v in vals[1:4]] + [vals[4] or None]))
    return out


@dataclass
class Events:
    records: int = 0
    rejected: Counter = field(default_factory=Counter)
    accepted: list = field(default_factory=list)  # (order, dt, obj, instant)
    docs: list = field(default_factory=list)  # (file, text or parsed) of every record


def _event_docs(root: Path, rel: str):
    text = _text(root / rel)
    if rel.endswith(".json") and text.lstrip().startswith("["):
        for element in json.loads(text):
            yield json.dumps(element), element, True
        return
    for line in text.split("\n"):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            yield line, json.loads(line), True
        except ValueError:
            yield line, None, False


def read_events(root: Path, files: list[str]) -> Events:
    out = Events()
    for file_no, rel in enumerate(files):
        dt = rel.split("/")[1]
        for line_no, (text, obj, parsed) in enumerate(_event_docs(root, rel)):
            out.records += 1
            out.docs.append((rel, text, obj))
            if not parsed or not isinstance(obj, dict):
                out.rejected["malformed_row"] += 1
                continue
            eid = obj.get("event_id")
            if not isinstance(eid, str) or not eid.strip():
                assert eid is None or eid == "", eid
                out.rejected["missing_key"] += 1
                continue
            instant = _instant(obj.get("timestamp"))
            if instant is None or not _valid_duration(obj):
                out.rejected["invalid_value"] += 1
                continue
            out.accepted.append(((file_no, line_no), dt, obj, instant))
    return out


def reference_manifest(root: Path, files: dict) -> tuple[dict, dict, Customers, Events]:
    cus = read_customers(root, files["customers"])
    ids = {cid for cid, _ in cus.accepted}
    c = {
        "records": cus.records,
        "rejected": {r: cus.rejected[r] for r in ("malformed_row", "missing_key", "invalid_value")},
        "accepted": len(cus.accepted),
        "distinct_keys": len(ids),
        "collapsed": len(cus.accepted) - len(ids),
    }
    ev = read_events(root, files["clickstream"])
    winners: dict[str, tuple] = {}
    first_dt: dict[str, str] = {}
    late = 0
    for order, dt, obj, instant in ev.accepted:  # already in path, then record order
        eid = obj["event_id"]
        if eid in first_dt:
            late += dt > first_dt[eid]
        else:
            first_dt[eid] = dt
        best = winners.get(eid)
        if best is None or (instant, order) >= (best[0], best[1]):
            winners[eid] = (instant, order, obj)
    final = [w[2] for w in winners.values()]
    e = {
        "records": ev.records,
        "rejected": {r: ev.rejected[r] for r in ("malformed_row", "missing_key", "invalid_value")},
        "accepted": len(ev.accepted),
        "distinct_keys": len(winners),
        "collapsed": len(ev.accepted) - len(winners),
        "anonymous": sum(o.get("user_id") is None for o in final),
        "orphans": sum(o.get("user_id") is not None and o["user_id"] not in ids for o in final),
        "unknown_event_type": sum(o.get("event_type") not in KNOWN for o in final),
        "late_arrivals": late,
    }
    return c, e, cus, ev


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("small")
    return out, generate(out, **SMALL)


@pytest.fixture(scope="module")
def small_ref(small):
    out, manifest = small
    return reference_manifest(out, manifest["files"])


# --------------------------------------------------------------------------- tests


def test_manifest_matches_reference_reader(small, small_ref) -> None:
    out, manifest = small
    c, e, _, _ = small_ref
    assert manifest["customers"] == c
    assert manifest["clickstream"] == e
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8")) == manifest
    assert manifest["generator"] == "engagement.generate"
    assert manifest["seed"] == SMALL["seed"]
    assert manifest["params"] == {**{k: v for k, v in SMALL.items() if k != "seed"}, "start_date": "2026-01-01"}
    assert manifest["known_event_types"] == ["page_view", "add_to_cart", "purchase", "search", "click"]


def test_sizes_are_distinct_accepted_keys(small) -> None:
    _, m = small
    assert m["customers"]["distinct_keys"] == SMALL["customers"]
    assert m["clickstream"]["distinct_keys"] == SMALL["events"]
    for src in ("customers", "clickstream"):
        s = m[src]
        assert s["accepted"] == s["records"] - sum(s["rejected"].values())
        share = sum(s["rejected"].values()) / s["records"]
        assert 0.07 < share < 0.13, (src, share)


def test_files_are_listed_in_path_order_and_exist(small) -> None:
    out, m = small
    for src, files in m["files"].items():
        assert files == sorted(files)
        assert all((out / f).is_file() for f in files)
        on_disk = sorted(p.relative_to(out).as_posix() for p in (out / src).rglob("*") if p.is_file())
        assert on_disk == files
    assert m["files"]["customers"] == [
        "customers/customers_001.csv", "customers/customers_002.csv", "customers/customers_003.csv.gz"]
    days = [f"dt=2026-01-0{d}" for d in (1, 2, 3)]
    assert sorted({f.split("/")[1] for f in m["files"]["clickstream"]}) == days


def test_every_defect_kind_occurs(small, small_ref) -> None:
    _, m = small
    for src in ("customers", "clickstream"):
        assert all(v > 0 for v in m[src]["rejected"].values()), m[src]
        assert m[src]["collapsed"] > 0
    for key in ("anonymous", "orphans", "unknown_event_type", "late_arrivals"):
        assert m["clickstream"][key] > 0, key


def test_customer_defect_variants(small_ref) -> None:
    _, _, cus, _ = small_ref
    rows = cus.raw_rows
    lengths = Counter(len(r) for r in rows)
    assert lengths[4] and lengths[6] and set(lengths) == {4, 5, 6}
    keys = [r[0] for r in rows if len(r) == 5 and not r[0].strip()]
    assert "" in keys and any(k and not k.strip() for k in keys)
    dates = [r[4].strip() for r in rows if len(r) == 5 and r[4].strip() and not _real_date(r[4].strip())]
    assert any(DATE_RE.match(d) for d in dates), "a YYYY-MM-DD that is no real date"
    assert any(not DATE_RE.match(d) for d in dates)
    # a customer re-sent with a changed attribute: the later copy differs
    by_id: dict[str, list] = {}
    for cid, vals in cus.accepted:
        by_id.setdefault(cid, []).append([v.lower() if i == 1 and v else v for i, v in enumerate(vals)])
    resent = [v for v in by_id.values() if len(v) > 1]
    assert resent and all(a != b for v in resent for a, b in zip(v, v[1:]))


def test_customer_formatting(small) -> None:
    out, m = small
    raw = {f: (gzip.decompress((out / f).read_bytes()) if f.endswith(".gz") else (out / f).read_bytes())
           for f in m["files"]["customers"]}
    first, second, third = raw.values()
    assert first.count(b"\r\n") == first.count(b"\n") > 10  # CRLF
    assert b"\r" not in second and b"\r" not in third  # LF
    assert all(f.startswith(b"customer_id,first_name,email,region,signup_date\r\n")
               or f.startswith(b"customer_id,first_name,email,region,signup_date\n") for f in raw.values())
    text = b"".join(raw.values()).decode("utf-8")
    assert re.search(r"\n\r?\n", text), "blank lines"
    assert '"Smith, Jr."' in text and '""Bob""' in text  # RFC 4180 quoting
    for name in ("José", "Zoë", "李雷", "Müller", "Ærøskøbing"):
        assert name in text, name
    rows = [r for f in raw.values() for r in csv.reader(io.StringIO(f.decode("utf-8"), newline=""))
            if len(r) == 5 and r != HEADER]
    assert any(v != v.strip() for r in rows for v in r), "surrounding spaces"
    assert any(r[2] != r[2].lower() for r in rows), "upper-case e-mails"
    for col in (1, 3, 4):
        assert any(r[0].strip() and not r[col].strip() for r in rows), f"empty column {col}"
    assert all(re.fullmatch(r"C\d{7}", r[0].strip()) for r in rows if r[0].strip())


def test_clickstream_defect_variants(small_ref) -> None:
    _, _, _, ev = small_ref
    texts = [t for _, t, o in ev.docs]
    objs = [o for _, _, o in ev.docs]
    assert any(o is None and t.startswith("{") for t, o in zip(texts, objs)), "truncated JSON"
    assert any(isinstance(o, list) for o in objs), "array line"
    assert any(isinstance(o, (int, float)) and not isinstance(o, bool) for o in objs), "number line"
    assert any(isinstance(o, str) for o in objs), "string line"
    dicts = [o for o in objs if isinstance(o, dict)]
    assert any("event_id" not in o for o in dicts)
    assert any("event_id" in o and o["event_id"] is None for o in dicts)
    assert any(o.get("event_id") == "" for o in dicts)
    keyed = [o for o in dicts if o.get("event_id")]
    ts = [o.get("timestamp", "<absent>") for o in keyed]
    assert "<absent>" in ts and None in ts
    assert any(isinstance(t, int) for t in ts)
    assert any(isinstance(t, str) and TS_RE.match(t) and _instant(t) is None for t in ts), "hour 25 / day 32"
    assert any(isinstance(t, str) and t and not TS_RE.match(t) for t in ts)
    durs = [o["duration_ms"] for o in keyed if "duration_ms" in o]
    assert any(type(d) is int and d < 0 for d in durs)
    assert any(isinstance(d, float) for d in durs)
    assert any(isinstance(d, str) for d in durs)
    assert any(isinstance(d, bool) for d in durs)


def test_clickstream_valid_variety(small_ref) -> None:
    _, _, _, ev = small_ref
    valid = [o for _, _, o, _ in ev.accepted]
    stamps = [o["timestamp"] for o in valid]
    assert sum(re.fullmatch(r"\S+T\d\d:\d\d:\d\dZ", s) is not None for s in stamps) > len(stamps) / 2
    assert any(re.search(r"\.\d+Z$", s) for s in stamps)
    assert any(re.search(r"[+-]\d\d:\d\d$", s) for s in stamps)
    assert any(re.fullmatch(r"\S+ \d\d:\d\d:\d\d", s) for s in stamps)
    with_duration = sum(type(o.get("duration_ms")) is int for o in valid)
    assert with_duration > 0.9 * len(valid)
    assert any("duration_ms" not in o for o in valid) and any(
        "duration_ms" in o and o["duration_ms"] is None for o in valid)
    assert any("user_id" not in o for o in valid) and any(
        "user_id" in o and o["user_id"] is None for o in valid)
    assert any("session_id" in o for o in valid) and any(isinstance(o.get("utm"), dict) for o in valid)
    types = Counter(o["event_type"] for o in valid)
    assert types["page_view"] > types["add_to_cart"] > types["purchase"] > 0
    assert types["search"] and types["click"]
    assert all(type(o["duration_ms"]) is int and o["duration_ms"] >= 0 for o in valid if o.get("duration_ms")
               is not None)
    # every event's instant lies within the generated days, give or take a re-sent copy's hour
    lo, hi = datetime(2025, 12, 31, 23, tzinfo=timezone.utc), datetime(2026, 1, 4, 1, tzinfo=timezone.utc)
    assert all(lo <= i <= hi for _, _, _, i in ev.accepted)


def test_duplicates_share_attributes(small_ref) -> None:
    _, _, _, ev = small_ref
    copies: dict[str, set] = {}
    instants: dict[str, list] = {}
    for _, _, o, instant in ev.accepted:
        copies.setdefault(o["event_id"], set()).add((o.get("user_id"), o["event_type"], o["page_url"]))
        instants.setdefault(o["event_id"], []).append(instant)
    assert all(len(v) == 1 for v in copies.values())
    resent = [v for v in instants.values() if len(v) > 1]
    assert any(len(set(v)) == 1 for v in resent)  # a copy with the same timestamp
    assert any(v[-1] > v[0] for v in resent) and any(v[-1] < v[0] for v in resent)  # later, earlier


def test_gz_and_array_files(small) -> None:
    out, m = small
    assert any(f.endswith(".gz") for f in m["files"]["customers"])
    click = m["files"]["clickstream"]
    assert any(f.endswith(".jsonl.gz") for f in click) and any(f.endswith(".jsonl") for f in click)
    arrays = [f for f in click if f.endswith(".json")]
    assert len(arrays) == 1 and arrays[0].endswith("/extra-0000.json")
    doc = json.loads((out / arrays[0]).read_text(encoding="utf-8"))
    assert isinstance(doc, list) and 0 < len(doc) <= 500 and all(isinstance(e, dict) for e in doc)
    for f in click:
        if f.endswith(".gz"):
            assert gzip.decompress((out / f).read_bytes())


def test_clean_generation_has_no_defects(tmp_path: Path) -> None:
    m = generate(tmp_path, customers=120, events=2_000, days=2, seed=3, defect_rate=0)
    c, e, _, _ = reference_manifest(tmp_path, m["files"])
    assert m["customers"] == c and m["clickstream"] == e
    for src in ("customers", "clickstream"):
        assert m[src]["rejected"] == {"malformed_row": 0, "missing_key": 0, "invalid_value": 0}
        assert m[src]["collapsed"] == 0
    assert m["customers"]["records"] == m["customers"]["distinct_keys"] == 120
    assert m["clickstream"]["records"] == m["clickstream"]["distinct_keys"] == 2_000
    assert m["clickstream"]["anonymous"] == m["clickstream"]["orphans"] == 0
    assert m["clickstream"]["unknown_event_type"] == m["clickstream"]["late_arrivals"] == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(customers=1, events=0, days=1, defect_rate=0.5),
        dict(customers=1, events=1, days=1, defect_rate=0.5),
        dict(customers=5, events=40, days=9, defect_rate=0.5),
        dict(customers=50, events=700, days=1, defect_rate=0.03, seed=11),
    ],
)
def test_edge_sizes_match_reference(tmp_path: Path, kwargs) -> None:
    m = generate(tmp_path, **kwargs)
    c, e, _, _ = reference_manifest(tmp_path, m["files"])
    assert m["customers"] == c and m["clickstream"] == e
    assert m["clickstream"]["distinct_keys"] == kwargs["events"]


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    args = dict(customers=80, events=3_000, days=3, seed=5, defect_rate=0.1)
    m1, m2 = generate(tmp_path / "a", **args), generate(tmp_path / "b", **args)
    m3 = generate(tmp_path / "c", **{**args, "seed": 6})
    assert m1 == m2
    files = m1["files"]["customers"] + m1["files"]["clickstream"] + ["manifest.json"]
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert any((tmp_path / "a" / f).read_bytes() != (tmp_path / "c" / f).read_bytes()
               for f in m3["files"]["clickstream"] if (tmp_path / "c" / f).exists())


def test_rerun_replaces_only_generated_files(tmp_path: Path) -> None:
    generate(tmp_path, customers=20, events=300, days=3, seed=1)
    stale = tmp_path / "clickstream" / "dt=2025-12-31" / "part-0000.jsonl"
    stale.parent.mkdir()
    stale.write_text("{}\n")
    (tmp_path / "customers" / "old.csv").write_text("x\n")
    (tmp_path / "notes.txt").write_text("keep me")
    (tmp_path / "warehouse").mkdir()
    (tmp_path / "warehouse" / "w.duckdb").write_bytes(b"db")
    m = generate(tmp_path, customers=20, events=300, days=2, seed=1)
    assert not stale.exists() and not (tmp_path / "customers" / "old.csv").exists()
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert (tmp_path / "warehouse" / "w.duckdb").read_bytes() == b"db"
    assert sorted(p.name for p in (tmp_path / "clickstream").iterdir()) == ["dt=2026-01-01", "dt=2026-01-02"]
    assert len(m["files"]["customers"]) == 3


def test_progress_and_start_date(tmp_path: Path) -> None:
    said: list[str] = []
    m = generate(tmp_path, customers=10, events=100, days=2, start_date=date(2025, 2, 27), progress=said.append)
    assert said and all(isinstance(s, str) for s in said)
    assert [f.split("/")[1] for f in m["files"]["clickstream"] if f.endswith((".jsonl", ".gz"))] == [
        "dt=2025-02-27", "dt=2025-02-28"]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        (dict(customers=0), ["customers", ">= 1"]),
        (dict(events=-1), ["events", ">= 0"]),
        (dict(days=0), ["days", ">= 1"]),
        (dict(defect_rate=0.6), ["defect_rate", "0", "0.5"]),
        (dict(defect_rate=-0.1), ["defect_rate", "0", "0.5"]),
        (dict(defect_rate=float("nan")), ["defect_rate", "0.5"]),
        (dict(customers=2.5), ["customers", ">= 1"]),
        (dict(seed=-3), ["seed", ">= 0"]),
    ],
)
def test_argument_validation(tmp_path: Path, kwargs, words) -> None:
    with pytest.raises(ValueError) as info:
        generate(tmp_path / "out", **kwargs)
    message = str(info.value)
    assert "\n" not in message
    for w in words:
        assert w in message, (w, message)
    assert not (tmp_path / "out").exists()  # nothing written
