"""Opening a Snowpark session the way a Snowflake user already configures one.

Order: ``--connection`` / ``ENGAGEMENT_SNOWFLAKE_CONNECTION`` (a name in
``connections.toml``), else ``SNOWFLAKE_ACCOUNT`` and friends in the
environment, else the default connection of ``connections.toml``. Database,
schema, warehouse and role come from settings. Every failure becomes one
ConfigError line naming what to set; no secret is ever part of a message.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from engagement.exceptions import ConfigError

if TYPE_CHECKING:
    from snowflake.snowpark import Session

    from engagement.config import Settings

# Environment variables read when no connection name is given (Snowflake CLI names).
ENV_PARAMS = {
    "SNOWFLAKE_ACCOUNT": "account",
    "SNOWFLAKE_USER": "user",
    "SNOWFLAKE_PASSWORD": "password",
    "SNOWFLAKE_AUTHENTICATOR": "authenticator",
    "SNOWFLAKE_PRIVATE_KEY_FILE": "private_key_file",
    "SNOWFLAKE_PRIVATE_KEY_FILE_PWD": "private_key_file_pwd",
    "SNOWFLAKE_TOKEN": "token",
    "SNOWFLAKE_HOST": "host",
    "SNOWFLAKE_ROLE": "role",
    "SNOWFLAKE_WAREHOUSE": "warehouse",
}
SECRET_PARAMS = {"password", "private_key_file_pwd", "token"}
# Parsing must not depend on the account's parameters: TRY_CAST to DATE / TIMESTAMP follows
# DATE_INPUT_FORMAT and TIMESTAMP(_TZ)_INPUT_FORMAT, so they are pinned for the session at login.
SESSION_PARAMETERS = {
    "DATE_INPUT_FORMAT": "YYYY-MM-DD",
    "TIMESTAMP_INPUT_FORMAT": "AUTO",
    "TIMESTAMP_TZ_INPUT_FORMAT": "AUTO",
}
HOW_TO = (
    "add a connection to ~/.snowflake/connections.toml (or $SNOWFLAKE_HOME/connections.toml) and pass "
    "--connection NAME / ENGAGEMENT_SNOWFLAKE_CONNECTION, or set SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER and "
    "SNOWFLAKE_PASSWORD (or SNOWFLAKE_AUTHENTICATOR)"
)


def local_session() -> Session:
    """A Snowpark local-testing session: in memory, no account, telemetry off."""
    from snowflake.snowpark import Session

    return (
        Session.builder.config("local_testing", True)
        .config("disable_local_testing_telemetry", True)
        .create()
    )


def session_configs(settings: Settings, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The ``Session.builder.configs`` for ``settings``: a connection name, or environment credentials."""
    env = os.environ if environ is None else environ
    configs: dict[str, Any] = {"application": "engagement"}
    if settings.snowflake_connection:
        configs["connection_name"] = settings.snowflake_connection
    elif env.get("SNOWFLAKE_ACCOUNT"):
        configs.update({param: env[var] for var, param in ENV_PARAMS.items() if env.get(var)})
    # else: the connector's default connection from connections.toml
    for key in ("warehouse", "role"):
        value = getattr(settings, f"snowflake_{key}")
        if value:
            configs[key] = value
    configs["database"] = settings.snowflake_database
    configs["schema"] = settings.snowflake_schema
    return configs


def _scrub(message: str, configs: dict[str, Any]) -> str:
    """The first line of a connector message, with any secret we passed removed."""
    line = (message.strip().splitlines() or [""])[0]
    for key in SECRET_PARAMS:
        secret = configs.get(key)
        if secret:
            line = line.replace(str(secret), "***")
    return line


def create_session(settings: Settings, *, local: bool) -> Session:
    """A connected Snowpark session, or a one-line ConfigError (exit 2) that says what to set."""
    if local:
        return local_session()
    from snowflake.connector.errors import Error as ConnectorError
    from snowflake.snowpark import Session

    configs = session_configs(settings)
    try:
        return Session.builder.configs(configs).create()
    except ConnectorError as exc:
        detail = _scrub(str(getattr(exc, "msg", None) or exc), configs)
        if "connection_name" in detail or "connection with name" in detail.lower():
            raise ConfigError(f"Snowflake connection not found: {detail}; {HOW_TO}") from None
        lowered = detail.lower()
        if any(w in lowered for w in ("is empty", "must be specified", "missing", "required")):
            raise ConfigError(f"no Snowflake credentials found; {HOW_TO}") from None
        raise ConfigError(
            f"cannot connect to Snowflake: {detail}; check the credentials of "
            f"{'connection ' + repr(settings.snowflake_connection) if settings.snowflake_connection else 'your connection'}"
        ) from None
