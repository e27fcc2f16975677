"""What the real Snowpark client and connector send to Snowflake at login, caught on loopback.

A tiny HTTP server on 127.0.0.1 plays Snowflake's login endpoint and refuses every login; the
``engagement`` command runs unchanged in a fresh process against a connections.toml pointing
at it (host, port, protocol = "http"). So the connector's own code builds the login request:
the connection it chose, the session parameters, the key-pair JWT. Nothing leaves the machine.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from engagement.engines.snowflake_session import SESSION_PARAMETERS
from tests.conftest import CSV_HEADER, write_files
from tests.test_snowflake_session import PASSPHRASE, SECRET, engagement, sfhome

REFUSAL = {"success": False, "code": "390100", "message": "Incorrect username or password was specified.", "data": None}


class FakeLogin(ThreadingHTTPServer):
    """Records each request's path and JSON body; answers every one with a refused login."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, dict]] = []

    def logins(self) -> list[tuple[str, dict]]:
        return [(path, body["data"]) for path, body in self.requests if path.startswith("/session/v1/login-request")]


class _Handler(BaseHTTPRequestHandler):
    server: FakeLogin

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        self.server.requests.append((self.path, json.loads(raw or b"{}")))
        out = json.dumps(REFUSAL).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def snowflake() -> Iterator[FakeLogin]:
    server = FakeLogin()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _loopback(server: FakeLogin) -> str:
    return f'host = "127.0.0.1"\nport = {server.server_address[1]}\nprotocol = "http"\nlogin_timeout = 10\n'


def _source(tmp_path: Path) -> None:
    write_files(tmp_path / "src", {"customers/c.csv": f"{CSV_HEADER}\nC1,Ann,a@x.com,NA,2024-01-01\n"})


def test_without_connection_the_default_connection_logs_in(tmp_path: Path, snowflake: FakeLogin) -> None:
    home = sfhome(tmp_path, f'[default]\naccount = "xy12345"\nuser = "ann"\npassword = "{SECRET}"\n'
                            f'{_loopback(snowflake)}[default.session_parameters]\nQUERY_TAG = "mine"\n')
    _source(tmp_path)
    proc = engagement(tmp_path, "run", "--engine", "snowflake", "-s", "src", env={"SNOWFLAKE_HOME": str(home)})
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "cannot connect to Snowflake" in err and "default connection" in err
    assert SECRET not in proc.stdout + proc.stderr
    (path, login), *_ = snowflake.logins()
    assert "databaseName=ENGAGEMENT" in path and "schemaName=MARKETING" in path
    assert (login["ACCOUNT_NAME"], login["LOGIN_NAME"]) == ("xy12345", "ann")
    assert login["SESSION_PARAMETERS"].items() >= {"QUERY_TAG": "mine", **SESSION_PARAMETERS}.items()


def test_a_key_pair_service_user_signs_a_jwt_with_its_key(tmp_path: Path, snowflake: FakeLogin) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "rsa_key.p8"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.BestAvailableEncryption(PASSPHRASE.encode())))
    home = sfhome(tmp_path, f'[svc]\naccount = "xy12345"\nuser = "ENGAGEMENT_SVC"\nauthenticator = "SNOWFLAKE_JWT"\n'
                            f'private_key_file = "{key_file}"\n{_loopback(snowflake)}')
    _source(tmp_path)
    proc = engagement(tmp_path, "run", "--engine", "snowflake", "--connection", "svc", "-s", "src",
                      env={"SNOWFLAKE_HOME": str(home), "PRIVATE_KEY_PASSPHRASE": PASSPHRASE})
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "connection 'svc'" in proc.stderr
    assert PASSPHRASE not in proc.stdout + proc.stderr
    (_, login), *_ = snowflake.logins()
    assert login["AUTHENTICATOR"] == "SNOWFLAKE_JWT"
    assert login["SESSION_PARAMETERS"].items() >= SESSION_PARAMETERS.items()
    # The token is signed by our key, for our user, naming the key's fingerprint as Snowflake expects.
    claims = jwt.decode(login["TOKEN"], key.public_key(), algorithms=["RS256"])
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    fingerprint = base64.b64encode(hashlib.sha256(der).digest()).decode()
    assert claims["iss"] == f"XY12345.ENGAGEMENT_SVC.SHA256:{fingerprint}" and claims["sub"] == "XY12345.ENGAGEMENT_SVC"
