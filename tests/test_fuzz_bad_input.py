"""Fuzz: many small bad files of every class of issue 13, and mixes of them, on every engine.

Each case is a source folder written from a seeded generator that knows how many records it
wrote per file. For each: the run ends (exit 0/1, or 3 when a file could not be read at all,
and then only that file is missing), every file's records are all read and each is accepted
or rejected (read = accepted + rejected per source and per file), no traceback reaches the
CLI's stderr, and a following clean run succeeds on the same warehouse.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import CSV_HEADER, rows

from engagement.results import StepStatus

T0 = "2026-01-01T10:00:00Z"


def _doc(rng: random.Random, n: int) -> str:
    """One JSON document: valid, or bad in one of the ways issue 13 found."""
    good = {"event_id": f"e{n}", "user_id": "C1", "event_type": "page_view", "timestamp": T0, "duration_ms": 5}
    kind = rng.choice([
        "good", "good", "good", "surrogate", "deep", "nan", "infinity", "trailing", "dup-key", "huge",
        "key-object", "key-array", "key-bool", "key-float", "key-int", "years", "years-low", "future",
        "not-json", "array", "scalar", "two-docs", "single-quotes", "comment", "control",
    ])
    body = json.dumps(good)[1:-1]
    return {
        "good": json.dumps(good),
        "surrogate": '{' + body + ',"page_url":"\\udc00x"}',
        "deep": "[" * rng.randint(200, 3000) + "]" * 0,
        "nan": '{' + body.replace('"duration_ms": 5', '"duration_ms": NaN') + '}',
        "infinity": '{' + body + ',"x":-Infinity}',
        "trailing": '{' + body + ',}',
        "dup-key": '{' + body + f',"event_id":"e{n}b"}}',
        "huge": '{' + body + ',"x":9e999}',
        "key-object": json.dumps({**good, "event_id": {"a": n}}),
        "key-array": json.dumps({**good, "event_id": [n]}),
        "key-bool": json.dumps({**good, "event_id": True}),
        "key-float": json.dumps({**good, "event_id": n + 0.5}),
        "key-int": json.dumps({**good, "event_id": n}),
        "years": json.dumps({**good, "timestamp": "9999-12-31T23:59:59-01:00"}),
        "years-low": json.dumps({**good, "timestamp": "0001-01-01T00:00:00+01:00"}),
        "future": json.dumps({**good, "timestamp": "2199-06-01T00:00:00Z"}),
        "not-json": "not json at all",
        "array": "[1, 2]",
        "scalar": "42",
        "two-docs": json.dumps(good) + " " + json.dumps(good),
        "single-quotes": "{'event_id': 'x'}",
        "comment": '{' + body + '} // note',
        "control": rng.choice(["\x1e", "\x0c", "\x0b", "\u00a0", "\u3000"]),
    }[kind]


def _json_file(rng: random.Random, start: int) -> tuple[str, str, int]:
    """(name suffix, text, records) of an NDJSON or array file."""
    docs = [_doc(rng, start + i) for i in range(rng.randint(1, 8))]
    if rng.random() < 0.5:
        # Not in an array: an unbalanced bracket, or a value followed by more (`{…} // note`),
        # breaks the array, and the file is then read line by line (tests/test_rules_clickstream.py).
        docs = [d for d in docs if d.strip(" \t\r\n") and not d.startswith("[" * 200)
                and not d.endswith("// note") and "} {" not in d]
        if not docs:
            docs = ['{"event_id":"lone","timestamp":"' + T0 + '"}']
        text = "[\n" + ",\n".join(docs) + "\n]"
        return ".json", text, len(docs)
    blank = rng.choice(["", "\n", "  \t\r\n"])
    return ".jsonl", blank + "\n".join(docs) + "\n", len(docs)


def _csv_file(rng: random.Random, start: int) -> tuple[str, int]:
    lines, records = [CSV_HEADER], 0
    for i in range(rng.randint(1, 6)):
        kind = rng.choice(["good", "good", "big", "newlines", "years", "short", "control", "nul", "no-key"])
        cid = f"C{start + i}"
        lines.append({
            "good": f"{cid},Ann,a@x.com,NA,2024-01-01",
            "big": f'{cid},"{"x" * rng.randint(131_000, 140_000)}",b@x.com,NA,2024-01-01',
            "newlines": f'{cid},"{"a" + chr(10) * rng.randint(1, 5) + "b"}",c@x.com,NA,2024-01-01',
            "years": f"{cid},Bo,d@x.com,NA,{rng.choice(['0000-01-01', '2263-01-01', '1899-12-31'])}",
            "short": f"{cid},Cy,e@x.com",
            "control": rng.choice(["\x0c", "\u00a0"]),
            "nul": f"{cid},D\x00i,f@x.com,NA,2024-01-01",
            "no-key": ",Ed,g@x.com,NA,2024-01-01",
        }[kind])
        records += 1
    return "\n".join(lines) + "\n", records


def make_case(root: Path, seed: int) -> dict[str, int]:
    """Write one fuzz case under ``root``; the records written per file (relpath -> count)."""
    rng = random.Random(seed)
    expected: dict[str, int] = {}
    for f in range(rng.randint(1, 4)):
        suffix, text, n = _json_file(rng, 100 * f)
        name = f"clickstream/p{f}{suffix}" + (".gz" if rng.random() < 0.3 else "")
        data = text.encode("utf-8", "surrogatepass")
        _write(root / name, gzip.compress(data) if name.endswith(".gz") else data)
        expected[name] = n
    for f in range(rng.randint(1, 2)):
        text, n = _csv_file(rng, 100 * f)
        name = f"customers/c{f}.csv"
        _write(root / name, text.encode())
        expected[name] = n
    if rng.random() < 0.3 and sys.platform != "darwin":  # a file name that is not UTF-8
        _write(Path(os.fsdecode(os.fsencode(root / "clickstream") + b"/caf\xe9.jsonl")),
               (json.dumps({"event_id": f"cafe{seed}", "timestamp": T0}) + "\n").encode())
        expected["clickstream/caf\\xe9.jsonl"] = 1
    return expected


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _read_per_file(engine, result) -> tuple[Counter, Counter, Counter]:
    """(raw rows, rejects, accepted) per source file of this run's load."""
    raw, rejected = Counter(), Counter()
    for table in ("raw_clickstream_events", "raw_customer_demographics"):
        raw.update(r["source_file"] for r in rows(engine, table))
    rejected.update(r["source_file"] for r in rows(engine, "rejected_records") if r["run_id"] == result.run_id)
    return raw, rejected, raw - rejected


SEEDS = range(12)


@pytest.mark.parametrize("seed", SEEDS)
def test_fuzzed_bad_input_is_accounted_for_per_file(engine, source, run, seed):
    root = source({})
    expected = make_case(root, seed)
    result = run(root)
    assert result.status is StepStatus.SUCCEEDED, result.error
    assert not [c.message for c in result.checks if c.status.value == "ERROR"]
    raw, rejected, accepted = _read_per_file(engine, result)
    assert dict(raw) == expected  # every record read, none dropped, none split
    for name in expected:
        assert accepted[name] + rejected[name] == raw[name]
    for ingest in result.ingest:
        assert ingest.read == ingest.accepted + ingest.rejected_total
    # the warehouse stays usable: a clean run on top succeeds and checks without an ERROR
    clean = source({"clickstream/zz-clean.jsonl": json.dumps({"event_id": "clean", "timestamp": T0}) + "\n",
                    "customers/zz-clean.csv": f"{CSV_HEADER}\nCZ,Zed,z@x.com,NA,2024-01-01\n"}, name="clean")
    after = run(clean)
    assert after.status is StepStatus.SUCCEEDED, after.error
    assert not [c.message for c in after.checks if c.status.value == "ERROR"]


@pytest.mark.parametrize("seed", [1, 5, 9])
def test_fuzzed_bad_input_through_the_cli_exits_cleanly(tmp_path, seed):
    root = tmp_path / "src"
    make_case(root, seed)
    (root / "clickstream" / "broken.jsonl.gz").write_bytes(b"\x1f\x8b not really gzip")
    warehouse = tmp_path / "wh" / "w.duckdb"
    env = {**os.environ, "ENGAGEMENT_LOG_DIR": str(tmp_path / "logs"), "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "engagement", "run", "--source", str(root), "--warehouse", str(warehouse)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 3, done.stdout + done.stderr  # only the broken file stopped
    assert "Traceback" not in done.stderr and "please report" not in done.stdout + done.stderr
    assert "broken.jsonl.gz" in done.stdout + done.stderr
    (root / "clickstream" / "broken.jsonl.gz").unlink()
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode in (0, 1), again.stdout + again.stderr
    assert "Traceback" not in again.stderr
