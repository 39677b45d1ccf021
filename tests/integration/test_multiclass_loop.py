"""The weekly and retrain steps for a multiclass model (SQLite: the store's part is tested with
PostgreSQL too in test_multiclass_store.py; fitting is what takes time here): feature importance
weighs the features against the actual class; a retrain window of a single class closes the request
with the reason instead of failing the run, and rows of a class outside the model's list are left
out of training, saying so, while candidate and champion are still judged on the same holdout."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import numpy as np
import pytest
from self_learning.core.training import default_trainer
from self_learning.loop.lifecycle import train_candidate
from self_learning.operators import RunSettings
from self_learning.operators.retrain import (
    NOT_TRAINED,
    FinishRetrainRequestOperator,
    StartABTestOperator,
    TrainCandidateOperator,
)
from self_learning.operators.weekly import FeatureImportanceOperator
from self_learning.settings import RetrainSettings
from self_learning.synthetic import HOOK_CLASSES, Scenario, generate
from support.scenarios import END

MODEL = "hook_classifier"
pytestmark = pytest.mark.parametrize("store", ["sqlite"], indirect=True)


def quick_trainer(task_kind, feature_kinds, *, random_state: int = 0):
    """The default trainer (HistGradientBoostingClassifier) with 15 boosting rounds."""
    return default_trainer(task_kind, feature_kinds, random_state=random_state).set_params(model__max_iter=15)


TRAINER = f"{__name__}:quick_trainer"


def load(store, *, days: int = 8, rows_per_day: int = 150, relabel=None):
    """The multiclass hook classifier's synthetic stream, every outcome received by ``END``;
    ``relabel(labels, served_at) -> labels`` edits the actual classes."""
    data = generate(Scenario(days=days, rows_per_day=rows_per_day, end=END, models=(MODEL,), multiclass_hooks=True))
    spec = data.models[0]
    store.register_model(type(spec)(spec.name, spec.task_kind, spec.feature_schema, {"trainer": TRAINER},
                                    spec.classes))
    assert not store.register_predictions(data.predictions).rejected
    outcomes = data.outcomes_received(end=END)
    if relabel is not None:
        served_at = outcomes["prediction_id"].map(data.predictions.set_index("prediction_id")["served_at"])
        outcomes = outcomes.assign(actual_label=relabel(outcomes["actual_label"].to_numpy(dtype=object), served_at))
    assert store.record_outcomes(outcomes).rejected == []
    return store.get_model(MODEL)


def test_weekly_feature_importance_weighs_the_features_against_the_actual_class(store, tmp_path):
    spec = load(store)
    trained = train_candidate(store, MODEL, window_end=END, artifact_root=str(tmp_path), training_window_days=8,
                              trainer=TRAINER)
    path = tmp_path / MODEL / trained.version / "model.skops"
    path.parent.mkdir(parents=True)
    path.write_bytes(trained.artifact)
    store.register_version(MODEL, trained.version, status="archived", artifact_uri=f"file://{path}")
    store.promote(MODEL, trained.version)

    run = RunSettings(window_end=END, interval_start=END - timedelta(days=7))
    summary = FeatureImportanceOperator(task_id="importance", model=MODEL, artifact_root=f"file://{tmp_path}").run(
        store, spec, run)
    assert summary["status"] == "ok" and summary["permutation_of"] == trained.version
    rows = {row["feature"]: row["result"] for row in store.read_results("feature_importance", model=MODEL)}
    assert set(rows) == set(spec.feature_schema)
    assert all(r["association"] is not None for r in rows.values())  # read as numbers, every one was missing
    assert {r["method"] for r in rows.values()} == {"rank_correlation_ratio", "cramers_v"}
    assert sum(r["weight"] for r in rows.values()) == pytest.approx(1.0)
    assert all(r["permutation"] is not None for r in rows.values())


def test_a_single_class_window_closes_the_retrain_request_with_the_reason(store, tmp_path):
    spec = load(store, relabel=lambda labels, _: np.full(labels.size, "story", dtype=object))
    settings = RetrainSettings(model=MODEL, window_end=END, request_id=f"{MODEL}@test", training_window_days=8)
    store.claim_retrain_request(settings.request_id, model=MODEL, reasons=["test"], window_end=END)
    candidate = TrainCandidateOperator(task_id="train", artifact_root=f"file://{tmp_path}").run(
        store, spec, settings, {})
    assert (candidate["status"], candidate["accept"], candidate["version"]) == (NOT_TRAINED, False, None)
    assert "the training window has only class 'story'" in candidate["verdict"]
    assert [v.version for v in store.version_history(MODEL)] == []  # nothing registered
    with pytest.raises(Exception, match="no A/B test: no candidate trained"):
        StartABTestOperator(task_id="ab", candidate=candidate).run(store, spec, settings, {})
    FinishRetrainRequestOperator(task_id="finish", candidate=candidate, ab_test=None).run(store, spec, settings, {})
    (request,) = store.retrain_request_list(model=MODEL)
    assert (request.status, request.result_version) == ("done", None)
    assert "a classifier needs two classes" in request.detail["verdict"]


def test_rows_of_a_class_outside_the_list_are_left_out_of_training_saying_so(store, tmp_path):
    rng = np.random.default_rng(4)
    spec = load(store, relabel=lambda labels, _: np.where(rng.random(labels.size) < 0.05, "carousel", labels))
    candidate = train_candidate(store, MODEL, window_end=END, artifact_root=str(tmp_path), training_window_days=8,
                                trainer=TRAINER)
    assert set(candidate.estimator.classes_) == set(HOOK_CLASSES)
    (note,) = candidate.notes
    assert "outside the model's class list left out ['carousel']" in note
    assert candidate.metrics()["notes"] == [note]
    # both judged on the same holdout rows (its carousel rows reported, not scored), on the log loss
    assert candidate.candidate.sample_count == candidate.champion.sample_count
    assert candidate.verdict.metric == "log_loss" and candidate.verdict.champion == candidate.champion.log_loss
    assert spec.classes == HOOK_CLASSES
    # the retrain step registers the version with the note
    settings = RetrainSettings(model=MODEL, window_end=END, request_id=f"{MODEL}@test", training_window_days=8)
    context = {"dag": SimpleNamespace(dag_id="retrain"), "dag_run": SimpleNamespace(run_id="test")}
    summary = TrainCandidateOperator(task_id="train", artifact_root=f"file://{tmp_path}").run(
        store, spec, settings, context)
    assert summary["notes"] == [note] and summary["status"] in ("challenger", "rejected")
    (version,) = store.version_history(MODEL)
    assert version.metrics["notes"] == [note]


def test_a_holdout_class_the_training_rows_lack_is_judged_not_refused(store, tmp_path):
    """The latest days bring a class the training days never had: the candidate gives it
    probability 0 (and pays for it in the holdout's log loss), no exception."""
    early = (END - timedelta(days=2)).isoformat()
    load(store, relabel=lambda labels, served_at: np.where((labels == "testimonial") & (served_at < early).to_numpy(),
                                                           "story", labels))
    candidate = train_candidate(store, MODEL, window_end=END, artifact_root=str(tmp_path), training_window_days=8,
                                trainer=TRAINER)
    assert "testimonial" not in set(candidate.estimator.classes_)
    assert candidate.candidate.per_class_support["testimonial"] > 0  # in the holdout, scored
    assert candidate.candidate.log_loss is not None and candidate.verdict.candidate == candidate.candidate.log_loss
