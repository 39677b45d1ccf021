"""The daily DAG's per-model steps for a multiclass model on PostgreSQL and SQLite: the analyse step
stores a ``MulticlassPerformance`` per served version and over all versions whose figures equal
sklearn's on the same rows, an error analysis on the 0/1 loss of the served class that finds a
segment where the model errs more often, alerts and the retrain decision from those stored results,
a retrain candidate fitted to the actual classes, and the sequential monitor's four drift reports."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from self_learning.core.performance import MulticlassPerformance, performance_from_dict
from self_learning.core.tasks import task_spec
from self_learning.operators import RunSettings
from self_learning.operators.daily import AlertOperator, AnalyseModelOperator, RetrainDecisionOperator
from self_learning.store import ALL_VERSIONS
from self_learning.synthetic import HOOK_CLASSES, Scenario, generate
from sklearn import metrics
from support.scenarios import END

MODEL = "hook_classifier"  # served as two versions (v1 80 %, v2 20 %)
PROBA = [f"proba_{c}" for c in HOOK_CLASSES]
INDEX = {c: j for j, c in enumerate(HOOK_CLASSES)}
LABELS = list(range(len(HOOK_CLASSES)))


def settings(**overrides) -> RunSettings:
    return RunSettings(window_end=END, interval_start=END - timedelta(days=1), **overrides)


def load(store, *, days: int = 16, rows_per_day: int = 250, edit_outcomes=None, thresholds=None):
    """The multiclass hook classifier's synthetic stream, every outcome received by ``END``."""
    data = generate(Scenario(days=days, rows_per_day=rows_per_day, end=END, models=(MODEL,),
                             multiclass_hooks=True))
    spec = data.models[0]
    store.register_model(spec if thresholds is None else type(spec)(
        spec.name, spec.task_kind, spec.feature_schema, thresholds, spec.classes))
    assert not store.register_predictions(data.predictions).rejected
    outcomes = data.outcomes_received(end=END)
    if edit_outcomes is not None:
        outcomes = edit_outcomes(data.predictions, outcomes)
    assert store.record_outcomes(outcomes).rejected == []
    return store.get_model(MODEL)


def analyse(store, spec, run: RunSettings):
    return AnalyseModelOperator(task_id="analyse", model=MODEL).run(store, spec, run)


def test_the_analyse_step_stores_multiclass_performance_equal_to_sklearn(store):
    spec = load(store)
    run = settings()
    summary = analyse(store, spec, run)
    stored = {row["kind"]: row for row in store.read_results("drift_reports", model=MODEL)}
    assert set(stored) == set(summary["drift"]) - {"baseline"} == {"feature_drift", "prediction_drift",
                                                                   "concept_drift", "performance_degradation"}
    assert set(stored["performance_degradation"]["result"]["statistical_tests"]["metrics"]) == {
        "accuracy", "log_loss", "macro_f1"}

    window = store.read_window(MODEL, run.current_start, END, labelled_only=False)
    stored = {row["model_version"]: row for row in store.read_results("performance_snapshots", model=MODEL)}
    assert set(stored) == {ALL_VERSIONS, "v1", "v2"}
    for version, row in stored.items():
        rows = window if version == ALL_VERSIONS else window[window["model_version"] == version]
        labelled = rows[rows["actual_label"].notna()]
        # sklearn orders string labels lexicographically: the classes as indices in the model's order
        actual, served = (labelled[column].map(INDEX).to_numpy(int) for column in ("actual_label", "predicted_label"))
        probabilities = labelled[PROBA].to_numpy(float)
        performance = performance_from_dict(row["result"])
        assert isinstance(performance, MulticlassPerformance) and performance.classes == HOOK_CLASSES
        assert row["sample_count"] == performance.sample_count == len(labelled)
        assert row["label_coverage"] == pytest.approx(len(labelled) / len(rows))
        assert row["provisional"] == (len(labelled) / len(rows) < run.min_label_coverage)
        assert row["log_loss"] == pytest.approx(metrics.log_loss(actual, probabilities, labels=LABELS))
        assert row["roc_auc"] == pytest.approx(metrics.roc_auc_score(actual, probabilities, multi_class="ovr",
                                                                     labels=LABELS))
        assert row["mae"] is None and row["mape"] is None
        assert performance.accuracy == pytest.approx(metrics.accuracy_score(actual, served))
        for average in ("macro", "weighted"):
            assert getattr(performance, f"{average}_f1") == pytest.approx(
                metrics.f1_score(actual, served, average=average))
        precision, recall, _, support = metrics.precision_recall_fscore_support(actual, served,
                                                                                labels=LABELS)
        assert list(performance.per_class_precision.values()) == pytest.approx(list(precision))
        assert list(performance.per_class_recall.values()) == pytest.approx(list(recall))
        assert list(performance.per_class_support.values()) == list(support)
        onehot = (actual[:, None] == np.arange(len(HOOK_CLASSES))).astype(float)
        assert performance.brier_score == pytest.approx(np.mean(((probabilities - onehot) ** 2).sum(axis=1)))
        assert performance.top_k_accuracy == pytest.approx(metrics.top_k_accuracy_score(
            actual, probabilities, k=2, labels=LABELS))
        assert performance.confusion_matrix == tuple(map(tuple, metrics.confusion_matrix(
            actual, served, labels=LABELS).tolist()))
        assert set(performance.per_class_calibration_error) == set(HOOK_CLASSES)
    assert summary["performance"][ALL_VERSIONS]["accuracy"] == pytest.approx(
        performance_from_dict(stored[ALL_VERSIONS]["result"]).accuracy)

    errors = {row["kind"]: row["result"] for row in store.read_results("error_analyses", model=MODEL)}
    labelled = window[window["actual_label"].notna()]
    error_rate = float((labelled["actual_label"] != labelled["predicted_label"]).mean())
    assert errors["error_distribution"]["mean"] == pytest.approx(error_rate)  # the 0/1 loss: mean = error rate
    assert errors["systematic_errors"]["patterns"] == []  # a stable stream errs alike everywhere
    assert AlertOperator(task_id="alerts", model=MODEL).run(store, spec, run) == []


def _random_on_tiktok(predictions: pd.DataFrame, outcomes: pd.DataFrame) -> pd.DataFrame:
    """The actual class drawn at random for tiktok ads served in the current window (not in the
    baseline): the model errs there far more often than it did."""
    recent = predictions["served_at"] >= pd.Timestamp(settings().current_start)
    tiktok = set(predictions.loc[recent & (predictions["platform"] == "tiktok"), "prediction_id"])
    rows = outcomes["prediction_id"].isin(tiktok).to_numpy()
    rng = np.random.default_rng(3)
    return outcomes.assign(actual_label=np.where(rows, rng.choice(HOOK_CLASSES, len(outcomes)),
                                                 outcomes["actual_label"]))


def test_a_segment_where_the_served_class_is_wrong_more_often_is_a_systematic_error(store):
    spec = load(store, edit_outcomes=_random_on_tiktok)
    run = settings()
    analyse(store, spec, run)
    (systematic,) = store.read_results("error_analyses", model=MODEL, kind="systematic_errors")
    found = {(p["feature"], p["bucket"]): p for p in systematic["result"]["patterns"]}
    assert ("platform", "tiktok") in found and found["platform", "tiktok"]["deviation"] > 0.2
    alerts = AlertOperator(task_id="alerts", model=MODEL).run(store, spec, run)
    assert ("systematic_error", "platform=tiktok") in {(a["type"], a["cause"]) for a in alerts}


def test_a_performance_limit_raises_an_alert_and_a_retrain_request(store):
    spec = load(store, thresholds={"max_log_loss": 0.5})
    run = settings().for_model(spec.thresholds)
    analyse(store, spec, run)
    alerts = AlertOperator(task_id="alerts", model=MODEL).run(store, spec, run)
    assert ("performance", "log_loss") in {(a["type"], a["cause"]) for a in alerts}
    decision = RetrainDecisionOperator(task_id="decide", model=MODEL).run(store, spec, run)
    assert decision["retrain"] and decision["causes"] == ["log_loss"]
    assert [r["model"] for r in store.retrain_request_list(window_end=END)] == [MODEL]


def quick_trainer(task_kind, feature_kinds, *, random_state: int = 0):
    """The default trainer (HistGradientBoostingClassifier for multiclass) with 15 boosting rounds:
    100 rounds of 5 trees took 8-11 s on the shared test machine."""
    from self_learning.core.training import default_trainer

    return default_trainer(task_kind, feature_kinds, random_state=random_state).set_params(model__max_iter=15)


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)  # the store's part is tested above; fitting is slow
def test_the_retrain_candidate_fits_the_actual_classes(store, tmp_path):
    from self_learning.loop.lifecycle import train_candidate

    spec = load(store, days=4, rows_per_day=150)
    candidate = train_candidate(store, MODEL, window_end=END, artifact_root=str(tmp_path), training_window_days=4,
                                trainer=f"{__name__}:quick_trainer")
    assert task_spec(spec.task_kind).target == "actual_label"
    assert set(candidate.estimator.classes_) == set(HOOK_CLASSES)
    assert isinstance(candidate.candidate, MulticlassPerformance) and isinstance(candidate.champion,
                                                                                  MulticlassPerformance)
    # both judged on the same holdout rows, on the kind's primary metric
    assert candidate.candidate.sample_count == candidate.champion.sample_count == candidate.holdout_rows
    assert candidate.verdict.metric == "log_loss" and candidate.verdict.champion == candidate.champion.log_loss
