"""Real notification endpoints on loopback for the alert tests: an SMTP server (aiosmtpd) and a
Slack incoming-webhook endpoint that can be told to fail, and the Airflow connections and channel
Variable that point the loop at them."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, HTTPServer


@contextlib.contextmanager
def smtp_inbox() -> Iterator[tuple[int, list]]:
    """A real SMTP server on a free loopback port; yields (port, [(recipients, message)])."""
    from aiosmtpd.controller import Controller

    messages: list = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
            return "250 OK"

    with socket.socket() as probe:  # a free port (the controller checks its server by connecting to it)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, messages
    finally:
        controller.stop()


class SlackEndpoint:
    """A Slack incoming-webhook endpoint: answers each POST with the next of ``statuses`` (then 200)
    and keeps every request with the status it got. Use as a context manager."""

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.requests: list[tuple[int, dict]] = []
        self.paths: list[str] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = endpoint.statuses.pop(0) if endpoint.statuses else 200
                endpoint.requests.append((status, payload))
                endpoint.paths.append(self.path)
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"internal_error")

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    def __enter__(self) -> SlackEndpoint:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()

    @property
    def delivered(self) -> list[dict]:
        """The posts Slack accepted (HTTP 200)."""
        return [payload for status, payload in self.requests if status == 200]


def use_alert_channels(monkeypatch, smtp_port: int, slack_port: int, *extra_channels: dict) -> None:
    """Connections ``alert_smtp`` / ``alert_slack`` to the endpoints above and the channel Variable:
    e-mail from severity high, Slack from medium, plus ``extra_channels``."""
    monkeypatch.setenv("AIRFLOW_CONN_ALERT_SMTP", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": smtp_port,
        "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "loop@example.com"}}))
    monkeypatch.setenv("AIRFLOW_CONN_ALERT_SLACK", json.dumps({
        "conn_type": "slackwebhook", "password": f"http://127.0.0.1:{slack_port}/services/T0/B0/x"}))
    monkeypatch.setenv("AIRFLOW_VAR_SELF_LEARNING_NOTIFICATION_CHANNELS", json.dumps([
        {"type": "smtp", "conn_id": "alert_smtp", "to": ["oncall@example.com"], "min_severity": "high"},
        {"type": "slack", "conn_id": "alert_slack", "min_severity": "medium"}, *extra_channels]))
