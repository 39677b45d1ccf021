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
    extend_classes,
    model_name,
    to_jsonable,
)


def test_default_models_and_any_other_name():
    assert [m.name for m in DEFAULT_MODELS] == [t.value for t in ModelType]
    # multiclass joins the defaults when the synthetic hook classifier becomes multiclass (issue 17)
    assert {m.task_kind for m in DEFAULT_MODELS} == set(TaskKind) - {TaskKind.MULTICLASS_CLASSIFICATION}
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
    with pytest.raises(ValueError, match=r"^task_kind: 'ranking' is not a valid task kind; valid: \['regression', "
                                         r"'binary_classification', 'multiclass_classification'\]"):
        ModelSpec("m", "ranking")


HOOKS = ("question", "statistic", "story", "offer")


def test_a_multiclass_model_has_a_validated_class_list_that_extends_with_a_warning():
    spec = ModelSpec("hook_classifier", "multiclass_classification", classes=list(HOOKS))
    assert spec.task_kind is TaskKind.MULTICLASS_CLASSIFICATION and spec.classes == HOOKS
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match=r"^classes: a multiclass_classification model needs its class list"):
        ModelSpec("m", "multiclass_classification")
    with pytest.raises(ValueError, match=r"^classes: only multiclass_classification models"):
        ModelSpec("m", "regression", classes=HOOKS)
    with pytest.raises(ValueError, match=r"^classes: duplicated class labels \['story'\]"):
        ModelSpec("m", "multiclass_classification", classes=["story", "offer", "story"])
    with pytest.raises(ValueError, match=r"^classes: a multiclass model needs 2 to"):
        ModelSpec("m", "multiclass_classification", classes=["story"])
    with pytest.raises(ValueError, match=r"^classes: class labels must be non-empty strings"):
        ModelSpec("m", "multiclass_classification", classes=["story", 3])
    with pytest.raises(ValueError, match=r"^task_kind: 'multiclass' is not a valid task kind; valid: .*"
                                         r"'multiclass_classification'"):
        ModelSpec("m", "multiclass")

    assert extend_classes(HOOKS, ["story", "offer"]) == (HOOKS, None)
    extended, warning = extend_classes(HOOKS, ["poll", "story", "poll", "listicle"], model="hook_classifier")
    assert extended == (*HOOKS, "poll", "listicle")
    assert "hook_classifier" in warning and "'poll', 'listicle'" in warning and "6 classes" in warning


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
