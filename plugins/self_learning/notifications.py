"""Alert delivery through Airflow notifiers: e-mail (``SmtpNotifier``), Slack (``SlackWebhookNotifier``)
or the task log, each channel with its own severity filter.

Channels come from the Variable ``self_learning_notification_channels``, a JSON list such as::

    [{"type": "smtp", "conn_id": "smtp_default", "to": ["ml-oncall@example.com"], "min_severity": "high"},
     {"type": "slack", "conn_id": "slack_alerts", "min_severity": "medium"}]

Without the Variable, alerts go to the task log. A channel whose connection does not exist is
delivered to the log instead, with a warning naming it. Delivery is at least once: alerts are
marked notified only after every channel took them.

Channel types are a registry: ``register_channel("pager", send_page, needs_connection=True)``
adds one, where ``send_page(channel, message, context)`` sends a ``Message`` (subject, plain text,
HTML) on it; smtp, slack and log are registered below the same way.

This module is imported by the DAG files (the failure callback), so it imports only the task SDK at
the top; the providers are imported when a message is sent.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from .settings import SEVERITIES

if TYPE_CHECKING:  # the DAG files import this module at parse time: the records load when a run fails
    from .core.records import AlertRecord

CHANNELS_VARIABLE = "self_learning_notification_channels"
log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Message:
    """One notification, rendered for every kind of channel."""

    subject: str
    text: str
    html: str


@dataclasses.dataclass(frozen=True)
class ChannelType:
    """How a kind of channel sends, and what a configured channel of that kind must name."""

    name: str
    send: Callable[[Channel, Message, Mapping[str, Any]], None]
    needs_connection: bool = True
    needs_recipients: bool = False


_CHANNEL_TYPES: dict[str, ChannelType] = {}


def register_channel(name: str, send: Callable[[Channel, Message, Mapping[str, Any]], None], *,
                     needs_connection: bool = True, needs_recipients: bool = False) -> None:
    """Make ``{"type": name}`` a valid channel of the Variable; ``send(channel, message, context)``
    delivers one message (raising on failure, so the task retries)."""
    if name in _CHANNEL_TYPES:
        raise ValueError(f"name: channel type {name!r} is registered already")
    _CHANNEL_TYPES[name] = ChannelType(name, send, needs_connection, needs_recipients)


def channel_types() -> tuple[str, ...]:
    """The registered channel types, in registration order."""
    return tuple(_CHANNEL_TYPES)


@dataclasses.dataclass(frozen=True)
class Channel:
    type: str
    conn_id: str | None = None
    to: tuple[str, ...] = ()
    min_severity: str = "low"

    def __post_init__(self):
        kind = _CHANNEL_TYPES.get(self.type)
        if kind is None:
            raise ValueError(f"{CHANNELS_VARIABLE}[].type: one of {', '.join(_CHANNEL_TYPES)}, got {self.type!r}")
        if self.min_severity not in SEVERITIES:
            raise ValueError(f"{CHANNELS_VARIABLE}[].min_severity: one of {', '.join(SEVERITIES)}, "
                             f"got {self.min_severity!r}")
        if kind.needs_recipients and not self.to:
            raise ValueError(f"{CHANNELS_VARIABLE}[].to: an {self.type} channel needs recipients")
        if kind.needs_connection and not self.conn_id:
            raise ValueError(f"{CHANNELS_VARIABLE}[].conn_id: a {self.type} channel needs an Airflow connection")

    def takes(self, severity: str) -> bool:
        return SEVERITIES.index(severity) >= SEVERITIES.index(self.min_severity)

    @property
    def key(self) -> str:
        """The channel's identity in the store's delivery marks: its type, connection and recipients."""
        return ":".join((self.type, self.conn_id or "", ",".join(self.to)))[:512]


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


def render(alerts: Sequence[AlertRecord], title: str) -> tuple[str, str, str]:
    """(subject, plain text, HTML) of a batch of alerts (the store's ``AlertRecord`` s)."""
    worst = alerts[0].severity if alerts else "none"
    subject = f"[{worst}] {title}: {len(alerts)} alert{'s' * (len(alerts) != 1)}"
    lines = [f"{a.severity.upper():8} {a.model} {a.alert_type}: {_summary(a)}" for a in alerts]
    rows = "".join(f"<tr><td>{escape(a.severity)}</td><td>{escape(a.model)}</td>"
                   f"<td>{escape(a.alert_type)}</td><td>{escape(_summary(a))}</td></tr>" for a in alerts)
    html = (f"<h3>{escape(title)}</h3><table border='1' cellpadding='4'><tr><th>severity</th><th>model</th>"
            f"<th>type</th><th>what</th></tr>{rows}</table>")
    return subject, "\n".join([subject, *lines]), html


def _summary(alert: AlertRecord) -> str:
    return (alert.summary or alert.dedupe_key).replace("\n", " ")


def deliver(channel: Channel, subject: str, text: str, html: str, context: Mapping[str, Any]) -> str:
    """Send one message on a channel; returns where it went. A channel whose connection does not
    exist goes to the log instead, with a warning naming it."""
    if _CHANNEL_TYPES[channel.type].needs_connection and not _connection_exists(channel.conn_id):
        log.warning("notification channel %s: connection %r does not exist; delivering to the log", channel.type,
                    channel.conn_id)
        channel = Channel("log")
    kind = _CHANNEL_TYPES[channel.type]
    kind.send(channel, Message(subject, text, html), context)
    return f"{channel.type}:{channel.conn_id}" if kind.needs_connection else channel.type


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
        from .core.records import AlertRecord

        # not a stored alert (id 0): the run failed, there may be no store to write it to
        alert = AlertRecord(id=0, dedupe_key=f"-|dag_failure|{dag_id}|{run_id}", model="-", alert_type="dag_failure",
                            severity="high", status="open",
                            details={"summary": f"{dag_id} run {run_id} failed: {reason}"})
        subject, text, html = render([alert], f"{dag_id} failed")
        for channel in configured_channels():
            if channel.takes("high"):
                deliver(channel, subject, text, html, context)


# -- the channel types ---------------------------------------------------------------------------------


def send_to_log(channel: Channel, message: Message, context: Mapping[str, Any]) -> None:
    log.warning("%s", message.text)


def send_email(channel: Channel, message: Message, context: Mapping[str, Any]) -> None:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    SmtpNotifier(to=list(channel.to), subject=message.subject, html_content=message.html,
                 smtp_conn_id=channel.conn_id).notify(dict(context))


def send_slack(channel: Channel, message: Message, context: Mapping[str, Any]) -> None:
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

    SlackWebhookNotifier(slack_webhook_conn_id=channel.conn_id, text=message.text).notify(dict(context))


register_channel("smtp", send_email, needs_recipients=True)
register_channel("slack", send_slack)
register_channel("log", send_to_log, needs_connection=False)
