"""The multi-factor retrain decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from self_learning.core.records import RetrainRequestRecord
from self_learning.core.retraining import RetrainDecision, covers, retrain_cover
from self_learning.domain import DriftReport, DriftType, Severity, Status, TaskKind
from self_learning.performance import ModelPerformance
from self_learning.retraining import RetrainThresholds, should_retrain

DAY = datetime(2026, 11, 1, tzinfo=UTC)


def _drift(kind: DriftType, severity: Severity, features=(), status=Status.OK) -> DriftReport:
    return DriftReport(kind, severity, list(features), {}, "", status=status)


def _regression(mape: float) -> ModelPerformance:
    return ModelPerformance(TaskKind.REGRESSION, 500, 1.0, False, mape=mape)


def test_no_signal_no_retrain():
    retrain, reasons = should_retrain(labelled_outcomes=500,
                                      feature_drift=_drift(DriftType.DATA_DRIFT, Severity.MEDIUM, ["spend"]),
                                      concept_drift=_drift(DriftType.CONCEPT_DRIFT, Severity.LOW),
                                      performance=_regression(12.0))
    assert retrain is False
    assert reasons == ["no signal crossed its threshold"]


def test_every_crossed_signal_is_a_reason():
    decision = should_retrain(labelled_outcomes=500,
                              feature_drift=_drift(DriftType.DATA_DRIFT, Severity.HIGH, ["spend", "cpm"]),
                              concept_drift=_drift(DriftType.CONCEPT_DRIFT, Severity.MEDIUM),
                              performance=_regression(41.5))
    assert decision.retrain
    assert decision.reasons == [
        "feature drift severity high in spend, cpm (threshold high)",
        "concept drift severity medium (threshold medium)",
        "MAPE 41.5 is above the limit 30",
    ]
    assert decision.to_dict() == {"retrain": True, "reasons": decision.reasons,
                                  "causes": ["feature_drift", "concept_drift", "mape"],
                                  "cause_severities": {"feature_drift": "high", "concept_drift": "medium",
                                                       "mape": "high"}}


def test_too_few_outcomes_blocks_retraining():
    retrain, reasons = should_retrain(labelled_outcomes=99,
                                      concept_drift=_drift(DriftType.CONCEPT_DRIFT, Severity.CRITICAL))
    assert not retrain
    assert "only 99 labelled outcomes; at least 100 needed" in reasons[0]


def test_thresholds_are_parameters():
    strict = RetrainThresholds(feature_drift_severity="medium", max_mape=None, min_roc_auc=0.7,
                               min_labelled_outcomes=10)
    classifier = ModelPerformance(TaskKind.BINARY_CLASSIFICATION, 50, None, False, roc_auc=0.62)
    decision = should_retrain(labelled_outcomes=50, performance=classifier, thresholds=strict,
                              feature_drift=_drift(DriftType.DATA_DRIFT, Severity.MEDIUM, ["ctr"]))
    assert decision.reasons == ["feature drift severity medium in ctr (threshold medium)",
                                "ROC AUC 0.62 is below the limit 0.7"]
    insufficient = _drift(DriftType.DATA_DRIFT, Severity.NONE, status=Status.INSUFFICIENT_DATA)
    assert not should_retrain(labelled_outcomes=500, feature_drift=insufficient).retrain


def test_bad_thresholds_are_named():
    with pytest.raises(ValueError, match="min_labelled_outcomes"):
        RetrainThresholds(min_labelled_outcomes=0)
    with pytest.raises(ValueError, match="'extreme' is not a valid Severity"):
        RetrainThresholds(concept_drift_severity="extreme")
    with pytest.raises(ValueError, match="labelled_outcomes"):
        should_retrain(labelled_outcomes=-1)


def _request(request_id: str, causes, *, status: str = "requested", day: int = 0) -> RetrainRequestRecord:
    return RetrainRequestRecord(request_id, "m", [], status, DAY + timedelta(days=day), causes=causes)


def test_a_cause_carries_its_severity_and_a_performance_limit_counts_as_high():
    decision = should_retrain(labelled_outcomes=500,
                              concept_drift=_drift(DriftType.CONCEPT_DRIFT, Severity.CRITICAL),
                              performance=_regression(41.5))
    assert decision.cause_severities == {"concept_drift": "critical", "mape": "high"}
    assert RetrainDecision(True, ["x"], ["performance_degradation"]).cause_severities == {
        "performance_degradation": "high"}  # a cause given without severity
    with pytest.raises(ValueError, match=r"^cause_severities: 'mape' is not one of the causes"):
        RetrainDecision(True, ["x"], ["concept_drift"], {"mape": "high"})
    with pytest.raises(ValueError, match=r"^cause_severities\[concept_drift\]: severity one of"):
        RetrainDecision(True, ["x"], ["concept_drift"], {"concept_drift": "severe"})


@pytest.mark.parametrize(("earlier", "now", "covered"), [
    ({"concept_drift": "high"}, {"concept_drift": "high"}, True),  # the same cause at the same severity
    ({"concept_drift": "critical"}, {"concept_drift": "high"}, True),  # a weaker repeat
    ({"concept_drift": "medium"}, {"concept_drift": "high"}, False),  # the severity rose
    ({"feature_drift": "low"}, {"concept_drift": "high"}, False),  # a new cause (the false alarm cleared)
    ({"feature_drift": "high", "mape": "high"}, {"mape": "high"}, True),  # feature drift cleared: mape still held
    ({"mape": "high"}, {"mape": "high", "concept_drift": "low"}, False),  # every cause must be held
    (["concept_drift"], {"concept_drift": "high"}, True),  # a list-shaped (old) row: each cause "high"
    (["concept_drift"], {"concept_drift": "critical"}, False),
    ({"concept_drift": "low"}, ["concept_drift"], True),  # names alone: any severity holds them
    ({"concept_drift": "low"}, {}, True),  # nothing to cover
])
def test_covers_needs_every_cause_at_the_same_or_a_higher_severity(earlier, now, covered):
    assert covers(_request("r1", earlier), now) is covered


def test_a_failed_request_covers_nothing_whatever_its_status_was():
    for status, covered in (("requested", True), ("running", True), ("done", True), ("delegated", True),
                            ("failed", False)):
        assert covers(_request("r1", {"mape": "high"}, status=status), {"mape": "high"}) is covered


def test_a_false_alarm_request_does_not_block_the_real_one_and_is_named_as_superseded():
    false_alarm = _request("m@11-01", {"feature_drift": "low"}, status="done")
    cover = retrain_cover([false_alarm], {"concept_drift": "high"})
    assert cover.covering is None
    assert cover.superseded == (false_alarm,)
    assert cover.superseding_reasons == (
        "supersedes retrain request m@11-01 (done: feature_drift low): concept_drift high is new; "
        "feature_drift no longer present",)
    rose = retrain_cover([_request("m@11-02", {"concept_drift": "medium"})], {"concept_drift": "high"})
    assert rose.superseding_reasons == (
        "supersedes retrain request m@11-02 (requested: concept_drift medium): concept_drift rose from medium to high",)


def test_the_newest_covering_request_wins_and_failed_ones_are_not_superseded():
    older = _request("old", {"concept_drift": "critical"}, day=0)
    newer = _request("new", {"concept_drift": "high"}, day=2)
    assert retrain_cover([older, newer], {"concept_drift": "high"}).covering is newer
    assert retrain_cover([newer, older], {"concept_drift": "critical"}).covering is older
    failed = _request("failed", {"concept_drift": "high"}, status="failed", day=3)
    cover = retrain_cover([failed, _request("weak", {"mape": "high"}, day=1)], {"concept_drift": "high"})
    assert cover.covering is None and [r.request_id for r in cover.superseded] == ["weak"]
    assert retrain_cover([], {"concept_drift": "high"}) == retrain_cover([failed], {"concept_drift": "high"})


@pytest.mark.parametrize(("severity", "retrain"), [("low", False), ("medium", True), ("critical", True)])
def test_performance_degradation_against_the_baseline_retrains_from_medium_by_default(severity, retrain):
    degradation = DriftReport(DriftType.PERFORMANCE_DEGRADATION, Severity(severity), ["accuracy"],
                              {"metrics": {"accuracy": {"severity": severity}}}, "accuracy 0.80 -> 0.77")
    decision = should_retrain(labelled_outcomes=5_000, performance_degradation=degradation)
    assert decision.retrain is retrain
    if retrain:
        assert decision.causes == ["performance_degradation"]
        assert decision.cause_severities == {"performance_degradation": severity}
        assert "accuracy" in decision.reasons[0]
    never = RetrainThresholds(performance_degradation_severity="critical")
    assert should_retrain(labelled_outcomes=5_000, performance_degradation=degradation,
                          thresholds=never).retrain is (severity == "critical")
