"""The pipeline as a chain of parameterized notebooks, run by papermill.

``engagement notebooks run`` executes ``01_ingest``, ``02_transform`` and ``03_quality``
in order under one run id, each in a fresh kernel of this very Python environment. Each
notebook calls one phase of :mod:`engagement.pipeline`; the executed copies, under
``<output dir>/<run date>/<run id>/``, are the run's readable log, and each one's path is
recorded in ``ingestion_logs.notebook``. The first notebook that fails stops the chain and
the run is closed as an ERROR naming it.

papermill, nbformat and jupyter_client are imported inside the functions that need them,
so that the ``engagement`` command starts fast.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engagement.exceptions import ConfigError, Interrupted

if TYPE_CHECKING:
    from engagement.config import Settings
    from engagement.engines.base import Engine
    from engagement.results import RunResult

KERNEL = "engagement"
KERNEL_DISPLAY_NAME = "Python (engagement)"
CHAIN = ("01_ingest", "02_transform", "03_quality")
EXPLORE = "explore"
# Authenticators that open a browser to sign in (one sign-in per session the chain opens).
BROWSER_AUTHENTICATORS = ("EXTERNALBROWSER", "OAUTH_AUTHORIZATION_CODE")
# Parameters every pipeline notebook declares in its cell tagged ``parameters``.
PARAMETERS = ("run_id", "run_date", "source", "engine", "warehouse", "connection", "checks", "notebook",
              "full_refresh", "workdir")
# Where the process started (a notebook's kernel: the notebook's folder): ``workdir`` is relative
# to it, so that running a notebook's connect cell twice does not climb one more folder.
STARTED_IN = os.getcwd()


# -- the notebooks and the kernel --------------------------------------------------------------

def notebooks_dir() -> Path:
    """The folder of the notebooks: the checkout's ``notebooks/``, else the copy installed with the
    package (``<prefix>/share/engagement/notebooks``)."""
    candidates = [Path(__file__).resolve().parent.parent / "notebooks",
                  Path(sys.prefix) / "share" / "engagement" / "notebooks"]
    for folder in candidates:
        if all((folder / f"{name}.ipynb").is_file() for name in (*CHAIN, EXPLORE)):
            return folder
    raise ConfigError(f"the pipeline notebooks are missing (looked in {' and '.join(map(str, candidates))}); "
                      "reinstall engagement")


def _runs_this_python(argv: list[str]) -> bool:
    """Whether a kernel command starts this environment's Python (jupyter_client runs a bare
    ``python`` as sys.executable; an absolute path must lie in this environment's bin folder)."""
    first = argv[0] if argv else ""
    if first in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
        return True
    # no resolve(): a venv's python is a symlink to the base interpreter, shared by every venv
    return Path(os.path.abspath(first)).parent == Path(os.path.abspath(sys.executable)).parent


@contextmanager
def _kernel_lock() -> Iterator[None]:
    """One registration at a time per environment (two runs starting together on a fresh machine)."""
    tag = hashlib.sha1(sys.prefix.encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"engagement-kernel-{tag}.lock"
    with open(path, "w") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: no lock, registration is rare and quick
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _find_kernel(name: str) -> Any:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        return KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        return None


def ensure_kernel(name: str = KERNEL) -> Path:
    """The Jupyter kernel ``name``, running this Python: registered inside this environment
    (``python -m ipykernel install --sys-prefix``) when missing or when it runs another Python.
    Returns its folder. Raises ConfigError when it cannot be registered, or when a kernel of the
    same name outside this environment (user or system Jupyter folder) hides the one registered."""
    with _kernel_lock():
        spec = _find_kernel(name)
        if spec is not None and _runs_this_python(spec.argv):
            return Path(spec.resource_dir)
        proc = subprocess.run(
            [sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", name,
             "--display-name", KERNEL_DISPLAY_NAME],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            why = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise ConfigError(f"cannot register the Jupyter kernel {name!r} in {sys.prefix}: {why}; "
                              f"run `{sys.executable} -m ipykernel install --user --name {name}` yourself")
        spec = _find_kernel(name)
        if spec is None or not _runs_this_python(spec.argv):
            where = spec.resource_dir if spec is not None else "nowhere"
            raise ConfigError(f"the Jupyter kernel {name!r} found in {where} runs {spec.argv[0] if spec else '?'}, "
                              f"not {sys.executable}; remove it (`jupyter kernelspec remove {name}`) and rerun")
        return Path(spec.resource_dir)


# -- what the notebooks call ------------------------------------------------------------------

def connect(workdir: str | Path | None = None, **flags: Any) -> tuple[Settings, Engine]:
    """Settings and an open engine for a notebook, as the ``engagement`` command would make them.

    ``workdir`` (relative to where the process started) becomes the working directory first:
    relative paths and ``.env`` are read from there. ``flags`` are the command's: source, engine, warehouse, connection, checks; None
    means "not given" (then ``ENGAGEMENT_*``, ``.env``, the defaults). Logging goes to the log
    file of the settings, as for the command.
    """
    from engagement.config import load_settings
    from engagement.engines import create_engine
    from engagement.logs import configure

    if workdir:
        os.chdir(Path(STARTED_IN, workdir))
    names = {"connection": "snowflake_connection", "checks": "checks_file"}
    settings = load_settings(**{names.get(k, k): v for k, v in flags.items()})
    configure(settings.log_dir, settings.log_level)
    return settings, create_engine(settings)


# -- the chain --------------------------------------------------------------------------------

@dataclass
class NotebookRun:
    """One notebook of a chain: where its executed copy is, and how it went."""

    name: str
    path: Path  # the executed copy
    status: str = "not run"  # SUCCEEDED, ERROR or not run
    seconds: float | None = None
    error: str | None = None


@dataclass
class ChainResult:
    """A chain run: the run as read back from the warehouse, and each notebook."""

    run: RunResult
    folder: Path
    notebooks: list[NotebookRun] = field(default_factory=list)


@dataclass
class ChainObserver:
    """Hooks for progress displays."""

    notebook_started: Callable[[NotebookRun, int], None] = lambda nb, cells: None
    cell_finished: Callable[[NotebookRun, int], None] = lambda nb, index: None
    notebook_finished: Callable[[NotebookRun], None] = lambda nb: None


def parse_run_date(value: str | None) -> str:
    """``--run-date`` as YYYY-MM-DD; today (UTC, as run ids) when None."""
    if value is None:
        return datetime.now(UTC).date().isoformat()
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise ConfigError(f"--run-date {value!r} is not a date: use YYYY-MM-DD") from None


def browser_sign_in_warning(settings: Settings, environ: Mapping[str, str] | None = None) -> str | None:
    """One line for stderr when the chain's Snowflake connection signs in through a browser, else None.

    Each notebook runs in a kernel of its own and opens its own session, and the chain opens the
    run and closes it in sessions of their own: with ``externalbrowser`` each may ask for a browser
    sign-in, which a scheduled run cannot answer (the connector reuses a cached SSO token only when
    the account allows ID tokens, and on Linux only with ``client_store_temporary_credential = true``,
    False by default: connector/connection.py, the EXTERNAL_BROWSER_AUTHENTICATOR branch).
    Raises ConfigError, as opening the session would, when the connection cannot be resolved.
    """
    if settings.engine != "snowflake":
        return None
    from engagement.engines.snowflake_session import connection_authenticator

    authenticator, label = connection_authenticator(settings, environ)
    if authenticator not in BROWSER_AUTHENTICATORS:
        return None
    return (f"warning: {label} signs in through the browser (authenticator {authenticator.lower()}), and this chain "
            f"opens {len(CHAIN) + 2} Snowflake sessions (one per notebook kernel, plus opening and closing the run): "
            "each may ask you to sign in; for scheduled runs use key-pair auth (a SERVICE user, "
            'authenticator = "SNOWFLAKE_JWT", private_key_file; see the README, Run it on Snowflake)')


def validate(settings: Settings, output_dir: Path) -> Path:
    """Check what the notebooks will be given, before any kernel starts; return the notebooks' folder.

    Each problem is a one-line ConfigError naming the flag. A Snowflake connection that signs in
    through a browser gets a one-line warning on stderr first (see :func:`browser_sign_in_warning`).
    """
    from engagement.check_file import load_checks
    from engagement.sources import check_root

    if settings.engine == "snowpark-local":
        raise ConfigError("--engine snowpark-local keeps its tables in the memory of one process, and each notebook "
                          "runs in a process of its own; use --engine duckdb or snowflake")
    warning = browser_sign_in_warning(settings)
    if warning:  # before anything connects: the first sign-in would otherwise come unannounced
        print(warning, file=sys.stderr, flush=True)
    if not (settings.engine == "snowflake" and settings.snowflake_external_stage and settings.source.startswith("s3://")):
        check_root(settings.source)  # through an external stage, the notebooks' engine checks it
    load_checks(settings.checks_file)
    if output_dir.exists() and not output_dir.is_dir():
        raise ConfigError(f"--output-dir {output_dir} is a file, not a folder")
    return notebooks_dir()


def code_cells(path: Path) -> int:
    """How many code cells a notebook holds (papermill adds one: the injected parameters)."""
    import nbformat

    return sum(c.cell_type == "code" for c in nbformat.read(path, as_version=4).cells)


def open_chain(settings: Settings, *, output_dir: Path = Path("runs"), run_date: str | None = None,
               run_id: str | None = None) -> tuple[str, Path, dict[str, Any]]:
    """Everything before the first notebook: check the settings (ConfigError, before any kernel
    starts), register the kernel, open the run (its 'run' row STARTED) and make the folder of
    its executed copies. Returns the run id, that folder, and the notebooks' parameters (all but
    ``notebook``, each copy's own path)."""
    from engagement.engines import create_engine
    from engagement.pipeline import start_run

    run_date = parse_run_date(run_date)
    validate(settings, output_dir)
    ensure_kernel()
    engine = create_engine(settings)
    try:
        run_id = start_run(engine, settings.source, run_id=run_id)
    finally:
        engine.close()  # the notebooks open the warehouse themselves (DuckDB: one process at a time)
    folder = (output_dir / run_date / run_id).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    parameters = {
        "run_id": run_id, "run_date": run_date, "source": settings.source, "engine": settings.engine,
        "warehouse": str(settings.warehouse), "connection": settings.snowflake_connection,
        "checks": str(settings.checks_file) if settings.checks_file else None,
        "full_refresh": settings.full_refresh, "workdir": os.getcwd(),
    }
    return run_id, folder, parameters


def run_chain(settings: Settings, *, output_dir: Path = Path("runs"), run_date: str | None = None,
              run_id: str | None = None, observer: ChainObserver | None = None) -> ChainResult:
    """Run the pipeline notebooks in order under one run id; return the run and each notebook's outcome.

    Raises ConfigError (nothing run, no kernel started) for a bad setting. The first notebook
    that fails stops the chain: its executed copy shows the error, and the run is closed as an
    ERROR whose row names that notebook.
    """
    observer = observer or ChainObserver()
    run_id, folder, parameters = open_chain(settings, output_dir=output_dir, run_date=run_date, run_id=run_id)
    source_folder = notebooks_dir()
    runs = [NotebookRun(name, folder / f"{name}.ipynb") for name in CHAIN]
    failed: NotebookRun | None = None
    for nb in runs:
        try:
            _execute(source_folder / f"{nb.name}.ipynb", nb, parameters, observer)
        except KeyboardInterrupt:
            nb.status, nb.error = "ERROR", "interrupted"
            _close(settings, run_id, nb, folder)
            done = [r.name for r in runs if r.status == "SUCCEEDED"]
            raise Interrupted(
                f"interrupted in notebook {nb.name} (its step in progress was rolled back; "
                f"{'committed: ' + ', '.join(done) if done else 'no notebook had finished'}); rerun to resume"
            ) from None
        if nb.status != "SUCCEEDED":
            failed = nb
            break
    return ChainResult(_close(settings, run_id, failed, folder), folder, runs)


def close_chain(settings: Settings, run_id: str, folder: Path) -> RunResult:
    """Close a run whose notebooks a scheduler ran (the Airflow DAG), and read it back.

    The failed notebook, if any, is found through the executed copies: the first one that shows
    an error, else the first one missing. A run that 03_quality closed is returned as it is.
    """
    failed = None
    for name in CHAIN:
        path = folder / f"{name}.ipynb"
        error = copy_error(path)
        if error:
            failed = NotebookRun(name, path, "ERROR", error=error)
            break
    return _close(settings, run_id, failed, folder)


def copy_error(path: Path) -> str | None:
    """The error an executed copy shows (one line), "not executed" when it is missing, else None."""
    import nbformat

    if not path.is_file():
        return "not executed (see the scheduler's log of its task)"
    for cell in nbformat.read(path, as_version=4).cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return _one_line(f"{out.ename}: {out.evalue}")
    return None


def _close(settings: Settings, run_id: str, failed: NotebookRun | None, folder: Path) -> RunResult:
    """Close the run (03_quality closes it when all went well), read it back, and alert when it
    calls for one, pointing at the executed notebooks."""
    from engagement.alerts import Links
    from engagement.engines import create_engine
    from engagement.pipeline import alert_run, finish_run

    engine = create_engine(settings)
    try:
        if failed is None:
            result = finish_run(engine, run_id)
        else:
            result = finish_run(engine, run_id, failure=f"notebook {failed.name} failed: {failed.error}",
                                notebook=str(failed.path))
        links = Links(log_file=str(settings.log_dir / "engagement.log"), notebooks=str(folder),
                      dashboard_url=settings.dashboard_url,
                      extra=(f"failed notebook: {failed.path}",) if failed else ())
        alert_run(engine, settings, result, links)
        return result
    finally:
        engine.close()


def _execute(source: Path, nb: NotebookRun, parameters: dict[str, Any], observer: ChainObserver) -> None:
    """Execute one notebook with papermill into ``nb.path``; record how it went in ``nb``."""
    import papermill
    from papermill.exceptions import PapermillExecutionError
    from traitlets.config import Config

    observer.notebook_started(nb, code_cells(source) + 1)
    started = time.monotonic()
    try:
        papermill.execute_notebook(
            str(source), str(nb.path), parameters={**parameters, "notebook": str(nb.path)},
            kernel_name=KERNEL, cwd=parameters["workdir"], progress_bar=False, log_output=False,
            on_cell_complete=lambda cell, cell_index, **_: observer.cell_finished(nb, cell_index),
            # CurveZMQ-encrypted sockets when the kernel supports them (ipykernel does), rather than
            # plain TCP on localhost (and the kernel's warning about it on our terminal)
            config=Config({"KernelManager": {"transport_encryption": "auto"}}),
        )
        nb.status = "SUCCEEDED"
    except PapermillExecutionError as exc:
        nb.status, nb.error = "ERROR", _one_line(f"{exc.ename}: {exc.evalue}")
    except Exception as exc:  # the kernel died or could not start: still one line, still the chain's end
        nb.status, nb.error = "ERROR", _one_line(f"{type(exc).__name__}: {exc}")
    nb.seconds = time.monotonic() - started
    observer.notebook_finished(nb)


def _one_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0]
