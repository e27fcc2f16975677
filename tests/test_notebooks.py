"""The pipeline as notebooks: real papermill, a real kernel of this environment, a generated source.

The chain (`engagement notebooks run`) must leave the warehouse exactly as `engagement run`
leaves it, keep executed copies with their parameters, and record each copy's path in
ingestion_logs; a failing notebook stops the chain (exit 3) and says so everywhere.
"""

from __future__ import annotations

import ast
import json
import shutil
import sys
import tomllib
import uuid
from pathlib import Path

import nbformat
import pytest

from engagement.engines.duckdb import DuckDBEngine
from engagement.notebooks import CHAIN, EXPLORE, KERNEL, PARAMETERS, _find_kernel, ensure_kernel, notebooks_dir
from engagement import explore
from tests.conftest import rows
from tests.test_alerts import Receiver
from tests.test_cli import assert_one_line_error, cli
from tests.test_phases import content

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
RUN_DATE = "2026-11-20"
PLOTLY = "application/vnd.plotly.v1+json"


def parameters_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    return cell


def assigned(source: str) -> list[str]:
    return [t.id for node in ast.parse(source).body if isinstance(node, ast.Assign) for t in node.targets]


def values(array: list | dict) -> list:
    """A plotly figure's data array: a list, or (plotly 6+) a typed array in base64."""
    if isinstance(array, dict):
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def errors(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]


# -- the committed notebooks ------------------------------------------------------------------

def test_notebooks_are_committed_without_outputs_and_valid() -> None:
    assert [p.stem for p in NOTEBOOKS] == [*CHAIN, EXPLORE]
    assert notebooks_dir() == ROOT / "notebooks"
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert nb.nbformat == 4, path
        assert nb.metadata.kernelspec.name == KERNEL, path
        for c in nb.cells:
            if c.cell_type == "code":
                assert c.outputs == [] and c.execution_count is None, f"{path.name}: a cell has outputs"
        assert "papermill" not in nb.metadata, f"{path.name} is an executed copy"
        names = assigned(parameters_cell(nb).source)
        if path.stem in CHAIN:
            assert names == list(PARAMETERS), path.name
            assert "password" not in parameters_cell(nb).source.lower().replace("never a password", "")
        else:
            assert {"engine", "warehouse", "connection", "workdir"} <= set(names)


def test_the_notebooks_are_shipped_with_the_package() -> None:
    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    shipped = {p for pattern in data_files["share/engagement/notebooks"] for p in ROOT.glob(pattern)}
    assert shipped == set(NOTEBOOKS)


# -- the kernel -------------------------------------------------------------------------------

def test_a_missing_or_foreign_kernel_is_registered_inside_this_environment() -> None:
    name = f"engagement-test-{uuid.uuid4().hex[:8]}"
    folder = Path(sys.prefix) / "share" / "jupyter" / "kernels" / name
    assert _find_kernel(name) is None
    try:
        assert ensure_kernel(name) == folder
        spec = json.loads((folder / "kernel.json").read_text())
        assert Path(spec["argv"][0]).parent == Path(sys.executable).parent
        assert spec["display_name"] == "Python (engagement)"
        # a spec of that name running another Python is replaced
        spec["argv"][0] = "/elsewhere/bin/python"
        (folder / "kernel.json").write_text(json.dumps(spec))
        ensure_kernel(name)
        assert Path(json.loads((folder / "kernel.json").read_text())["argv"][0]).parent == Path(sys.executable).parent
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_connect_twice_from_a_notebook_folder_stays_in_the_project(tmp_path: Path) -> None:
    """In Jupyter the kernel starts in notebooks/ and workdir is "..": rerunning the cell must not climb again."""
    import subprocess

    (tmp_path / "notebooks").mkdir()
    code = ("import os\nfrom engagement import notebooks\n"
            "for _ in range(2):\n"
            "    settings, eng = notebooks.connect('..', warehouse='w.duckdb')\n"
            "    print(os.getcwd(), eng.location)\n"
            "    eng.close()\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path / "notebooks", capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    want = f"{tmp_path} {tmp_path / 'w.duckdb'}"
    assert proc.stdout.splitlines() == [want, want]


# -- the chain --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A generated source run twice: through the notebooks and through `engagement run`."""
    root = tmp_path_factory.mktemp("chain")
    gen = cli(root, "generate", "--out", "src", "--customers", "300", "--events", "5000", "--days", "3", "--seed", "5")
    assert gen.returncode == 0, gen.stderr
    notebooks = cli(root, "notebooks", "run", "--source", "src", "--warehouse", "chain.duckdb", "--output-dir", "out",
                    "--run-date", RUN_DATE)
    direct = cli(root, "run", "--source", "src", "--warehouse", "run.duckdb", "--json")
    eng = DuckDBEngine(root / "chain.duckdb")
    try:
        logs = rows(eng, "ingestion_logs")
    finally:
        eng.close()
    (run_id,) = {r["run_id"] for r in logs}
    return {"root": root, "proc": notebooks, "direct": direct, "logs": logs, "run_id": run_id,
            "folder": root / "out" / RUN_DATE / run_id}


def test_the_chain_leaves_the_warehouse_as_engagement_run_does(chain: dict) -> None:
    proc, direct = chain["proc"], chain["direct"]
    assert direct.returncode in (0, 1), direct.stderr
    assert proc.returncode == direct.returncode, proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout
    got, want = content(chain["root"] / "chain.duckdb"), content(chain["root"] / "run.duckdb")
    assert set(got) == set(want)
    for table in want:
        assert got[table] == want[table], table
    assert len(got["fact_click_events"]) == json.loads(direct.stdout)["tables"]["fact_click_events"] > 0


def test_executed_copies_record_their_parameters_and_paths(chain: dict) -> None:
    folder, run_id = chain["folder"], chain["run_id"]
    assert sorted(p.name for p in folder.iterdir()) == [f"{n}.ipynb" for n in CHAIN]
    for name in CHAIN:
        path = folder / f"{name}.ipynb"
        nb = nbformat.read(path, as_version=4)
        params = nb.metadata.papermill.parameters
        assert params["run_id"] == run_id and params["run_date"] == RUN_DATE
        assert params["source"] == "src" and params["engine"] == "duckdb" and params["warehouse"] == "chain.duckdb"
        assert params["notebook"] == str(path)
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1 and f"run_id = \"{run_id}\"" in injected[0].source
        assert not errors(nb)
        assert all(c.execution_count is not None for c in nb.cells if c.cell_type == "code")
    logs = {(r["step"], r["table_name"]): r for r in chain["logs"]}
    expected = {("discover", None): "01_ingest", ("ingest", "raw_customer_demographics"): "01_ingest",
                ("ingest", "raw_clickstream_events"): "01_ingest", ("merge", "dim_customer"): "02_transform",
                ("merge", "fact_click_events"): "02_transform", ("checks", "dq_check_logs"): "03_quality",
                ("run", None): "03_quality"}
    assert {k: r["notebook"] for k, r in logs.items()} == {k: str(folder / f"{v}.ipynb") for k, v in expected.items()}
    assert {r["status"] for r in chain["logs"]} == {"SUCCEEDED"}
    assert str(folder) in chain["proc"].stdout.replace("\n", "")  # the summary says where the copies are


def test_the_ingest_copy_reads_as_a_run_report(chain: dict) -> None:
    nb = nbformat.read(chain["folder"] / "01_ingest.ipynb", as_version=4)
    shown = "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
                      for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    manifest = json.loads((chain["root"] / "src" / "manifest.json").read_text())
    assert f"run {chain['run_id']}" in shown
    assert str(manifest["clickstream"]["records"]) in shown  # read
    for reason in ("malformed_row", "missing_key", "invalid_value"):
        assert reason in shown


def test_the_explore_notebook_runs_headless(chain: dict, tmp_path: Path) -> None:
    import papermill

    ensure_kernel()
    out = tmp_path / "explore.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "explore.ipynb"), str(out), kernel_name=KERNEL,
                               parameters={"warehouse": "chain.duckdb", "workdir": str(chain["root"]), "top_n": 5},
                               progress_bar=False, cwd=str(chain["root"]))
    nb = nbformat.read(out, as_version=4)
    assert not errors(nb)
    figures = [json.loads(o.data[PLOTLY]) if isinstance(o.data[PLOTLY], str) else o.data[PLOTLY]
               for c in nb.cells if c.cell_type == "code" for o in c.outputs if PLOTLY in o.get("data", {})]
    assert len(figures) == 5  # by day, funnel, top pages, regions, DQ history
    eng = DuckDBEngine(chain["root"] / "chain.duckdb", read_only=True)
    try:
        want = explore.funnel(eng)
    finally:
        eng.close()
    (funnel,) = [f for f in figures if f["data"][0]["type"] == "funnel"]
    assert values(funnel["data"][0]["x"]) == want.users.tolist()
    assert sum(len(t["y"]) for t in figures[2]["data"]) == 5  # top_n reached the notebook


def test_a_failing_notebook_stops_the_chain_exit_3(tmp_path: Path) -> None:
    (tmp_path / "empty" / "customers").mkdir(parents=True)
    webhook = Receiver()
    try:
        proc = cli(tmp_path, "notebooks", "run", "--source", "empty", "--warehouse", "w.duckdb", "--output-dir", "out",
                   env={"ENGAGEMENT_SLACK_WEBHOOK_URL": webhook.url})
    finally:
        webhook.close()
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "no input files under empty" in proc.stderr
    (folder,) = (tmp_path / "out").glob("*/*")
    assert sorted(p.name for p in folder.iterdir()) == ["01_ingest.ipynb"]  # the chain stopped there
    copy = folder / "01_ingest.ipynb"
    (error,) = errors(nbformat.read(copy, as_version=4))
    assert error.ename == "StepFailed" and "no input files under empty" in error.evalue

    eng = DuckDBEngine(tmp_path / "w.duckdb")
    try:
        logs = {r["step"]: r for r in rows(eng, "ingestion_logs")}
    finally:
        eng.close()
    assert set(logs) == {"run", "discover", "alert"}  # the alert went out
    assert logs["alert"]["status"] == "SUCCEEDED"
    for step in ("run", "discover"):
        assert logs[step]["status"] == "ERROR" and logs[step]["notebook"] == str(copy)
        assert "no input files under empty" in logs[step]["error_message"]
    status = json.loads(cli(tmp_path, "status", "--warehouse", "w.duckdb", "--json").stdout)
    assert status[0]["status"] == "ERROR"
    # one alert, pointing at the executed notebooks and the one that failed
    (_, body), = webhook.posts
    lines = body["text"].splitlines()
    assert "run ERROR" in lines[0]
    assert any(line.startswith("• executed notebooks: ") and line.endswith(f"{folder.parent.name}/{folder.name}")
               for line in lines)
    assert any(line.startswith("• failed notebook: ") and line.endswith(f"{folder.name}/01_ingest.ipynb")
               for line in lines)


def test_a_chain_run_by_a_scheduler_is_closed_from_its_copies(tmp_path: Path, monkeypatch, chain: dict) -> None:
    """What the Airflow DAG does, without Airflow: open_chain, papermill per notebook, close_chain."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from engagement.config import load_settings
    from engagement.notebooks import close_chain, open_chain

    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty" / "customers").mkdir(parents=True)
    settings = load_settings(source="empty", warehouse=tmp_path / "w.duckdb", log_dir=tmp_path / "logs")
    run_id, folder, parameters = open_chain(settings, output_dir=tmp_path / "out", run_date="2026-11-21")
    copy = folder / "01_ingest.ipynb"
    with pytest.raises(PapermillExecutionError):
        papermill.execute_notebook(str(notebooks_dir() / "01_ingest.ipynb"), str(copy), kernel_name=KERNEL,
                                   parameters={**parameters, "notebook": str(copy)}, progress_bar=False)
    result = close_chain(settings, run_id, folder)
    assert result.status.value == "ERROR" and "no input files under empty" in result.error
    eng = DuckDBEngine(tmp_path / "w.duckdb")
    try:
        (run,) = [r for r in rows(eng, "ingestion_logs") if r["step"] == "run"]
    finally:
        eng.close()
    assert run["notebook"] == str(copy)
    # a run that 03_quality closed is left as it was
    monkeypatch.chdir(chain["root"])
    done = close_chain(load_settings(warehouse="chain.duckdb", log_dir=tmp_path / "logs"), chain["run_id"],
                       chain["folder"])
    assert done.status.value == "SUCCEEDED" and done.error is None


def test_a_failed_check_exits_1_and_the_checks_file_reaches_the_notebook(tmp_path: Path) -> None:
    from tests.test_cli import GOOD
    from tests.conftest import write_files

    write_files(tmp_path / "src", GOOD)
    (tmp_path / "strict.yml").write_text(
        "checks:\n  - {name: fact_needs_a_million, type: row_count, table: fact_click_events, fail: 1000000}\n")
    proc = cli(tmp_path, "notebooks", "run", "--source", "src", "--warehouse", "w.duckdb", "--checks", "strict.yml")
    assert proc.returncode == 1, proc.stderr + proc.stdout
    (copy,) = (tmp_path / "runs").glob("*/*/03_quality.ipynb")
    nb = nbformat.read(copy, as_version=4)
    assert nb.metadata.papermill.parameters["checks"] == "strict.yml"
    shown = "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
                      for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "fact_needs_a_million" in shown and "FAILED" in shown and "exit code 1" in shown
    eng = DuckDBEngine(tmp_path / "w.duckdb")
    try:
        (run,) = [r for r in rows(eng, "ingestion_logs") if r["step"] == "run"]
        checks = rows(eng, "dq_check_logs")
    finally:
        eng.close()
    assert run["status"] == "SUCCEEDED"  # the run worked; its data failed a check
    assert [(c["check_name"], c["status"]) for c in checks] == [("fact_needs_a_million", "FAILED")]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--source", "nowhere"], ["nowhere", "does not exist", "--source"]),
        (["--engine", "oracle"], ["ENGAGEMENT_ENGINE", "duckdb"]),
        (["--engine", "snowpark-local"], ["snowpark-local", "process of its own"]),
        (["--run-date", "20-11-2026"], ["--run-date", "YYYY-MM-DD"]),
        (["--checks", "bad.yml"], ["bad.yml"]),
        (["--output-dir", "afile"], ["--output-dir", "afile", "not a folder"]),
    ],
)
def test_bad_parameters_fail_fast_before_any_kernel(tmp_path: Path, args: list[str], words: list[str]) -> None:
    (tmp_path / "src" / "customers").mkdir(parents=True)
    (tmp_path / "bad.yml").write_text("checks: [{name: x, type: nope, table: dim_customer}]\n")
    (tmp_path / "afile").write_text("")
    proc = cli(tmp_path, "notebooks", "run", "--source", "src", "--warehouse", "w.duckdb", *args)
    assert proc.returncode == 2, proc.stderr
    assert_one_line_error(proc, *words)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "w.duckdb").exists()  # nothing was started


def test_help_explains_every_flag(tmp_path: Path) -> None:
    proc = cli(tmp_path, "notebooks", "run", "--help")
    assert proc.returncode == 0
    for word in ("--source", "--warehouse", "--engine", "--connection", "--checks", "--output-dir", "--run-date",
                 "RUN_DATE/RUN_ID", "Exit codes"):
        assert word in proc.stdout
