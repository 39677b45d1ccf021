"""The daily analyse step before the labels arrive, on PostgreSQL and SQLite (``loop.estimation``):
the estimated performance of the window is stored (kind ``estimated``, with bands) for a binary
classifier and a regressor, the realized metrics are stored next to an earlier estimate once its
window's labels mature, a concept shift gets the estimator flagged unreliable within 2 matured
windows, an estimate far below the baseline raises an ``estimated_performance`` alert marked as
estimated, and a correlation-only change of two features is stored and alerted as multivariate
drift while every univariate check stays silent."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from self_learning.core.types import ModelSpec, TaskKind
from self_learning.loop.estimation import ESTIMATED_KIND, MULTIVARIATE_KIND, clear_estimator_cache
from self_learning.operators import RunSettings
from self_learning.operators.daily import AlertOperator, AnalyseModelOperator
from self_learning.store import ALL_VERSIONS
from self_learning.synthetic import Scenario, generate
from support.scenarios import END


def settings(end) -> RunSettings:
    return RunSettings(window_end=end, interval_start=end - timedelta(days=1))


def analyse(store, model: str, end) -> dict:
    return AnalyseModelOperator(task_id="analyse", model=model).run(store, store.get_model(model), settings(end))


def estimated(store, model: str, end=None) -> list[dict]:
    return store.read_results("performance_snapshots", model=model, kind=ESTIMATED_KIND, model_version=ALL_VERSIONS,
                              window_end=end)


def load_synthetic(store, scenario: Scenario, *, received_by):
    data = generate(scenario)
    for spec in data.models:
        store.register_model(spec)
    assert not store.register_predictions(data.predictions).rejected
    assert store.record_outcomes(data.outcomes_received(end=received_by)).rejected == []
    return data


@pytest.fixture(autouse=True)
def fresh_estimators():
    clear_estimator_cache()  # each test's store has its own baselines; a cached estimator is per process
    yield
    clear_estimator_cache()


def test_estimates_with_bands_are_stored_and_get_their_realized_values_when_the_labels_mature(store):
    first = END - timedelta(days=3)
    data = load_synthetic(store, Scenario(days=40, rows_per_day=300, seed=5, end=END,
                                          models=("hook_classifier", "roas_predictor")), received_by=first)
    for model, metrics in (("hook_classifier", {"accuracy", "roc_auc", "f1", "precision", "recall"}),
                           ("roas_predictor", {"mae", "rmse", "mape"})):
        summary = analyse(store, model, first)
        assert summary["estimated"]["status"] == "ok" and summary["estimated"]["cached"] is False
        (row,) = estimated(store, model, first)
        assert row["window_start"].date() == (first - timedelta(days=7)).date()
        result = row["result"]
        assert set(result["estimate"]["metrics"]) == metrics
        for name, metric in result["estimate"]["metrics"].items():
            assert metric["lower"] < metric["value"] < metric["upper"], name
        assert result["matured"] is False and row["provisional"] is True and result["realized"] is None
        assert result["day"]["z"] is not None and result["alert"]["alarm"] is False
        assert row["mae"] is None and row["roc_auc"] is None  # the realized-metric columns stay the realized ones'

    # the labels of that window arrive; the next run stores them next to the estimate made then
    store.record_outcomes(data.outcomes_received(start=first, end=END + timedelta(days=30)))
    for model in ("hook_classifier", "roas_predictor"):
        summary = analyse(store, model, END)
        # fitted once per baseline in this process; roas_predictor's baseline days got late labels since
        assert summary["estimated"]["cached"] is (model == "hook_classifier")
        assert first.isoformat() in summary["estimated"]["matured_since"]
        (old,) = estimated(store, model, first)
        assert old["result"]["matured"] is True and old["provisional"] is False
        assert old["result"]["realized_at"] == END.isoformat()
        realized, estimate = old["result"]["realized"], old["result"]["estimate"]["metrics"]
        assert set(realized) == set(estimate)
        main = "roc_auc" if model == "hook_classifier" else "mae"
        assert estimate[main]["lower"] <= realized[main] <= estimate[main]["upper"]  # a stable stream
        (now,) = estimated(store, model, END)
        reliability = now["result"]["reliability"]
        assert reliability["reliable"] is True and reliability["windows_checked"][main] == 2  # END-3 and END
    clear_estimator_cache()
    for model in ("hook_classifier", "roas_predictor"):
        before = [r["result"] for r in estimated(store, model)]
        analyse(store, model, END)  # a re-run (refitting) replaces its rows with the same ones, adds none
        assert [r["result"] for r in estimated(store, model)] == before and len(before) == 2
    # the realized performance the alert step and the report read is still the realized one
    from self_learning.operators.daily import _stored_performance

    assert _stored_performance(store, "roas_predictor", END).mae is not None


def test_a_concept_shift_gets_the_estimator_flagged_unreliable_within_two_matured_windows(store):
    # labels flip for 40 % of the rows from END - 8 days; scores (and so the estimate) do not move
    load_synthetic(store, Scenario(days=40, rows_per_day=300, seed=9, end=END, models=("hook_classifier",),
                                   concept_shift_model="hook_classifier", concept_shift_day=32),
                   received_by=END + timedelta(days=30))
    first = analyse(store, "hook_classifier", END - timedelta(days=1))["estimated"]
    assert first["reliable"] is True  # one matured window: not enough to judge
    second = analyse(store, "hook_classifier", END)["estimated"]
    assert second["reliable"] is False
    (row,) = estimated(store, "hook_classifier", END)
    reliability = row["result"]["reliability"]
    assert "accuracy" in reliability["unreliable_metrics"] and reliability["reason"].startswith("unreliable")
    realized, band = row["result"]["realized"]["accuracy"], row["result"]["estimate"]["metrics"]["accuracy"]
    assert realized < band["lower"]


def _custom_model(store, name: str, task_kind: TaskKind, frame: pd.DataFrame, outcome: np.ndarray) -> None:
    features = [c for c in frame.columns if c.startswith("x")]
    store.register_model(ModelSpec(name, task_kind, dict.fromkeys(features, "numeric"), {}, None))
    predictions = frame.assign(prediction_id=[f"{name}-{i}" for i in range(len(frame))], model=name,
                               model_version="v1")
    assert not store.register_predictions(predictions).rejected
    outcomes = pd.DataFrame({"prediction_id": predictions["prediction_id"], "actual_value": outcome,
                             "observed_at": frame["served_at"] + pd.Timedelta(hours=1),
                             "received_at": frame["served_at"] + pd.Timedelta(hours=2)})
    assert store.record_outcomes(outcomes).rejected == []


def _stream(days: int, rows_per_day: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = days * rows_per_day
    start = pd.Timestamp(END) - pd.Timedelta(days=days)
    day = np.repeat(np.arange(days), rows_per_day)
    served = start + pd.to_timedelta(day, unit="D") + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s")
    return pd.DataFrame({"served_at": served}), day


def test_an_estimate_far_below_the_baseline_raises_an_estimated_performance_alert(store):
    # a calibrated binary classifier; from END - 8 days x1 narrows (sd 1 -> 0.25): its scores crowd
    # near 0.5, so the ROC AUC falls, before any label says so
    days, rows = 40, 400
    frame, day = _stream(days, rows, seed=3)
    rng = np.random.default_rng(4)
    x1 = rng.normal(size=len(frame)) * np.where(day >= 32, 0.25, 1.0)
    score = 1 / (1 + np.exp(-2.5 * x1))
    frame = frame.assign(x1=x1, x2=rng.normal(size=len(frame)), predicted_value=score.round(6),
                         predicted_label=(score >= 0.5).astype(int))
    _custom_model(store, "shifted_classifier", TaskKind.BINARY_CLASSIFICATION, frame,
                  (rng.random(len(frame)) < score).astype(float))
    analyse(store, "shifted_classifier", END)
    (row,) = estimated(store, "shifted_classifier", END)
    verdict, auc = row["result"]["alert"], row["result"]["estimate"]["metrics"]["roc_auc"]
    assert verdict["alarm"] is True and verdict["severity"] == "high" and auc["upper"] < auc["reference_value"]
    assert row["result"]["reliability"]["reliable"] is True  # covariate shift: the labels agree with it
    raised = AlertOperator(task_id="alert", model="shifted_classifier").run(
        store, store.get_model("shifted_classifier"), settings(END))
    (alert,) = [a for a in raised if a["type"] == "estimated_performance"]
    assert alert["cause"] == "estimated:roc_auc" and alert["status"] == "open"
    (stored,) = [a for a in store.check_alerts(until=END) if a["alert_type"] == "estimated_performance"]
    assert stored["details"]["estimated"] is True and stored["details"]["estimate"]["upper"] < auc["reference_value"]


def test_a_correlation_only_change_is_stored_and_alerted_as_multivariate_drift_with_univariate_checks_silent(store):
    # x1 and x2 standard normal throughout; their correlation 0.8 -> 0 from END - 8 days; the
    # regressor predicts from x1 alone, so predictions, labels and errors do not move
    days, rows = 40, 400
    frame, day = _stream(days, rows, seed=7)
    rng = np.random.default_rng(8)
    x1, noise = rng.normal(size=len(frame)), rng.normal(size=len(frame))
    rho = np.where(day >= 32, 0.0, 0.8)
    x2 = rho * x1 + np.sqrt(1 - rho**2) * noise
    actual = 10 + 2 * x1 + rng.normal(scale=0.5, size=len(frame))  # away from 0: MAPE stays under its limit
    frame = frame.assign(x1=x1, x2=x2, predicted_value=10 + 2 * x1 + rng.normal(scale=0.1, size=len(frame)))
    _custom_model(store, "joint_regressor", TaskKind.REGRESSION, frame, actual)

    first = analyse(store, "joint_regressor", END - timedelta(days=1))
    assert first["drift"]["multivariate_drift"]["raw_severity"] != "none"
    assert first["drift"]["multivariate_drift"]["severity"] == "none"  # one day: waits for a second
    analyse(store, "joint_regressor", END)
    reports = {r["kind"]: r for r in store.read_results("drift_reports", model="joint_regressor", window_end=END)}
    multivariate = reports[MULTIVARIATE_KIND]
    assert multivariate["status"] == "ok" and multivariate["severity"] != "none"
    assert multivariate["result"]["statistical_tests"]["persistence"]["persisted"] is True
    assert {k: r["severity"] for k, r in reports.items() if k != MULTIVARIATE_KIND} == dict.fromkeys(
        ("feature_drift", "prediction_drift", "concept_drift", "performance_degradation"), "none")
    raised = AlertOperator(task_id="alert", model="joint_regressor").run(
        store, store.get_model("joint_regressor"), settings(END))
    assert [(a["type"], a["cause"]) for a in raised] == [("multivariate_drift", "multivariate_drift")]
