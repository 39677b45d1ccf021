"""Alert notifications over real transports on loopback: an SMTP server (aiosmtpd) and a fake Slack
webhook endpoint, reached through Airflow connections by the providers' notifiers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from self_learning.notifications import Channel, parse_channels
from self_learning.operators import NotifyAlertsOperator
from support.channels import use_alert_channels

END = datetime(2026, 11, 1, tzinfo=UTC)


def _context(end: datetime) -> dict:
    return {"params": {}, "data_interval_start": end - timedelta(days=1), "data_interval_end": end}


def _raise(store, end: datetime, cause: str, severity: str) -> None:
    store.raise_alert(model="ctr_predictor", alert_type="feature_drift", severity=severity, cause=cause,
                      details={"summary": f"feature {cause!r} drifted"}, window_end=end)


def test_alerts_reach_email_and_slack_once_per_cause_per_cooldown(feedback_db, smtp_inbox, slack_endpoint,
                                                                   monkeypatch):
    smtp_port, mails = smtp_inbox
    use_alert_channels(monkeypatch, smtp_port, slack_endpoint.port,
                       {"type": "slack", "conn_id": "no_such_connection", "min_severity": "critical"})
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
    (payload,) = slack_endpoint.delivered
    assert slack_endpoint.paths == ["/services/T0/B0/x"]
    assert "audience_size" in payload["text"] and "hook_type" in payload["text"] and "cpm" not in payload["text"]

    assert operator.execute(_context(END))["notified"] == 0  # a re-run sends nothing again
    next_day = END + timedelta(days=1)
    _raise(feedback_db, next_day, "audience_size", "critical")  # the same cause, within 7 days
    assert operator.execute(_context(next_day))["due"] == 0
    later = END + timedelta(days=8)
    _raise(feedback_db, later, "audience_size", "critical")
    assert operator.execute(_context(later))["notified"] == 1
    assert len(mails) == 2 and len(slack_endpoint.delivered) == 2


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
