"""Alert delivery through Airflow notifiers: e-mail (``SmtpNotifier``), Slack (``SlackWebhookNotifier``)
or the task log, each channel with its own severity filter.

Channels come from the Variable ``self_learning_notification_channels``, a JSON list such as::

    [{"type": "smtp", "conn_id": "smtp_default", "to": ["ml-oncall@example.com"], "min_severity": "high"},
     {"type": "slack", "conn_id": "slack_alerts", "min_severity": "medium"}]

Without the Variable, alerts go to the task log. A channel whose connection does not exist is
delivered to the log instead, with a warning naming it. Delivery is at least once: alerts are
marked notified only after every channel took them.

This module is imported by the DAG files (the failure callback), so it imports only the task SDK at
the top; the providers are imported when a message is sent.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from airflow.sdk import BaseNotifier

CHANNELS_VARIABLE = "self_learning_notification_channels"
CHANNEL_TYPES = ("smtp", "slack", "log")
SEVERITIES = ("low", "medium", "high", "critical")
log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Channel:
    type: str
    conn_id: str | None = None
    to: tuple[str, ...] = ()
    min_severity: str = "low"

    def __post_init__(self):
        if self.type not in CHANNEL_TYPES:
            raise ValueError(f"{CHANNELS_VARIABLE}[].type: one of {', '.join(CHANNEL_TYPES)}, got {self.type!r}")
        if self.min_severity not in SEVERITIES:
            raise ValueError(f"{CHANNELS_VARIABLE}[].min_severity: one of {', '.join(SEVERITIES)}, "
                             f"got {self.min_severity!r}")
        if self.type == "smtp" and not self.to:
            raise ValueError(f"{CHANNELS_VARIABLE}[].to: an smtp channel needs recipients")
        if self.type != "log" and not self.conn_id:
            raise ValueError(f"{CHANNELS_VARIABLE}[].conn_id: a {self.type} channel needs an Airflow connection")

    def takes(self, severity: str) -> bool:
        return SEVERITIES.index(severity) >= SEVERITIES.index(self.min_severity)


def parse_channels(value: str | Sequence[Mapping[str, Any]] | None) -> list[Channel]:
    """Channels from the Variable's JSON (None: the task log only)."""
    if value in (None, ""):
        return [Channel("log")]
    items = json.loads(value) if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise ValueError(f"{CHANNELS_VARIABLE}: a JSON list of channel objects, got {value!r}")
    channels = []
    for item in items:
        unknown = set(item) - {f.name for f in dataclasses.fields(Channel)}
        if unknown:
            raise ValueError(f"{CHANNELS_VARIABLE}[]: unknown keys {sorted(unknown)}")
        to = item.get("to") or ()
        channels.append(Channel(**{**item, "to": (to,) if isinstance(to, str) else tuple(to)}))
    return channels


def configured_channels() -> list[Channel]:
    from airflow.sdk import Variable

    return parse_channels(Variable.get(CHANNELS_VARIABLE, default=None))


def render(alerts: Sequence[Mapping[str, Any]], title: str) -> tuple[str, str, str]:
    """(subject, plain text, HTML) of a batch of alerts."""
    worst = alerts[0]["severity"] if alerts else "none"
    subject = f"[{worst}] {title}: {len(alerts)} alert{'s' * (len(alerts) != 1)}"
    lines = [f"{a['severity'].upper():8} {a['model']} {a['alert_type']}: {_summary(a)}" for a in alerts]
    rows = "".join(f"<tr><td>{escape(a['severity'])}</td><td>{escape(a['model'])}</td>"
                   f"<td>{escape(a['alert_type'])}</td><td>{escape(_summary(a))}</td></tr>" for a in alerts)
    html = (f"<h3>{escape(title)}</h3><table border='1' cellpadding='4'><tr><th>severity</th><th>model</th>"
            f"<th>type</th><th>what</th></tr>{rows}</table>")
    return subject, "\n".join([subject, *lines]), html


def _summary(alert: Mapping[str, Any]) -> str:
    details = alert.get("details") or {}
    return str(details.get("summary") or alert.get("dedupe_key", "")).replace("\n", " ")


def deliver(channel: Channel, subject: str, text: str, html: str, context: Mapping[str, Any]) -> str:
    """Send one message on a channel; returns where it went."""
    if channel.type != "log" and not _connection_exists(channel.conn_id):
        log.warning("notification channel %s: connection %r does not exist; delivering to the log", channel.type,
                    channel.conn_id)
        channel = Channel("log")
    if channel.type == "log":
        log.warning("%s", text)
        return "log"
    if channel.type == "smtp":
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        notifier = SmtpNotifier(to=list(channel.to), subject=subject, html_content=html, smtp_conn_id=channel.conn_id)
    else:
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        notifier = SlackWebhookNotifier(slack_webhook_conn_id=channel.conn_id, text=text)
    notifier.notify(dict(context))
    return f"{channel.type}:{channel.conn_id}"


def _connection_exists(conn_id: str | None) -> bool:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return False
    return True


class RunFailureNotifier(BaseNotifier):
    """DAG failure callback: tells every channel (severity ``high``) which run and tasks failed."""

    def notify(self, context):
        dag_run = context.get("dag_run")
        run_id = getattr(dag_run, "run_id", "?")
        dag_id = getattr(dag_run, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
        reason = context.get("reason") or "a task failed"
        alert = {"severity": "high", "model": "-", "alert_type": "dag_failure",
                 "details": {"summary": f"{dag_id} run {run_id} failed: {reason}"}}
        subject, text, html = render([alert], f"{dag_id} failed")
        for channel in configured_channels():
            if channel.takes("high"):
                deliver(channel, subject, text, html, context)
