"""Shared fixtures: a source folder written from hand-made text, and engines to run it on.

Contract tests take the ``engine_name`` fixture, parametrized over every engine
that runs offline, the way dlt parametrizes its tests over destinations.
"""

from __future__ import annotations

import gzip
from datetime import date, timedelta
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from engagement.config import load_settings
from engagement.engines import create_engine
from engagement.engines.base import Engine
from engagement.pipeline import run_pipeline
from engagement.results import RunResult

# Engines that run offline. ENGAGEMENT_TEST_ENGINES=duckdb narrows a run (e.g. while debugging).
OFFLINE_ENGINES = [e for e in os.environ.get("ENGAGEMENT_TEST_ENGINES", "duckdb,snowpark-local").split(",") if e]

CSV_HEADER = "customer_id,first_name,email,region,signup_date"


# A small source touching every rule, shared by the parity and live tests.
PARITY_SOURCE = {
    "customers/a.csv": (
        f"{CSV_HEADER}\r\n"
        'C1,"Smith, Ann", ANN@X.COM ,EMEA,2024-01-01\r\n'
        "C2,Bo,bo@x.com,NA,\r\n"
        "C3,Cy,cy@x.com,NA\r\n"  # malformed_row
        ",NoKey,n@x.com,NA,2024-01-01\r\n"  # missing_key
        "C4,Di,di@x.com,APAC,2024-02-30\r\n"  # invalid_value
    ),
    "customers/b.csv.gz": f"{CSV_HEADER}\nC2,Bo,bo@new.com,LATAM,2024-03-01\nC5,Zoë,z@x.com,EMEA,2023-12-31\n",
    "clickstream/dt=2026-01-01/part-0.jsonl": (
        '{"event_id":"e1","user_id":"C1","event_type":"page_view","page_url":"/","duration_ms":12,"timestamp":"2026-01-01T10:00:00Z"}\n'
        '{"event_id":"e1","user_id":"C1","event_type":"page_view","page_url":"/","duration_ms":15,"timestamp":"2026-01-01T10:00:05+00:00"}\n'
        '{"event_id":"e2","event_type":"add_to_cart","timestamp":"2026-01-01 11:00:00"}\n'
        '{"event_id":"e3","user_id":"C9","event_type":"hover","timestamp":"2026-01-01T12:00:00+02:00","duration_ms":null}\n'
        "not json\n"
        '{"user_id":"C1","timestamp":"2026-01-01T10:00:00Z"}\n'
        '{"event_id":"e4","timestamp":"2026-01-01T25:00:00Z"}\n'
        '{"event_id":"e5","timestamp":"2026-01-01T10:00:00Z","duration_ms":"300"}\n'
    ),
    "clickstream/dt=2026-01-02/extra.json": (
        '[{"event_id":"e6","user_id":"C2","event_type":"purchase","page_url":"/checkout","duration_ms":0,'
        '"timestamp":"2026-01-02T09:00:00.250Z"}, 42]'
    ),
}


def write_files(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write ``{relative path: content}`` under ``root``; ``.gz`` paths are gzipped; str is UTF-8."""
    for rel, content in files.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        if rel.endswith(".gz"):
            data = gzip.compress(data)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


@pytest.fixture(params=OFFLINE_ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    """The engine under test; ``@pytest.mark.engines("duckdb")`` limits a test to some engines."""
    marker = request.node.get_closest_marker("engines")
    if marker and request.param not in marker.args:
        pytest.skip(f"runs on {', '.join(marker.args)} only")
    return request.param


@pytest.fixture
def engine(engine_name: str, tmp_path: Path) -> Engine:
    eng = create_engine(load_settings(engine=engine_name, warehouse=tmp_path / "wh" / "test.duckdb"))
    yield eng
    eng.close()


@pytest.fixture
def source(tmp_path: Path) -> Callable[..., Path]:
    """``source(files, name="src")`` writes a source folder and returns its root."""

    def make(files: dict[str, str | bytes], name: str = "src") -> Path:
        return write_files(tmp_path / name, files)

    return make


@pytest.fixture
def run(engine: Engine) -> Callable[[Path], RunResult]:
    """Run the whole pipeline on ``engine`` over a source root."""

    def go(root: Path, **kwargs) -> RunResult:
        return run_pipeline(engine, root, **kwargs)

    return go


def rows(engine: Engine, table: str, order_by: str | None = None) -> list[dict]:
    """A model table's rows as dicts (engine-neutral, for comparisons)."""
    from engagement.model import TABLES_BY_NAME

    frame = engine.read_table(TABLES_BY_NAME[table], order_by=[order_by] if order_by else ())
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_dict("records")


# -- a warehouse for the dashboard: generated data with defects, loaded by two runs ------------


@dataclass(frozen=True)
class DashboardWarehouse:
    """``path`` was loaded by ``runs[0]`` (customers and the first 3 days of events), then by
    ``runs[1]`` (every file): its tables equal one run over ``manifest``'s source."""

    path: Path
    manifest: dict
    runs: tuple[str, str]
    root: Path

    def sql(self, query: str, params: list | None = None) -> list[tuple]:
        """An independent answer straight from DuckDB (an oracle for the dashboard's numbers)."""
        import duckdb

        with duckdb.connect(str(self.path), read_only=True) as con:
            con.execute("SET TimeZone = 'UTC'")
            return con.execute(query, params or []).fetchall()


@pytest.fixture(scope="session")
def dashboard_warehouse(tmp_path_factory: pytest.TempPathFactory) -> DashboardWarehouse:
    from engagement.engines.duckdb import DuckDBEngine
    from engagement.generate import generate

    root = tmp_path_factory.mktemp("dashboard")
    full = root / "generated"
    # the last day is yesterday, so the freshness check passes as on a nightly load
    manifest = generate(full, customers=500, events=20_000, days=7, seed=42, defect_rate=0.02,
                        start_date=date.today() - timedelta(days=7))
    staged = root / "landing"
    shutil.copytree(full / "customers", staged / "customers")
    days = sorted(p.name for p in (full / "clickstream").iterdir())
    engine = DuckDBEngine(root / "warehouse.duckdb")
    runs = []
    try:
        for i, batch in enumerate((days[:5], days[5:])):
            for day in batch:
                shutil.copytree(full / "clickstream" / day, staged / "clickstream" / day)
            # the second run reloads the whole folder, so the latest run's totals are the manifest's
            # (and its volume, 7 days against 5, stays within the volume check's WARN level)
            result = run_pipeline(engine, staged, full_refresh=i == 1)
            assert result.status == "SUCCEEDED", result.error
            runs.append(result.run_id)
    finally:
        engine.close()
    return DashboardWarehouse(root / "warehouse.duckdb", manifest, (runs[0], runs[1]), root)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the DuckDB file open for writing from another process, as a pipeline run does."""
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(120)",
         str(path)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.kill()
        holder.wait()
