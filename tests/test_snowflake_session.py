"""Connecting to Snowflake the way users configure it; every failure is one line, exit 2, no secret.

The connector reads connections.toml once per process, from SNOWFLAKE_HOME as it was when it was
imported, so every test that needs a connections.toml runs in a fresh interpreter with its own
SNOWFLAKE_HOME: the real connector code reads the real files. Nothing connects to a network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from engagement.config import load_settings
from engagement.engines.snowflake_session import SESSION_PARAMETERS, connection_authenticator, session_configs
from tests.conftest import CSV_HEADER, write_files

SECRET = "hunter2-do-not-print"
PASSPHRASE = "correct horse battery staple"
CLEAN = ("ENGAGEMENT_", "SNOWFLAKE_", "PRIVATE_KEY_PASSPHRASE")
CONFIGS_SCRIPT = """
import json, sys
from engagement.config import load_settings
from engagement.engines.snowflake_session import session_configs
from engagement.exceptions import ConfigError
try:
    print(json.dumps({"configs": session_configs(load_settings(**json.loads(sys.argv[1])))}))
except ConfigError as exc:
    print(json.dumps({"error": str(exc)}))
"""


def _env(extra: dict[str, str]) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith(CLEAN)}, **extra}


def engagement(cwd: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engagement", *args], cwd=cwd, env=_env(env),
                          capture_output=True, text=True, timeout=120)


def sfhome(tmp_path: Path, connections: str, config: str | None = None) -> Path:
    """A SNOWFLAKE_HOME holding ``connections`` as connections.toml (and ``config`` as config.toml)."""
    home = tmp_path / "sfhome"
    home.mkdir(exist_ok=True)
    for name, text in (("connections.toml", connections), ("config.toml", config)):
        if text is not None:
            (home / name).write_text(text)
            (home / name).chmod(0o600)  # the connector refuses files others may write
    return home


def configs_in(home: Path, env: dict[str, str] | None = None, **settings: str) -> dict:
    """session_configs in a fresh interpreter whose SNOWFLAKE_HOME is ``home``: {"configs": ...} or {"error": ...}."""
    proc = subprocess.run([sys.executable, "-c", CONFIGS_SCRIPT, json.dumps({"engine": "snowflake", **settings})],
                          env=_env({"SNOWFLAKE_HOME": str(home), **(env or {})}), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def encrypted_key(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> Path:
    """A PKCS#8 private key encrypted with PASSPHRASE, as `openssl genrsa | openssl pkcs8 -topk8 -v2 aes256` makes."""
    path = tmp_path / "keys" / "rsa_key.p8"
    path.parent.mkdir()
    path.write_bytes(rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.BestAvailableEncryption(PASSPHRASE.encode())))
    path.chmod(0o600)
    return path


def key_pair_connection(name: str, key: Path | str) -> str:
    return (f'[{name}]\naccount = "xy12345"\nuser = "ENGAGEMENT_SVC"\nauthenticator = "SNOWFLAKE_JWT"\n'
            f'private_key_file = "{key}"\nrole = "ENGAGEMENT_ROLE"\nwarehouse = "ENGAGEMENT_WH"\n')


@pytest.fixture
def home(tmp_path: Path) -> Path:
    write_files(tmp_path / "src", {"customers/c.csv": f"{CSV_HEADER}\nC1,Ann,a@x.com,NA,2024-01-01\n"})
    return sfhome(tmp_path, f'[dev]\naccount = "xy12345"\nuser = "ann"\npassword = "{SECRET}"\n')


# -- through the command: one line, exit 2, no secret ------------------------------------------

def test_wrong_connection_name_names_the_known_ones(tmp_path: Path, home: Path) -> None:
    proc = engagement(tmp_path, "run", "--engine", "snowflake", "--connection", "prod", "-s", "src",
                      env={"SNOWFLAKE_HOME": str(home)})
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "'prod'" in err and "dev" in err and "connections.toml" in err
    assert SECRET not in proc.stdout + proc.stderr


def test_missing_credentials_say_what_to_set(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    write_files(tmp_path / "src", {"customers/c.csv": f"{CSV_HEADER}\n"})
    proc = engagement(tmp_path, "run", "--engine", "snowflake", "-s", "src", env={"SNOWFLAKE_HOME": str(empty)})
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1
    for word in ("no Snowflake credentials", "connections.toml", "SNOWFLAKE_ACCOUNT", "--connection"):
        assert word in err


@pytest.mark.parametrize("case", ["missing", "a folder", "no passphrase", "wrong passphrase", "not a key"])
def test_a_bad_private_key_is_one_line_naming_the_file(tmp_path: Path, encrypted_key: Path, case: str) -> None:
    wrong = "wrong-passphrase-do-not-print"
    key, env = encrypted_key, {"PRIVATE_KEY_PASSPHRASE": PASSPHRASE}
    if case == "missing":
        key = tmp_path / "keys" / "gone.p8"
    elif case == "a folder":
        key = tmp_path / "keys"
    elif case == "no passphrase":
        env = {}
    elif case == "wrong passphrase":
        env = {"PRIVATE_KEY_PASSPHRASE": wrong}
    else:
        key.write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
        env = {}
    home = sfhome(tmp_path, key_pair_connection("svc", key))
    write_files(tmp_path / "src", {"customers/c.csv": f"{CSV_HEADER}\n"})
    proc = engagement(tmp_path, "run", "--engine", "snowflake", "--connection", "svc", "-s", "src",
                      env={"SNOWFLAKE_HOME": str(home), **env})
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in proc.stderr, err
    assert str(key) in err and "connection 'svc'" in err
    expected = {"missing": "does not exist", "a folder": "cannot read", "no passphrase": "PRIVATE_KEY_PASSPHRASE",
                "wrong passphrase": "does not decrypt", "not a key": "not a PEM private key"}[case]
    assert expected in err
    logs = "".join(p.read_text() for p in (tmp_path / "logs").glob("*.log"))
    for secret in (PASSPHRASE, wrong):
        assert secret not in proc.stdout + proc.stderr + logs


# -- the configs the connector gets -------------------------------------------------------------

def test_the_default_connection_is_used_without_a_name(tmp_path: Path) -> None:
    home = sfhome(tmp_path, f'[default]\naccount = "xy12345"\nuser = "ann"\npassword = "{SECRET}"\n'
                            '[default.session_parameters]\nQUERY_TAG = "mine"\ndate_input_format = "DD/MM/YYYY"\n')
    configs = configs_in(home)["configs"]
    assert configs["account"] == "xy12345" and configs["user"] == "ann" and configs["password"] == SECRET
    assert "connection_name" not in configs and configs["application"] == "engagement"
    assert configs["session_parameters"] == {"QUERY_TAG": "mine", **SESSION_PARAMETERS}
    assert (configs["database"], configs["schema"]) == ("ENGAGEMENT", "MARKETING")


@pytest.mark.parametrize("where", ["environment", "config.toml"])
def test_the_default_connection_name_is_the_connectors(tmp_path: Path, where: str) -> None:
    connections = ('[default]\naccount = "wrong"\nuser = "x"\npassword = "x"\n'
                   '[svc]\naccount = "right"\nuser = "y"\npassword = "y"\n')
    if where == "environment":
        result = configs_in(sfhome(tmp_path, connections), {"SNOWFLAKE_DEFAULT_CONNECTION_NAME": "svc"})
    else:
        result = configs_in(sfhome(tmp_path, connections, 'default_connection_name = "svc"\n'))
    assert result["configs"]["account"] == "right"


def test_a_default_connection_name_that_is_not_there_is_named(tmp_path: Path) -> None:
    home = sfhome(tmp_path, '[dev]\naccount = "a"\nuser = "u"\npassword = "p"\n', 'default_connection_name = "prod"\n')
    error = configs_in(home)["error"]
    assert "'prod'" in error and "dev" in error and "--connection" in error and "\n" not in error


def test_configs_from_a_connection_name_and_settings(tmp_path: Path) -> None:
    home = sfhome(tmp_path, '[dev]\naccount = "xy12345"\nuser = "ann"\npassword = "p"\n'
                            '[dev.session_parameters]\nQUERY_TAG = "mine"\n'
                            'TIMESTAMP_INPUT_FORMAT = "DD/MM/YYYY HH24:MI"\n')
    configs = configs_in(home, {"SNOWFLAKE_ACCOUNT": "ignored-when-a-name-is-given"}, snowflake_connection="dev",
                         snowflake_warehouse="ENGAGEMENT_WH", snowflake_role="ENGAGEMENT_ROLE")["configs"]
    # The connector merges {**connections["dev"], **configs}: database, schema, ours win.
    assert configs == {"connection_name": "dev", "application": "engagement",
                       "session_parameters": {"QUERY_TAG": "mine", **SESSION_PARAMETERS},
                       "warehouse": "ENGAGEMENT_WH", "role": "ENGAGEMENT_ROLE", "database": "ENGAGEMENT",
                       "schema": "MARKETING"}


@pytest.mark.parametrize("variable", ["PRIVATE_KEY_PASSPHRASE", "SNOWFLAKE_PRIVATE_KEY_FILE_PWD"])
def test_key_pair_connection_gets_the_passphrase_from_the_environment(tmp_path: Path, encrypted_key: Path,
                                                                      variable: str) -> None:
    from snowflake.connector.connection import _get_private_bytes_from_file

    connections = key_pair_connection("svc", encrypted_key)
    configs = configs_in(sfhome(tmp_path, connections), {variable: PASSPHRASE}, snowflake_connection="svc")["configs"]
    assert configs["connection_name"] == "svc" and configs["private_key_file_pwd"] == PASSPHRASE
    # What the connector ends with, and its own key loading accepts it.
    given = {**tomllib.loads(connections)["svc"], **configs}
    assert given["authenticator"] == "SNOWFLAKE_JWT" and given["private_key_file"] == str(encrypted_key)
    assert _get_private_bytes_from_file(given["private_key_file"], given["private_key_file_pwd"])


def test_key_pair_default_connection_carries_the_key_and_passphrase(tmp_path: Path, encrypted_key: Path) -> None:
    home = sfhome(tmp_path, key_pair_connection("default", encrypted_key))
    configs = configs_in(home, {"PRIVATE_KEY_PASSPHRASE": PASSPHRASE})["configs"]
    assert configs["private_key_file"] == str(encrypted_key) and configs["private_key_file_pwd"] == PASSPHRASE
    assert configs["authenticator"] == "SNOWFLAKE_JWT" and "password" not in configs


def test_key_pair_without_a_key_file_says_what_to_add(tmp_path: Path) -> None:
    home = sfhome(tmp_path, '[svc]\naccount = "a"\nuser = "u"\nauthenticator = "SNOWFLAKE_JWT"\n')
    error = configs_in(home, snowflake_connection="svc")["error"]
    assert "private_key_file" in error and "connection 'svc'" in error


# -- environment credentials (no connections.toml involved) ------------------------------------

def test_configs_from_snowflake_environment_variables() -> None:
    env = {"SNOWFLAKE_ACCOUNT": "xy12345", "SNOWFLAKE_USER": "ann", "SNOWFLAKE_PASSWORD": SECRET,
           "SNOWFLAKE_WAREHOUSE": "WH"}
    configs = session_configs(load_settings(engine="snowflake"), environ=env)
    assert configs["account"] == "xy12345" and configs["password"] == SECRET and configs["warehouse"] == "WH"
    assert "connection_name" not in configs and configs["session_parameters"] == SESSION_PARAMETERS


def test_settings_warehouse_and_role_win_over_the_environment() -> None:
    env = {"SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_WAREHOUSE": "FROM_ENV"}
    configs = session_configs(load_settings(engine="snowflake", snowflake_warehouse="FROM_SETTINGS"), environ=env)
    assert configs["warehouse"] == "FROM_SETTINGS"


def test_environment_key_pair_and_authenticator(encrypted_key: Path) -> None:
    env = {"SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_USER": "svc", "SNOWFLAKE_AUTHENTICATOR": "SNOWFLAKE_JWT",
           "SNOWFLAKE_PRIVATE_KEY_FILE": str(encrypted_key), "PRIVATE_KEY_PASSPHRASE": PASSPHRASE}
    settings = load_settings(engine="snowflake")
    assert session_configs(settings, environ=env)["private_key_file_pwd"] == PASSPHRASE
    assert connection_authenticator(settings, environ=env) == ("SNOWFLAKE_JWT", "SNOWFLAKE_* environment")
    browser = {"SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_USER": "ann", "SNOWFLAKE_AUTHENTICATOR": "externalbrowser"}
    assert connection_authenticator(settings, environ=browser)[0] == "EXTERNALBROWSER"
