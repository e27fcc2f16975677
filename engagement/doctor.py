"""``engagement doctor``: is this machine (and account) ready for a run? One line per item.

Each check is a small function returning a :class:`CheckResult`; the engine-specific ones live
in ``engagement/engines/*_doctor.py`` and are found through the registry in
:mod:`engagement.engines` (:func:`engagement.engines.doctor_for`). Nothing here creates what it
checks: no CREATE, no file, no folder (the log folder is not even created, unlike every other
command), and a DuckDB warehouse is opened read-only, only when it exists.

Output: ``PASS  <item>: <detail>`` or ``FAIL  <item>: <detail>; fix: <what to do>``, and
``SKIP`` for an item that could not be checked because one it depends on failed (the warehouse
did not open, the account did not answer). Exit code 0 when every item passed, 2 otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engagement.exceptions import ConfigError, ExitCode

if TYPE_CHECKING:
    from engagement.config import Settings

GIB = 1024**3


class Outcome(StrEnum):
    """What a line says about its item."""

    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"  # not checked: an item it depends on failed (never counts as passing)


@dataclass(frozen=True)
class CheckResult:
    """One item of the report: ``ok`` when it passed; ``fix`` says what to do when it did not."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    skipped: bool = False

    @property
    def outcome(self) -> Outcome:
        return Outcome.SKIP if self.skipped else Outcome.PASS if self.ok else Outcome.FAIL

    def line(self) -> str:
        """The report line: one line, whatever the detail holds."""
        text = f"{self.name}: {self.detail}"
        if self.outcome is Outcome.FAIL and self.fix:
            text += f"; fix: {self.fix}"
        return f"{self.outcome.value:<4}  " + " ".join(text.split())


def passed(name: str, detail: str) -> CheckResult:
    return CheckResult(name, True, detail)


def failed(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, False, detail, fix)


def skipped(name: str, because: str) -> CheckResult:
    return CheckResult(name, False, f"not checked: {because}", skipped=True)


def guarded(name: str, check: Callable[[], CheckResult]) -> CheckResult:
    """Run one check; an error nobody foresaw becomes its FAIL line instead of a traceback."""
    try:
        return check()
    except ConfigError as exc:
        detail, _, fix = str(exc).partition("; ")
        return failed(name, detail, fix or "see the message")
    except Exception as exc:  # a doctor must report, not crash
        return unexpected(name, exc)


def unexpected(name: str, exc: BaseException) -> CheckResult:
    """The FAIL line of an error no check foresaw: its type and first line, never a traceback."""
    said = (str(exc).strip().splitlines() or [""])[0][:300]
    return failed(name, f"unexpected {type(exc).__name__}: {said}",
                  "run it again; if it persists, report it with this line")


# -- where a setting came from -------------------------------------------------------------


def env_name(field: str) -> str:
    """The environment variable of a :class:`engagement.config.Settings` field."""
    return "ENGAGEMENT_SCHEMA" if field == "schema_name" else f"ENGAGEMENT_{field.upper()}"


def origin(field: str, flags: Mapping[str, Any], flag: str | None = None,
           environ: Mapping[str, str] | None = None, dotenv: Path = Path(".env")) -> str:
    """Where the value of settings field ``field`` came from, in the order settings apply:
    the flag, the environment, ``.env``, the default. Never the value itself."""
    env = os.environ if environ is None else environ
    name = env_name(field)
    if flags.get(field) is not None:
        return f"flag {flag}" if flag else "flag"
    if any(k.upper() == name for k in env):  # pydantic-settings reads names case-insensitively
        return f"environment {name}"
    if dotenv.is_file():
        from dotenv import dotenv_values

        if any(k.upper() == name for k in dotenv_values(dotenv)):
            return f".env {name}"
    return "the default"


# -- running and reporting -----------------------------------------------------------------


def diagnose(flags: Mapping[str, Any], *, dmf: bool = False, session: Any = None) -> Iterator[CheckResult]:
    """Every check for the engine the settings name, in order, as each finishes.

    ``flags`` are the command's flags (``Settings`` field names; None means not given).
    ``session``: an open Snowpark session to check instead of connecting (tests pass one over
    :class:`engagement.engines.snowflake_recorder.RecordingConnection`).
    """
    from engagement.config import load_settings
    from engagement.engines import doctor_for

    given = {k: v for k, v in flags.items() if v is not None}
    settings: Settings = load_settings(**given)
    checks = doctor_for(settings.engine)
    if dmf and settings.engine != "snowflake":
        raise ConfigError("--dmf checks the prerequisites of Snowflake data metric functions; "
                          "use it with --engine snowflake")
    return _all(checks(settings, given, dmf=dmf, session=session), settings)


def _all(engine_checks: Iterable[CheckResult], settings: Settings) -> Iterator[CheckResult]:
    try:
        yield from engine_checks
    except Exception as exc:  # every check guards itself; this is the last net
        yield unexpected(settings.engine, exc)
    yield guarded("log folder", lambda: log_folder(settings.log_dir))


def log_folder(folder: Path) -> CheckResult:
    """Can a run write ``folder/engagement.log``? Checked without creating the folder: when it
    does not exist yet, its nearest existing parent must let this user create it."""
    name, where = "log folder", f"{folder.expanduser().absolute()} (ENGAGEMENT_LOG_DIR)"
    fix = "set ENGAGEMENT_LOG_DIR to a folder this user can write, or change the folder's permissions"
    if folder.exists() and not folder.is_dir():
        return failed(name, f"{where} is a file, not a folder", "move it away, or set ENGAGEMENT_LOG_DIR to a folder")
    target = nearest_existing(folder)
    if not target.is_dir():
        return failed(name, f"{where} cannot be created: {target} is a file", fix)
    if not os.access(target, os.W_OK | os.X_OK):
        return failed(name, f"{where}: {target} is not writable by this user", fix)
    log_file = folder / "engagement.log"
    if log_file.exists() and not os.access(log_file, os.W_OK):
        return failed(name, f"{log_file} is not writable by this user", fix)
    if target == folder.expanduser().absolute():
        return passed(name, f"{where} is writable")
    return passed(name, f"{where} does not exist yet; {target} is writable, so the first run creates it")


def report(results: Iterable[CheckResult], write: Callable[[str], None] = print) -> ExitCode:
    """Write each result's line as it arrives, then a count; 0 when all passed, else 2."""
    counts = {o: 0 for o in Outcome}
    for result in results:
        counts[result.outcome] += 1
        write(result.line())
    total = sum(counts.values())
    not_run = f", {counts[Outcome.SKIP]} not checked" if counts[Outcome.SKIP] else ""
    write(f"{counts[Outcome.PASS]} of {total} passed, {counts[Outcome.FAIL]} failed{not_run}")
    return ExitCode.OK if counts[Outcome.PASS] == total else ExitCode.USAGE


def free_space(path: Path) -> tuple[Path, int]:
    """The nearest existing folder at or above ``path``, and the bytes free on its file system."""
    import shutil

    folder = nearest_existing(path)
    return folder, shutil.disk_usage(folder).free


def nearest_existing(path: Path) -> Path:
    """``path`` itself when it exists, else its nearest existing parent (absolute)."""
    here = path.expanduser().absolute()
    while not here.exists() and here != here.parent:
        here = here.parent
    return here


def gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"
