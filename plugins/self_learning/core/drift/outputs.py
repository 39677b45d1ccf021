"""Drift of what the model outputs: the prediction distribution (prediction drift) and the per-row
loss against real outcomes (concept drift)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
from scipy import stats

from ..tasks import row_losses, task_spec
from ..types import DriftReport, DriftType, Severity, SeverityLadder, Status, TaskKind
from ..validation import as_float_array, check_alpha
from .checks import CONCEPT_LADDER, DriftThresholds
from .comparisons import compare_numeric


def detect_prediction_drift(
    reference_predicted,
    current_predicted,
    *,
    thresholds: DriftThresholds | None = None,
    detected_at: datetime | None = None,
) -> DriftReport:
    """Drift of the model's output distribution: KS, PSI and mean shift of the predictions."""
    thresholds = thresholds or DriftThresholds()
    ref = as_float_array("reference_predicted", reference_predicted, min_size=0)
    cur = as_float_array("current_predicted", current_predicted, min_size=0)
    if min(ref.size, cur.size) < thresholds.min_samples:
        return _insufficient(DriftType.PREDICTION_DRIFT, ref.size, cur.size, thresholds.min_samples, detected_at)
    comparison = compare_numeric(ref, cur, bins=thresholds.psi_bins)
    severity = Severity.NONE
    if comparison.p_value < thresholds.alpha:
        severity = thresholds.effect.rate(comparison.effect_size)
    tests = {**comparison.to_dict(), "effect_size": comparison.effect_size, "alpha": thresholds.alpha}
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
    loss (MAE, or log loss for classifiers) and only when significant. An improvement
    is reported but never rated as drift.
    """
    check_alpha(alpha)
    kind = TaskKind(task_kind)
    ref_loss = pointwise_loss(reference_actual, reference_predicted, kind)
    cur_loss = pointwise_loss(current_actual, current_predicted, kind)
    if min(ref_loss.size, cur_loss.size) < min_samples:
        return _insufficient(DriftType.CONCEPT_DRIFT, ref_loss.size, cur_loss.size, min_samples, detected_at)
    metric = task_spec(kind).primary_metric
    ref_mean, cur_mean = float(ref_loss.mean()), float(cur_loss.mean())
    pct_change = (cur_mean - ref_mean) / ref_mean * 100.0 if ref_mean > 0 else 0.0 if cur_mean == 0 else float("inf")
    if np.ptp(ref_loss) == 0 and np.ptp(cur_loss) == 0:
        p_welch = p_mw = 1.0 if ref_mean == cur_mean else 0.0
    else:
        p_welch = float(stats.ttest_ind(cur_loss, ref_loss, equal_var=False).pvalue)
        p_mw = float(stats.mannwhitneyu(cur_loss, ref_loss, alternative="two-sided").pvalue)
    p_value = min(1.0, 2 * min(p_welch, p_mw))
    significant = p_value < alpha
    severity = ladder.rate(pct_change) if significant and pct_change > 0 else Severity.NONE
    tests = {
        "metric": metric,
        "reference_value": ref_mean,
        "current_value": cur_mean,
        "pct_change": pct_change,
        "welch_t_test": {"p_value": p_welch},
        "mann_whitney_u": {"p_value": p_mw},
        "p_value": p_value,
        "significant": significant,
        "alpha": alpha,
        "n_reference": int(ref_loss.size),
        "n_current": int(cur_loss.size),
    }
    if severity is not Severity.NONE:
        recommendation = (
            f"{metric.upper()} rose {pct_change:.1f}% ({ref_mean:.4g} -> {cur_mean:.4g}), "
            f"significant: {severity.value} concept drift; "
            + ("retrain on recent labelled data." if severity.at_least(Severity.HIGH) else "watch the next windows.")
        )
    elif significant and pct_change < 0:
        recommendation = f"{metric.upper()} improved {-pct_change:.1f}%; no action needed."
    else:
        recommendation = f"No significant change of {metric.upper()} ({pct_change:+.1f}%)."
    return DriftReport(
        drift_type=DriftType.CONCEPT_DRIFT,
        severity=severity,
        affected_features=[],
        statistical_tests=tests,
        recommendation=recommendation,
        detected_at=detected_at,
    )


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
