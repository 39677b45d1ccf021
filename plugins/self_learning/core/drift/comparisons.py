"""The two-sample comparisons behind the drift checks: numeric (KS, PSI, Wasserstein, mean shift
from one sort per sample) and categorical (chi-squared homogeneity with small categories pooled,
Jensen-Shannon distance, unseen categories against Good-Turing). Pure functions of two samples.

Binned effects carry noise that grows with bins / n, so each comes with its null mean removed:
- PSI over B bins is, with no drift, about chi-squared: E[PSI] = (B - 1)(1/n_ref + 1/n_cur)
  (0.019 for 10 bins, 580 vs 2,500 rows; 0.09 for a 100-row window against a large reference).
  ``psi_excess`` = max(0, PSI - that), which the PSI ladder rates.
- Jensen-Shannon divergence is the same quadratic form for small differences: JSD (nats) ~
  (1/8) sum (p - q)² / m, so with no drift E[JSD] = (K - 1)(1/n_ref + 1/n_cur) / (8 ln 2) bits
  over K tested groups (2,000 Zipf categories, 5,000 rows a side: ~300 groups, a JS distance of
  ~0.15 from noise alone, above the old 0.1 gate). ``js_excess`` = sqrt(max(0, JSD - E[JSD])):
  the distance that is left after the noise.
- Wasserstein-1 does not depend on bins, and its noise falls like 1/sqrt(n), but at daily volumes it
  is as large as the shifts that matter: 0.049 reference stds with no drift at 2,000 vs 1,000 rows,
  0.029 at 60,000 vs 2,000. Its null mean is known: sqrt(n_eff)(F_ref - F_cur) tends to a Brownian
  bridge B(F), E|B(t)| = sqrt(2/pi) sqrt(t(1 - t)), so E[W] = sqrt(2/pi) sqrt(1/n_ref + 1/n_cur)
  * integral sqrt(F(1 - F)) dx, the integral read off the sorted reference (measured against
  simulation: 0.0493 predicted vs 0.0477 observed for normal data, 0.050 vs 0.048 lognormal, 0.047
  vs 0.044 Poisson). ``wasserstein_excess`` = sqrt(max(0, (W/std)² - (E[W]/std)²)): noise and a
  shift add roughly in quadrature, so this keeps a real 0.08 sigma shift at 0.078-0.083 (2,000 to
  20,000 current rows) while pure noise drops to ~0.01. Subtracting E[W] linearly would also take
  0.03 off a real shift at 2,000 rows.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from ..types import Result
from ..validation import as_float_array, check_same_length

PSI_PSEUDO_COUNT = 0.5  # added to every bin, so an empty bin gives a large but finite, stable PSI
PSI_MIN_PER_BIN = 20  # fewer bins for small windows: PSI's noise grows with bins / n
_EXACT_KS_MAX_N = 10_000  # scipy's own 'auto' limit for the exact two-sample KS p-value
# Above this effective size n_eff = n1 n2 / (n1 + n2), the KS p-value is Kolmogorov's limit
# distribution with Stephens' finite-n correction, kstwobign.sf((sqrt(n) + 0.12 + 0.11/sqrt(n)) D)
# (0.05 ms), instead of ``stats.kstwo.sf(D, n)`` (Simard-L'Ecuyer's exact one-sample
# distribution, which ks_2samp uses): kstwo is 0.2 ms in the body but slow in its tail (p below
# ~0.01, which a column of 50 reaches by chance): at D = 2/sqrt(n_eff) 13 ms at 20,000 rows a side,
# 71 ms at 100,000, 1.1 s at 1M (bench/ks_pvalue_bench.py; issue 18 met 0.8 s). Measured against
# kstwo over D in (0, 7/sqrt(n)]: |p difference| <= 0.0014 and relative <= 2.8 % (p > 1e-10) at
# n = 10,000; 0.0004 and 1.0 % at 100,000 (tests/unit/test_drift.py checks the bound; the
# difference shrinks like 1/sqrt(n)).
ASYMPTOTIC_KS_MIN_N_EFF = 10_000
try:  # the exact p-value of a statistic already computed: ks_2samp would merge and sort the samples
    # again and pass them through its nan-policy wrapper (0.45 of its 1.2 ms at 2,000 vs 1,000 rows)
    from scipy.stats._stats_py import _attempt_exact_2kssamp
except ImportError:  # a scipy that moved it: the public function, same p-value
    _attempt_exact_2kssamp = None


@dataclasses.dataclass(frozen=True)
class NumericComparison(Result):
    """Two-sample comparison of finite numeric values."""

    n_reference: int
    n_current: int
    ks_statistic: float
    p_value: float
    psi: float
    wasserstein: float
    wasserstein_norm: float | None  # Wasserstein / reference std; None for a constant reference
    mean_reference: float
    mean_current: float
    mean_shift: float
    mean_shift_std: float | None
    psi_excess: float | None = None  # PSI minus its null mean (B - 1)(1/n_ref + 1/n_cur), floored at 0
    psi_bins: int | None = None  # the bins PSI used (fewer for small windows, fewer for ties)
    wasserstein_null: float | None = None  # E[Wasserstein / reference std] with no drift
    wasserstein_excess: float | None = None  # sqrt(max(0, wasserstein_norm² - wasserstein_null²))


@dataclasses.dataclass(frozen=True)
class CategoricalComparison(Result):
    """Two-sample comparison of category labels."""

    n_reference: int
    n_current: int
    chi2: float
    dof: int
    p_value: float
    js_distance: float
    categories_tested: int
    unseen_count: int
    unseen_share: float
    expected_unseen_share: float  # Good-Turing: reference singletons / n_reference
    unseen_p_value: float
    js_null: float | None = None  # expected JS divergence (bits) with no drift: (K - 1)(1/n1 + 1/n2) / (8 ln 2)
    js_excess: float | None = None  # sqrt(max(0, JS divergence - js_null)): the distance beyond noise


def compare_numeric(reference, current, *, bins: int = 10) -> NumericComparison:
    """KS, PSI, Wasserstein and mean shift from one sort per sample.

    Both inputs must be finite. The KS statistic and Wasserstein distance are exact and
    equal to ``scipy.stats.ks_2samp`` / ``wasserstein_distance``; the p-value is scipy's
    exact one up to 10,000 rows per sample and Smirnov's asymptotic one above (Kolmogorov's
    limit distribution from n_eff = 10,000 on: ``ks_asymptotic_p_value``).
    """
    ref = np.sort(as_float_array("reference", reference, min_size=1))
    cur = np.sort(as_float_array("current", current, min_size=1))
    return _compare_sorted(ref, cur, bins)


def _compare_sorted(ref: np.ndarray, cur: np.ndarray, bins: int) -> NumericComparison:
    n1, n2 = ref.size, cur.size
    ks_statistic, wasserstein = _ks_and_wasserstein(ref, cur)
    p_value = _ks_p_value(ref, cur, ks_statistic)
    ref_std = float(ref.std())
    mean_ref, mean_cur = float(ref.mean()), float(cur.mean())
    psi, psi_bins = _psi_sorted(ref, cur, bins)
    w_norm = w_null = w_excess = None
    if ref_std > 0:
        w_norm = wasserstein / ref_std
        w_null = wasserstein_null_mean(ref, n2) / ref_std
        w_excess = float(np.sqrt(max(0.0, w_norm * w_norm - w_null * w_null))) if np.isfinite(w_norm) else w_norm
    return NumericComparison(
        n_reference=n1,
        n_current=n2,
        ks_statistic=ks_statistic,
        p_value=p_value,
        psi=psi,
        wasserstein=wasserstein,
        wasserstein_norm=w_norm,
        mean_reference=mean_ref,
        mean_current=mean_cur,
        mean_shift=mean_cur - mean_ref,
        mean_shift_std=(mean_cur - mean_ref) / ref_std if ref_std > 0 else None,
        psi_excess=max(0.0, psi - psi_null_mean(psi_bins, n1, n2)),
        psi_bins=psi_bins,
        wasserstein_null=w_null,
        wasserstein_excess=w_excess,
    )


def _ks_p_value(ref: np.ndarray, cur: np.ndarray, statistic: float) -> float:
    """Two-sided KS p-value as ``scipy.stats.ks_2samp(method="auto")`` gives it: exact up to 10,000
    rows a side (asymptotic where the exact sum fails), Smirnov's asymptotic formula beyond
    (``ks_asymptotic_p_value``: Kolmogorov's limit distribution once n_eff >= 10,000)."""
    n1, n2 = ref.size, cur.size
    if max(n1, n2) <= _EXACT_KS_MAX_N:
        if _attempt_exact_2kssamp is not None:
            exact, lattice_statistic, p_value = _attempt_exact_2kssamp(n1, n2, math.gcd(n1, n2), statistic,
                                                                       "two-sided")
            if exact:
                return float(np.clip(p_value, 0.0, 1.0))
            statistic = lattice_statistic
        else:
            with warnings.catch_warnings():  # scipy falls back to the asymptotic p-value itself
                warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful", RuntimeWarning)
                return float(stats.ks_2samp(ref, cur).pvalue)
    return ks_asymptotic_p_value(statistic, float(n1) * n2 / (n1 + n2))


def ks_asymptotic_p_value(statistic: float, n_eff: float) -> float:
    """Two-sided KS p-value of ``statistic`` at effective size ``n_eff`` = n1 n2 / (n1 + n2):
    scipy's ``kstwo.sf(D, round(n_eff))`` below ASYMPTOTIC_KS_MIN_N_EFF, above it Kolmogorov's
    limit distribution with Stephens' correction (within 0.0014 of kstwo there, see the constant)."""
    if n_eff >= ASYMPTOTIC_KS_MIN_N_EFF:
        root = math.sqrt(n_eff)
        return float(np.clip(stats.kstwobign.sf((root + 0.12 + 0.11 / root) * statistic), 0.0, 1.0))
    return float(np.clip(stats.kstwo.sf(statistic, np.round(n_eff)), 0.0, 1.0))


def _ks_and_wasserstein(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """Exact KS statistic and Wasserstein-1 distance of two sorted samples, in one merge.

    Merged order puts each reference value before equal current values. For every value
    we know both ECDFs (from ranks and one ``searchsorted``) and the distance to the next
    merged value; W1 = sum |F1 - F2| * step, and KS = max |F1 - F2| over the last
    position of each run of equal values (where the step is positive).
    """
    n1, n2 = ref.size, cur.size
    below = np.searchsorted(cur, ref, side="left")  # current values < ref[i]
    upto = np.cumsum(np.bincount(below, minlength=n2 + 1)[:n2])  # reference values <= cur[j]
    ref_next = np.concatenate((ref[1:], [np.inf]))
    cur_next = np.concatenate((cur[1:], [np.inf]))
    gap_ref = np.arange(1, n1 + 1, dtype=np.float64)
    gap_ref /= n1
    gap_ref -= below / n2
    np.abs(gap_ref, out=gap_ref)
    step_ref = np.minimum(ref_next, np.concatenate((cur, [np.inf]))[below], out=ref_next)
    step_ref -= ref
    gap_cur = upto / n1
    gap_cur -= np.arange(1, n2 + 1, dtype=np.float64) / n2
    np.abs(gap_cur, out=gap_cur)
    step_cur = np.minimum(cur_next, np.concatenate((ref, [np.inf]))[upto], out=cur_next)
    step_cur -= cur
    # The largest value of all has no next value (the +inf sentinel): it adds nothing to W1.
    # Zero it by position: a finite span larger than the float range is an honest inf.
    if below[-1] == n2:
        step_ref[-1] = 0.0
    if upto[-1] == n1:
        step_cur[-1] = 0.0
    wasserstein = float(gap_ref @ step_ref) + float(gap_cur @ step_cur)
    # (At the largest value both ECDFs are 1, so skipping it loses nothing.)
    ks = max(float(gap_ref[step_ref > 0].max(initial=0.0)), float(gap_cur[step_cur > 0].max(initial=0.0)))
    return ks, wasserstein


def wasserstein_null_mean(reference_sorted: np.ndarray, n_current: int) -> float:
    """Wasserstein-1's mean with no drift between ``n_current`` rows and the sorted reference:
    sqrt(2/pi) sqrt(1/n_ref + 1/n_current) * integral sqrt(F(1 - F)) dx over the reference's ECDF F."""
    n = reference_sorted.size
    if n < 2:
        return 0.0
    share = np.arange(1, n, dtype=np.float64) / n
    spread = float(np.sqrt(share * (1 - share)) @ np.diff(reference_sorted))
    return float(np.sqrt(2 / np.pi) * np.sqrt(1 / n + 1 / n_current) * spread)


def psi_null_mean(bins: int, n_reference: int, n_current: int) -> float:
    """PSI's mean with no drift over ``bins`` bins: (bins - 1)(1/n_reference + 1/n_current)."""
    return (bins - 1) * (1 / n_reference + 1 / n_current)


def js_null_divergence(groups: int, n_reference: int, n_current: int) -> float:
    """Jensen-Shannon divergence's mean (base 2) with no drift over ``groups`` categories."""
    return (groups - 1) * (1 / n_reference + 1 / n_current) / (8 * np.log(2))


def _psi_sorted(ref: np.ndarray, cur: np.ndarray, bins: int) -> tuple[float, int]:
    """Population stability index over bins cut at reference quantiles (sorted inputs), and the
    bins used.

    At most one bin per ``PSI_MIN_PER_BIN`` values of the smaller window: with 10 bins and 10
    current rows PSI is mostly noise (median ~1 with no drift at all).
    """
    bins = int(max(2, min(bins, min(ref.size, cur.size) // PSI_MIN_PER_BIN)))
    quantile_index = np.ceil(np.arange(1, bins) / bins * ref.size).astype(np.int64) - 1
    edges = np.unique(ref[np.clip(quantile_index, 0, ref.size - 1)])
    return population_stability_index(_bin_counts(ref, edges), _bin_counts(cur, edges)), int(edges.size + 1)


def _bin_counts(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    cumulative = np.searchsorted(sorted_values, edges, side="right")
    return np.diff(np.concatenate(([0], cumulative, [sorted_values.size])))


def population_stability_index(expected_counts, actual_counts, *, pseudo_count: float = PSI_PSEUDO_COUNT,
                               epsilon: float = 1e-4) -> float:
    """PSI = sum((a - e) * ln(a / e)) over bin shares.

    Shares are smoothed with ``pseudo_count`` per bin; with ``pseudo_count=0`` empty bins are
    floored at ``epsilon`` instead (the textbook variant).
    """
    expected = as_float_array("expected_counts", expected_counts)
    actual = as_float_array("actual_counts", actual_counts)
    check_same_length(expected_counts=expected, actual_counts=actual)
    if (expected < 0).any() or (actual < 0).any() or expected.sum() == 0 or actual.sum() == 0:
        raise ValueError("counts: must be non-negative with a positive total")
    if pseudo_count < 0:
        raise ValueError(f"pseudo_count: must be >= 0, got {pseudo_count}")
    expected, actual = expected + pseudo_count, actual + pseudo_count
    e = np.maximum(expected / expected.sum(), epsilon)
    a = np.maximum(actual / actual.sum(), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def compare_categorical(reference, current, *, min_expected_count: float = 5.0) -> CategoricalComparison:
    """Chi-squared homogeneity test, JS distance and unseen-category test of two label samples.

    - Chi-squared homogeneity over every category of either window. Categories whose pooled
      count is small are merged, smallest first, into groups until each group's expected
      count in the smaller window reaches ``min_expected_count``; so one rare or new value
      can never dominate the statistic, and many rare categories stay testable. Grouping
      depends only on the pooled counts (the margins the test conditions on), which keeps
      it valid: grouping by "unseen in the reference" would bias it towards drift.
    - JS distance (base 2) over the same groups: the effect size of the distribution check.
    - Unseen values: with no drift, the chance that a current value never occurred in the
      reference is the reference's missing mass, which Good-Turing estimates as
      singletons / n_reference (high for ids, ~0 for a handful of categories). Both counts
      are noisy, so they are compared as two Poisson counts (conditional binomial test:
      unseen | unseen + singletons). The effect is the excess share over that estimate.
    """
    ref_values = np.atleast_1d(np.asarray(reference, dtype=object))
    cur_values = np.atleast_1d(np.asarray(current, dtype=object))
    # one factorisation of both windows (missing values left out), counts by bincount
    codes, labels = pd.factorize(np.concatenate((ref_values, cur_values)), use_na_sentinel=True)
    ref_counts = np.bincount(codes[:ref_values.size][codes[:ref_values.size] >= 0], minlength=labels.size)
    cur_counts = np.bincount(codes[ref_values.size:][codes[ref_values.size:] >= 0], minlength=labels.size)
    return compare_category_counts(labels, ref_counts, cur_counts, min_expected_count=min_expected_count)


def compare_category_counts(labels, ref_counts: np.ndarray, cur_counts: np.ndarray, *,
                            min_expected_count: float = 5.0) -> CategoricalComparison:
    """``compare_categorical`` of two windows given as counts per label (``labels[i]`` counted
    ``ref_counts[i]`` and ``cur_counts[i]`` times): what daily profiles compare (core/profiles.py)."""
    n1, n2 = int(ref_counts.sum()), int(cur_counts.sum())
    if n1 == 0 or n2 == 0:
        raise ValueError(f"reference/current: both need values, got {n1} and {n2}")
    order = np.argsort(np.asarray([str(label) for label in labels]), kind="stable")  # columns in label order
    table = _merge_small_columns(np.vstack((ref_counts[order], cur_counts[order])).astype(np.float64),
                                 min_expected_count * (n1 + n2) / min(n1, n2))
    chi2, p_value, dof = _chi2_homogeneity(table)
    unseen = int(cur_counts[ref_counts == 0].sum())
    singletons = int((ref_counts == 1).sum())
    unseen_p = stats.binomtest(unseen, unseen + singletons, n2 / (n1 + n2), alternative="greater").pvalue \
        if unseen else 1.0
    js = float(distance.jensenshannon(table[0] / n1, table[1] / n2, base=2))
    js = js if np.isfinite(js) else 0.0  # sqrt of a rounding-negative ~0 divergence
    js_null = js_null_divergence(table.shape[1], n1, n2) if table.shape[1] else 0.0
    return CategoricalComparison(
        n_reference=n1,
        n_current=n2,
        chi2=chi2,
        dof=dof,
        p_value=p_value,
        js_distance=js,
        categories_tested=int(table.shape[1]),
        unseen_count=unseen,
        unseen_share=unseen / n2,
        expected_unseen_share=singletons / n1,
        unseen_p_value=float(unseen_p),
        js_null=js_null,
        js_excess=float(np.sqrt(max(0.0, js * js - js_null))),
    )


def _chi2_homogeneity(table: np.ndarray) -> tuple[float, float, int]:
    """Pearson's chi-squared test of a 2 x K table of counts, as ``stats.chi2_contingency(table,
    correction=False)`` computes it (statistic, p-value, dof), without its per-call overhead."""
    if table.shape[1] < 2:
        return 0.0, 1.0, 0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    dof = table.shape[1] - 1
    return statistic, float(stats.chi2.sf(statistic, dof)), dof


def _merge_small_columns(table: np.ndarray, min_total: float) -> np.ndarray:
    """Merge columns, smallest pooled total first, into groups whose total reaches ``min_total``.

    A last group still too small joins the smallest column that was large enough on its own
    (or the last group formed). The greedy cut is found on the totals (plain floats; counts add
    exactly), the groups summed in one ``reduceat``: thousands of rare categories cost a loop over
    numbers, not one array operation each.
    """
    totals = table.sum(axis=0)
    order = np.argsort(totals, kind="stable")
    sorted_totals = totals[order]
    n_small = int(np.searchsorted(sorted_totals, min_total, side="left"))  # the columns below min_total
    small, large = table[:, order[:n_small]], table[:, order[n_small:]]
    starts, start, running = [], 0, 0.0
    for index, total in enumerate(sorted_totals[:n_small].tolist()):
        running += total
        if running >= min_total:
            starts.append(start)
            start, running = index + 1, 0.0
    groups = np.add.reduceat(small[:, :start], starts, axis=1) if starts else np.zeros((2, 0))
    pending = small[:, start:].sum(axis=1)
    if pending.any():
        if large.shape[1]:
            large = large.copy()
            large[:, 0] += pending
        elif groups.shape[1]:
            groups[:, -1] += pending
        else:
            groups = pending.reshape(2, 1)
    return np.concatenate((groups, large), axis=1).astype(np.float64, copy=False)
