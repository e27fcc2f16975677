"""On Snowflake a run's statements must not grow with its rows or files: loads are one PUT and one
COPY per source, and every rule and MERGE is set-based. Snowpark local testing records each
statement it runs (``session.query_history()``), so the count is taken on the same code path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from engagement.engines.base import Engine
from engagement.pipeline import run_pipeline
from tests.conftest import CSV_HEADER

pytestmark = pytest.mark.engines("snowpark-local")


def _source(files: int, events_per_file: int) -> dict[str, str]:
    out = {"customers/c.csv": f"{CSV_HEADER}\n" + "".join(f"C{i},N{i},n{i}@x.com,EU,2024-01-01\n" for i in range(5))}
    for f in range(files):
        out[f"clickstream/dt=2026-01-{f + 1:02d}/p.jsonl"] = "".join(
            f'{{"event_id":"e{f}-{i}","user_id":"C{i % 7}","event_type":"click",'
            f'"timestamp":"2026-01-{f + 1:02d}T10:{i % 60:02d}:00Z"}}\n'
            for i in range(events_per_file)
        ) + "not json\n"  # one reject per file: the reject path is counted too
    return out


def _statements(engine: Engine, root: Path) -> int:
    with engine.session.query_history() as history:
        result = run_pipeline(engine, root)
    assert result.status.value == "SUCCEEDED", result.error
    return len(history.queries)


def test_statements_do_not_grow_with_files_or_rows(engine: Engine, source: Callable[..., Path]) -> None:
    one_file = _statements(engine, source(_source(files=1, events_per_file=10), "one"))
    ten_files = _statements(engine, source(_source(files=10, events_per_file=10), "ten"))
    ten_times_rows = _statements(engine, source(_source(files=10, events_per_file=100), "rows"))
    assert one_file == ten_files == ten_times_rows
    assert one_file > 20  # it did count: ingest, merge and checks all issue statements
