"""Which Snowflake connection a run uses, and where each of its settings comes from.

It follows :func:`engagement.engines.snowflake_session.session_configs`, which decides what a
run passes to Snowpark: a connection name (``--connection`` / ``ENGAGEMENT_SNOWFLAKE_CONNECTION``)
read from the connector's connections file, else ``SNOWFLAKE_*`` environment variables; then
``ENGAGEMENT_SNOWFLAKE_WAREHOUSE`` / ``_ROLE`` when set, and always the settings' database and
schema, over whatever the connection says. The file is found as the connector finds it
(``snowflake.connector.constants``: ``$SNOWFLAKE_HOME/connections.toml``, by default
``~/.snowflake/connections.toml``; ``[connections]`` of ``config.toml`` when that file is
absent; the ``SNOWFLAKE_CONNECTIONS`` variable over both). Values of secrets (passwords,
tokens, private key passphrases, inline keys) are never shown: ``(set)``.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from engagement.config import Settings
from engagement.doctor import CheckResult, failed, origin, passed
from engagement.engines.snowflake_session import ENV_PARAMS, HOW_TO

SECRET_WORDS = ("password", "pwd", "token", "secret", "passphrase", "passcode")


def is_secret(key: str) -> bool:
    """Whether a connection parameter holds a secret (its value is never printed)."""
    key = key.lower()
    return key == "private_key" or any(word in key for word in SECRET_WORDS)


def show(key: str, value: Any) -> str:
    return "(set)" if is_secret(key) else str(value)


def connections_source(environ: Mapping[str, str]) -> tuple[dict[str, Any], str, Path | None]:
    """The connections the connector reads, where it reads them, and the file (None: a variable)."""
    from snowflake.connector.constants import CONFIG_FILE, CONNECTIONS_FILE

    if environ.get("SNOWFLAKE_CONNECTIONS"):
        return tomllib.loads(environ["SNOWFLAKE_CONNECTIONS"]), "environment SNOWFLAKE_CONNECTIONS", None
    if CONNECTIONS_FILE.is_file():
        return tomllib.loads(CONNECTIONS_FILE.read_text()), str(CONNECTIONS_FILE), CONNECTIONS_FILE
    if CONFIG_FILE.is_file():
        return dict(tomllib.loads(CONFIG_FILE.read_text()).get("connections", {})), \
            f"{CONFIG_FILE} [connections]", CONFIG_FILE
    return {}, f"{CONNECTIONS_FILE} (no such file)", None


def default_name(environ: Mapping[str, str]) -> str:
    """The connector's default connection name: SNOWFLAKE_DEFAULT_CONNECTION_NAME, config.toml, 'default'."""
    from snowflake.connector.constants import CONFIG_FILE

    if environ.get("SNOWFLAKE_DEFAULT_CONNECTION_NAME"):
        return environ["SNOWFLAKE_DEFAULT_CONNECTION_NAME"]
    try:
        return str(tomllib.loads(CONFIG_FILE.read_text()).get("default_connection_name", "default"))
    except (OSError, tomllib.TOMLDecodeError):
        return "default"


def connection_checks(settings: Settings, flags: Mapping[str, Any],
                      environ: Mapping[str, str] | None = None) -> Iterator[CheckResult]:
    """The connection line, the file's permissions, then one line per setting a run passes on."""
    env = os.environ if environ is None else environ
    try:
        connections, where, file = connections_source(env)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        yield failed("connection", f"cannot read the connections file: {' '.join(str(exc).split())[:200]}",
                     "fix its TOML syntax (or its permissions)")
        return
    name = settings.snowflake_connection
    params: dict[str, tuple[Any, str]] = {}  # parameter -> (value, where it comes from)
    if name:
        named_by = origin("snowflake_connection", flags, "--connection")
        if name not in connections:
            known = ", ".join(sorted(connections)) or "none"
            yield failed("connection", f"{name!r} (from {named_by}) is not in {where} (known: {known})",
                         f"add a [{name}] section there, or pass --connection with a known name")
            return
        yield passed("connection", f"{name!r} from {where} (named by {named_by})")
        if file is not None:
            yield permissions_check(file)
        params = {k: (v, f"{where_short(where)} [{name}]") for k, v in connections[name].items()}
    elif env.get("SNOWFLAKE_ACCOUNT"):
        yield passed("connection", "SNOWFLAKE_* environment variables (no connection name given)")
        params = {param: (env[var], f"environment {var}") for var, param in ENV_PARAMS.items() if env.get(var)}
    else:
        default = default_name(env)
        if default not in connections:
            yield failed("connection", "no connection name, no SNOWFLAKE_ACCOUNT", HOW_TO)
            return
        yield passed("connection", f"the default connection {default!r} from {where} (no connection name given)")
        if file is not None:
            yield permissions_check(file)
        params = {k: (v, f"{where_short(where)} [{default}]") for k, v in connections[default].items()}
    for key in ("warehouse", "role"):
        value = getattr(settings, f"snowflake_{key}")
        if value:
            over = f", over {params[key][1]}" if key in params else ""
            params[key] = (value, f"{origin(f'snowflake_{key}', flags)}{over}")
    for key in ("database", "schema"):
        params[key] = (getattr(settings, f"snowflake_{key}"), origin(f"snowflake_{key}", flags))
    for key, (value, source) in params.items():
        yield passed(f"setting {key}", f"{show(key, value)} (from {source})")


def where_short(where: str) -> str:
    """``connections.toml`` for a path ending so; the variable's name otherwise."""
    return Path(where.split(" ")[0]).name if where.startswith("/") else where


def permissions_check(file: Path) -> CheckResult:
    """The connector refuses a connections file others may write, and it may hold passwords."""
    mode = file.stat().st_mode
    fix = f"chmod 0600 {file}"
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return failed("connections file", f"{file} is writable by group or others: the connector refuses it", fix)
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        return failed("connections file", f"{file} is readable by group or others, and it can hold secrets", fix)
    if hasattr(os, "getuid") and file.stat().st_uid not in (0, os.getuid()):
        return failed("connections file", f"{file} belongs to another user", f"chown $USER {file}")
    return passed("connections file", f"{file} is readable by this user only")
