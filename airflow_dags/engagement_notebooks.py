"""Airflow DAG ``engagement_notebooks``: the engagement pipeline as its chain of notebooks, daily.

    open_run >> 01_ingest >> 02_transform >> 03_quality >> close_run

``open_run`` checks the settings, registers the Jupyter kernel and opens the run; each notebook
task is a PapermillOperator running one pipeline phase in the kernel ``engagement``, with
retries (a retried phase does not repeat the steps that already succeeded under the run id);
``close_run`` always runs last: it closes the run (as an ERROR naming the failed notebook, if
one failed) and fails the DAG run when the run errored or a check FAILED, as the command's
exit codes 3 and 1 do. See airflow_dags/README.md.

Settings come from the worker's environment, as for the ``engagement`` command:
``ENGAGEMENT_SOURCE``, ``ENGAGEMENT_WAREHOUSE``, ``ENGAGEMENT_ENGINE``,
``ENGAGEMENT_SNOWFLAKE_CONNECTION`` (a connection name; secrets stay in connections.toml or
``SNOWFLAKE_*``), ``ENGAGEMENT_CHECKS_FILE``; plus ``ENGAGEMENT_PROJECT_DIR`` (relative paths
and ``.env`` are read from there; default: the worker's working directory) and
``ENGAGEMENT_RUNS_DIR`` (the executed notebooks; default ``<project dir>/runs``).
"""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.papermill.operators.papermill import PapermillOperator
from airflow.sdk import DAG, TriggerRule, get_current_context, task

PROJECT_DIR = Path(os.environ.get("ENGAGEMENT_PROJECT_DIR", os.getcwd()))
RUNS_DIR = Path(os.environ.get("ENGAGEMENT_RUNS_DIR", PROJECT_DIR / "runs"))
NOTEBOOKS = ("01_ingest", "02_transform", "03_quality")  # engagement.notebooks.CHAIN
OPENED = "ti.xcom_pull(task_ids='open_run')"


def _notebooks_dir() -> Path:
    from engagement.notebooks import notebooks_dir

    return notebooks_dir()


@task(retries=2, retry_delay=timedelta(minutes=1))
def open_run() -> dict:
    """Check the settings, register the kernel, open the run; return its id, folder and each notebook's parameters."""
    from engagement.config import load_settings
    from engagement.notebooks import open_chain

    os.chdir(PROJECT_DIR)
    dag_run = get_current_context()["dag_run"]
    when = dag_run.logical_date or dag_run.run_after
    # one run id per DAG run, the same on every retry (open_chain reopens the run it names)
    run_id = f"{when:%Y%m%dT%H%M%SZ}-{hashlib.sha1(dag_run.run_id.encode()).hexdigest()[:6]}"
    run_id, folder, parameters = open_chain(load_settings(), output_dir=RUNS_DIR, run_date=when.date().isoformat(),
                                            run_id=run_id)
    return {"run_id": run_id, "folder": str(folder),
            "notebooks": {name: {**parameters, "notebook": str(folder / f"{name}.ipynb")} for name in NOTEBOOKS}}


@task(trigger_rule=TriggerRule.ALL_DONE, retries=0)
def close_run() -> str:
    """Close the run (naming the failed notebook, if any); fail when it errored or a check FAILED."""
    from airflow.sdk.exceptions import AirflowFailException

    from engagement.config import load_settings
    from engagement.notebooks import close_chain
    from engagement.report import exit_code

    opened = get_current_context()["ti"].xcom_pull(task_ids="open_run")
    if not opened:
        raise AirflowFailException("the run was never opened: see the log of open_run")
    os.chdir(PROJECT_DIR)
    result = close_chain(load_settings(), opened["run_id"], Path(opened["folder"]))
    code = exit_code(result)
    outcome = f"run {result.run_id}: {result.status.value}, exit code {int(code)}; notebooks in {opened['folder']}"
    if code:
        raise AirflowFailException(f"{outcome}: {result.error or 'a data-quality check FAILED'}")
    return outcome


with DAG(
    dag_id="engagement_notebooks",
    description="Ingest, transform and check engagement data through the pipeline notebooks (papermill).",
    schedule="30 5 * * *",  # daily at 05:30 UTC, as the README's cron line
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # one run at a time: the DuckDB warehouse admits one writer
    render_template_as_native_obj=True,  # the parameters template renders to the dict open_run returned
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5), "execution_timeout": timedelta(hours=2)},
    tags=["engagement", "papermill"],
) as dag:
    opened = open_run()
    closed = close_run()
    previous = opened
    for name in NOTEBOOKS:
        parameters = f"{OPENED}['notebooks']['{name}']"
        step = PapermillOperator(
            task_id=name,
            input_nb=str(_notebooks_dir() / f"{name}.ipynb"),
            output_nb=f"{{{{ {parameters}['notebook'] }}}}",
            parameters=f"{{{{ {parameters} }}}}",  # type: ignore[arg-type]  # rendered to a dict
            kernel_name="engagement",
        )
        previous >> step
        previous = step
    previous >> closed
