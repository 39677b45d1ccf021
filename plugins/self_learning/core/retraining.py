"""The retrain decision: several signals, each with a documented threshold.

Defaults: retrain when feature drift is at least ``high``, concept drift at least
``medium``, MAPE above 30% (regressors) or, if set, log loss above / ROC AUC below a
limit (classifiers) - but never on fewer than 100 labelled outcomes, because a model
retrained on a handful of rows is worse than a drifting one.
"""

from __future__ import annotations

import dataclasses

from .performance import ModelPerformance
from .types import RETRAIN_DEFAULTS, DriftReport, Result, Severity, Status


@dataclasses.dataclass(frozen=True)
class RetrainThresholds:
    feature_drift_severity: Severity = RETRAIN_DEFAULTS["feature_drift_severity"]  # made a Severity below
    concept_drift_severity: Severity = RETRAIN_DEFAULTS["concept_drift_severity"]
    max_mape: float | None = RETRAIN_DEFAULTS["max_mape"]
    max_log_loss: float | None = RETRAIN_DEFAULTS["max_log_loss"]
    min_roc_auc: float | None = RETRAIN_DEFAULTS["min_roc_auc"]
    min_labelled_outcomes: int = RETRAIN_DEFAULTS["min_labelled_outcomes"]

    def __post_init__(self):
        object.__setattr__(self, "feature_drift_severity", Severity(self.feature_drift_severity))
        object.__setattr__(self, "concept_drift_severity", Severity(self.concept_drift_severity))
        if self.min_labelled_outcomes < 1:
            raise ValueError(f"min_labelled_outcomes: must be >= 1, got {self.min_labelled_outcomes}")


@dataclasses.dataclass(frozen=True)
class PerformanceBreach(Result):
    """A performance metric past its limit; ``metric`` is the field name on ``ModelPerformance``."""

    metric: str
    value: float
    limit: float
    reason: str


_LIMITS = (("mape", "MAPE", "max_mape", True), ("log_loss", "log loss", "max_log_loss", True),
           ("roc_auc", "ROC AUC", "min_roc_auc", False))


def performance_breaches(performance: ModelPerformance | None, thresholds: RetrainThresholds
                         ) -> list[PerformanceBreach]:
    """The metrics of a judged window that crossed their limit (none when the window has no status ``ok``)."""
    if performance is None or performance.status is not Status.OK:
        return []
    breaches = []
    for metric, label, limit_name, worse_when_higher in _LIMITS:
        value, limit = getattr(performance, metric), getattr(thresholds, limit_name)
        if value is None or limit is None or not ((value > limit) if worse_when_higher else (value < limit)):
            continue
        relation = "above" if worse_when_higher else "below"
        reason = f"{label} {value:.4g} is {relation} the limit {limit:g}"
        breaches.append(PerformanceBreach(metric, value, limit, reason))
    return breaches


@dataclasses.dataclass(frozen=True)
class RetrainDecision(Result):
    """``retrain`` and the reasons for it (or for not retraining); unpacks as a pair. ``causes``
    names the signals behind a yes (``feature_drift``, ``concept_drift`` or the metric), so a
    cause already being handled need not be asked about again."""

    retrain: bool
    reasons: list[str]
    causes: list[str] = dataclasses.field(default_factory=list)

    def __iter__(self):
        return iter((self.retrain, self.reasons))


def should_retrain(
    *,
    labelled_outcomes: int,
    feature_drift: DriftReport | None = None,
    concept_drift: DriftReport | None = None,
    performance: ModelPerformance | None = None,
    thresholds: RetrainThresholds | None = None,
) -> RetrainDecision:
    """Decide whether to retrain; every triggered signal is listed in ``reasons``."""
    t = thresholds or RetrainThresholds()
    if labelled_outcomes < 0:
        raise ValueError(f"labelled_outcomes: must be >= 0, got {labelled_outcomes}")
    if labelled_outcomes < t.min_labelled_outcomes:
        return RetrainDecision(False, [
            f"only {labelled_outcomes} labelled outcomes; at least {t.min_labelled_outcomes} needed to retrain"
        ])
    reasons, causes = [], []
    for cause, report, limit in (("feature_drift", feature_drift, t.feature_drift_severity),
                                 ("concept_drift", concept_drift, t.concept_drift_severity)):
        if report is not None and report.status is Status.OK and report.severity is not Severity.NONE \
                and report.severity.at_least(limit):
            where = f" in {', '.join(report.affected_features)}" if report.affected_features else ""
            reasons.append(f"{cause.replace('_', ' ')} severity {report.severity.value}{where} "
                           f"(threshold {limit.value})")
            causes.append(cause)
    for breach in performance_breaches(performance, t):
        reasons.append(breach.reason)
        causes.append(breach.metric)
    if not reasons:
        return RetrainDecision(False, ["no signal crossed its threshold"])
    return RetrainDecision(True, reasons, causes)
