"""The channel registry: a new kind of channel is one function plus one registration."""

from __future__ import annotations

import pytest
from self_learning import notifications
from self_learning.core.records import AlertRecord
from self_learning.notifications import Channel, Message, channel_types, deliver, parse_channels, register_channel


@pytest.fixture
def pager():
    """A 'pager' channel type that records what it was sent; unregistered afterwards."""
    sent: list[tuple[Channel, Message]] = []
    register_channel("pager", lambda channel, message, context: sent.append((channel, message)),
                     needs_connection=False, needs_recipients=True)
    yield sent
    notifications._CHANNEL_TYPES.pop("pager")


def test_smtp_slack_and_log_are_registered():
    assert channel_types() == ("smtp", "slack", "log")


def test_a_registered_channel_is_configured_validated_and_delivered_to(pager):
    channel, = parse_channels('[{"type": "pager", "to": "+4912345", "min_severity": "high"}]')
    assert channel == Channel("pager", to=("+4912345",), min_severity="high")
    assert channel.takes("critical") and not channel.takes("medium")
    with pytest.raises(ValueError, match=r"\[\]\.to: an pager channel needs recipients"):
        parse_channels('[{"type": "pager"}]')

    subject, text, html = notifications.render(
        [AlertRecord(id=1, dedupe_key="ctr_predictor|feature_drift|x", model="ctr_predictor",
                     alert_type="feature_drift", severity="high", status="open",
                     details={"summary": "feature 'x' drifted"})], "self-learning alerts")
    assert deliver(channel, subject, text, html, {}) == "pager"
    assert pager == [(channel, Message(subject, text, html))]
    assert "feature 'x' drifted" in pager[0][1].text and "<td>ctr_predictor</td>" in pager[0][1].html


def test_an_unknown_type_names_the_registered_ones_and_a_type_registers_once(pager):
    with pytest.raises(ValueError, match=r"\[\]\.type: one of smtp, slack, log, pager, got 'fax'"):
        Channel("fax")
    with pytest.raises(ValueError, match=r"^name: channel type 'pager' is registered already"):
        register_channel("pager", lambda channel, message, context: None)


def test_a_channel_type_that_needs_a_connection_says_so():
    with pytest.raises(ValueError, match=r"\[\]\.conn_id: a slack channel needs an Airflow connection"):
        Channel("slack")
    assert Channel("log").conn_id is None
