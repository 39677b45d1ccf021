"""Candidate training and the candidate-vs-champion verdict on a time-based holdout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from self_learning.domain import TaskKind
from self_learning.synthetic import MODEL_FEATURES, NUMERIC, Scenario, generate
from self_learning.training import (
    default_trainer,
    fit,
    holdout_performance,
    judge,
    load_trainer,
    predict,
    time_holdout,
)
from sklearn import metrics


def labelled(scenario: Scenario, model: str, first_day: int = 0) -> tuple[pd.DataFrame, dict[str, str]]:
    """The model's rows with their outcomes, categoricals as the store reads them (category dtype)."""
    data = generate(scenario)
    rows = data.predictions[data.predictions["model"] == model].merge(data.outcomes, on="prediction_id")
    rows = rows[rows["served_at"] >= pd.Timestamp(scenario.day_start(first_day))]
    kinds = {f: "numeric" if f in NUMERIC else "categorical" for f in MODEL_FEATURES[model]}
    for feature, kind in kinds.items():
        if kind == "categorical":
            rows[feature] = rows[feature].astype("category")
    return rows.reset_index(drop=True), kinds


def served_vs_candidate(rows, kinds, task_kind):
    train, holdout = time_holdout(rows)
    model = fit(default_trainer(task_kind, kinds), train, kinds)
    candidate = holdout_performance(task_kind, holdout, predict(model, holdout, kinds, task_kind), model_version="new")
    champion = holdout_performance(task_kind, holdout, holdout["predicted_value"].to_numpy(), model_version="served")
    return candidate, champion


def test_holdout_is_the_latest_rows():
    frame = pd.DataFrame({"served_at": pd.date_range("2026-01-01", periods=10, freq="D")[::-1], "x": range(10)})
    train, holdout = time_holdout(frame, holdout_share=0.3)
    assert train["served_at"].max() < holdout["served_at"].min() and len(holdout) == 3
    with pytest.raises(ValueError, match="holdout_share"):
        time_holdout(frame, holdout_share=1.0)


def test_after_a_concept_shift_a_retrained_candidate_beats_the_stale_champion():
    scenario = Scenario(days=40, rows_per_day=300, seed=21, concept_shift_day=10, concept_shift_model="ctr_predictor",
                        models=("ctr_predictor",))
    rows, kinds = labelled(scenario, "ctr_predictor", first_day=10)
    candidate, champion = served_vs_candidate(rows, kinds, TaskKind.REGRESSION)
    verdict = judge(candidate, champion)
    assert verdict.accept and verdict.relative_improvement > 0.3, verdict


def test_a_candidate_that_is_no_better_than_a_good_champion_is_rejected():
    scenario = Scenario(days=30, rows_per_day=300, seed=22, models=("roas_predictor",))
    rows, kinds = labelled(scenario, "roas_predictor")
    candidate, champion = served_vs_candidate(rows, kinds, TaskKind.REGRESSION)
    verdict = judge(candidate, champion, margin=0.02)
    assert not verdict.accept and "does not beat" in verdict.reason


def test_classifier_candidates_predict_probabilities():
    scenario = Scenario(days=20, rows_per_day=300, seed=23, models=("hook_classifier",))
    rows, kinds = labelled(scenario, "hook_classifier")
    candidate, _ = served_vs_candidate(rows, kinds, TaskKind.BINARY_CLASSIFICATION)
    train, holdout = time_holdout(rows)
    # a constant P(y = 1) (the training base rate) is the classifier that learned nothing: beat it clearly
    base_rate = metrics.log_loss(holdout["actual_value"], np.full(len(holdout), train["actual_value"].mean()),
                                 labels=[0, 1])
    assert candidate.log_loss < base_rate - 0.05, (candidate.log_loss, base_rate)
    assert candidate.roc_auc > 0.65
    assert judge(candidate, None).accept  # nothing to beat


def test_trainers_by_dotted_path_and_bad_paths_are_named():
    assert load_trainer("self_learning.training:default_trainer") is default_trainer
    for path in ("nowhere", "self_learning.training:missing", "no_such_package.module:f"):
        with pytest.raises(ValueError, match="trainer"):
            load_trainer(path)
    with pytest.raises(ValueError, match="no labelled rows"):
        fit(default_trainer("regression", {"x": "numeric"}), pd.DataFrame({"x": [], "actual_value": []}),
            {"x": "numeric"})



def test_the_verdict_compares_the_log_losses_on_the_holdout():
    """A small classifier: the verdict's numbers are sklearn's log losses of the candidate's and the
    served predictions on the same holdout rows; a worse candidate is rejected with its numbers."""
    rows, kinds = labelled(Scenario(days=10, rows_per_day=100, seed=1, models=("visual_pattern",)), "visual_pattern")
    train, holdout = time_holdout(rows)
    candidate_p = predict(fit(default_trainer(TaskKind.BINARY_CLASSIFICATION, kinds), train, kinds), holdout, kinds,
                          TaskKind.BINARY_CLASSIFICATION)
    verdict = judge(*served_vs_candidate(rows, kinds, TaskKind.BINARY_CLASSIFICATION))
    expected_candidate = metrics.log_loss(holdout["actual_value"], candidate_p, labels=[0, 1])
    expected_champion = metrics.log_loss(holdout["actual_value"], holdout["predicted_value"], labels=[0, 1])
    assert verdict.metric == "log_loss"
    assert verdict.candidate == pytest.approx(expected_candidate)
    assert verdict.champion == pytest.approx(expected_champion)
    assert verdict.relative_improvement == pytest.approx((expected_champion - expected_candidate) / expected_champion)
    assert verdict.accept is (expected_candidate < expected_champion * 0.98)
    assert not verdict.accept and "does not beat" in verdict.reason  # here the served model is better


def test_a_hard_label_champion_is_judged_on_the_zero_one_loss():
    from self_learning.performance import compute_performance

    rng = np.random.default_rng(4)
    actual = rng.integers(0, 2, 2_000)
    scores = np.clip(actual * 0.6 + rng.uniform(0, 0.4, actual.size), 0, 1)  # right 9 times in 10 or so
    hard = np.where(rng.random(actual.size) < 0.8, actual, 1 - actual).astype(float)  # 80 % accurate labels
    candidate = compute_performance(TaskKind.BINARY_CLASSIFICATION, actual, scores, model_version="new")
    champion = compute_performance(TaskKind.BINARY_CLASSIFICATION, actual, hard, model_version="old")
    assert champion.log_loss is None  # no score to take a log loss of
    verdict = judge(candidate, champion)
    assert (verdict.metric, verdict.accept) == ("error_rate", True)
    assert verdict.champion == pytest.approx(1 - champion.accuracy)
    assert not judge(champion, candidate).accept  # the hard labels do not beat the scores


HOOKS = ("question", "statistic", "story")


def class_rows(labels) -> pd.DataFrame:
    return pd.DataFrame({"actual_label": np.asarray(labels, dtype=object), "spend": np.arange(len(labels))})


def test_multiclass_training_rows_leave_out_unknown_and_single_example_classes_saying_so():
    from self_learning.core.training import class_training_rows

    rows = class_rows(["question"] * 5 + ["statistic"] * 4 + ["story"] + ["carousel"] * 3)
    kept, notes = class_training_rows(rows, HOOKS)
    assert list(kept["actual_label"]) == ["question"] * 5 + ["statistic"] * 4
    assert notes == ("3 training rows of classes outside the model's class list left out ['carousel'] (a model "
                     "serving the list cannot serve them; extend it to train on them)",
                     "classes with fewer than 2 training rows left out ['story']")
    unchanged, none = class_training_rows(class_rows(["question", "story"] * 3), HOOKS)
    assert len(unchanged) == 6 and none == ()


@pytest.mark.parametrize(("labels", "found"), [
    (["story"] * 8, "only class 'story'"),
    (["story"] * 8 + ["question"] + ["carousel"] * 2, "only class 'story'"),
    (["carousel"] * 8, "no class of the model's list"),
])
def test_a_multiclass_window_of_fewer_than_two_classes_is_not_trainable(labels, found):
    from self_learning.core.training import NotTrainable, class_training_rows

    with pytest.raises(NotTrainable, match=rf"actual_label: the training window has {found} with at least 2 rows.*"
                                           "a classifier needs two classes"):
        class_training_rows(class_rows(labels), HOOKS)


def test_the_default_multiclass_trainer_fails_on_a_single_example_class_once_early_stopping_is_on():
    """Why single-example classes are left out: over 10,000 rows HistGradientBoosting's early
    stopping splits a stratified validation set, which a class of one row cannot be in."""
    from self_learning.core.training import class_training_rows

    rng = np.random.default_rng(0)
    rows = class_rows(["question", "statistic"] * 5_001 + ["story"]).assign(spend=rng.normal(size=10_003))
    kinds = {"spend": "numeric"}
    trainer = default_trainer("multiclass_classification", kinds).set_params(model__max_iter=3)
    with pytest.raises(ValueError, match="least populated class"):
        fit(trainer, rows, kinds, target="actual_label")
    kept, _ = class_training_rows(rows, HOOKS)
    assert list(fit(trainer, kept, kinds, target="actual_label").classes_) == ["question", "statistic"]


def test_multiclass_candidates_are_judged_on_the_log_loss_and_on_accuracy_against_a_labels_only_champion():
    from self_learning.core.multiclass import ClassPredictions
    from self_learning.performance import compute_performance

    rng = np.random.default_rng(5)
    n = 2_000
    scores = 2.0 * rng.normal(size=(n, len(HOOKS)))
    truth = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    actual = np.asarray(HOOKS, dtype=object)[(rng.random((n, 1)) > truth.cumsum(axis=1)).sum(axis=1).clip(max=2)]

    def served(noise):
        seen = scores + noise * rng.normal(size=scores.shape)
        return ClassPredictions(HOOKS, np.exp(seen) / np.exp(seen).sum(axis=1, keepdims=True))

    kind = TaskKind.MULTICLASS_CLASSIFICATION
    better, worse = served(0.3), served(1.5)
    candidate = compute_performance(kind, actual, better, model_version="new")
    champion = compute_performance(kind, actual, worse, model_version="old")
    verdict = judge(candidate, champion)
    assert (verdict.metric, verdict.accept) == ("log_loss", True)
    assert verdict.champion == pytest.approx(metrics.log_loss(actual, worse.probabilities, labels=list(HOOKS)))
    labels_only = compute_performance(kind, actual, ClassPredictions(HOOKS, np.eye(3)[worse.predicted]),
                                      model_version="old")
    assert labels_only.log_loss is None  # one-hot probabilities: no log loss to compare with
    verdict = judge(candidate, labels_only)
    assert (verdict.metric, verdict.accept) == ("error_rate", True)
    assert verdict.champion == pytest.approx(1 - metrics.accuracy_score(actual, worse.predicted_labels))
