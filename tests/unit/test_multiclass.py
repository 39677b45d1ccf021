"""Multiclass models in the core: the rows, the metrics (equal to sklearn's), the per-row losses,
degradation's z, predicted-class drift and the default trainer (the class list: test_domain)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from self_learning.core import importance, training
from self_learning.core.degradation import ReferenceMetrics, compare_metrics
from self_learning.core.drift import detect_class_prediction_drift, detect_concept_drift
from self_learning.core.multiclass import (
    PROBABILITY_TOLERANCE,
    ClassPredictions,
    class_predictions,
    encode_actual,
    window_class_predictions,
)
from self_learning.core.performance import MulticlassPerformance, compute_performance, expected_calibration_error
from self_learning.core.tasks import LOG_LOSS_EPS, row_losses, task_spec
from sklearn import metrics

MULTI = "multiclass_classification"
HOOKS = ("question", "statistic", "story", "offer")


def calibrated(rng, n, classes=HOOKS, concentration=1.0, prevalence=None):
    """A calibrated model's window: Dirichlet probabilities, actual classes drawn from them, the
    most probable class served."""
    alpha = concentration * np.asarray(prevalence if prevalence is not None else np.ones(len(classes)))
    probabilities = rng.dirichlet(alpha * len(classes) / alpha.sum(), size=n)
    drawn = (probabilities.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1)
    actual = np.asarray(classes, dtype=object)[np.minimum(drawn, len(classes) - 1)]
    return actual, class_predictions(classes, probabilities)


def served_with_accuracy(rng, n, accuracy, classes=HOOKS):
    """Served class uniform; the actual class is the served one with probability ``accuracy``, else
    another; P(served) = 0.7, the rest shared."""
    k = len(classes)
    served = rng.integers(0, k, n)
    wrong = rng.random(n) >= accuracy
    actual = np.where(wrong, (served + rng.integers(1, k, n)) % k, served)
    probabilities = np.full((n, k), 0.3 / (k - 1))
    probabilities[np.arange(n), served] = 0.7
    return np.asarray(classes, dtype=object)[actual], ClassPredictions(classes, probabilities, served)


# --- the task kind ------------------------------------------------------------------------------------

def test_the_registry_entry_of_multiclass():
    spec = task_spec(MULTI)
    assert spec.primary_metric == "log_loss" and spec.target == "actual_label"
    assert set(spec.metric_names) == {"roc_auc", "log_loss"}


# --- rows: validation --------------------------------------------------------------------------------

@pytest.mark.parametrize(("build", "message"), [
    (lambda: ClassPredictions(HOOKS, [[0.5, 0.6, -0.1, 0.0]]), r"^probabilities: negative probability in row 0"),
    (lambda: ClassPredictions(HOOKS, [[0.25] * 4, [0.2] * 4]), r"^probabilities: row 1 sums to 0\.8, not 1"),
    (lambda: ClassPredictions(HOOKS, [[0.5, 0.5]]), r"^probabilities: expected one column per class \(n x 4\)"),
    (lambda: ClassPredictions(HOOKS, [[np.nan, 0.5, 0.5, 0.0]]), r"^probabilities: non-finite value in row 0"),
    (lambda: ClassPredictions(HOOKS, [[0.25] * 4], [4]), r"^predicted: class indices must be integers in 0\.\.3"),
    (lambda: class_predictions(HOOKS, [[0.25] * 4], ["poll"]), r"^predicted: served classes \['poll'\] are not"),
    (lambda: class_predictions(HOOKS, pd.DataFrame({"question": [1.0]})), r"^probabilities: needs one column per"),
    (lambda: encode_actual(HOOKS, ["story", None]), r"^actual: missing class label at index 1"),
    (lambda: row_losses(MULTI, ["story"], [[0.25] * 4]), r"^predicted: a multiclass model's predictions are"),
    (lambda: compute_performance(MULTI, ["story"], class_predictions(HOOKS, [[0.25] * 4]), top_k=0), r"^top_k: "),
    (lambda: compare_metrics(MULTI, ["story"], class_predictions(HOOKS, [[0.25] * 4]), ["story"], [[0.25] * 4]),
     r"^current_predicted: a multiclass model's predictions are ClassPredictions"),
    (lambda: compare_metrics(MULTI, ["story", "offer"], class_predictions(HOOKS, [[0.25] * 4]), ["story"],
                             class_predictions(HOOKS, [[0.25] * 4])), r"^reference_actual, reference_predicted: "),
])
def test_bad_rows_are_refused_naming_the_field(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_rows_within_the_tolerance_are_renormalised_and_frames_are_put_in_class_order():
    near = np.array([[0.4, 0.3, 0.2, 0.1 + 0.9 * PROBABILITY_TOLERANCE]])
    rows = ClassPredictions(HOOKS, near)
    assert rows.probabilities.sum() == pytest.approx(1.0, abs=1e-15) and rows.predicted_labels.tolist() == ["question"]
    frame = pd.DataFrame({"offer": [0.1], "story": [0.2], "question": [0.3], "statistic": [0.4]})
    from_frame = class_predictions(HOOKS, frame, ["story"])
    np.testing.assert_allclose(from_frame.probabilities, [[0.3, 0.4, 0.2, 0.1]], rtol=1e-15)
    assert from_frame.predicted_labels.tolist() == ["story"]  # the served class, not the most probable
    widened = from_frame.with_classes(("offer", *HOOKS[:3], "poll"))
    np.testing.assert_allclose(widened.probabilities, [[0.1, 0.3, 0.4, 0.2, 0.0]], rtol=1e-15)
    assert widened.predicted_labels.tolist() == ["story"]
    with pytest.raises(ValueError, match=r"^classes: \['offer'\] of the predictions are not in the new class list"):
        from_frame.with_classes(HOOKS[:3])
    rows = calibrated(np.random.default_rng(1), 50)[1]
    keep = np.arange(50) % 3 == 0
    assert np.array_equal(rows[keep].probabilities, rows.probabilities[keep])  # slicing does not renormalise again
    assert rows[7].predicted.tolist() == [rows.predicted[7]] and len(rows[keep]) == 17


# --- metrics -----------------------------------------------------------------------------------------

def test_the_metrics_equal_sklearn():
    rng = np.random.default_rng(17)
    actual, predictions = calibrated(rng, 400)
    served = predictions.predicted.copy()
    served[::7] = (served[::7] + 1) % 4  # some rows serve another class than the most probable one
    predictions = ClassPredictions(HOOKS, predictions.probabilities, served)
    perf = compute_performance(MULTI, actual, predictions, n_predicted=500)
    assert isinstance(perf, MulticlassPerformance)
    y, p, s = encode_actual(HOOKS, actual)[0], predictions.probabilities, predictions.predicted
    labels = [0, 1, 2, 3]
    expected = {
        "accuracy": metrics.accuracy_score(y, s),
        "macro_f1": metrics.f1_score(y, s, average="macro"),
        "weighted_f1": metrics.f1_score(y, s, average="weighted"),
        "log_loss": metrics.log_loss(y, p, labels=labels),
        "roc_auc": metrics.roc_auc_score(y, p, multi_class="ovr", average="macro", labels=labels),
        "brier_score": metrics.brier_score_loss(y, p, labels=labels),
        "top_k_accuracy": metrics.top_k_accuracy_score(y, p, k=2, labels=labels),
    }
    for name, value in expected.items():
        assert getattr(perf, name) == pytest.approx(value, rel=1e-12, abs=1e-12), name
    precision, recall, _, support = metrics.precision_recall_fscore_support(y, s, labels=labels)
    assert list(perf.per_class_precision.values()) == pytest.approx(precision, rel=1e-12)
    assert list(perf.per_class_recall.values()) == pytest.approx(recall, rel=1e-12)
    assert list(perf.per_class_support.values()) == support.tolist()
    assert perf.confusion_matrix == tuple(map(tuple, metrics.confusion_matrix(y, s, labels=labels).tolist()))
    calibration = [expected_calibration_error(y == j, p[:, j]) for j in labels]
    assert list(perf.per_class_calibration_error.values()) == pytest.approx(calibration, rel=1e-12)
    assert perf.expected_calibration_error == pytest.approx(np.mean(calibration), rel=1e-12)
    assert perf.label_coverage == 0.8 and perf.provisional is False and perf.sample_count == 400
    assert perf.unknown_actual == {} and perf.absent_classes == () and perf.unavailable == {}
    # the per-row losses of the registry average to the reported figures
    assert row_losses(MULTI, actual, predictions).mean() == pytest.approx(perf.log_loss, rel=1e-12)
    assert task_spec(MULTI).segment_error(actual, predictions).mean() == pytest.approx(1 - perf.accuracy, rel=1e-12)
    assert MulticlassPerformance.from_dict(perf.to_dict()).per_class_recall == perf.per_class_recall


def test_unknown_and_absent_classes_are_reported_not_raised():
    rng = np.random.default_rng(3)
    actual, predictions = calibrated(rng, 300)
    actual = np.where(actual == "offer", "story", actual)  # "offer": in the class list, never actual
    actual[:5] = ["poll", "poll", "poll", "listicle", "poll"]  # outside the class list
    perf = compute_performance(MULTI, actual, predictions)
    assert perf.unknown_actual == {"poll": 4, "listicle": 1} and perf.sample_count == 295
    assert perf.absent_classes == ("offer",) and perf.per_class_recall["offer"] is None
    assert any("outside the class list" in note for note in perf.notes)
    assert any("roc_auc averages the 3 classes present of 4" in note for note in perf.notes)
    kept = slice(5, None)
    y = encode_actual(HOOKS, actual[kept])[0]
    assert perf.accuracy == pytest.approx(metrics.accuracy_score(y, predictions.predicted[kept]), rel=1e-12)
    assert perf.log_loss == pytest.approx(metrics.log_loss(y, predictions.probabilities[kept], labels=range(4)),
                                          rel=1e-12)
    ovr = [metrics.roc_auc_score(y == j, predictions.probabilities[kept, j]) for j in range(3)]
    assert perf.roc_auc == pytest.approx(np.mean(ovr), rel=1e-12)
    # per row, an unknown class costs the clipped maximum and a 0/1 loss of 1
    losses = row_losses(MULTI, actual, predictions)
    assert losses[:5] == pytest.approx(-np.log(LOG_LOSS_EPS)) and np.isfinite(losses).all()
    assert row_losses(MULTI, actual, predictions, hard_labels=True)[:5].tolist() == [1.0] * 5
    # degradation leaves the rows out and says so; a class the reference never saw (never actual,
    # never served, probability 0: a window from before the class list was extended) is named
    reference, ref_predictions = calibrated(rng, 300, classes=HOOKS[:3])
    results = compare_metrics(MULTI, reference, ref_predictions.with_classes(HOOKS), actual, predictions)
    assert all(r.status == "ok" and "left out 0 reference and 5 current rows" in r.reason for r in results)
    macro = next(r for r in results if r.metric == "macro_f1")
    assert macro.reason.startswith("macro_f1 averages different classes: only in the reference [], only in the "
                                   "current window ['offer']")


def test_a_single_class_window_gives_a_status_not_an_exception():
    rng = np.random.default_rng(5)
    _, predictions = calibrated(rng, 50)
    perf = compute_performance(MULTI, ["question"] * 50, predictions)
    assert perf.status == "ok" and perf.roc_auc is None
    assert perf.unavailable["roc_auc"] == "not computable: the window has a single actual class ('question')"
    assert perf.accuracy == pytest.approx(np.mean(predictions.predicted == 0))
    assert perf.log_loss is not None and perf.absent_classes == HOOKS[1:]
    empty = compute_performance(MULTI, [], predictions[np.zeros(50, dtype=bool)])
    assert empty.status == "insufficient_data" and empty.accuracy is None
    few = compute_performance(MULTI, ["story", "offer"], predictions[:2], top_k=4)
    assert few.top_k_accuracy is None and "top_k_accuracy" in few.unavailable


# --- degradation -------------------------------------------------------------------------------------

def test_degradation_z_is_standard_normal_with_no_change():
    rng = np.random.default_rng(2026)
    zs = {"accuracy": [], "log_loss": [], "macro_f1": []}
    for _ in range(300):
        results = compare_metrics(MULTI, *calibrated(rng, 1_000), *calibrated(rng, 1_000))
        for r in results:
            zs[r.metric].append(r.z)
    for metric, values in zs.items():
        assert abs(np.mean(values)) < 0.15, metric
        assert abs(np.std(values, ddof=1) - 1) < 0.15, metric


def test_a_20_point_accuracy_drop_at_1000_rows_is_found_by_every_metric():
    rng = np.random.default_rng(20)
    results = {r.metric: r for r in compare_metrics(MULTI, *served_with_accuracy(rng, 1_000, 0.8),
                                                    *served_with_accuracy(rng, 1_000, 0.6))}
    assert results["accuracy"].worse_by == pytest.approx(0.2, abs=0.04)
    # expected z ~ 0.2 / sqrt(0.7 * 0.3 * 2 / 1000) = 9.8 for accuracy
    assert all(r.z > 6 and r.practical and r.p_value < 1e-9 for r in results.values()), results


def test_a_reference_built_once_and_its_rest_match_a_comparison_from_rows():
    rng = np.random.default_rng(9)
    ref_actual, ref_predictions = calibrated(rng, 600)
    cur = calibrated(rng, 300)
    reference = ReferenceMetrics.build(MULTI, ref_actual, ref_predictions)
    assert compare_metrics(MULTI, None, None, *cur, reference=reference) == compare_metrics(
        MULTI, ref_actual, ref_predictions, *cur)
    day = np.arange(100, 200)
    keep = np.ones(600, dtype=bool)
    keep[day] = False
    assert compare_metrics(MULTI, None, None, *cur, reference=reference.excluding(day)) == compare_metrics(
        MULTI, ref_actual[keep], ref_predictions[keep], *cur)


def test_macro_f1_delta_variance_agrees_with_a_bootstrap():
    from self_learning.core.degradation_multiclass import macro_f1_side

    rng = np.random.default_rng(11)
    actual, predictions = calibrated(rng, 2_000, concentration=0.5)
    y = encode_actual(HOOKS, actual)[0]
    side = macro_f1_side(y, predictions.predicted, HOOKS)
    assert side.f1 == pytest.approx(metrics.f1_score(y, predictions.predicted, average="macro"), rel=1e-12)
    boot = [metrics.f1_score(y[rows], predictions.predicted[rows], average="macro")
            for rows in rng.integers(0, y.size, (300, y.size))]
    assert np.sqrt(side.var) == pytest.approx(np.std(boot, ddof=1), rel=0.15)


# --- drift and training ------------------------------------------------------------------------------

def test_predicted_class_drift_and_concept_drift():
    rng = np.random.default_rng(4)
    _, reference = calibrated(rng, 2_000)
    _, stable = calibrated(rng, 2_000)
    _, shifted = calibrated(rng, 2_000, prevalence=[1, 1, 1, 3])  # "offer" served far more often
    calm = detect_class_prediction_drift(reference, stable)
    assert calm.drift_type == "prediction_drift" and not calm.drift_detected
    moved = detect_class_prediction_drift(reference, shifted)
    assert "predicted_class" in moved.affected_features and moved.severity.at_least("medium")
    _, wider = calibrated(rng, 2_000, classes=(*HOOKS, "poll"))
    new = detect_class_prediction_drift(reference, wider)  # a class the reference never served
    assert new.drift_detected and "probability:poll" in new.affected_features

    good = served_with_accuracy(rng, 1_000, 0.8)
    concept = detect_concept_drift(*good, *served_with_accuracy(rng, 1_000, 0.55), task_kind=MULTI)
    assert concept.statistical_tests["metric"] == "log_loss" and concept.drift_detected
    assert not detect_concept_drift(*good, *served_with_accuracy(rng, 1_000, 0.8), task_kind=MULTI).drift_detected


def test_the_default_trainer_fits_class_labels_and_serves_class_predictions():
    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame({"x": rng.normal(size=n), "c": rng.choice(["a", "b"], n),
                          "served_at": pd.date_range("2026-01-01", periods=n, freq="h")})
    score = frame["x"] + (frame["c"] == "b") + rng.normal(0, 0.5, n)
    frame["actual_label"] = np.select([score < -0.3, score < 0.9], ["question", "story"], "offer")
    kinds = {"x": "numeric", "c": "categorical"}
    train, holdout = training.time_holdout(frame)
    model = training.default_trainer(MULTI, kinds)
    model.set_params(model__max_iter=10)
    fitted = training.fit(model, train, kinds, target=task_spec(MULTI).target)
    served = training.predict(fitted, holdout, kinds, MULTI)
    assert isinstance(served, ClassPredictions) and set(served.classes) == {"question", "story", "offer"}
    np.testing.assert_allclose(served.probabilities.sum(axis=1), 1.0, rtol=1e-12)
    assert served.predicted_labels.tolist() == fitted.predict(training.feature_frame(holdout, kinds)).tolist()
    perf = training.holdout_performance(MULTI, holdout, served, model_version="v1")
    assert perf.accuracy > 0.6 and perf.model_version == "v1"
    assert training.judge(perf, None).accept
    weights = importance.permutation_weights(fitted, holdout, kinds, MULTI, repeats=2)  # on the log loss
    assert set(weights) == {"x", "c"} and weights["x"]["mean"] > 0
    aligned = served.with_classes(("question", "story", "offer", "poll"))  # the model's list, one class unseen
    assert aligned.probabilities[:, 3].tolist() == [0.0] * len(holdout)
    with pytest.raises(ValueError, match=r"^target: the frame has no column 'actual_value'"):
        training.fit(model, train, kinds)


def test_served_and_stored_probability_rows_become_a_matrix_in_class_order():
    from self_learning.core.multiclass import probability_rows

    rows = [{"story": 0.6, "question": 0.4}, [0.1, 0.2, 0.3, 0.4], [0.5, 0.5]]  # a dict, a vector, an old vector
    np.testing.assert_array_equal(probability_rows(HOOKS, rows),
                                  [[0.4, 0.0, 0.6, 0.0], [0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.0, 0.0]])
    with pytest.raises(ValueError, match=r"^probabilities: row 0 has classes outside the class list \['poll'\]"):
        probability_rows(HOOKS, [{"poll": 1.0}])
    with pytest.raises(ValueError, match=r"^probabilities: row 1 has 5 values for 4 classes"):
        probability_rows(HOOKS, [[1.0], [0.2] * 5])
    with pytest.raises(ValueError, match=r"^probabilities: row 0 is not numbers"):
        probability_rows(HOOKS, [{"story": "high"}])


def test_hard_class_labels_are_scored_on_the_0_1_loss():
    rng = np.random.default_rng(8)
    actual, scored = served_with_accuracy(rng, 400, 0.7)
    labels = ClassPredictions(HOOKS, np.eye(4)[scored.predicted], scored.predicted)  # one-hot: labels only
    assert labels.is_one_hot and not scored.is_one_hot
    perf = compute_performance(MULTI, actual, labels)
    assert perf.log_loss is None and perf.roc_auc is None and perf.top_k_accuracy is None
    assert perf.unavailable["log_loss"].startswith("undefined: the predictions are hard class labels")
    assert perf.accuracy == pytest.approx(compute_performance(MULTI, actual, scored).accuracy)
    assert row_losses(MULTI, actual, labels).tolist() == (encode_actual(HOOKS, actual)[0] != labels.predicted).tolist()
    cur_actual, cur_scored = served_with_accuracy(rng, 400, 0.7)
    cur_labels = ClassPredictions(HOOKS, np.eye(4)[cur_scored.predicted], cur_scored.predicted)
    results = {r.metric: r for r in compare_metrics(MULTI, actual, scored, cur_actual, cur_labels)}
    assert results["log_loss"].status == "not_comparable" and results["accuracy"].status == "ok"
    concept = detect_concept_drift(actual, scored, cur_actual, cur_labels, task_kind=MULTI)
    assert concept.statistical_tests["metric"] == "zero_one_loss" and concept.statistical_tests["hard_labels"]


def test_a_window_frame_becomes_labels_and_class_predictions():
    window = pd.DataFrame({"predicted_label": ["b", "a", "b"], "actual_label": ["b", None, "new"],
                           "proba_a": [0.3, 0.9, 0.4], "proba_b": [0.7, 0.1, 0.6]})
    labels, predicted = window_class_predictions(window, ("a", "b", "c"))  # "c" has no column: probability 0
    assert labels.tolist() == ["b", "new"]  # the unlabelled row is left out, an unknown label kept
    np.testing.assert_array_equal(predicted.probabilities, [[0.3, 0.7, 0.0], [0.4, 0.6, 0.0]])
    assert predicted.predicted_labels.tolist() == ["b", "b"]
    with pytest.raises(ValueError, match=r"^window: .*'actual_label'"):
        window_class_predictions(window.drop(columns="actual_label"), ("a", "b"))
