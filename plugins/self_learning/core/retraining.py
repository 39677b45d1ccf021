"""The retrain decision: several signals, each with a documented threshold.

Defaults: retrain when feature drift is at least ``high``, concept drift at least
``medium``, performance degradation against the baseline at least ``medium`` (every model
kind: a metric significantly and practically worse than on the baseline, ``core.monitoring``),
MAPE above 30% (regressors) or, if set, log loss above / ROC AUC below a limit (classifiers) -
but never on fewer than 100 labelled outcomes, because a model retrained on a handful of rows
is worse than a drifting one. Degradation is on by default because absolute limits need a
number per model that nobody knows in advance (in issue 15's replay a classifier lost 3 points of
accuracy with no alert at all: its log-loss and AUC limits were unset).

Which earlier request already answers a new yes (``covers``): one that holds every cause of the
decision at the same or a higher severity. Before, any request within the retrain cooldown that
was pending, or done for the same cause names, blocked the next one: in issue 15's replay, 2 of
the 8 false alarms on a stable stream were concept-drift alarms that filed requests, and such a
request blocked the request for a real change for the rest of the 7-day cooldown. Now a new
cause or a higher severity always files a new request, and its reasons name the earlier request
it supersedes; a request whose causes have cleared (they are absent from the current decision)
blocks nothing, because only the causes present now are looked up in it. Each cause is stored
with its severity: a drift cause with the report's, a performance limit (MAPE, log loss, ROC AUC)
with ``high`` - crossing an absolute limit is as serious as the default feature-drift bar, and
only a ``critical`` drift outranks it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from .performance import ModelPerformance
from .records import RetrainRequestRecord, cause_severities
from .types import RETRAIN_DEFAULTS, DriftReport, Result, Severity, Status

# A performance limit crossed is a cause of this severity (a drift cause carries its report's).
PERFORMANCE_CAUSE_SEVERITY = Severity.HIGH
_NEVER = datetime.min.replace(tzinfo=UTC)  # orders a request without a window end last


@dataclasses.dataclass(frozen=True)
class RetrainThresholds:
    feature_drift_severity: Severity = RETRAIN_DEFAULTS["feature_drift_severity"]  # made a Severity below
    concept_drift_severity: Severity = RETRAIN_DEFAULTS["concept_drift_severity"]
    performance_degradation_severity: Severity = RETRAIN_DEFAULTS["performance_degradation_severity"]
    max_mape: float | None = RETRAIN_DEFAULTS["max_mape"]
    max_log_loss: float | None = RETRAIN_DEFAULTS["max_log_loss"]
    min_roc_auc: float | None = RETRAIN_DEFAULTS["min_roc_auc"]
    min_labelled_outcomes: int = RETRAIN_DEFAULTS["min_labelled_outcomes"]

    def __post_init__(self):
        object.__setattr__(self, "feature_drift_severity", Severity(self.feature_drift_severity))
        object.__setattr__(self, "concept_drift_severity", Severity(self.concept_drift_severity))
        object.__setattr__(self, "performance_degradation_severity", Severity(self.performance_degradation_severity))
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
    cause already being handled need not be asked about again; ``cause_severities`` gives each
    its severity (a cause given none is a performance limit: ``high``)."""

    retrain: bool
    reasons: list[str]
    causes: list[str] = dataclasses.field(default_factory=list)
    cause_severities: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        given = cause_severities(self.cause_severities, field="cause_severities")
        unknown = sorted(set(given) - set(self.causes))
        if unknown:
            raise ValueError(f"cause_severities: {unknown[0]!r} is not one of the causes {self.causes}")
        object.__setattr__(self, "cause_severities", {
            cause: given.get(cause, PERFORMANCE_CAUSE_SEVERITY.value) for cause in self.causes})

    def __iter__(self):
        return iter((self.retrain, self.reasons))


def should_retrain(
    *,
    labelled_outcomes: int,
    feature_drift: DriftReport | None = None,
    concept_drift: DriftReport | None = None,
    performance: ModelPerformance | None = None,
    thresholds: RetrainThresholds | None = None,
    performance_degradation: DriftReport | None = None,
) -> RetrainDecision:
    """Decide whether to retrain; every triggered signal is listed in ``reasons``."""
    t = thresholds or RetrainThresholds()
    if labelled_outcomes < 0:
        raise ValueError(f"labelled_outcomes: must be >= 0, got {labelled_outcomes}")
    if labelled_outcomes < t.min_labelled_outcomes:
        return RetrainDecision(False, [
            f"only {labelled_outcomes} labelled outcomes; at least {t.min_labelled_outcomes} needed to retrain"
        ])
    reasons, causes, severities = [], [], {}
    for cause, report, limit in (("feature_drift", feature_drift, t.feature_drift_severity),
                                 ("concept_drift", concept_drift, t.concept_drift_severity),
                                 ("performance_degradation", performance_degradation,
                                  t.performance_degradation_severity)):
        if report is not None and report.status is Status.OK and report.severity is not Severity.NONE \
                and report.severity.at_least(limit):
            where = f" in {', '.join(report.affected_features)}" if report.affected_features else ""
            reasons.append(f"{cause.replace('_', ' ')} severity {report.severity.value}{where} "
                           f"(threshold {limit.value})")
            causes.append(cause)
            severities[cause] = report.severity.value
    for breach in performance_breaches(performance, t):
        reasons.append(breach.reason)
        causes.append(breach.metric)
    if not reasons:
        return RetrainDecision(False, ["no signal crossed its threshold"])
    return RetrainDecision(True, reasons, causes, severities)


def _wanted(causes_now: Mapping[str, str] | Iterable[str]) -> dict[str, str]:
    """The causes to cover: a ``{cause: severity}`` map, or names alone (any severity covers them)."""
    return cause_severities(causes_now, default=Severity.LOW.value, field="causes_now")


def covers(earlier: RetrainRequestRecord, causes_now: Mapping[str, str] | Iterable[str]) -> bool:
    """Whether ``earlier`` already answers a decision with ``causes_now``: it did not fail, and it
    holds every cause of ``causes_now`` at the same or a higher severity. Its other causes do not
    matter (a cause that has cleared since blocks nothing); no cause to cover is covered."""
    if earlier.status == "failed":
        return False
    return all(cause in earlier.causes and Severity(earlier.causes[cause]).at_least(severity)
               for cause, severity in _wanted(causes_now).items())


@dataclasses.dataclass(frozen=True)
class RetrainCover(Result):
    """What the recent requests say about a new yes: the newest one that ``covers`` it (then no
    new request), else the ones within the cooldown the new request supersedes, each with the
    reason to name in the new request."""

    covering: RetrainRequestRecord | None
    superseded: tuple[RetrainRequestRecord, ...] = ()
    superseding_reasons: tuple[str, ...] = ()


def retrain_cover(earlier: Sequence[RetrainRequestRecord], causes_now: Mapping[str, str] | Iterable[str]
                  ) -> RetrainCover:
    """Apply ``covers`` to the requests of the retrain cooldown (any order; newest wins). A failed
    request answers nothing and is not superseded (it simply failed)."""
    wanted = _wanted(causes_now)
    newest_first = sorted(earlier, key=lambda r: (r.window_end or _NEVER, r.request_id), reverse=True)
    for request in newest_first:
        if covers(request, wanted):
            return RetrainCover(request)
    superseded = tuple(r for r in newest_first if r.status != "failed")
    return RetrainCover(None, superseded, tuple(_superseding_reason(r, wanted) for r in superseded))


def _superseding_reason(earlier: RetrainRequestRecord, wanted: Mapping[str, str]) -> str:
    held = ", ".join(f"{c} {s}" for c, s in earlier.causes.items()) or "no recorded cause"
    stronger = [f"{c} {s} is new" if c not in earlier.causes else f"{c} rose from {earlier.causes[c]} to {s}"
                for c, s in wanted.items()
                if c not in earlier.causes or not Severity(earlier.causes[c]).at_least(s)]
    cleared = [c for c in earlier.causes if c not in wanted]
    note = f"; {', '.join(cleared)} no longer present" if cleared else ""
    return (f"supersedes retrain request {earlier.request_id} ({earlier.status}: {held}): "
            f"{'; '.join(stronger)}{note}")
