"""The ``engagement`` command.

Exit codes (see :class:`engagement.exceptions.ExitCode`): 0 succeeded, 1 a
data-quality check FAILED, 2 usage or configuration error, 3 a step errored.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from engagement import __version__
from engagement.exceptions import EngagementError, ExitCode, disk_full

T = TypeVar("T")
err_console = Console(stderr=True)
out_console = Console()
log = logging.getLogger("engagement")

app = typer.Typer(
    help=(
        "Engagement workbench: stage customer CSV and clickstream JSON, reject bad records with a reason, "
        "MERGE into dim_customer / fact_click_events, and run data-quality checks.\n\n"
        "Exit codes: 0 succeeded, 1 a data-quality check FAILED, 2 usage or configuration error, "
        "3 a step errored."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

SourceOpt = Annotated[
    str | None,
    typer.Option("--source", "-s", help="Source root holding customers/ and clickstream/ (env ENGAGEMENT_SOURCE; default data/sample)."),
]
WarehouseOpt = Annotated[
    Path | None,
    typer.Option("--warehouse", "-w", help="DuckDB warehouse file (env ENGAGEMENT_WAREHOUSE; default warehouse/engagement.duckdb)."),
]
EngineOpt = Annotated[
    str | None,
    typer.Option(
        "--engine", "-e",
        help="Engine: duckdb (embedded file), snowflake (your account, via Snowpark) or snowpark-local "
        "(Snowpark local testing: in memory, small inputs only) (env ENGAGEMENT_ENGINE; default duckdb).",
    ),
]
ConnectionOpt = Annotated[
    str | None,
    typer.Option("--connection", "-c", help="Snowflake connection name in connections.toml (env ENGAGEMENT_SNOWFLAKE_CONNECTION)."),
]
ChecksOpt = Annotated[
    Path | None,
    typer.Option("--checks", help="YAML file of data-quality checks (env ENGAGEMENT_CHECKS_FILE; default: the package's checks.yml)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables and progress.")]
FullRefreshOpt = Annotated[bool, typer.Option(
    "--full-refresh",
    help="Reload every source file. By default a file merged before and unchanged since (same size and mtime, or "
    "S3 ETag) is skipped, and a source with nothing new keeps its previous load (env ENGAGEMENT_FULL_REFRESH).")]


def _guard(work: Callable[[], T]) -> T:
    """Run a command body: tool errors become one line on stderr and their exit code."""
    try:
        return work()
    except EngagementError as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/]: committed steps are kept and the step in progress was rolled back; "
                          "rerun to resume", highlight=False, soft_wrap=True)
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    except Exception as exc:
        full = disk_full(exc)
        if full is None:  # a bug: one line here, the traceback in the log file
            raise _unexpected(exc) from None
        log.error("disk full", exc_info=exc)
        err_console.print(f"[red]error:[/] {full}", highlight=False, soft_wrap=True)
        raise typer.Exit(ExitCode.STEP_ERROR) from None


def _unexpected(exc: BaseException) -> typer.Exit:
    """A bug: one line here, the traceback in the log file."""
    log.error("unexpected error", exc_info=exc)
    err_console.print(
        f"[red]error:[/] unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
        "(traceback in the log file; please report it)",
        highlight=False, soft_wrap=True,
    )
    return typer.Exit(ExitCode.STEP_ERROR)


def _settings(*, reads_warehouse: bool = False, reads_source: bool = False, **flags: Any):
    """Settings from ``flags``, validated before any file or folder (the log folder first) is created:
    ``reads_warehouse`` commands refuse a warehouse that does not exist, ``reads_source`` ones a bad source."""
    from engagement.config import load_settings
    from engagement.logs import configure
    from engagement.preflight import check_source, check_warehouse

    settings = load_settings(**flags)
    if settings.engine == "duckdb":
        check_warehouse(settings.warehouse, must_exist=reads_warehouse)
    if reads_source:
        check_source(settings.source)
    configure(settings.log_dir, settings.log_level)
    return settings


def _version(value: bool) -> None:
    if value:
        out_console.print(f"engagement {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = False,
) -> None:
    """Engagement workbench."""


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write customers/, clickstream/ and manifest.json into.")],
    customers: Annotated[int, typer.Option(help="Number of distinct customers.")] = 2_000,
    events: Annotated[int, typer.Option(help="Number of clickstream events (before defects and duplicates).")] = 100_000,
    days: Annotated[int, typer.Option(help="Days of clickstream, one dt=YYYY-MM-DD folder each.")] = 7,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed writes the same bytes.")] = 42,
    defect_rate: Annotated[float, typer.Option(help="Share of records given a defect the rules reject (0 to 0.5).")] = 0.02,
    start_date: Annotated[datetime | None, typer.Option(
        formats=["%Y-%m-%d"], help="First day of clickstream (default 2026-01-01); `make demo` uses a week ago, "
        "so that the freshness check sees recent data.")] = None,
) -> None:
    """Write a realistic synthetic source (with controlled defects) and DIR/manifest.json with the expected counts."""

    def work() -> None:
        from engagement.exceptions import ConfigError
        from engagement.generate import generate as write

        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out} is a file, not a folder; name a new or existing folder")
        try:
            with err_console.status("generating…"):
                dated = {"start_date": start_date.date()} if start_date else {}
                manifest = write(out, customers=customers, events=events, days=days, seed=seed,
                                 defect_rate=defect_rate, **dated)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        c, e = manifest["customers"], manifest["clickstream"]
        out_console.print(
            f"wrote {c['records']:,} customer records and {e['records']:,} clickstream records "
            f"to {out} (expected counts in {out / 'manifest.json'})"
        )

    _guard(work)


@app.command()
def run(
    source: SourceOpt = None,
    warehouse: WarehouseOpt = None,
    engine: EngineOpt = None,
    connection: ConnectionOpt = None,
    checks: ChecksOpt = None,
    full_refresh: FullRefreshOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Ingest the source, MERGE dim_customer and fact_click_events, run the checks, print a summary.

    Only new and changed files are read (see --full-refresh).

    Exit code 0 when every step succeeded and no check FAILED, 1 when a check FAILED,
    2 for a usage or configuration error, 3 when a step errored.
    """

    def work() -> ExitCode:
        from engagement.pipeline import run_pipeline

        settings = _settings(source=source, warehouse=warehouse, engine=engine, snowflake_connection=connection,
                             checks_file=checks, full_refresh=full_refresh or None, reads_source=True)
        return _execute(settings, as_json, lambda eng, obs, checks: run_pipeline(
            eng, settings.source, checks=checks, observer=obs, full_refresh=settings.full_refresh))

    raise typer.Exit(_guard(work))


@app.command()
def plan(
    source: SourceOpt = None,
    engine: EngineOpt = None,
    connection: ConnectionOpt = None,
    checks: ChecksOpt = None,
    full_refresh: FullRefreshOpt = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the plan to this file instead of stdout.")] = None,
) -> None:
    """Print every SQL statement `engagement run --engine snowflake` would issue, in order, without connecting.

    The statements come from the real Snowpark client on the production code path, recorded offline (no network, no account): for an admin deciding on grants, or a reviewer diffing two versions. A `-- step:` line precedes each step; --engine may only be snowflake (the default here). Row counts are unknown in a plan.
    """

    def work() -> ExitCode:
        from engagement.check_file import load_checks
        from engagement.exceptions import ConfigError
        from engagement.engines.snowflake_plan import record_run

        settings = _settings(source=source, engine=engine or "snowflake", snowflake_connection=connection,
                             checks_file=checks, full_refresh=full_refresh or None)
        if settings.engine != "snowflake":
            raise ConfigError(f"engagement plan shows what --engine snowflake would run, not {settings.engine}; "
                              "drop --engine or pass --engine snowflake")
        if out is not None and (out.is_dir() or not out.parent.is_dir()):
            raise ConfigError(f"--out {out}: {'is a folder' if out.is_dir() else 'its folder does not exist'}; "
                              "name a file in an existing folder")
        recorded = record_run(settings, checks=load_checks(settings.checks_file))
        text = recorded.render()
        if out is None:
            sys.stdout.write(text)
        else:
            out.write_text(text)
            err_console.print(f"plan written to {out}", highlight=False)
        result = recorded.result
        if result is not None and result.error:
            # The plan shows the statements up to the step that fails; a real run would stop there too.
            err_console.print(f"[red]error:[/] the run would stop: {result.error}", highlight=False, soft_wrap=True)
            return ExitCode.STEP_ERROR
        return ExitCode.OK

    raise typer.Exit(_guard(work))


def _execute(settings, as_json: bool, go) -> ExitCode:
    """Validate the checks, open the engine, run ``go`` with progress (or quietly for --json), report."""
    from engagement.check_file import load_checks
    from engagement.engines import create_engine
    from engagement.alerts import Links
    from engagement.pipeline import Observer, alert_run
    from engagement.report import exit_code, live_progress, summary

    checks = load_checks(settings.checks_file)  # a bad checks file stops before anything is written
    log_file = str(settings.log_dir / "engagement.log")
    eng = create_engine(settings)
    try:
        if as_json:
            result = go(eng, Observer(), checks)
        else:
            with live_progress(err_console) as observer:
                result = go(eng, observer, checks)
        alert_run(eng, settings, result, Links(log_file=log_file, dashboard_url=settings.dashboard_url))
    finally:
        eng.close()
    if as_json:
        print(json.dumps(result.to_json(), default=str))
    else:
        out_console.print(summary(result, log_file))
    return exit_code(result)


@app.command("checks")
def checks_command(
    warehouse: WarehouseOpt = None,
    engine: EngineOpt = None,
    connection: ConnectionOpt = None,
    checks: ChecksOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the data-quality checks alone against the warehouse as it is (logged as a run of its own).

    Exit code 0 when no check FAILED, 1 when one did, 2 for a usage or configuration error
    (including an invalid checks file), 3 when a check could not be measured.
    """

    def work() -> ExitCode:
        from engagement.pipeline import run_checks_only

        settings = _settings(warehouse=warehouse, engine=engine, snowflake_connection=connection, checks_file=checks,
                             reads_warehouse=True)
        return _execute(settings, as_json, lambda eng, obs, checks: run_checks_only(eng, checks=checks, observer=obs))

    raise typer.Exit(_guard(work))


@app.command()
def status(
    warehouse: WarehouseOpt = None,
    engine: EngineOpt = None,
    connection: ConnectionOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many runs to show.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Show the last runs recorded in ingestion_logs, newest first."""

    def work() -> None:
        from engagement.engines import create_engine
        from engagement.exceptions import ConfigError
        from engagement.history import recent_runs

        if limit < 1:
            raise ConfigError(f"--limit {limit}: how many runs to show must be 1 or more; e.g. --limit 10")
        settings = _settings(warehouse=warehouse, engine=engine, snowflake_connection=connection,
                             reads_warehouse=True)
        if settings.engine == "snowpark-local":
            raise ConfigError("snowpark-local keeps nothing between commands; use --engine duckdb or snowflake")
        eng = create_engine(settings, read_only=True)
        try:
            runs = recent_runs(eng, limit)
        finally:
            eng.close()
        if as_json:
            print(json.dumps(runs, default=str))
            return
        if not runs:
            out_console.print("no runs yet: run `engagement run`")
            return
        from rich.table import Table

        table = Table(title=f"Last runs in {settings.warehouse}", title_justify="left")
        for col in ("run_id", "status", "checks", "started (UTC)", "seconds", "read", "rejected", "error"):
            table.add_column(col, justify="right" if col in ("seconds", "read", "rejected") else "left",
                             no_wrap=col in ("run_id", "started (UTC)"))
        for r in runs:
            table.add_row(r["run_id"], r["status"], r["checks"] or "-", f"{r['started_at']:%Y-%m-%d %H:%M:%S}",
                          f"{r['seconds']:.1f}" if r["seconds"] is not None else "",
                          f"{r['rows_read']:,}", f"{r['rows_rejected']:,}", r["error_message"] or "")
        out_console.print(table)

    _guard(work)


@app.command()
def doctor(
    engine: EngineOpt = None,
    warehouse: WarehouseOpt = None,
    connection: ConnectionOpt = None,
    dmf: Annotated[bool, typer.Option(
        "--dmf", help="Snowflake: also check what sql/04_data_metric_functions.sql needs (EXECUTE DATA METRIC "
        "FUNCTION, SNOWFLAKE.DATA_METRIC_USER, CREATE DATA METRIC FUNCTION).")] = False,
) -> None:
    """Check that a run can work: before the first run, and whenever something breaks. Changes nothing.

    One line per item: PASS, or FAIL with the fix (SKIP: not checked, because an item it needs failed).

    DuckDB: the warehouse file exists and opens read-only; who holds it when it is locked;
    every model table with the model's columns; free disk space; the log folder.

    Snowflake: the connection and where each setting came from (secrets show as "(set)");
    that it connects; the current role, warehouse, database and schema;
    the stage ENGAGEMENT_STAGE and every table; each privilege a run needs
    (SHOW GRANTS TO ROLE on the role, on each role granted to it, and on PUBLIC);
    the external stage when ENGAGEMENT_SNOWFLAKE_EXTERNAL_STAGE is set; with --dmf, the DMF prerequisites.

    Exit code 0 when every item passed, 2 otherwise.
    """

    def work() -> int:
        from engagement.doctor import diagnose, report

        # load_settings, not _settings: the doctor does not create the log folder it checks
        flags = {"engine": engine, "warehouse": warehouse, "snowflake_connection": connection}
        return report(diagnose(flags, dmf=dmf), write=lambda line: print(line, flush=True))

    raise typer.Exit(_guard(work))


@app.command()
def dashboard(
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535, help="Port to serve on.")] = 8501,
    address: Annotated[str, typer.Option(
        "--address", help="Address to bind; the default serves this machine only (0.0.0.0 would serve the network).",
    )] = "127.0.0.1",
    warehouse: WarehouseOpt = None,
    engine: EngineOpt = None,
    connection: ConnectionOpt = None,
) -> None:
    """Serve the monitoring dashboard (Streamlit) at http://ADDRESS:PORT until Ctrl-C.

    Pages: Overview (the latest run), Runs, Data quality, Engagement. It reads the warehouse
    read-only and only briefly, so `engagement run` can write meanwhile.
    """

    def work() -> int:
        import importlib.util
        import os

        from engagement.dashboard.launch import app_environment, streamlit_command
        from engagement.exceptions import ConfigError

        settings = _settings(warehouse=warehouse, engine=engine, snowflake_connection=connection)
        if settings.engine == "snowpark-local":
            raise ConfigError("snowpark-local keeps nothing between commands; use --engine duckdb or snowflake")
        if importlib.util.find_spec("streamlit") is None:
            raise ConfigError("streamlit is not installed in this environment; reinstall engagement (pip install -e .)")
        command = streamlit_command(port, address)
        where = settings.warehouse if settings.engine == "duckdb" else f"Snowflake {settings.snowflake_database}." \
            f"{settings.snowflake_schema}"
        err_console.print(f"dashboard on http://{address}:{port} reading {where}; Ctrl-C stops it", highlight=False)
        sys.stdout.flush()
        sys.stderr.flush()
        # Streamlit takes this process over: signals (Ctrl-C, a service manager's TERM) reach
        # the server itself, and no orphan is left behind.
        os.execve(command[0], command, app_environment(settings))

    raise typer.Exit(_guard(work))


@app.command()
def sql(
    database: Annotated[str | None, typer.Option(help="Database (env ENGAGEMENT_SNOWFLAKE_DATABASE; default ENGAGEMENT).")] = None,
    schema: Annotated[str | None, typer.Option(help="Schema (env ENGAGEMENT_SNOWFLAKE_SCHEMA; default MARKETING).")] = None,
    dmf: Annotated[bool, typer.Option(
        "--dmf", help="Instead: the checks as Snowflake data metric functions (ALTER TABLE … ADD DATA METRIC FUNCTION)."
    )] = False,
    checks: ChecksOpt = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print the Snowflake CREATE TABLE statements of the data model (with cluster keys), or with
    --dmf the data-quality checks as native data metric functions.

    sql/03_tables.sql is this output for the default database and schema; run sql/01 and sql/02 first.
    sql/04_data_metric_functions.sql is the --dmf output for the default checks (optional: for teams
    that prefer Snowflake-native monitoring).
    """

    def work() -> None:
        from engagement.check_file import load_checks
        from engagement.engines.snowflake_ddl import tables_script
        from engagement.engines.snowflake_dmf import dmf_script

        settings = _settings(snowflake_database=database, snowflake_schema=schema, checks_file=checks)
        db, sch = settings.snowflake_database, settings.snowflake_schema
        text = dmf_script(load_checks(settings.checks_file), db, sch) if dmf else tables_script(db, sch)
        if out:
            out.write_text(text)
            err_console.print(f"wrote {out}")
        else:
            print(text, end="")

    _guard(work)


notebooks_app = typer.Typer(
    help=(
        "The pipeline as parameterized Jupyter notebooks (notebooks/01_ingest, 02_transform, 03_quality) run by "
        "papermill; each run leaves its executed notebooks as a readable log."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(notebooks_app, name="notebooks")


@notebooks_app.command("run")
def notebooks_run(
    source: SourceOpt = None,
    warehouse: WarehouseOpt = None,
    engine: EngineOpt = None,
    connection: ConnectionOpt = None,
    checks: ChecksOpt = None,
    output_dir: Annotated[Path, typer.Option(
        "--output-dir", "-o",
        help="Folder for the executed notebooks: OUTPUT_DIR/RUN_DATE/RUN_ID/01_ingest.ipynb and so on.")] = Path("runs"),
    run_date: Annotated[str | None, typer.Option(
        "--run-date",
        help="The date the run is for, YYYY-MM-DD (e.g. the scheduler's logical date); names the folder of the "
        "executed notebooks and is passed to them. Default: today (UTC).")] = None,
    full_refresh: FullRefreshOpt = False,
) -> None:
    """Run the pipeline notebooks in order with papermill under one run id, then print a summary.

    Each notebook runs in a fresh kernel of this Python environment (kernel 'engagement', registered when missing).
    Executed copies go to OUTPUT_DIR/RUN_DATE/RUN_ID/NN_name.ipynb; each path is recorded in ingestion_logs.
    The first notebook that fails stops the chain, and the run gets an ERROR row naming that notebook.

    Exit codes: 0 succeeded, 1 a check FAILED, 2 a bad setting (found before any kernel starts), 3 a notebook failed.
    """

    def work() -> ExitCode:
        from engagement.notebook_report import chain_progress, chain_summary
        from engagement.notebooks import run_chain
        from engagement.report import exit_code

        settings = _settings(source=source, warehouse=warehouse, engine=engine, snowflake_connection=connection,
                             checks_file=checks, full_refresh=full_refresh or None, reads_source=True)
        with chain_progress(err_console) as observer:
            result = run_chain(settings, output_dir=output_dir, run_date=run_date, observer=observer)
        out_console.print(chain_summary(result, str(settings.log_dir / "engagement.log")))
        return exit_code(result.run)

    raise typer.Exit(_guard(work))


@notebooks_app.command("kernel")
def notebooks_kernel() -> None:
    """Register this environment's Jupyter kernel 'engagement' (inside the environment) if it is missing.

    `engagement notebooks run` does it by itself; this is for opening the notebooks in Jupyter.
    """

    def work() -> None:
        from engagement.notebooks import KERNEL_DISPLAY_NAME, ensure_kernel

        folder = ensure_kernel()
        out_console.print(f"Jupyter kernel '{KERNEL_DISPLAY_NAME}' runs {sys.executable} ({folder})", highlight=False)

    _guard(work)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="engagement")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
