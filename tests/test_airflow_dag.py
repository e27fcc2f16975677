"""The Airflow DAG parses and runs the notebook chain as designed (only where Airflow is installed:
``pip install -e '.[airflow]'``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("airflow")
pytest.importorskip("airflow.providers.papermill")

from engagement.notebooks import CHAIN, KERNEL, notebooks_dir  # noqa: E402

DAG_FILE = Path(__file__).resolve().parents[1] / "airflow_dags" / "engagement_notebooks.py"


@pytest.fixture(scope="module")
def dag():
    spec = importlib.util.spec_from_file_location("engagement_notebooks_dag", DAG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def test_the_dag_chains_open_notebooks_close(dag) -> None:
    assert dag.dag_id == "engagement_notebooks"
    order = ["open_run", *CHAIN, "close_run"]
    assert set(dag.task_dict) == set(order)
    for before, after in zip(order, order[1:]):
        assert dag.task_dict[after].upstream_task_ids == {before}
    assert str(dag.task_dict["close_run"].trigger_rule.value) == "all_done"  # closes the run after a failure too
    assert dag.max_active_runs == 1 and dag.render_template_as_native_obj


def test_each_notebook_task_is_papermill_with_retries(dag) -> None:
    from airflow.providers.papermill.operators.papermill import PapermillOperator

    for name in CHAIN:
        op = dag.task_dict[name]
        assert isinstance(op, PapermillOperator)
        assert op.input_nb == str(notebooks_dir() / f"{name}.ipynb") and Path(op.input_nb).is_file()
        assert op.kernel_name == KERNEL
        assert op.retries >= 1
        assert f"['notebooks']['{name}']" in op.parameters and "['notebook']" in op.output_nb
    assert dag.task_dict["close_run"].retries == 0
