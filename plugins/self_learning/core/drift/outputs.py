"""Drift of what the model outputs: the prediction distribution (prediction drift) and the per-row
loss against real outcomes (concept drift).

Concept drift's percentage change is bounded: a hard-label classifier (0/1 predictions) whose
reference window had no mistake showed users a log-loss change of +1.9e17 % (log loss of 2e-16 per
right row). Hard labels are now compared on the 0/1 loss (``core.tasks``), and a change against a
reference loss of 0, or beyond ``PCT_CHANGE_LIMIT`` (the loss 100 times the reference), is reported
as ``pct_change`` None, "not comparable"; when significant it is rated critical, since any ladder of
relative change tops out long before "100 times the baseline".

A multiclass model's output is a class and a probability per class, not one number:
``detect_class_prediction_drift`` tests the served-class distribution as a categorical feature
(chi-squared with small classes pooled, Jensen-Shannon beyond its null, unseen classes) and each
class's probability as a numeric one (KS, Wasserstein, PSI), all through ``detect_feature_drift``,
so Benjamini-Hochberg runs across them and the severities are the features' ladders. Concept drift
needs nothing new: ``row_losses`` gives the multiclass log loss per row.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

import numpy as np
from scipy import stats

from ..multiclass import ClassPredictions
from ..tasks import is_hard_label, row_losses, task_spec
from ..types import DriftReport, DriftType, Severity, SeverityLadder, Status, TaskKind, shown
from ..validation import as_float_array, check_alpha
from .checks import CONCEPT_LADDER, DriftThresholds, numeric_outcome
from .comparisons import compare_numeric
from .features import detect_feature_drift

PCT_CHANGE_LIMIT = 10_000.0  # percent: beyond a loss 100 times the reference's, "not comparable"


def detect_prediction_drift(
    reference_predicted,
    current_predicted,
    *,
    thresholds: DriftThresholds | None = None,
    detected_at: datetime | None = None,
) -> DriftReport:
    """Drift of the model's output distribution: KS, PSI and mean shift of the predictions.

    Significant (KS p < alpha), it is rated like a numeric feature: the worse of Wasserstein /
    reference std and PSI beyond its null mean, each on its own ladder (``DriftThresholds``)."""
    thresholds = thresholds or DriftThresholds()
    ref = as_float_array("reference_predicted", reference_predicted, min_size=0)
    cur = as_float_array("current_predicted", current_predicted, min_size=0)
    if min(ref.size, cur.size) < thresholds.min_samples:
        return _insufficient(DriftType.PREDICTION_DRIFT, ref.size, cur.size, thresholds.min_samples, detected_at)
    comparison = compare_numeric(ref, cur, bins=thresholds.psi_bins)
    outcome = numeric_outcome(comparison, thresholds)
    severity = outcome.severity() if comparison.p_value < thresholds.alpha else Severity.NONE
    tests = {**comparison.to_dict(), "alpha": thresholds.alpha}
    if severity is Severity.NONE:
        recommendation = "Prediction distribution is stable."
    else:
        direction = "up" if comparison.mean_shift > 0 else "down"
        recommendation = (
            f"{severity.value.capitalize()} shift of the predictions ({direction} by "
            f"{abs(comparison.mean_shift):.4g}); check feature drift and the serving version."
        )
    return DriftReport(
        drift_type=DriftType.PREDICTION_DRIFT,
        severity=severity,
        affected_features=["prediction"] if severity is not Severity.NONE else [],
        statistical_tests=tests,
        recommendation=recommendation,
        detected_at=detected_at,
    )


PREDICTED_CLASS = "predicted_class"  # the served class's column in a class-prediction drift report


def detect_class_prediction_drift(
    reference_predicted,
    current_predicted,
    *,
    thresholds: DriftThresholds | None = None,
    detected_at: datetime | None = None,
) -> DriftReport:
    """Prediction drift of a multiclass model (``ClassPredictions`` of two windows): the served-class
    distribution (``predicted_class``, categorical checks) and each class's probability
    (``probability:<class>``, numeric checks). Windows over different class lists are compared over
    their union (a class one window lacks reads as probability 0 there, and as an unseen category)."""
    for name, window in (("reference_predicted", reference_predicted), ("current_predicted", current_predicted)):
        if not isinstance(window, ClassPredictions):
            raise ValueError(f"{name}: expected ClassPredictions, got {shown(window)}")
    classes = list(dict.fromkeys([*reference_predicted.classes, *current_predicted.classes]))
    kinds = {PREDICTED_CLASS: "categorical", **{f"probability:{c}": "numeric" for c in classes}}
    frames = []
    for window in (reference_predicted, current_predicted):
        aligned = window.with_classes(classes)
        frames.append({PREDICTED_CLASS: aligned.predicted_labels,
                       **{f"probability:{c}": aligned.probabilities[:, j] for j, c in enumerate(classes)}})
    report = detect_feature_drift(*frames, feature_kinds=kinds, thresholds=thresholds, detected_at=detected_at)
    if report.status is not Status.OK:
        recommendation = report.recommendation
    elif report.drift_detected:
        recommendation = (f"{report.severity.value.capitalize()} shift of the model's output: "
                          f"{', '.join(report.affected_features)}; check feature drift and the serving version.")
    else:
        recommendation = "Served classes and class probabilities are stable."
    return dataclasses.replace(report, drift_type=DriftType.PREDICTION_DRIFT, recommendation=recommendation)


def pointwise_loss(actual, predicted, task_kind: TaskKind | str) -> np.ndarray:
    """The task kind's checked per-row loss (``core.tasks.row_losses``), in concept drift's argument order."""
    return row_losses(task_kind, actual, predicted)


def detect_concept_drift(
    reference_actual,
    reference_predicted,
    current_actual,
    current_predicted,
    *,
    task_kind: TaskKind | str = TaskKind.REGRESSION,
    alpha: float = 0.05,
    min_samples: int = 10,
    ladder: SeverityLadder = CONCEPT_LADDER,
    detected_at: datetime | None = None,
) -> DriftReport:
    """Has the relation between features and outcome changed? Compares per-row losses.

    Welch's t-test (means) and Mann-Whitney U (whole distribution) of the current vs
    reference loss, combined with Bonferroni; severity from the % increase of the mean
    loss (MAE, or log loss for classifiers; the 0/1 loss when either window holds hard 0/1
    labels) and only when significant. An improvement is reported but never rated as drift.
    ``pct_change`` is None ("not comparable") against a zero reference loss or beyond
    ``PCT_CHANGE_LIMIT``; significant, such a rise is critical.
    """
    check_alpha(alpha)
    kind = TaskKind(task_kind)
    hard = False
    if kind == TaskKind.BINARY_CLASSIFICATION:
        ref_scores = as_float_array("reference_predicted", reference_predicted, min_size=0)
        cur_scores = as_float_array("current_predicted", current_predicted, min_size=0)
        # One window of labels is enough: a log loss of labels against one of scores is absurd, so
        # both are compared on the 0/1 loss (scores cut at 0.5).
        hard = is_hard_label(ref_scores) or is_hard_label(cur_scores)
        if hard:
            reference_predicted, current_predicted = _as_labels(ref_scores), _as_labels(cur_scores)
    elif kind == TaskKind.MULTICLASS_CLASSIFICATION:  # one-hot labels in either window: both on the 0/1 loss
        hard = any(getattr(p, "is_one_hot", False) for p in (reference_predicted, current_predicted))
    ref_loss = row_losses(kind, reference_actual, reference_predicted, hard_labels=hard)
    cur_loss = row_losses(kind, current_actual, current_predicted, hard_labels=hard)
    if min(ref_loss.size, cur_loss.size) < min_samples:
        return _insufficient(DriftType.CONCEPT_DRIFT, ref_loss.size, cur_loss.size, min_samples, detected_at)
    metric = "zero_one_loss" if hard else task_spec(kind).primary_metric
    ref_mean, cur_mean = float(ref_loss.mean()), float(cur_loss.mean())
    pct_change = _pct_change(ref_mean, cur_mean)
    if np.ptp(ref_loss) == 0 and np.ptp(cur_loss) == 0:
        p_welch = p_mw = 1.0 if ref_mean == cur_mean else 0.0
    else:
        p_welch = float(stats.ttest_ind(cur_loss, ref_loss, equal_var=False).pvalue)
        p_mw = float(stats.mannwhitneyu(cur_loss, ref_loss, alternative="two-sided").pvalue)
    p_value = min(1.0, 2 * min(p_welch, p_mw))
    significant = p_value < alpha
    worse = cur_mean > ref_mean
    if not significant or not worse:
        severity = Severity.NONE
    else:
        severity = ladder.rate(pct_change) if pct_change is not None else Severity.CRITICAL
    tests = {
        "metric": metric,
        "reference_value": ref_mean,
        "current_value": cur_mean,
        "pct_change": pct_change,
        "comparable": pct_change is not None,
        "hard_labels": hard,
        "welch_t_test": {"p_value": p_welch},
        "mann_whitney_u": {"p_value": p_mw},
        "p_value": p_value,
        "significant": significant,
        "alpha": alpha,
        "n_reference": int(ref_loss.size),
        "n_current": int(cur_loss.size),
    }
    change = f"{pct_change:+.1f}%" if pct_change is not None else "a change not comparable as a percentage"
    if severity is not Severity.NONE:
        rose = (f"rose {pct_change:.1f}%" if pct_change is not None
                else "rose over 100-fold (not comparable as a percentage)")
        recommendation = (
            f"{metric.upper()} {rose} ({ref_mean:.4g} -> {cur_mean:.4g}), "
            f"significant: {severity.value} concept drift; "
            + ("retrain on recent labelled data." if severity.at_least(Severity.HIGH) else "watch the next windows.")
        )
    elif significant and cur_mean < ref_mean:
        improved = f"improved {-pct_change:.1f}%" if pct_change is not None else "improved"
        recommendation = f"{metric.upper()} {improved}; no action needed."
    else:
        recommendation = f"No significant change of {metric.upper()} ({change})."
    return DriftReport(
        drift_type=DriftType.CONCEPT_DRIFT,
        severity=severity,
        affected_features=[],
        statistical_tests=tests,
        recommendation=recommendation,
        detected_at=detected_at,
    )


def _as_labels(predicted: np.ndarray) -> np.ndarray:
    """Hard 0/1 labels as they are; a window of scores (P(y = 1)) cut at 0.5."""
    return predicted if is_hard_label(predicted) or not predicted.size else (predicted >= 0.5).astype(np.float64)


def _pct_change(reference: float, current: float) -> float | None:
    """Relative change of the mean loss in percent; None ("not comparable") against a zero
    reference or beyond ``PCT_CHANGE_LIMIT``."""
    if reference == current:
        return 0.0
    if reference <= 0:
        return None
    pct = (current - reference) / reference * 100.0
    return pct if abs(pct) <= PCT_CHANGE_LIMIT else None


def _insufficient(drift_type: DriftType, n_ref: int, n_cur: int, needed: int, detected_at) -> DriftReport:
    return DriftReport(
        drift_type=drift_type,
        severity=Severity.NONE,
        affected_features=[],
        statistical_tests={"n_reference": n_ref, "n_current": n_cur, "min_samples": needed},
        recommendation=(
            f"Not enough data: {n_ref} reference and {n_cur} current rows, at least {needed} needed in each."
        ),
        status=Status.INSUFFICIENT_DATA,
        detected_at=detected_at,
    )
