"""Opening a Snowpark session the way a Snowflake user already configures one.

Order: ``--connection`` / ``ENGAGEMENT_SNOWFLAKE_CONNECTION`` (a name in
``connections.toml``), else ``SNOWFLAKE_ACCOUNT`` and friends in the
environment, else the default connection of ``connections.toml``. Database,
schema, warehouse and role come from settings. Every failure becomes one
ConfigError line naming what to set; no secret is ever part of a message.

What this relies on in the installed clients (snowflake-connector-python 4.8.1,
snowflake-snowpark-python 1.56.0), and why the code below does what it does:

* Snowpark falls back to the default connection only when the builder got no option at all
  (``snowpark/session.py``, ``SessionBuilder._create_internal``: ``not self._options``), and
  the connector only when it got no keyword at all (``connector/connection.py``,
  ``SnowflakeConnection.__init__``: ``elif is_kwargs_empty``). We always pass ``application``,
  ``database`` and ``schema``, so the default connection is merged here, with the connector's
  own helper ``connector/config_manager.py::_get_default_connection_params`` (it honours
  ``SNOWFLAKE_HOME`` through ``sf_dirs.py``, ``SNOWFLAKE_DEFAULT_CONNECTION_NAME`` and
  ``default_connection_name`` in ``config.toml``).
* With ``connection_name`` the connector merges ``{**connections[name], **kwargs}``, so our
  database and schema win over the file's; the merge is shallow, so a ``session_parameters``
  table in the file would be replaced by ours: it is merged here first.
* ``session_parameters`` is a connect argument (``DEFAULT_CONFIGURATION`` in connection.py)
  sent in the login request (``auth/_auth.py``: ``body["data"]["SESSION_PARAMETERS"]``);
  Snowpark passes its configs to ``connect(**options)`` with lower-cased keys
  (``snowpark/_internal/server_connection.py``, ``ServerConnection.__init__``). Documented in
  https://docs.snowflake.com/developer-guide/python-connector/python-connector-connect
  ("Setting session parameters").
* The connector reads no environment variable for the key passphrase: it takes
  ``private_key_file_pwd`` and decrypts the file with ``_get_private_bytes_from_file``
  (connection.py), which raises plain OSError / ValueError / TypeError, not connector errors.
  We read ``PRIVATE_KEY_PASSPHRASE`` (the Snowflake CLI's name, which wins there too:
  https://github.com/snowflakedb/snowflake-cli/releases/tag/v3.17.1) or
  ``SNOWFLAKE_PRIVATE_KEY_FILE_PWD``, and decrypt the key once with that same function first,
  so a bad key file is one line naming it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engagement.exceptions import ConfigError

if TYPE_CHECKING:
    from snowflake.snowpark import Session

    from engagement.config import Settings

# Pinned for every session at login, so that TRY_CAST(text AS DATE) and the casts to TIMESTAMP
# do not depend on the account's or the user's *_INPUT_FORMAT. AUTO is Snowflake's default and
# accepts the ISO 8601 forms the rules let through ('T' or space, optional fraction, +HH:MM):
# https://docs.snowflake.com/en/sql-reference/date-time-input-output ("Supported formats for
# AUTO detection"); Snowflake's own client mirror of that list is
# snowflakedb/snowflake-kafka-connector, src/main/java/com/snowflake/kafka/connector/internal/
# validation/XpDateTimeFormats.java (YYYY-MM-DD"T"HH24:MI:SS.FFTZH:TZM, YYYY-MM-DD HH24:MI:SS ...).
# DATE is pinned to the one form the rules accept, so AUTO's other date forms cannot slip in.
SESSION_PARAMETERS: dict[str, str] = {
    "DATE_INPUT_FORMAT": "YYYY-MM-DD",
    "TIMESTAMP_INPUT_FORMAT": "AUTO",
}  # no TIMESTAMP_TZ_INPUT_FORMAT: the parameter index has none, and TIMESTAMP_INPUT_FORMAT is
# the default format of every timestamp conversion (sql-reference/functions/to_timestamp)

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
# Where the passphrase of an encrypted private key comes from, first found wins.
PASSPHRASE_VARS = ("PRIVATE_KEY_PASSPHRASE", "SNOWFLAKE_PRIVATE_KEY_FILE_PWD")
SECRET_PARAMS = {"password", "private_key_file_pwd", "private_key_passphrase", "token", "passcode",
                 "oauth_client_secret"}
KEY_PAIR = "SNOWFLAKE_JWT"
HOW_TO = (
    "add a connection to ~/.snowflake/connections.toml (or $SNOWFLAKE_HOME/connections.toml) and pass "
    "--connection NAME / ENGAGEMENT_SNOWFLAKE_CONNECTION, or set SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER and "
    "SNOWFLAKE_PASSWORD (or SNOWFLAKE_AUTHENTICATOR)"
)
PASSPHRASE_HOW = "set its passphrase in PRIVATE_KEY_PASSPHRASE (or SNOWFLAKE_PRIVATE_KEY_FILE_PWD) in the environment"


def local_session() -> Session:
    """A Snowpark local-testing session: in memory, no account, telemetry off."""
    from snowflake.snowpark import Session

    return (
        Session.builder.config("local_testing", True)
        .config("disable_local_testing_telemetry", True)
        .create()
    )


def _connections() -> tuple[dict[str, dict[str, Any]], Path]:
    """The connections the connector knows (connections.toml, or SNOWFLAKE_CONNECTIONS), and the file.

    Read through the connector's CONFIG_MANAGER, so the file, its permission check and its
    environment overrides are exactly the connector's (it resolves them from the process environment).
    """
    from snowflake.connector.config_manager import CONFIG_MANAGER
    from snowflake.connector.constants import CONNECTIONS_FILE
    from snowflake.connector.errors import Error as ConnectorError

    try:
        return dict(CONFIG_MANAGER["connections"]), Path(CONNECTIONS_FILE)
    except ConnectorError as exc:  # unreadable TOML, or a file others may write
        raise ConfigError(f"cannot read the Snowflake connections: {_first_line(str(exc.msg or exc))}; fix "
                          f"{CONNECTIONS_FILE} (valid TOML, chmod 0600)") from None


def _resolve(settings: Settings, env: Mapping[str, str]) -> tuple[dict[str, Any], str | None, str]:
    """The parameters of the connection ``settings`` name, the name to pass the connector (None:
    the parameters themselves are passed), and how to name the connection in a message."""
    if settings.snowflake_connection:
        name = settings.snowflake_connection
        connections, path = _connections()
        if name not in connections:
            known = ", ".join(sorted(connections)) or "none"
            raise ConfigError(f"Snowflake connection {name!r} not found in {path} (known ones: {known}); {HOW_TO}")
        return dict(connections[name]), name, f"connection {name!r}"
    if env.get("SNOWFLAKE_ACCOUNT"):
        return {param: env[var] for var, param in ENV_PARAMS.items() if env.get(var)}, None, "SNOWFLAKE_* environment"
    from snowflake.connector.config_manager import CONFIG_MANAGER, _get_default_connection_params

    connections, path = _connections()
    if not connections:
        raise ConfigError(f"no Snowflake credentials found; {HOW_TO}")
    default = str(CONFIG_MANAGER["default_connection_name"])
    if default not in connections:
        raise ConfigError(
            f"the default Snowflake connection {default!r} is not in {path} (known ones: "
            f"{', '.join(sorted(connections))}); pass --connection NAME, or name the default with "
            "default_connection_name in config.toml or SNOWFLAKE_DEFAULT_CONNECTION_NAME")
    return dict(_get_default_connection_params()), None, f"default connection {default!r}"


def _passphrase(env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The private key's passphrase from the environment, and the variable it came from."""
    for var in PASSPHRASE_VARS:
        if env.get(var):
            return env[var], var
    return None, None


def _check_private_key(path_value: Any, passphrase: str | None, source: str | None, label: str) -> None:
    """Decrypt the key as the connector will; a missing, unreadable or undecryptable file is one line."""
    from snowflake.connector.connection import _get_private_bytes_from_file

    path = Path(str(path_value)).expanduser()
    fix = f"fix private_key_file of {label}"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"the private key file {path} ({label}) does not exist; {fix}, or create the key pair "
                          "(see the README, Run it on Snowflake, step 2)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the private key file {path} ({label}): {exc.strerror or type(exc).__name__}; "
                          f"make it a file readable by this user (chmod 600 {path}) or {fix}") from None
    encrypted = b"ENCRYPTED" in data
    if encrypted and passphrase is None:
        raise ConfigError(f"the private key file {path} ({label}) is encrypted; {PASSPHRASE_HOW}")
    if not encrypted and passphrase is not None:
        raise ConfigError(f"the private key file {path} ({label}) is not encrypted, but {source} is set; unset it, "
                          "or point private_key_file at the encrypted key")
    try:
        _get_private_bytes_from_file(str(path), passphrase)
    except (ValueError, TypeError):  # the exception text is cryptography's; never shown, nor the passphrase
        if encrypted:
            raise ConfigError(f"the passphrase in {source} does not decrypt the private key file {path} ({label}); "
                              "set the key's passphrase there") from None
        raise ConfigError(f"the private key file {path} ({label}) is not a PEM private key; point private_key_file "
                          "at the PKCS#8 key (rsa_key.p8)") from None


def _session_parameters(own: Any) -> dict[str, Any]:
    """The connection's session_parameters with ours on top (ours win for SESSION_PARAMETERS' keys only)."""
    theirs = dict(own) if isinstance(own, dict) else {}
    pinned = {k.upper() for k in SESSION_PARAMETERS}
    return {**{k: v for k, v in theirs.items() if str(k).upper() not in pinned}, **SESSION_PARAMETERS}


def _build(settings: Settings, env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(configs for the builder, the parameters the connector ends up with, the connection's label)."""
    params, name, label = _resolve(settings, env)
    configs: dict[str, Any] = {}
    if name is not None:
        configs["connection_name"] = name
    else:
        configs.update(params)
    configs["application"] = "engagement"
    effective = {**params, **configs}
    key_file = effective.get("private_key_file")
    authenticator = str(effective.get("authenticator") or "").upper()
    if authenticator == KEY_PAIR and not key_file and not effective.get("private_key"):
        raise ConfigError(f"{label} has authenticator = \"{KEY_PAIR}\" but no private_key_file; add private_key_file "
                          "= \"/path/to/rsa_key.p8\" to it")
    if key_file:
        passphrase, source = _passphrase(env)
        if passphrase is not None:
            configs["private_key_file_pwd"] = passphrase
        elif effective.get("private_key_file_pwd"):
            passphrase, source = str(effective["private_key_file_pwd"]), f"private_key_file_pwd of {label}"
        _check_private_key(key_file, passphrase, source, label)
    configs["session_parameters"] = _session_parameters(params.get("session_parameters"))
    for key in ("warehouse", "role"):
        value = getattr(settings, f"snowflake_{key}")
        if value:
            configs[key] = value
    configs["database"] = settings.snowflake_database
    configs["schema"] = settings.snowflake_schema
    return configs, {**params, **configs}, label


def session_configs(settings: Settings, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``Session.builder.configs`` for ``settings``: a connection name (with our overrides), the
    environment's credentials, or the default connection's parameters; always SESSION_PARAMETERS.

    ``environ`` (default: the process environment) is where SNOWFLAKE_* and the key passphrase are
    read; connections.toml and the default connection's name are read by the connector, from the
    process environment. Raises ConfigError (one line, no secret) when they cannot work.
    """
    return _build(settings, os.environ if environ is None else environ)[0]


def connection_authenticator(settings: Settings, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The authenticator the session of ``settings`` will sign in with (upper case; SNOWFLAKE for a
    password) and the connection's label, without connecting. Raises ConfigError as session_configs."""
    _, effective, label = _build(settings, os.environ if environ is None else environ)
    if effective.get("private_key_file") or effective.get("private_key"):
        return KEY_PAIR, label  # the connector switches to key pair whenever a key is given
    return str(effective.get("authenticator") or "SNOWFLAKE").upper(), label


def _first_line(message: str) -> str:
    return (message.strip().splitlines() or [""])[0]


def _scrub(message: str, secrets: dict[str, Any]) -> str:
    """The first line of a connector message, with any secret the connector was given removed."""
    line = _first_line(message)
    for key in SECRET_PARAMS:
        secret = secrets.get(key)
        if secret:
            line = line.replace(str(secret), "***")
    return line


def create_session(settings: Settings, *, local: bool) -> Session:
    """A connected Snowpark session, or a one-line ConfigError (exit 2) that says what to set."""
    if local:
        return local_session()
    from snowflake.connector.errors import Error as ConnectorError
    from snowflake.snowpark import Session

    configs, effective, label = _build(settings, os.environ)
    try:
        return Session.builder.configs(configs).create()
    except ConnectorError as exc:
        detail = _scrub(str(getattr(exc, "msg", None) or exc), effective)
        lowered = detail.lower()
        if any(w in lowered for w in ("is empty", "must be specified", "missing", "required")):
            raise ConfigError(f"no Snowflake credentials found ({label}: {detail}); {HOW_TO}") from None
        raise ConfigError(f"cannot connect to Snowflake: {detail}; check the credentials of {label}") from None
