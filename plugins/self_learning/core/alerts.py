"""Alert policy, without a database: which findings become alerts, the dedupe key that makes a
repeat the same alert, and the cooldown rule that suppresses a repeat.

The store only persists what this module decides, so the rules are unit-tested here and read in
one place instead of being spread over the store, the operators and the notifications.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from .types import Severity, model_name

MAX_ALERT_KEY_LENGTH = 512  # the width of alerts.dedupe_key

OPEN = "open"
SUPPRESSED = "suppressed"


def alert_key(model: str, alert_type: str, cause: str) -> str:
    """The dedupe key of an alert: the same model, type and cause are the same alert. Readable
    (``model|type|cause``) where it fits the column, and unique always: a longer key keeps its
    start and ends in the SHA-256 of the whole."""
    key = f"{model_name(model)}|{alert_type}|{cause}"
    if len(key) > MAX_ALERT_KEY_LENGTH:
        key = f"{key[:440]}|sha256:{hashlib.sha256(key.encode()).hexdigest()}"
    return key


def alert_status(severity: Severity | str, earlier_severities: Iterable[Severity | str]) -> str:
    """``suppressed`` when the same key already alerted at the same or a higher severity within
    the cooldown (``earlier_severities``: the severities of its earlier, not suppressed alerts in
    that time), else ``open``: a repeat is quiet, an escalation is news."""
    severity = Severity(severity)
    if severity is Severity.NONE:
        raise ValueError("severity: an alert needs a severity above 'none'")
    return SUPPRESSED if any(Severity(s).rank >= severity.rank for s in earlier_severities) else OPEN
