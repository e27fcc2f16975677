"""`engagement notebooks run --engine snowflake` warns once, before anything connects, when the
connection signs in through a browser: every notebook kernel opens a session of its own."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from engagement.config import load_settings
from engagement.notebooks import CHAIN, browser_sign_in_warning
from tests.test_snowflake_session import engagement, sfhome

BROWSER = {"SNOWFLAKE_ACCOUNT": "xy12345", "SNOWFLAKE_USER": "ann", "SNOWFLAKE_AUTHENTICATOR": "externalbrowser"}


def test_browser_sign_in_is_warned_once_in_one_line() -> None:
    warning = browser_sign_in_warning(load_settings(engine="snowflake"), environ=BROWSER)
    assert warning is not None and "\n" not in warning
    assert warning.startswith("warning:") and "externalbrowser" in warning
    assert f"{len(CHAIN) + 2} Snowflake sessions" in warning and "notebook" in warning
    assert "SNOWFLAKE_JWT" in warning and "SERVICE user" in warning


def test_no_warning_for_key_pair_password_or_duckdb(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / "rsa_key.p8").write_bytes(pem)
    key_pair = {"SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_USER": "svc", "SNOWFLAKE_AUTHENTICATOR": "SNOWFLAKE_JWT",
                "SNOWFLAKE_PRIVATE_KEY_FILE": str(tmp_path / "rsa_key.p8")}
    password = {"SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_USER": "ann", "SNOWFLAKE_PASSWORD": "p"}
    snowflake = load_settings(engine="snowflake")
    assert browser_sign_in_warning(snowflake, environ=key_pair) is None
    assert browser_sign_in_warning(snowflake, environ=password) is None
    assert browser_sign_in_warning(load_settings(engine="duckdb"), environ=BROWSER) is None


def test_the_chain_warns_before_anything_connects(tmp_path: Path) -> None:
    # An account nobody can reach: the command must not get as far as trying it. An --output-dir
    # that is a file stops the chain in its settings check, right after the warning, so the
    # warning is shown before any kernel starts or any session opens.
    home = sfhome(tmp_path, '[sso]\naccount = "unreachable-account.invalid"\nuser = "ann"\n'
                            'authenticator = "externalbrowser"\nlogin_timeout = 1\n')
    (tmp_path / "src").mkdir()
    (tmp_path / "runs-file").write_text("")
    proc = engagement(tmp_path, "notebooks", "run", "--engine", "snowflake", "--connection", "sso",
                      "-s", str(tmp_path / "src"), "-o", str(tmp_path / "runs-file"), env={"SNOWFLAKE_HOME": str(home)})
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]  # the progress display ends with a blank line
    assert len(lines) == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("warning: connection 'sso' signs in through the browser") and "SNOWFLAKE_JWT" in lines[0]
    assert lines[1].startswith("error:") and "is a file, not a folder" in lines[1]
    assert not (tmp_path / "runs").exists()
