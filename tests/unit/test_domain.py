"""Domain types: any model name works, results serialise to strict JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest
from self_learning.domain import (
    DEFAULT_MODELS,
    ModelSpec,
    ModelType,
    PredictionOutcome,
    Severity,
    SeverityLadder,
    TaskKind,
    model_name,
    to_jsonable,
)


def test_default_models_and_any_other_name():
    assert [m.name for m in DEFAULT_MODELS] == [t.value for t in ModelType]
    assert {m.task_kind for m in DEFAULT_MODELS} == set(TaskKind)
    assert model_name(ModelType.CTR_PREDICTOR) == "ctr_predictor"
    assert model_name("ltv-model.v2") == "ltv-model.v2"
    spec = ModelSpec("cpa_regressor", "regression", {"spend": "numeric", "platform": "categorical"})
    assert spec.task_kind is TaskKind.REGRESSION


@pytest.mark.parametrize("bad", ["", "x" * 129, 'x"; DROP TABLE predictions; --', "_hidden", None, 3])
def test_invalid_model_names_are_rejected_by_field(bad):
    with pytest.raises(ValueError, match=r"model: .* is not a valid model name"):
        model_name(bad)


def test_feature_schema_kinds_are_validated():
    with pytest.raises(ValueError, match=r"feature_schema\['spend'\]"):
        ModelSpec("m", "regression", {"spend": "float"})
    with pytest.raises(ValueError, match="'ranking' is not a valid TaskKind"):
        ModelSpec("m", "ranking")


def test_prediction_outcome_errors():
    outcome = PredictionOutcome("p1", "roas_predictor", 2.5, 2.0, {"spend": 10}, datetime(2026, 11, 1, tzinfo=UTC))
    assert outcome.error == 0.5
    assert outcome.error_percentage == 25.0
    zero = PredictionOutcome("p2", "roas_predictor", 0.5, 0.0, {}, datetime(2026, 11, 1, tzinfo=UTC))
    assert zero.error_percentage is None
    assert json.loads(json.dumps(outcome.to_dict()))["error"] == 0.5


def test_severity_order_and_ladder():
    assert Severity.worst([Severity.LOW, Severity.CRITICAL, Severity.MEDIUM]) is Severity.CRITICAL
    assert Severity.worst([]) is Severity.NONE
    assert Severity.HIGH.at_least("medium") and not Severity.LOW.at_least(Severity.MEDIUM)
    ladder = SeverityLadder(0.1, 0.2, 0.3, 0.5)
    assert [ladder.rate(v) for v in (0.05, 0.1, 0.25, 0.3, 0.9, float("inf"), None)] == [
        Severity.NONE, Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL, Severity.CRITICAL,
        Severity.NONE]
    with pytest.raises(ValueError, match="increasing"):
        SeverityLadder(0.3, 0.2, 0.1, 0.5)


def test_to_jsonable_makes_strict_json():
    value = {"a": np.float64("nan"), "b": np.int64(3), "c": [np.inf, 1.5], "d": Severity.LOW, "e": np.bool_(True)}
    expected = '{"a": null, "b": 3, "c": [null, 1.5], "d": "low", "e": true}'
    assert json.dumps(to_jsonable(value), allow_nan=False) == expected
