"""Comparisons and performance from daily profiles (``core/profiles.py``): the profile-based
versions of the drift module's comparisons and of ``core.performance``.

- ``compare_numeric_profiles``: KS, Wasserstein and PSI from two KLL sketches (each sketch's CDF
  a step function at its retained items), the mean shift from the exact sums. The KS statistic is
  within eps_ref + eps_cur of the exact one (``sketch_rank_error``); the decision uses
  D_decision = max(0, D_sketch - eps_ref - eps_cur), so sketch error alone never reports drift.
  Its effects (``wasserstein_excess``, ``psi_excess``) are the raw path's, so
  ``core.drift.checks.numeric_outcome`` rates the comparison as it rates a raw one (same decision
  on the simulation suite's scenarios at profile volumes: tests/unit/test_profiles.py).
- ``compare_categorical_profiles``: chi-squared, JS and unseen values from counts, through the raw
  path's own arithmetic (``compare_category_counts``): identical while both profiles are exact.
- ``profile_performance``: a ``ModelPerformance`` equal to core.performance's (same notes) from
  the sufficient statistics, with the ROC AUC's bound from the score histogram.

Measured (bench/profile_bench.py, 1M rows/day x 50 features): a 7-day and a 30-day window merged
and compared on every column, both windows' performance included, in 0.75 s.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from datasketches import kll_doubles_sketch

from .drift.comparisons import (
    PSI_MIN_PER_BIN,
    CategoricalComparison,
    compare_category_counts,
    ks_asymptotic_p_value,
    population_stability_index,
    psi_null_mean,
)
from .performance import DEFAULT_MIN_LABEL_COVERAGE, ModelPerformance, _common
from .profiles import (
    BinaryStatistics,
    CategoricalProfile,
    DayProfile,
    NumericProfile,
    RegressionStatistics,
    sketch_rank_error,
)
from .types import Result, Status

# -- comparisons -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ProfileNumericComparison(Result):
    """Two numeric profiles compared (the raw path's ``NumericComparison`` fields where they exist).

    ``ks_statistic`` is the KS distance of the two sketches' CDFs, within ``ks_error_bound`` =
    eps_ref + eps_cur of the exact one; ``ks_decision_statistic`` = max(0, ks_statistic -
    ks_error_bound) is what a decision uses and ``p_value`` its p-value. ``wasserstein`` is
    Wasserstein-1 between the sketches' CDFs, within ``wasserstein_error_bound`` = (eps_ref +
    eps_cur) x (the pooled max - min). Means and stds are exact. ``wasserstein_excess`` and
    ``psi_excess`` are the raw path's effects, so ``core.drift.checks.numeric_outcome`` rates this
    comparison as it rates a ``NumericComparison``."""

    n_reference: int
    n_current: int
    ks_statistic: float
    ks_error_bound: float
    ks_decision_statistic: float
    p_value: float
    wasserstein: float
    wasserstein_error_bound: float
    wasserstein_norm: float | None
    psi: float
    psi_bins: int
    psi_excess: float
    wasserstein_null: float | None  # E[W / reference std] with no drift, from the reference sketch
    wasserstein_excess: float | None  # sqrt(max(0, wasserstein_norm² - wasserstein_null²)), as the raw path
    mean_reference: float
    mean_current: float
    mean_shift: float
    mean_shift_std: float | None


def _sketch_cdf(sketch: kll_doubles_sketch) -> tuple[np.ndarray, np.ndarray]:
    """The sketch's retained items, sorted, and its CDF (share <= item) at each."""
    pairs = np.array(list(sketch), dtype=np.float64).reshape(-1, 2)
    order = np.argsort(pairs[:, 0], kind="stable")
    items, weights = pairs[order, 0], pairs[order, 1]
    return items, np.cumsum(weights) / weights.sum()


def _cdf_at(items: np.ndarray, cdf: np.ndarray, points: np.ndarray) -> np.ndarray:
    index = np.searchsorted(items, points, side="right")
    return np.where(index > 0, cdf[np.maximum(index - 1, 0)], 0.0)


def compare_numeric_profiles(reference: NumericProfile, current: NumericProfile, *, bins: int = 10
                             ) -> ProfileNumericComparison:
    """KS, Wasserstein and PSI from two KLL sketches, mean shift from the exact sums."""
    for name, profile in (("reference", reference), ("current", current)):
        if profile.count == 0:
            raise ValueError(f"{name}: the profile holds no finite values")
    ref_sketch, cur_sketch = reference.kll(), current.kll()
    ref_items, ref_cdf = _sketch_cdf(ref_sketch)
    cur_items, cur_cdf = _sketch_cdf(cur_sketch)
    points = np.union1d(ref_items, cur_items)
    gap = np.abs(_cdf_at(ref_items, ref_cdf, points) - _cdf_at(cur_items, cur_cdf, points))
    ks = float(gap.max())
    wasserstein = float(gap[:-1] @ np.diff(points))
    error = sketch_rank_error(ref_sketch) + sketch_rank_error(cur_sketch)
    decision = max(0.0, ks - error)
    n1, n2 = reference.count, current.count
    psi, psi_bins = _psi_from_sketches(ref_sketch, cur_sketch, n1, n2, bins)
    std = reference.std
    shift = current.mean - reference.mean
    w_norm = w_null = w_excess = None
    if std > 0:  # as _compare_sorted: the null mean from the reference's CDF (here the sketch's)
        spread = float(np.sqrt(ref_cdf[:-1] * (1 - ref_cdf[:-1])) @ np.diff(ref_items))
        w_norm = wasserstein / std
        w_null = float(np.sqrt(2 / np.pi) * np.sqrt(1 / n1 + 1 / n2) * spread) / std
        w_excess = float(np.sqrt(max(0.0, w_norm * w_norm - w_null * w_null)))
    return ProfileNumericComparison(
        n_reference=n1, n_current=n2, ks_statistic=ks, ks_error_bound=error, ks_decision_statistic=decision,
        p_value=ks_asymptotic_p_value(decision, n1 * n2 / (n1 + n2)), wasserstein=wasserstein,
        wasserstein_error_bound=error * float(points[-1] - points[0]),
        wasserstein_norm=w_norm, psi=psi, psi_bins=psi_bins,
        psi_excess=max(0.0, psi - psi_null_mean(psi_bins, n1, n2)), wasserstein_null=w_null,
        wasserstein_excess=w_excess, mean_reference=reference.mean,
        mean_current=current.mean, mean_shift=shift, mean_shift_std=shift / std if std > 0 else None)


def _psi_from_sketches(ref: kll_doubles_sketch, cur: kll_doubles_sketch, n1: int, n2: int, bins: int
                       ) -> tuple[float, int]:
    """PSI over bins cut at the reference sketch's quantiles (the raw path's rule for the count)."""
    bins = int(max(2, min(bins, min(n1, n2) // PSI_MIN_PER_BIN)))
    edges = np.unique(np.asarray(ref.get_quantiles(list(np.arange(1, bins) / bins), True), dtype=np.float64))
    ref_share = np.diff(np.concatenate(([0.0], ref.get_cdf(list(edges), True))))
    cur_share = np.diff(np.concatenate(([0.0], cur.get_cdf(list(edges), True))))
    return population_stability_index(ref_share * n1, cur_share * n2), int(edges.size + 1)


def compare_categorical_profiles(reference: CategoricalProfile, current: CategoricalProfile, *,
                                 min_expected_count: float = 5.0) -> CategoricalComparison:
    """Chi-squared, JS and unseen values from counts (``compare_category_counts``, the raw path's
    arithmetic: identical results while both profiles are exact). Above CATEGORY_CAP, the values
    either sketch surely tracks, each counted by both sketches' estimates, the rest pooled as one
    ``(other values)`` category (a value one sketch happened to track and the other not is then
    compared on estimates, not taken for an unseen value)."""
    labels = sorted(set(reference.estimated_counts()) | set(current.estimated_counts()))
    ref_counts, cur_counts = reference.counts_of(labels), current.counts_of(labels)
    names = list(labels)
    if not (reference.exact and current.exact):  # what the sketches do not name, pooled
        names.append("(other values)")
        ref_counts = np.append(ref_counts, max(0, reference.count - int(ref_counts.sum())))
        cur_counts = np.append(cur_counts, max(0, current.count - int(cur_counts.sum())))
    names = np.array(names, dtype=object)
    return compare_category_counts(names, ref_counts, cur_counts, min_expected_count=min_expected_count)


# -- performance from the statistics -----------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ProfilePerformance(Result):
    """A ``ModelPerformance`` from a profile's statistics and, for classifiers, the bound on its ROC
    AUC from the score histogram (|roc_auc - exact| <= roc_auc_bound)."""

    performance: ModelPerformance
    roc_auc_bound: float | None = None


def profile_performance(profile: DayProfile, *, n_predicted: int | None = None,
                        min_label_coverage: float = DEFAULT_MIN_LABEL_COVERAGE, model_type: str | None = None,
                        model_version: str | None = None) -> ProfilePerformance:
    """The window's performance as ``core.performance`` computes it from the rows (same notes)."""
    stats = profile.performance
    if stats is None:
        raise ValueError("profile: not a labelled profile (no performance statistics)")
    common = _common(profile.task_kind, stats.count, n_predicted, min_label_coverage, model_type, model_version)
    if stats.count == 0:
        return ProfilePerformance(ModelPerformance(**common, status=Status.INSUFFICIENT_DATA,
                                                   notes=("no labelled rows",)))
    if isinstance(stats, RegressionStatistics):
        return ProfilePerformance(_regression(stats, common))
    return _classification(stats, common)


def _regression(s: RegressionStatistics, common: dict) -> ModelPerformance:
    notes = []
    nonzero = s.count - s.zero_actual
    mape = None
    if nonzero:
        mape = s.sum_abs_percentage / nonzero * 100.0
    else:
        notes.append("mape undefined: every actual value is 0")
    if s.zero_actual and nonzero:
        notes.append(f"mape excludes {s.zero_actual} rows with actual = 0")
    r2 = None
    if s.count >= 2 and s.actual_maximum > s.actual_minimum:
        r2 = 1.0 - s.sum_squared_error / s.actual_squared_deviations
    else:
        notes.append("r2 undefined: fewer than 2 rows or constant actual values")
    with np.errstate(over="ignore"):
        wape = s.sum_abs_error / s.sum_abs_actual if s.sum_abs_actual > 0 else None
    return ModelPerformance(**common, mae=s.sum_abs_error / s.count, rmse=math.sqrt(s.sum_squared_error / s.count),
                            r2=r2, mape=mape, mape_excluded=s.zero_actual, wape=wape,
                            mean_error=s.sum_error / s.count, notes=tuple(notes))


def _classification(s: BinaryStatistics, common: dict) -> ProfilePerformance:
    notes = []
    n = s.count
    true_negatives = n - s.true_positives - s.false_positives - s.false_negatives
    predicted_positive = s.true_positives + s.false_positives
    precision = s.true_positives / predicted_positive if predicted_positive else 0.0
    recall = s.true_positives / s.positives if s.positives else 0.0
    f1 = 2 * s.true_positives / (2 * s.true_positives + s.false_positives + s.false_negatives) \
        if s.true_positives + s.false_positives + s.false_negatives else 0.0
    roc_auc = log_loss = bound = None
    if s.soft_scores == 0:
        notes.append("log_loss and roc_auc undefined: the predictions are hard 0/1 labels, not scores")
    else:
        log_loss = s.sum_log_loss / n
        if 0 < s.positives < n:
            roc_auc, bound = histogram_roc_auc(s.histogram())
        else:
            notes.append(f"roc_auc undefined: actual has a single class ({int(s.positives > 0)})")
    calibration = sum(abs(a - b) for a, b in zip(s.calibration_actual, s.calibration_score, strict=True)) / n
    return ProfilePerformance(ModelPerformance(
        **common, accuracy=(s.true_positives + true_negatives) / n, precision=precision, recall=recall, f1=f1,
        roc_auc=roc_auc, log_loss=log_loss, brier_score=s.sum_squared_error / n,
        expected_calibration_error=calibration, mean_error=(s.sum_score - s.positives) / n,
        notes=tuple(notes)), bound)


def histogram_roc_auc(table: np.ndarray) -> tuple[float, float]:
    """ROC AUC from (bin, negatives, positives) rows sorted by bin, pairs within a bin counted
    half (as exact ties are), and the bound sum_b pos_b neg_b / (2 P N) on its distance to the
    exact AUC."""
    negatives, positives = table[:, 1].astype(np.float64), table[:, 2].astype(np.float64)
    below = np.concatenate(([0.0], np.cumsum(negatives)[:-1]))
    pairs = negatives.sum() * positives.sum()
    return float((positives @ below + 0.5 * positives @ negatives) / pairs), float(0.5 * positives @ negatives / pairs)
