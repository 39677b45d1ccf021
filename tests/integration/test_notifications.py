"""Alert notifications over real transports on loopback: an SMTP server (aiosmtpd) and a fake Slack
webhook endpoint, reached through Airflow connections by the providers' notifiers."""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from self_learning.notifications import Channel, parse_channels
from self_learning.operators import NotifyAlertsOperator

END = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def smtp_server():
    from aiosmtpd.controller import Controller

    class Inbox:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
            return "250 OK"

    inbox = Inbox()
    with socket.socket() as probe:  # a free port (the controller checks its server by connecting to it)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox.messages
    finally:
        controller.stop()


@pytest.fixture
def slack_webhook():
    posts = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            posts.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], posts
    finally:
        server.shutdown()


def _context(end: datetime) -> dict:
    return {"params": {}, "data_interval_start": end - timedelta(days=1), "data_interval_end": end}


def _raise(store, end: datetime, cause: str, severity: str) -> None:
    store.raise_alert(model="ctr_predictor", alert_type="feature_drift", severity=severity, cause=cause,
                      details={"summary": f"feature {cause!r} drifted"}, window_end=end)


def test_alerts_reach_email_and_slack_once_per_cause_per_cooldown(feedback_db, smtp_server, slack_webhook,
                                                                   monkeypatch):
    smtp_port, mails = smtp_server
    slack_port, posts = slack_webhook
    monkeypatch.setenv("AIRFLOW_CONN_ALERT_SMTP", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": smtp_port,
        "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "loop@example.com"}}))
    monkeypatch.setenv("AIRFLOW_CONN_ALERT_SLACK", json.dumps({
        "conn_type": "slackwebhook", "password": f"http://127.0.0.1:{slack_port}/services/T0/B0/x"}))
    monkeypatch.setenv("AIRFLOW_VAR_SELF_LEARNING_NOTIFICATION_CHANNELS", json.dumps([
        {"type": "smtp", "conn_id": "alert_smtp", "to": ["oncall@example.com"], "min_severity": "high"},
        {"type": "slack", "conn_id": "alert_slack", "min_severity": "medium"},
        {"type": "slack", "conn_id": "no_such_connection", "min_severity": "critical"}]))
    operator = NotifyAlertsOperator(task_id="notify_alerts")
    _raise(feedback_db, END, "audience_size", "critical")
    _raise(feedback_db, END, "hook_type", "medium")
    _raise(feedback_db, END, "cpm", "low")

    summary = operator.execute(_context(END))
    assert (summary["due"], summary["notified"]) == (3, 2)  # nothing takes "low"
    assert [s["channel"] for s in summary["sent"]] == ["smtp:alert_smtp", "slack:alert_slack", "log"]
    ((recipients, mail),) = mails
    assert recipients == ["oncall@example.com"] and mail["Subject"] == (
        "[critical] self-learning alerts, window ending 2026-11-01: 1 alert")
    body = mail.get_payload()[0].get_payload(decode=True).decode()
    assert "audience_size" in body and "hook_type" not in body
    ((path, payload),) = posts
    assert path == "/services/T0/B0/x"
    assert "audience_size" in payload["text"] and "hook_type" in payload["text"] and "cpm" not in payload["text"]

    assert operator.execute(_context(END))["notified"] == 0  # a re-run sends nothing again
    next_day = END + timedelta(days=1)
    _raise(feedback_db, next_day, "audience_size", "critical")  # the same cause, within 7 days
    assert operator.execute(_context(next_day))["due"] == 0
    later = END + timedelta(days=8)
    _raise(feedback_db, later, "audience_size", "critical")
    assert operator.execute(_context(later))["notified"] == 1
    assert len(mails) == 2 and len(posts) == 2


def test_alert_lifecycle_and_acknowledged_alerts_are_not_notified(feedback_db):
    _raise(feedback_db, END, "audience_size", "high")
    (alert,) = feedback_db.check_alerts(until=END)
    assert feedback_db.set_alert_status(alert["id"], "acknowledged")["status"] == "acknowledged"
    assert feedback_db.alerts_to_notify(until=END) == []
    assert feedback_db.set_alert_status(alert["id"], "resolved")["status"] == "resolved"
    with pytest.raises(ValueError, match="resolved can become nothing"):
        feedback_db.set_alert_status(alert["id"], "open")
    with pytest.raises(KeyError, match="alert_id"):
        feedback_db.set_alert_status(10_000, "resolved")


def test_channels_are_validated_naming_the_field():
    assert parse_channels(None) == [Channel("log")]
    assert parse_channels('[{"type": "smtp", "conn_id": "c", "to": "a@b.c"}]')[0].to == ("a@b.c",)
    for value, match in (('{"type": "log"}', "a JSON list"), ('[{"type": "pager"}]', "type"),
                         ('[{"type": "smtp", "conn_id": "c"}]', "to"), ('[{"type": "slack"}]', "conn_id"),
                         ('[{"type": "log", "min_severity": "huge"}]', "min_severity"),
                         ('[{"type": "log", "url": "x"}]', "unknown keys")):
        with pytest.raises(ValueError, match=match):
            parse_channels(value)
