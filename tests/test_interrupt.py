"""Ctrl-C (a real SIGINT to a real child process) ends a run with exit 130 and one line saying to rerun.

The child sends SIGINT to itself when a step starts, so the signal lands inside a running step
without a timed sleep; the CLI's guard turns it into the documented exit code and message.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engagement.engines.duckdb import DuckDBEngine
from engagement.exceptions import ExitCode
from tests.conftest import CSV_HEADER, write_files

CHILD = r"""
import os, signal, sys, time
import typer
from engagement.cli import _guard
from engagement.engines.duckdb import DuckDBEngine
from engagement.pipeline import Observer, run_pipeline

warehouse, source = sys.argv[1:3]

def step_started(name, table, files):
    if (name, table) == ("merge", "dim_customer"):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # the signal arrives here, inside the step

eng = DuckDBEngine(warehouse)
try:
    _guard(lambda: run_pipeline(eng, source, observer=Observer(step_started=step_started)))
except typer.Exit as exc:
    sys.exit(exc.exit_code)
"""


def test_sigint_during_a_step_exits_130_with_one_line(tmp_path: Path) -> None:
    source = write_files(tmp_path / "src", {"customers/a.csv": f"{CSV_HEADER}\nC1,Ann,ann@x.com,EMEA,2024-01-01\n"})
    wh = tmp_path / "w.duckdb"
    proc = subprocess.run([sys.executable, "-c", CHILD, str(wh), str(source)],
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == ExitCode.INTERRUPTED == 130, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert any("interrupted" in line and "rerun to resume" in line for line in lines), proc.stderr
    assert "Traceback" not in proc.stderr
    eng = DuckDBEngine(wh)
    try:
        status = eng.con.execute(
            "SELECT status FROM ingestion_logs WHERE step = 'ingest' AND table_name = 'raw_customer_demographics'"
        ).fetchall()
    finally:
        eng.close()
    assert ("SUCCEEDED",) in status  # the step that had finished stays committed


CHAIN_CHILD = r"""
import os, signal, sys, time
from pathlib import Path
import typer
from engagement.cli import _guard
from engagement.config import load_settings
from engagement.notebooks import ChainObserver, run_chain

warehouse, source, out = sys.argv[1:4]

def notebook_started(nb, cells):
    if nb.name == "02_transform":
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)

settings = load_settings(source=source, warehouse=Path(warehouse))
try:
    _guard(lambda: run_chain(settings, output_dir=Path(out), observer=ChainObserver(notebook_started=notebook_started)))
except typer.Exit as exc:
    sys.exit(exc.exit_code)
"""


def test_sigint_in_the_notebook_chain_names_what_committed(tmp_path: Path) -> None:
    source = write_files(tmp_path / "src", {"customers/a.csv": f"{CSV_HEADER}\nC1,Ann,ann@x.com,EMEA,2024-01-01\n"})
    proc = subprocess.run([sys.executable, "-c", CHAIN_CHILD, str(tmp_path / "w.duckdb"), str(source), str(tmp_path / "out")],
                          check=False, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 130, proc.stderr
    assert "interrupted in notebook 02_transform" in proc.stderr, proc.stderr
    assert "committed: 01_ingest" in proc.stderr and "rerun to resume" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
