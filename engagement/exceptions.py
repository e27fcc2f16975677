"""One exception hierarchy and the documented exit codes.

Every error a user can cause carries a one-line message that names the
problem and the fix; the CLI prints that line and exits with the error's code,
never a traceback.
"""

from __future__ import annotations

import errno
import os
from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the ``engagement`` command; documented in the README, never renumbered."""

    OK = 0  # the run succeeded (checks PASSED or WARN)
    CHECK_FAILED = 1  # a data-quality check FAILED
    USAGE = 2  # usage or configuration error; nothing was run
    STEP_ERROR = 3  # a pipeline step errored; its table kept the previous state
    INTERRUPTED = 130  # Ctrl-C (SIGINT): committed steps stay, the step in progress was rolled back


class EngagementError(Exception):
    """Base of every error the tool raises on purpose."""

    exit_code: ExitCode = ExitCode.STEP_ERROR


class Interrupted(EngagementError):
    """Ctrl-C stopped a run; the message names what had committed and what was in progress."""

    exit_code = ExitCode.INTERRUPTED


class ConfigError(EngagementError):
    """A setting, flag or environment variable is wrong. Message names it and the fix."""

    exit_code = ExitCode.USAGE


class SourceError(EngagementError):
    """The input cannot be read as a whole (no files, unreadable folder)."""

    exit_code = ExitCode.STEP_ERROR


class WarehouseError(EngagementError):
    """The warehouse cannot be opened or written (locked file, missing object)."""

    exit_code = ExitCode.STEP_ERROR


class WarehouseLockedError(WarehouseError):
    """Another process holds the embedded warehouse file."""


class StepFailed(EngagementError):
    """A step of a pipeline phase errored; its ERROR row (with this message) is in ``ingestion_logs``."""

    exit_code = ExitCode.STEP_ERROR


class MissingTableError(WarehouseError):
    """A model table is not in the warehouse yet: nothing was ever loaded there."""


def disk_full(exc: BaseException) -> str | None:
    """The one line for ENOSPC (an OSError, or inside an engine's error text such as DuckDB's
    "No space left on device"), else None. A full disk is transient: exit 3, rerun after freeing space."""
    if not ((isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or os.strerror(errno.ENOSPC) in str(exc)):
        return None
    where = getattr(exc, "filename", None) or "writing"
    return (f"the disk is full ({where}); free some space (or point --warehouse / ENGAGEMENT_LOG_DIR "
            "elsewhere) and run again; committed steps are kept")
