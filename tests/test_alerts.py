"""Alerts against real servers on 127.0.0.1: a Slack-style webhook receiver (http.server) and an
SMTP server with STARTTLS and login (aiosmtpd). The pipeline runs as a user runs it (a real
``engagement`` process); the tests read what the servers received."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, quote_plus, urlsplit

import duckdb
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from engagement.model import TABLES
from tests.conftest import write_files
from tests.test_cli import GOOD, cli

TOKEN = "T0000/B0000/s3cr3t-w3bh00k-t0k3n"
PASSWORD = "pa55-s3cr3t-smtp"
# 1 of 3 customer records has no customer_id: raw_customer_id_not_null and customers_rejected FAIL
FAILING = {**GOOD, "customers/c.csv": GOOD["customers/c.csv"] + ",NoKey,n@x.com,NA,2024-01-01\n"}
# dim_customer.email of C2 is not e-mail-shaped: a WARN-only check file makes the run WARN
WARN_CHECKS = """checks:
  - {name: emails, type: pattern, table: dim_customer, column: email, pattern: '^[^@]+@[^@]+[.][a-z]+$', warn: 0}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """A webhook receiver: records every POST and answers with ``status``."""

    def __init__(self, status: int = 200, reason: str | None = None) -> None:
        self.status, self.reason, self.posts = status, reason, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((self.path, json.loads(body)))
                self.send_response(receiver.status, receiver.reason)
                self.end_headers()
                self.wfile.write(b"ok" if receiver.status == 200 else b"no")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/{TOKEN}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (what the client trusts through SSL_CERT_FILE) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class Mailbox:
    """aiosmtpd handler: keeps each message with the login that sent it and whether TLS was on."""

    def __init__(self) -> None:
        self.messages: list[dict] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append({"rcpt": envelope.rcpt_tos, "login": session.auth_data,
                              "tls": session.ssl is not None, "message": message_from_bytes(envelope.content)})
        return "250 OK"


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[tuple[Mailbox, int, Path]]:
    import ssl

    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def authenticate(server, session, envelope, mechanism, data) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"alerts", PASSWORD.encode())
        # handled=False: aiosmtpd itself answers a refusal with 535
        return AuthResult(success=ok, auth_data=data.login if ok else None, handled=False)

    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
                            authenticator=authenticate, auth_require_tls=True)
    controller.start()
    yield mailbox, port, cert
    controller.stop()


def _run(tmp_path: Path, files: dict, env: dict[str, str], *extra: str) -> tuple[int, dict]:
    write_files(tmp_path / "src", files)
    proc = cli(tmp_path, "run", "--source", "src", "--warehouse", "w.duckdb", "--json", *extra, env=env)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _alert_rows(tmp_path: Path, run_id: str) -> list[tuple]:
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        return con.execute("SELECT status, error_message FROM ingestion_logs WHERE run_id = ? AND step = 'alert'",
                           [run_id]).fetchall()


def test_slack_gets_one_message_naming_every_check_that_did_not_pass(tmp_path: Path, webhook: Receiver) -> None:
    env = {"ENGAGEMENT_SLACK_WEBHOOK_URL": webhook.url, "ENGAGEMENT_DASHBOARD_URL": "http://127.0.0.1:8501"}
    code, doc = _run(tmp_path, FAILING, env)
    assert code == 1  # the check's exit code, alert or not
    assert len(webhook.posts) == 1
    path, body = webhook.posts[0]
    assert path == f"/services/{TOKEN}"
    text = body["text"]
    assert doc["run_id"] in text and "2 checks FAILED" in text
    not_passed = [c for c in doc["checks"] if c["status"] != "PASSED"]
    assert {c["check_name"] for c in not_passed} >= {"raw_customer_id_not_null", "customers_rejected"}
    for c in not_passed:  # each with its metric and thresholds (the check's message)
        assert f"{c['status']} {c['check_name']}" in text and c["message"] in text
    assert ("raw_customer_demographics.customer_id: 1 null or empty values of 3 rows (warn: > 0, fail: > 5%)"
            in text)
    assert "dashboard: http://127.0.0.1:8501" in text and "logs/engagement.log" in text
    assert doc["alerts"] == [{"channel": "slack", "delivered": True, "attempts": 1, "error": None}]
    assert _alert_rows(tmp_path, doc["run_id"]) == [("SUCCEEDED", None)]


def test_email_goes_over_starttls_with_login(tmp_path: Path, smtp: tuple[Mailbox, int, Path]) -> None:
    mailbox, port, cert = smtp
    env = {"ENGAGEMENT_SMTP_HOST": "127.0.0.1", "ENGAGEMENT_SMTP_PORT": str(port), "ENGAGEMENT_SMTP_USER": "alerts",
           "ENGAGEMENT_SMTP_PASSWORD": PASSWORD, "ENGAGEMENT_SMTP_FROM": "pipeline@example.com",
           "ENGAGEMENT_SMTP_TO": "data-team@example.com, oncall@example.com", "SSL_CERT_FILE": str(cert)}
    code, doc = _run(tmp_path, FAILING, env)
    assert code == 1 and doc["alerts"] == [{"channel": "email", "delivered": True, "attempts": 1, "error": None}]
    assert len(mailbox.messages) == 1
    got = mailbox.messages[0]
    assert got["tls"] and got["login"] == b"alerts"
    assert got["rcpt"] == ["data-team@example.com", "oncall@example.com"]
    message = got["message"]
    assert message["Subject"] == f"[engagement] 2 checks FAILED in run {doc['run_id']}"
    assert message["From"] == "pipeline@example.com"
    body = message.get_payload(decode=True).decode()
    assert "FAILED raw_customer_id_not_null" in body and "FAILED customers_rejected" in body


def test_the_minimum_severity_decides_whether_a_warn_alerts(tmp_path: Path, webhook: Receiver) -> None:
    (tmp_path / "warn.yml").write_text(WARN_CHECKS)
    files = {**GOOD, "customers/c.csv": GOOD["customers/c.csv"].replace("bob@x.com", "bob@x")}
    env = {"ENGAGEMENT_SLACK_WEBHOOK_URL": webhook.url}
    code, doc = _run(tmp_path, files, env, "--checks", "warn.yml")
    assert code == 0 and doc["checks"][0]["status"] == "WARN"
    assert webhook.posts == [] and doc["alerts"] == []  # the default: alert on FAILED only
    code, doc = _run(tmp_path, files, {**env, "ENGAGEMENT_ALERT_MIN_SEVERITY": "warn"}, "--checks", "warn.yml")
    assert code == 0 and len(webhook.posts) == 1 and "1 check WARN" in webhook.posts[0][1]["text"]
    # a clean run never alerts
    code, doc = _run(tmp_path, GOOD, {**env, "ENGAGEMENT_ALERT_MIN_SEVERITY": "warn"})
    assert code == 0 and len(webhook.posts) == 1


def test_a_step_error_alerts(tmp_path: Path, webhook: Receiver) -> None:
    (tmp_path / "src").mkdir()
    proc = cli(tmp_path, "run", "--source", "src", "--warehouse", "w.duckdb", "--json",
               env={"ENGAGEMENT_SLACK_WEBHOOK_URL": webhook.url})
    assert proc.returncode == 3
    assert len(webhook.posts) == 1
    text = webhook.posts[0][1]["text"]
    assert "run ERROR" in text and "step error: no input files" in text


def test_servers_that_are_down_are_retried_then_logged_never_failing_the_run(tmp_path: Path) -> None:
    broken = Receiver(status=500)
    try:
        env = {"ENGAGEMENT_SLACK_WEBHOOK_URL": broken.url, "ENGAGEMENT_ALERT_ATTEMPTS": "2",
               "ENGAGEMENT_SMTP_HOST": "127.0.0.1", "ENGAGEMENT_SMTP_PORT": str(free_port()),
               "ENGAGEMENT_SMTP_TO": "x@example.com", "ENGAGEMENT_SMTP_USER": "alerts",
               "ENGAGEMENT_SMTP_PASSWORD": PASSWORD}
        code, doc = _run(tmp_path, FAILING, env)
    finally:
        broken.close()
    assert code == 1  # as without alerts: the FAILED check decides
    assert doc["status"] == "SUCCEEDED"
    assert len(broken.posts) == 2  # bounded retries
    alerts = {a["channel"]: a for a in doc["alerts"]}
    assert alerts["slack"] == {"channel": "slack", "delivered": False, "attempts": 2,
                               "error": "HTTP 500 Internal Server Error"}
    assert not alerts["email"]["delivered"] and "cannot reach" not in alerts["email"]["error"]
    assert "ConnectionRefusedError" in alerts["email"]["error"]
    (status, message), = _alert_rows(tmp_path, doc["run_id"])
    assert status == "ERROR" and "slack: HTTP 500" in message and "email: ConnectionRefusedError" in message
    log = (tmp_path / "logs" / "engagement.log").read_text()
    assert "alert by slack failed (attempt 2 of 2)" in log
    # a terminal run says so in its summary
    write_files(tmp_path / "src", FAILING)
    shown = cli(tmp_path, "run", "--source", "src", "--warehouse", "w.duckdb",
                env={**env, "ENGAGEMENT_ALERT_ATTEMPTS": "1"})
    assert shown.returncode == 1 and "alert by slack: not delivered after 1 attempts" in shown.stdout


def test_secrets_never_reach_logs_tables_or_output(tmp_path: Path, smtp: tuple[Mailbox, int, Path]) -> None:
    mailbox, port, cert = smtp
    receiver = Receiver(status=403)
    try:
        env = {"ENGAGEMENT_SLACK_WEBHOOK_URL": receiver.url, "ENGAGEMENT_ALERT_ATTEMPTS": "1",
               "ENGAGEMENT_SMTP_HOST": "127.0.0.1", "ENGAGEMENT_SMTP_PORT": str(port), "ENGAGEMENT_SMTP_USER": "alerts",
               "ENGAGEMENT_SMTP_PASSWORD": PASSWORD + "-wrong", "ENGAGEMENT_SMTP_TO": "x@example.com",
               "SSL_CERT_FILE": str(cert), "ENGAGEMENT_LOG_LEVEL": "DEBUG"}
        write_files(tmp_path / "src", FAILING)
        proc = cli(tmp_path, "run", "--source", "src", "--warehouse", "w.duckdb", env=env)
        as_json = cli(tmp_path, "run", "--source", "src", "--warehouse", "w.duckdb", "--json", env=env)
    finally:
        receiver.close()
    assert proc.returncode == as_json.returncode == 1
    assert mailbox.messages == []  # the wrong password was refused (over TLS)
    assert "SMTPAuthenticationError" in json.loads(as_json.stdout)["alerts"][1]["error"]
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        tables = "\n".join(str(con.execute(f"SELECT * FROM {t.name}").fetchall()) for t in TABLES)
    texts = {"stdout": proc.stdout + as_json.stdout, "stderr": proc.stderr + as_json.stderr, "tables": tables,
             "log": (tmp_path / "logs" / "engagement.log").read_text()}
    for where, text in texts.items():
        for secret in (TOKEN, "s3cr3t-w3bh00k-t0k3n", PASSWORD):
            assert secret not in text, where


def test_a_webhook_echoing_its_token_in_any_form_is_scrubbed(tmp_path: Path) -> None:
    segment = TOKEN.rsplit("/", 1)[-1]
    receiver = Receiver(status=403, reason="")
    url = receiver.url + "?key=q5ecr3t-qu3ry-v4lu3"
    path = urlsplit(url).path
    receiver.reason = (f"bad token {segment} encoded {quote(path, safe='')} plus {quote_plus(TOKEN)} "
                       f"query q5ecr3t-qu3ry-v4lu3 url {url}")
    try:
        env = {"ENGAGEMENT_SLACK_WEBHOOK_URL": url, "ENGAGEMENT_ALERT_ATTEMPTS": "1"}
        code, doc = _run(tmp_path, FAILING, env)
    finally:
        receiver.close()
    assert code == 1
    error = doc["alerts"][0]["error"]
    assert error == "HTTP 403 bad token *** encoded *** plus *** query *** url ***"
    (_, message), = _alert_rows(tmp_path, doc["run_id"])
    texts = {"json": json.dumps(doc), "table": message, "log": (tmp_path / "logs" / "engagement.log").read_text()}
    for where, text in texts.items():
        for secret in (segment, quote(path, safe=""), quote_plus(TOKEN), "q5ecr3t-qu3ry-v4lu3", path):
            assert secret not in text, (where, secret)


def test_a_bad_severity_is_a_one_line_config_error(tmp_path: Path) -> None:
    write_files(tmp_path / "src", GOOD)
    proc = cli(tmp_path, "run", "--source", "src", env={"ENGAGEMENT_ALERT_MIN_SEVERITY": "sometimes"})
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "ENGAGEMENT_ALERT_MIN_SEVERITY" in err and "warn or fail" in err
