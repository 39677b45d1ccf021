"""Alert policy, without a database: which findings become alerts, the dedupe key that makes a
repeat the same alert, and the cooldown rule that suppresses a repeat.

The store only persists what this module decides, so the rules are unit-tested here and read in
one place instead of being spread over the store, the operators and the notifications.

False alarms over time. Drift, concept drift and performance degradation arrive here already
controlled per model per unit of time (``core.monitoring``: a CUSUM whose threshold is set from
the model's ``false_alarm_days``). Systematic errors are still found per window (buckets of every
feature, Benjamini-Hochberg at ``alpha``), and consecutive daily windows share 6/7 of their rows,
so a false pattern shows up on several runs in a row and, at alpha = 0.05, about once a window
length: every week or two per model (the replay in issue 15 saw them on stable streams). A pattern
becomes an alert only when its adjusted p-value is below ``systematic_alpha(...)``, the model's
false-alarm budget for this family spread over the independent windows of that time:
share x window_days / false_alarm_days (0.2 x 7 / 365 = 0.0038 by default), so the expected number
of false systematic-error episodes stays at ``share`` per ``false_alarm_days`` whatever the
number of features; its size must still pass ``SYSTEMATIC_ERROR_LADDER``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .types import Severity, model_name

if TYPE_CHECKING:
    from .performance import ModelPerformance
    from .retraining import RetrainThresholds

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


# Consecutive daily runs are one episode when their window ends are at most this far apart.
EPISODE_GAP = timedelta(days=1, hours=1)


def repeat_status(severity: Severity | str, earlier: Iterable[tuple[datetime, Severity | str, str]], *,
                  window_end: datetime, cooldown: timedelta) -> str:
    """``alert_status`` against the right earlier alerts of the same key: those within ``cooldown``
    before ``window_end``, and every alert of the episode this one continues - the unbroken run of
    daily alerts of the key up to the day before. ``earlier``: (window_end, severity, status) of the
    key's earlier alerts; suppressed ones extend an episode but do not count as having alerted.

    Why episodes: the sequential monitor keeps a drift reported every day while the data stay
    shifted (the baseline does not move). With the cooldown alone the same finding re-opened every
    ``cooldown`` days for as long as it lasted; a model owner is told once, and again only when it
    gets worse or after it has gone away and come back."""
    rows = [(end, Severity(level), status) for end, level, status in earlier if end < window_end]
    start = window_end
    for end in sorted({end for end, _, _ in rows}, reverse=True):
        if start - end > EPISODE_GAP:
            break
        start = end
    since = min(window_end - cooldown, start)
    return alert_status(severity, [level for end, level, status in rows if status != SUPPRESSED and end >= since])


# Severity of a systematic-error pattern by its deviation relative to the model's MAE (for a model
# scored on the 0/1 loss, its error rate: the mean of that loss).
SYSTEMATIC_ERROR_LADDER = (("low", 0.1), ("medium", 0.25), ("high", 0.5), ("critical", 1.0))


def finding(alert_type: str, cause: str, severity: str, details: dict[str, Any]) -> dict[str, Any]:
    """One finding, in the keyword form of ``FeedbackStore.raise_alert``."""
    return {"alert_type": alert_type, "cause": cause, "severity": severity, "details": details}


# The share of a model's false-alarm budget that systematic errors may use (see the docstring).
SYSTEMATIC_ERROR_BUDGET_SHARE = 0.2


def systematic_alpha(false_alarm_days: float, window_days: float, *, share: float = SYSTEMATIC_ERROR_BUDGET_SHARE
                     ) -> float:
    """The adjusted p-value below which a systematic-error pattern alerts: ``share`` of the model's
    budget of one false alarm per ``false_alarm_days``, spread over its independent windows."""
    if not false_alarm_days > 0:
        raise ValueError(f"false_alarm_days: must be > 0, got {false_alarm_days!r}")
    if not window_days > 0:
        raise ValueError(f"window_days: must be > 0, got {window_days!r}")
    if not 0 < share <= 1:
        raise ValueError(f"share: must be in (0, 1], got {share!r}")
    return min(0.05, share * window_days / false_alarm_days)


# The cause of the one finding a window's degraded metrics make (with concept drift folded in)
PERFORMANCE_CAUSE = "performance"


def window_findings(drift_reports: Iterable[Mapping[str, Any]], performance: ModelPerformance | None,
                    thresholds: RetrainThresholds, systematic_errors: Iterable[Mapping[str, Any]], *,
                    pattern_alpha: float | None = None) -> list[dict[str, Any]]:
    """A window's findings from its stored results, in order: drift (feature by feature; the
    prediction report as one finding; the model getting worse on its labels as one finding),
    performance limits crossed (``high``), systematic errors rated by ``SYSTEMATIC_ERROR_LADDER``
    whose adjusted p-value is below ``pattern_alpha`` (``systematic_alpha(...)``; None: every
    stored pattern).
    ``drift_reports`` and ``systematic_errors`` are stored rows (``kind``, ``status``,
    ``severity``, ``affected_features`` and the JSON ``result``).

    The model getting worse is one finding however many signals show it: performance degradation
    names every degraded metric (cause ``performance``, severity the worst), and concept drift of
    the same window is folded into it (its details under ``concept_drift``); concept drift alone
    (labels still arriving, metrics not yet degraded) is a ``concept_drift`` finding. Why: the
    loss check and the metrics read the same labels, so one change raised up to four alerts (the
    bench's stable 500 rows/day regressor: one ten-day excursion of the outcome opened RMSE, then
    concept drift, then MAE, then concept drift again after a one-day gap), and a model owner was
    told four times about one cause. A new metric joining does not re-alert; a higher severity does
    (``repeat_status``)."""
    from .retraining import performance_breaches  # scikit-learn: not at import (DAG parsing imports the policy)

    flagged = {row["kind"]: row for row in drift_reports if row["status"] == "ok" and row["severity"] != "none"}
    findings = []
    for kind, row in flagged.items():
        tests = row["result"]["statistical_tests"]
        if kind == "feature_drift":
            for feature in row["affected_features"]:
                detail = tests["features"][feature]
                findings.append(finding("feature_drift", feature, detail["severity"], {
                    "summary": f"feature {feature!r} drifted ({detail['kind']})", "feature": feature,
                    "checks": detail["checks"]}))
        elif kind == "performance_degradation":
            findings.append(_degradation_finding(row, flagged.get("concept_drift")))
        elif kind != "concept_drift" or "performance_degradation" not in flagged:
            findings.append(finding(kind, kind, row["severity"], {
                "summary": row["result"]["recommendation"], "statistical_tests": tests}))
    for breach in performance_breaches(performance, thresholds):
        findings.append(finding("performance", breach.metric, "high", {"summary": breach.reason, **breach.to_dict()}))
    for row in systematic_errors:
        for pattern in row["result"]["patterns"]:
            if pattern_alpha is None or pattern.get("p_adjusted", 0.0) < pattern_alpha:
                findings.extend(_systematic_error_finding(pattern, performance))
    return findings


def _degradation_finding(row: Mapping[str, Any], concept: Mapping[str, Any] | None) -> dict[str, Any]:
    """The window's one ``performance_degradation`` finding: every degraded metric, and the concept
    drift report of the same window when it is flagged too."""
    entries = row["result"]["statistical_tests"].get("metrics", {})
    metrics = {metric: entries.get(metric, {}) for metric in row["affected_features"]}
    severities = [Severity(entry.get("severity", row["severity"])) for entry in metrics.values()]
    summary = row["result"]["recommendation"]
    details: dict[str, Any] = {"metrics": metrics}
    if concept is not None:
        severities.append(Severity(concept["severity"]))
        summary = f"{summary} {concept['result']['recommendation']}"
        details["concept_drift"] = concept["result"]["statistical_tests"]
    severity = Severity.worst(severities)
    if severity is Severity.NONE:
        severity = Severity(row["severity"])
    return finding("performance_degradation", PERFORMANCE_CAUSE, severity.value, {"summary": summary, **details})


def _error_rate(performance: ModelPerformance | None) -> float | None:
    """The window's error rate (1 - accuracy) of a classifier whose systematic errors are in 0/1
    loss units: a multiclass model (the 0/1 loss of the served class) or a binary classifier serving
    hard labels (its MAE is its error rate; its log loss is None). None for anything else."""
    if performance is None or performance.accuracy is None:
        return None
    kind = str(performance.task_kind)
    hard_binary = kind == "binary_classification" and performance.log_loss is None
    return 1.0 - performance.accuracy if kind == "multiclass_classification" or hard_binary else None


def _systematic_error_finding(pattern: Mapping[str, Any], performance: ModelPerformance | None = None
                              ) -> list[dict[str, Any]]:
    """A pattern as a finding, its severity by ``SYSTEMATIC_ERROR_LADDER``. Regressors and scored
    classifiers: "over-predicts where c=a (deviation 1.5, 30 % of MAE)". Classifiers on the 0/1 loss
    (``_error_rate``) in error-rate points, as their owners read accuracy: a multiclass model's
    pattern is on its 0/1 loss centred on the window's error rate (``operators.daily``), so the
    segment's rate is the window's plus the pattern's mean ("error rate 34 % vs 18 % elsewhere") and
    the effect is the deviation relative to the window's error rate; a hard-label binary classifier's
    is on its signed error (predicted - actual, each -1, 0 or 1), whose deviation is the share of
    rows wrongly predicted 1, net of those wrongly predicted 0, above the rest's."""
    error_rate = _error_rate(performance)
    multiclass = error_rate is not None and str(performance.task_kind) == "multiclass_classification"
    relative = pattern["relative_effect"]
    if multiclass:
        relative = pattern["deviation"] / error_rate if error_rate > 0 else relative
    effect = abs(relative or 0.0)
    severity = next((s for s, cut in reversed(SYSTEMATIC_ERROR_LADDER) if effect >= cut), None)
    if not severity:
        return []
    cause = f"{pattern['feature']}={pattern['bucket']}"
    deviation, n = pattern["deviation"], pattern["sample_count"]
    if multiclass and pattern.get("mean_error") is not None:
        rate = min(max(error_rate + pattern["mean_error"], 0.0), 1.0)  # rows of unknown classes: not in accuracy
        summary = f"errs more often where {cause} (error rate {rate:.0%} vs {rate - deviation:.0%} elsewhere, n={n})"
    elif multiclass:
        summary = f"errs more often where {cause} (error rate {deviation * 100:+.0f} points vs elsewhere, n={n})"
    elif error_rate is not None:
        wrong = ("1s", "0s") if deviation > 0 else ("0s", "1s")
        summary = (f"{'over' if deviation > 0 else 'under'}-predicts where {cause} (wrong {wrong[0]} net of wrong "
                   f"{wrong[1]}: {abs(deviation) * 100:.0f} points of the rows above elsewhere; error rate "
                   f"{error_rate:.0%} overall, n={n})")
    else:
        summary = (f"{'over' if deviation > 0 else 'under'}-predicts where {cause} (deviation {deviation:.4g}, "
                   f"{effect:.0%} of MAE, n={n})")
    return [finding("systematic_error", cause, severity, {"summary": summary, **pattern})]
