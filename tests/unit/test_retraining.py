"""The multi-factor retrain decision."""

from __future__ import annotations

import pytest
from self_learning.domain import DriftReport, DriftType, Severity, Status, TaskKind
from self_learning.performance import ModelPerformance
from self_learning.retraining import RetrainThresholds, should_retrain


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
                                  "causes": ["feature_drift", "concept_drift", "mape"]}


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
