"""S3 sources against moto's S3 server on 127.0.0.1 (a real HTTP server, started here): the same
tables as from a folder, and one-line errors for a missing bucket or denied access."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import duckdb
import pytest

from engagement.generate import generate
from tests.test_cli import assert_one_line_error, cli

pytestmark = pytest.mark.engines("duckdb")
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _moto(extra_env: dict[str, str] | None = None) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, **KEYS, **(extra_env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    yield from _moto()


@pytest.fixture(scope="module")
def landing(s3_url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A generated source, in a folder and uploaded under s3://landing/daily/."""
    src = tmp_path_factory.mktemp("s3src") / "src"
    manifest = generate(src, customers=200, events=3_000, days=3, seed=5, defect_rate=0.05)
    client = boto3.client("s3", endpoint_url=s3_url, **{k.lower(): v for k, v in KEYS.items()
                                                         if k != "AWS_DEFAULT_REGION"}, region_name="us-east-1")
    client.create_bucket(Bucket="landing")
    for path in src.rglob("*"):
        if path.is_file() and path.name != "manifest.json":
            client.upload_file(str(path), "landing", f"daily/{path.relative_to(src).as_posix()}")
    client.put_object(Bucket="landing", Key="daily/notes/readme.txt", Body=b"not a source file")
    return src, manifest


def _env(s3_url: str) -> dict[str, str]:
    return {**KEYS, "AWS_ENDPOINT_URL": s3_url}


def _tables(warehouse: Path) -> dict[str, list]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {
            "dim": con.execute("SELECT * EXCLUDE (created_at, updated_at, run_id) FROM dim_customer ORDER BY ALL").fetchall(),
            "fact": con.execute("SELECT * EXCLUDE (created_at, updated_at, run_id) FROM fact_click_events ORDER BY ALL").fetchall(),
            "rejected": con.execute("SELECT source_table, source_file, source_row, reason, detail, payload "
                                    "FROM rejected_records ORDER BY ALL").fetchall(),
        }


def test_an_s3_source_loads_the_same_tables_as_the_folder(tmp_path: Path, s3_url: str, landing) -> None:
    src, manifest = landing
    from_s3 = cli(tmp_path, "run", "--source", "s3://landing/daily", "--warehouse", "s3.duckdb", "--json",
                  env=_env(s3_url))
    assert from_s3.returncode in (0, 1), from_s3.stderr
    doc = json.loads(from_s3.stdout)
    assert doc["status"] == "SUCCEEDED" and doc["source"] == "s3://landing/daily"
    from_folder = cli(tmp_path, "run", "--source", str(src), "--warehouse", "local.duckdb", "--json")
    assert json.loads(from_folder.stdout)["tables"] == doc["tables"]
    assert doc["tables"]["fact_click_events"] == manifest["clickstream"]["distinct_keys"]
    assert _tables(tmp_path / "s3.duckdb") == _tables(tmp_path / "local.duckdb")  # lineage paths included
    # the objects' ETags are their load metadata: a second run reads none of them
    again = json.loads(cli(tmp_path, "run", "--source", "s3://landing/daily", "--warehouse", "s3.duckdb", "--json",
                           env=_env(s3_url)).stdout)
    ingest = {s["table_name"]: (s["status"], s["files_skipped"]) for s in again["steps"] if s["step"] == "ingest"}
    files = {s["table_name"]: s["files"] for s in doc["steps"] if s["step"] == "ingest"}
    assert ingest == {t: ("SKIPPED", n) for t, n in files.items()}


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("s3://no-such-bucket/x", ["bucket no-such-bucket does not exist", "--source"]),
        ("s3:///x", ["names no bucket", "s3://bucket/prefix"]),
    ],
)
def test_a_missing_bucket_is_a_one_line_error(tmp_path: Path, s3_url: str, source: str, words: list[str]) -> None:
    proc = cli(tmp_path, "run", "--source", source, "--warehouse", "w.duckdb", env=_env(s3_url))
    assert proc.returncode == 2
    assert_one_line_error(proc, *words)


def test_denied_access_is_a_one_line_error(tmp_path: Path) -> None:
    # moto enforcing IAM from the first request: the "testing" keys are unknown to it
    for url in _moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"}):
        proc = cli(tmp_path, "run", "--source", "s3://landing/daily", "--warehouse", "w.duckdb", env=_env(url))
        assert proc.returncode == 2
        assert_one_line_error(proc, "s3://landing/daily", "access denied", "AWS credentials")
