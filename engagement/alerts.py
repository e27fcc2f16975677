"""Alerts: at most one message per run, to a Slack incoming webhook and/or by e-mail.

A run alerts when a step errored, or when its worst check reaches
``ENGAGEMENT_ALERT_MIN_SEVERITY`` (``fail``: FAILED; ``warn``: WARN or FAILED).
The message names every check that did not pass, with its metric and
thresholds, the run id, and where to look. Delivery is retried a bounded number
of times with backoff; a channel that stays down is logged and recorded in
``ingestion_logs`` (step ``alert``) but never changes the run's outcome or exit
code. Secrets (the webhook URL, the SMTP password) never reach a message, a log
line or a table: errors are scrubbed of them before they are kept.
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

from pydantic import SecretStr

from engagement.config import Settings
from engagement.results import CheckStatus, Delivery, RunResult, StepStatus

log = logging.getLogger("engagement.alerts")

TIMEOUT = 10.0  # seconds per delivery attempt
BACKOFF = 0.5  # seconds before the 2nd attempt, doubled for each next one
SEVERITY = {"warn": CheckStatus.WARN, "fail": CheckStatus.FAILED}


@dataclass(frozen=True)
class Alert:
    """One run's message: a subject line and a plain-text body (Slack renders it as mrkdwn)."""

    subject: str
    body: str


@dataclass(frozen=True)
class Links:
    """Where the alert tells people to look."""

    log_file: str | None = None
    notebooks: str | None = None  # the run's executed notebooks (folder or file)
    dashboard_url: str | None = None
    extra: Sequence[str] = field(default_factory=tuple)


def should_alert(result: RunResult, min_severity: str) -> bool:
    """True when a step errored, or the worst check reaches ``min_severity`` (``warn`` or ``fail``)."""
    if result.status is StepStatus.ERROR:
        return True
    worst = result.worst_check
    return worst is not None and worst.rank >= SEVERITY[min_severity].rank


def compose(result: RunResult, links: Links) -> Alert:
    """The message: the outcome, every check that did not pass (metric and thresholds), where to look."""
    bad = [c for c in result.checks if c.status is not CheckStatus.PASSED]
    counts = {s: sum(c.status is s for c in bad) for s in (CheckStatus.ERROR, CheckStatus.FAILED, CheckStatus.WARN)}
    if result.status is StepStatus.ERROR:
        headline = "run ERROR"
    else:
        headline = ", ".join(f"{n} check{'s' if n > 1 else ''} {s.value}" for s, n in counts.items() if n)
    subject = f"[engagement] {headline} in run {result.run_id}"
    lines = [f"*engagement: {headline}*",
             f"run `{result.run_id}` on {result.engine}, source {result.source}, warehouse {result.warehouse}"]
    if result.error:
        lines.append(f"step error: {result.error}")
    if bad:
        lines.append("")
        lines.append("Checks that did not pass:")
        for c in sorted(bad, key=lambda c: -c.status.rank):
            owner = f" (owner: {c.owner})" if c.owner else ""
            sample = f"; e.g. {', '.join(c.failing_sample)}" if c.failing_sample else ""
            lines.append(f"• {c.status.value} {c.check_name} [{c.dimension}]{owner}: {c.message}{sample}")
    lines.append("")
    lines.append("Where to look:")
    where = [("dashboard", links.dashboard_url), ("executed notebooks", links.notebooks), ("log", links.log_file)]
    lines += [f"• {label}: {value}" for label, value in where if value]
    lines += [f"• {extra}" for extra in links.extra]
    lines.append(f"• tables: dq_check_logs and ingestion_logs where run_id = '{result.run_id}'")
    return Alert(subject, "\n".join(lines))


MIN_SECRET = 8  # a path segment or query value this long may be a token; shorter ones are words like "services"


def _forms(secret: str) -> set[str]:
    """Every form in which ``secret`` may come back in an error text: whole, each part of it a token may be
    (path, runs of path segments, query values), and each of those URL-encoded; parts shorter than
    MIN_SECRET are left, as words such as "services" are no secret."""
    parts = {secret}
    url = urlsplit(secret)
    if url.scheme and url.netloc:
        parts.add(url.path)
        segments = url.path.split("/")
        # each run of segments: "/services/T0/B0/tok" may come back as "T0/B0/tok" or "tok"
        parts.update("/".join(segments[i:j]) for i in range(len(segments)) for j in range(i + 1, len(segments) + 1))
        parts.update(value for _, value in parse_qsl(url.query) if len(value) >= MIN_SECRET)
        parts.discard("")
    forms = set()
    for part in parts:
        forms.update({part, quote(part, safe=""), quote(part), quote_plus(part)})
    return {f for f in forms if len(f) >= MIN_SECRET or f == secret}


class _Scrubber:
    """Removes secrets, in every form they may be echoed in, from text before it is logged or stored."""

    def __init__(self, secrets: Sequence[str | None]) -> None:
        forms = set().union(*(_forms(s) for s in secrets if s))
        self.secrets = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def _post_slack(url: str, alert: Alert) -> None:
    body = json.dumps({"text": alert.body}).encode("utf-8")
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        if response.status >= 300:
            raise OSError(f"HTTP {response.status}")


def _send_email(settings: Settings, alert: Alert) -> None:
    host = settings.smtp_host or ""
    message = EmailMessage()
    message["Subject"] = alert.subject
    message["From"] = settings.smtp_from or settings.smtp_user or f"engagement@{host}"
    message["To"] = ", ".join(_recipients(settings))
    message.set_content(alert.body.replace("*", ""))
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    context = ssl.create_default_context()
    if settings.smtp_port == 465:
        server: smtplib.SMTP = smtplib.SMTP_SSL(host, settings.smtp_port, timeout=TIMEOUT, context=context)
    else:
        server = smtplib.SMTP(host, settings.smtp_port, timeout=TIMEOUT)
    with server:
        server.ehlo()
        if not isinstance(server, smtplib.SMTP_SSL):
            if server.has_extn("starttls"):
                server.starttls(context=context)
                server.ehlo()
            elif settings.smtp_user:
                raise OSError(f"{host}:{settings.smtp_port} offers no STARTTLS; the password is not sent in clear "
                              "(use port 465, or a server that offers STARTTLS)")
        if settings.smtp_user:
            server.login(settings.smtp_user, password or "")
        server.send_message(message)


def _recipients(settings: Settings) -> list[str]:
    return [a.strip() for a in (settings.smtp_to or "").split(",") if a.strip()]


def channels(settings: Settings) -> dict[str, Callable[[Alert], None]]:
    """The configured channels, by name, each a function that sends one alert (or raises)."""
    out: dict[str, Callable[[Alert], None]] = {}
    if settings.slack_webhook_url:
        url = settings.slack_webhook_url.get_secret_value()
        out["slack"] = lambda alert: _post_slack(url, alert)
    if settings.smtp_host and _recipients(settings):
        out["email"] = lambda alert: _send_email(settings, alert)
    return out


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot reach the server: {exc.reason}"
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"


def deliver(alert: Alert, send: Callable[[Alert], None], channel: str, attempts: int,
            scrub: Callable[[str], str] = str) -> Delivery:
    """Send ``alert`` with ``send``, retrying up to ``attempts`` times with backoff; never raises."""
    error = None
    for attempt in range(1, attempts + 1):
        try:
            send(alert)
            log.info("alert sent by %s (attempt %d)", channel, attempt)
            return Delivery(channel, True, attempt)
        except Exception as exc:  # any failure of a channel is logged, never raised into the run
            error = scrub(_describe(exc))
            log.warning("alert by %s failed (attempt %d of %d): %s", channel, attempt, attempts, error)
            if attempt < attempts:
                time.sleep(BACKOFF * 2 ** (attempt - 1))
    return Delivery(channel, False, attempts, error)


def send_alert(settings: Settings, result: RunResult, links: Links) -> list[Delivery]:
    """Alert on ``result`` when it calls for it, on every configured channel; what became of it."""
    if not should_alert(result, settings.alert_min_severity):
        return []
    targets = channels(settings)
    if not targets:
        log.info("run %s calls for an alert but no channel is configured", result.run_id)
        return []
    # every secret setting, not a list to keep in step: a message quoting the webhook URL keeps only the host
    secrets = [value.get_secret_value() for value in vars(settings).values() if isinstance(value, SecretStr)]
    scrub = _Scrubber(secrets)
    alert = compose(result, links)
    return [deliver(alert, send, name, settings.alert_attempts, scrub) for name, send in targets.items()]
