"""A multiclass model's A/B test through the store, on PostgreSQL and SQLite: the arms are read as
class labels and ``ClassPredictions`` (``actual_label`` and the ``proba_<class>`` columns), judged
on the multiclass log loss with the accuracy guardrail, and the weekly conclusion promotes the
challenger; a model serving one-hot probabilities (labels only) is judged on accuracy."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from self_learning import lifecycle
from self_learning.ab_testing import ABTestConfig
from self_learning.core.performance import MulticlassPerformance
from self_learning.core.types import ModelSpec, TaskKind
from support.stores import DAY, NEXT_DAY

MODEL = "hook_types"
CLASSES = ("question", "statistic", "story", "offer", "testimonial")


def traffic(store, rng, arm, *, start, one_hot: bool, prefix: str):
    """Rows of ``arm`` (a version per row) served from ``start``, 40 s apart per arm, in 40 campaigns,
    with their outcomes: v2 sees the class scores with less noise than v1. (actual, served)."""
    n = arm.size
    scores = 2.5 * rng.normal(size=(n, len(CLASSES)))
    truth = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    actual = np.asarray(CLASSES, dtype=object)[(rng.random((n, 1)) > truth.cumsum(axis=1)).sum(axis=1).clip(max=4)]
    seen = scores + np.where(arm == "v1", 1.2, 0.6)[:, None] * rng.normal(size=scores.shape)
    served = np.exp(seen) / np.exp(seen).sum(axis=1, keepdims=True)
    if one_hot:
        served = np.eye(len(CLASSES))[served.argmax(axis=1)]
    position = pd.Series(arm).groupby(arm).cumcount().to_numpy()
    rows = pd.DataFrame({"prediction_id": [f"{prefix}{i}" for i in range(n)], "model": MODEL, "model_version": arm,
                         "predicted_label": np.asarray(CLASSES, dtype=object)[served.argmax(axis=1)],
                         "served_at": pd.Timestamp(start) + pd.to_timedelta(position * 40, unit="s"),
                         "unit_id": [f"c{i % 40}" for i in range(n)], "spend": rng.lognormal(3, 1, n),
                         **{f"proba_{c}": served[:, j] for j, c in enumerate(CLASSES)}})
    assert not store.register_predictions(rows).rejected
    assert not store.record_outcomes(pd.DataFrame({"prediction_id": rows["prediction_id"],
                                                   "actual_label": actual})).rejected
    return actual, served


def serve(store, *, one_hot: bool, seed: int = 3, unit: str = "prediction", history: int = 0):
    """A test of v1 (champion) vs v2 started at DAY, 2,000 outcomes an arm in a day; ``history``
    rows of v1 served the day before (the plan's and CUPED's pre-period)."""
    rng = np.random.default_rng(seed)
    store.register_model(ModelSpec(MODEL, TaskKind.MULTICLASS_CLASSIFICATION, {"spend": "numeric"},
                                   classes=CLASSES))
    for version in ("v1", "v2"):
        store.register_version(MODEL, version, status="archived")
    store.promote(MODEL, "v1")
    if history:
        traffic(store, rng, np.full(history, "v1"), start=DAY - timedelta(days=1), one_hot=one_hot, prefix="b")
    test = lifecycle.ab_test_model_versions(store, MODEL, "v1", "v2", started_at=DAY, config=ABTestConfig(
        unit=unit, min_days=0.5, min_outcomes_per_arm=100))
    arm = np.repeat(["v1", "v2"], 2_000)
    actual, served = traffic(store, rng, arm, start=DAY, one_hot=one_hot, prefix="h")
    return test["test_id"], actual, served, arm


def test_a_challenger_with_lower_multiclass_log_loss_is_promoted(store):
    test_id, actual, served, arm = serve(store, one_hot=False)
    result = lifecycle.get_ab_test_results(store, test_id, as_of=NEXT_DAY)
    assert result.metric == "log_loss"
    index = np.array([CLASSES.index(c) for c in actual])
    for version, loss in (("v1", result.comparison.champion.mean), ("v2", result.comparison.challenger.mean)):
        mine = arm == version
        assert loss == pytest.approx(-np.log(served[mine, index[mine]]).mean())
    assert result.comparison.challenger.mean < 0.85 * result.comparison.champion.mean
    assert [g.metric for g in result.guardrails] == ["accuracy"]
    assert isinstance(result.champion, MulticlassPerformance)
    assert result.challenger.accuracy == pytest.approx(np.mean(served[arm == "v2"].argmax(axis=1) ==
                                                               index[arm == "v2"]))
    assert result.decision.action == "promote", result.decision.reasons
    look = lifecycle.select_winning_model(store, test_id, as_of=NEXT_DAY)
    assert (look.action, look.champion_version) == ("promote", "v2")
    stored = store.get_ab_test(test_id)
    assert stored.status == "promoted" and stored.result["looks"][-1]["metric"] == "log_loss"


def test_a_model_serving_labels_only_is_judged_on_accuracy(store):
    test_id, actual, served, arm = serve(store, one_hot=True)
    result = lifecycle.get_ab_test_results(store, test_id, as_of=NEXT_DAY)
    assert result.metric == "accuracy" and result.guardrails == []  # the 0/1 loss, not a log loss of ~36 a row
    wrong = served.argmax(axis=1) != np.array([CLASSES.index(c) for c in actual])
    assert result.comparison.champion.mean == pytest.approx(wrong[arm == "v1"].mean())
    assert result.comparison.challenger.mean == pytest.approx(wrong[arm == "v2"].mean())


def test_a_test_by_campaign_is_planned_and_variance_reduced_on_the_champions_past_log_loss(store):
    """The plan's spread and CUPED's covariate come from v1's multiclass log loss the day before."""
    test_id, *_ = serve(store, one_hot=False, unit="campaign", history=1_500)
    plan = store.get_ab_test(test_id).config["plan"]
    assert plan is not None and plan["covariate_correlation"] is not None
    result = lifecycle.get_ab_test_results(store, test_id, as_of=NEXT_DAY)
    assert result.metric == "log_loss" and result.comparison.champion.n == 40
    assert result.variance_reduction.startswith("CUPED on each unit's loss under the champion")
    assert result.comparison.difference < 0
