"""The local log file: ``<log_dir>/engagement.log``, one line per event, each with its run id."""

from __future__ import annotations

import logging
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s run=%(run_id)s %(name)s: %(message)s"


class _RunIdDefault(logging.Filter):
    """Lines logged outside a run still carry the field (as ``-``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "run_id"):
            record.run_id = "-"
        return True


def configure(log_dir: Path, level: str = "INFO") -> Path:
    """Send the ``engagement`` logger to ``log_dir/engagement.log``; return the file's path."""
    path = log_dir / "engagement.log"
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        from engagement.exceptions import ConfigError

        raise ConfigError(f"ENGAGEMENT_LOG_DIR={str(log_dir)!r}: cannot write {path} ({exc.strerror}); "
                          "set ENGAGEMENT_LOG_DIR to a folder this user can write") from None
    logger = logging.getLogger("engagement")
    for handler in list(logger.handlers):
        if isinstance(handler, logging.FileHandler):
            logger.removeHandler(handler)
            handler.close()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(_RunIdDefault())
    logger.addHandler(handler)
    logger.setLevel(level)
    return path
