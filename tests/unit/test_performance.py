"""Performance metrics against scikit-learn and textbook values."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from self_learning.domain import Status, TaskKind
from self_learning.performance import (
    classification_performance,
    compute_performance,
    expected_calibration_error,
    label_coverage,
    regression_performance,
)
from sklearn import metrics


def test_regression_metrics_equal_sklearn():
    y = np.array([3.0, -0.5, 2.0, 7.0])
    p = np.array([2.5, 0.0, 2.0, 8.0])
    perf = regression_performance(y, p)
    assert perf.task_kind is TaskKind.REGRESSION
    assert perf.sample_count == 4
    assert perf.mae == pytest.approx(metrics.mean_absolute_error(y, p)) == pytest.approx(0.5)
    assert perf.rmse == pytest.approx(np.sqrt(0.375))
    assert perf.r2 == pytest.approx(metrics.r2_score(y, p)) == pytest.approx(0.9486081)
    assert perf.mape == pytest.approx(metrics.mean_absolute_percentage_error(y, p) * 100)
    assert perf.wape == pytest.approx(2.0 / 12.5)
    assert perf.mean_error == pytest.approx(0.25)


def test_mape_excludes_zero_actuals_and_counts_them():
    perf = regression_performance([0.0, 2.0, 4.0], [1.0, 1.0, 5.0])
    assert perf.mape == pytest.approx((0.5 + 0.25) / 2 * 100)
    assert perf.mape_excluded == 1
    assert perf.wape == pytest.approx(3 / 6)
    assert any("excludes 1 rows" in note for note in perf.notes)


def test_all_zero_actuals():
    perf = regression_performance([0.0, 0.0, 0.0], [0.1, 0.0, 0.2])
    assert perf.mape is None and perf.wape is None and perf.r2 is None
    assert perf.mape_excluded == 3
    assert any("mape undefined" in note for note in perf.notes)
    json.dumps(perf.to_dict(), allow_nan=False)


def test_classification_metrics_equal_sklearn():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    s = np.clip(y * 0.3 + rng.uniform(0, 0.7, 500), 0, 1)
    perf = classification_performance(y, s, threshold=0.5)
    labels = (s >= 0.5).astype(int)
    assert perf.accuracy == pytest.approx(metrics.accuracy_score(y, labels))
    assert perf.precision == pytest.approx(metrics.precision_score(y, labels))
    assert perf.recall == pytest.approx(metrics.recall_score(y, labels))
    assert perf.f1 == pytest.approx(metrics.f1_score(y, labels))
    assert perf.roc_auc == pytest.approx(metrics.roc_auc_score(y, s))
    assert perf.log_loss == pytest.approx(metrics.log_loss(y, s))
    assert perf.brier_score == pytest.approx(metrics.brier_score_loss(y, s))
    assert perf.mae is None


def test_expected_calibration_error_textbook():
    # bin 0.1: observed 0.5 vs 0.1 on half the rows; bin 0.9: 1.0 vs 0.9 on the other half
    assert expected_calibration_error([0, 1, 1, 1], [0.1, 0.1, 0.9, 0.9]) == pytest.approx(0.25)
    assert expected_calibration_error([0, 1], [0.0, 1.0]) == 0.0


def test_single_class_gives_no_auc_but_a_note():
    perf = classification_performance([1, 1, 1], [0.9, 0.8, 0.4])
    assert perf.roc_auc is None
    assert any("single class" in note for note in perf.notes)
    assert perf.log_loss == pytest.approx(metrics.log_loss([1, 1, 1], [0.9, 0.8, 0.4], labels=[0, 1]))


def test_label_coverage_and_provisional_flag():
    assert label_coverage(80, 100) == 0.8
    assert label_coverage(5, None) is None
    assert not regression_performance([1.0] * 80, [1.0] * 80, n_predicted=100).provisional
    late = regression_performance([1.0] * 50, [1.2] * 50, n_predicted=100)
    assert late.provisional and late.label_coverage == 0.5
    with pytest.raises(ValueError, match="n_predicted: 10 is less than the 50 labelled rows"):
        regression_performance([1.0] * 50, [1.2] * 50, n_predicted=10)


def test_dispatch_by_task_kind():
    assert compute_performance("regression", [1.0, 2.0], [1.0, 2.5]).mae == pytest.approx(0.25)
    assert compute_performance(TaskKind.BINARY_CLASSIFICATION, [0, 1], [0.2, 0.7]).accuracy == 1.0
    assert compute_performance("regression", [], []).status is Status.INSUFFICIENT_DATA


def test_bad_input_names_the_field():
    with pytest.raises(ValueError, match="length mismatch: actual=2, predicted=3"):
        regression_performance([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="predicted: non-finite value nan at index 1"):
        regression_performance([1, 2], [1, np.nan])
    with pytest.raises(ValueError, match="actual: non-numeric value 'two' at index 1"):
        regression_performance(np.array([1, "two"], dtype=object), [1, 2])
    with pytest.raises(ValueError, match="score: predicted probabilities must lie in"):
        classification_performance([0, 1], [0.2, 1.2])
    with pytest.raises(ValueError, match="actual: binary classification labels"):
        classification_performance([0, 3], [0.2, 0.4])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)), min_size=2, max_size=50),
       st.randoms(use_true_random=False))
def test_regression_metrics_are_order_invariant_and_bounded(rows, random):
    y, p = map(np.array, zip(*rows, strict=True))
    perf = regression_performance(y, p)
    random.shuffle(rows)
    y2, p2 = map(np.array, zip(*rows, strict=True))
    again = regression_performance(y2, p2)
    assert again.mae == pytest.approx(perf.mae) and again.rmse == pytest.approx(perf.rmse)
    assert 0 <= perf.mae <= perf.rmse + 1e-9
    assert perf.r2 is None or perf.r2 <= 1 + 1e-12


def test_hard_label_classifier_gets_no_log_loss_or_auc():
    """0/1 predictions with no score: log loss would be ~36 per wrong row (a probability of 0
    clipped at the machine epsilon) and the AUC of labels is not a ranking; both are None with a
    note, and accuracy / F1 are the metrics."""
    y = np.array([1, 0, 1, 1, 0, 0, 1, 0] * 5, dtype=float)
    labels = y.copy()
    labels[:3] = 1 - labels[:3]
    perf = compute_performance(TaskKind.BINARY_CLASSIFICATION, y, labels)
    assert perf.log_loss is None and perf.roc_auc is None
    assert any("hard 0/1 labels" in note for note in perf.notes)
    assert perf.accuracy == pytest.approx(metrics.accuracy_score(y, labels))
    assert perf.f1 == pytest.approx(metrics.f1_score(y, labels))
    scored = compute_performance(TaskKind.BINARY_CLASSIFICATION, y, np.clip(labels * 0.8 + 0.1, 0, 1))
    assert scored.log_loss is not None and scored.roc_auc is not None
    forced = classification_performance(y, labels, hard_labels=False)
    assert forced.log_loss == pytest.approx(metrics.log_loss(y, labels))
    with pytest.raises(ValueError, match=r"^score: hard_labels=True needs predictions of exactly 0 or 1"):
        classification_performance(y, np.full(y.size, 0.5), hard_labels=True)
