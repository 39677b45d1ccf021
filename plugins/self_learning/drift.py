"""Feature (data), prediction and concept drift between a reference and a current window.

Why the decision rule looks the way it does: at production sample sizes every p-value is
tiny, and across many features uncorrected tests raise a false alarm almost every day.
So a check flags drift only when it is (1) significant after Benjamini-Hochberg across
all checks of one report and (2) its effect size passes a practical threshold; its
severity grows with the effect size, never with the p-value.

Checks per feature
- numeric: two-sample Kolmogorov-Smirnov; effect = max(PSI, Wasserstein / reference std).
- categorical: chi-squared test of homogeneity (reference vs current counts) with rare
  and unseen categories pooled into one ``other`` bucket, so one unseen row never gives
  p = 0; effect = Jensen-Shannon distance (base 2).
- missing rate (NaN, None, +-inf): Fisher's exact test; effect = absolute change.
- unseen categories: binomial test of the current unseen share against the reference's
  Good-Turing estimate of unseen mass; effect = unseen share.

Default cut-offs (``DriftThresholds``): PSI, Wasserstein/std and JS distance are rated
low / medium / high / critical at 0.1 / 0.2 / 0.3 / 0.5; missing-rate change and unseen
share at 0.05 / 0.1 / 0.2 / 0.4. The ``low`` cut-off is the practical threshold.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from .domain import FEATURE_THREADS, DriftReport, DriftType, Result, Severity, SeverityLadder, Status, TaskKind
from .validation import as_float_array, check_alpha, check_same_length, label_text, plain

EFFECT_LADDER = SeverityLadder(low=0.1, medium=0.2, high=0.3, critical=0.5)
RATE_LADDER = SeverityLadder(low=0.05, medium=0.1, high=0.2, critical=0.4)
# Relative increase of the loss (MAE or log loss), in percent.
CONCEPT_LADDER = SeverityLadder(low=10.0, medium=20.0, high=35.0, critical=50.0)

PSI_PSEUDO_COUNT = 0.5  # added to every bin, so an empty bin gives a large but finite, stable PSI
PSI_MIN_PER_BIN = 20  # fewer bins for small windows: PSI's noise grows with bins / n
_EXACT_KS_MAX_N = 10_000  # scipy's own 'auto' limit for the exact two-sample KS p-value
_NUMERIC_INFERRED = {"floating", "integer", "mixed-integer-float", "decimal"}


@dataclasses.dataclass(frozen=True)
class DriftThresholds:
    """Decision parameters of a drift report; the defaults are documented in the module."""

    alpha: float = 0.05
    min_samples: int = 10
    psi_bins: int = 10
    min_expected_count: float = 5.0
    effect: SeverityLadder = EFFECT_LADDER
    rate: SeverityLadder = RATE_LADDER

    def __post_init__(self):
        check_alpha(self.alpha)
        if self.min_samples < 2:
            raise ValueError(f"min_samples: must be >= 2, got {self.min_samples}")
        if self.psi_bins < 2:
            raise ValueError(f"psi_bins: must be >= 2, got {self.psi_bins}")


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

    @property
    def effect_size(self) -> float:
        return max(self.psi, self.wasserstein_norm or 0.0)


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


def compare_numeric(reference, current, *, bins: int = 10) -> NumericComparison:
    """KS, PSI, Wasserstein and mean shift from one sort per sample.

    Both inputs must be finite. The KS statistic and Wasserstein distance are exact and
    equal to ``scipy.stats.ks_2samp`` / ``wasserstein_distance``; the p-value is scipy's
    exact one up to 10,000 rows per sample and Smirnov's asymptotic one above.
    """
    ref = np.sort(as_float_array("reference", reference, min_size=1))
    cur = np.sort(as_float_array("current", current, min_size=1))
    return _compare_sorted(ref, cur, bins)


def _compare_sorted(ref: np.ndarray, cur: np.ndarray, bins: int) -> NumericComparison:
    n1, n2 = ref.size, cur.size
    ks_statistic, wasserstein = _ks_and_wasserstein(ref, cur)
    if max(n1, n2) <= _EXACT_KS_MAX_N:
        with warnings.catch_warnings():  # scipy falls back to the asymptotic p-value itself
            warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful", RuntimeWarning)
            p_value = float(stats.ks_2samp(ref, cur).pvalue)
    else:
        en = float(n1) * n2 / (n1 + n2)
        p_value = float(np.clip(stats.kstwo.sf(ks_statistic, np.round(en)), 0.0, 1.0))
    ref_std = float(ref.std())
    mean_ref, mean_cur = float(ref.mean()), float(cur.mean())
    return NumericComparison(
        n_reference=n1,
        n_current=n2,
        ks_statistic=ks_statistic,
        p_value=p_value,
        psi=_psi_sorted(ref, cur, bins),
        wasserstein=wasserstein,
        wasserstein_norm=wasserstein / ref_std if ref_std > 0 else None,
        mean_reference=mean_ref,
        mean_current=mean_cur,
        mean_shift=mean_cur - mean_ref,
        mean_shift_std=(mean_cur - mean_ref) / ref_std if ref_std > 0 else None,
    )


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


def _psi_sorted(ref: np.ndarray, cur: np.ndarray, bins: int) -> float:
    """Population stability index over bins cut at reference quantiles (sorted inputs).

    At most one bin per ``PSI_MIN_PER_BIN`` values of the smaller window: with 10 bins and 10
    current rows PSI is mostly noise (median ~1 with no drift at all).
    """
    bins = int(max(2, min(bins, min(ref.size, cur.size) // PSI_MIN_PER_BIN)))
    quantile_index = np.ceil(np.arange(1, bins) / bins * ref.size).astype(np.int64) - 1
    edges = np.unique(ref[np.clip(quantile_index, 0, ref.size - 1)])
    return population_stability_index(_bin_counts(ref, edges), _bin_counts(cur, edges))


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
    ref_counts = pd.Series(np.atleast_1d(np.asarray(reference, dtype=object))).value_counts()
    cur_counts = pd.Series(np.atleast_1d(np.asarray(current, dtype=object))).value_counts()
    n1, n2 = int(ref_counts.sum()), int(cur_counts.sum())
    if n1 == 0 or n2 == 0:
        raise ValueError(f"reference/current: both need values, got {n1} and {n2}")
    counts = pd.concat([ref_counts, cur_counts], axis=1).fillna(0)
    counts = counts.iloc[np.argsort(counts.index.astype(str), kind="stable")]  # ties in label order
    table = _merge_small_columns(counts.to_numpy(dtype=np.float64).T, min_expected_count * (n1 + n2) / min(n1, n2))
    if table.shape[1] < 2:
        chi2, p_value, dof = 0.0, 1.0, 0
    else:
        result = stats.chi2_contingency(table, correction=False)
        chi2, p_value, dof = float(result.statistic), float(result.pvalue), int(result.dof)
    unseen = n2 - int(cur_counts.reindex(ref_counts.index, fill_value=0).sum())
    singletons = int((ref_counts == 1).sum())
    unseen_p = stats.binomtest(unseen, unseen + singletons, n2 / (n1 + n2), alternative="greater").pvalue \
        if unseen else 1.0
    js = float(distance.jensenshannon(table[0] / n1, table[1] / n2, base=2))
    return CategoricalComparison(
        n_reference=n1,
        n_current=n2,
        chi2=chi2,
        dof=dof,
        p_value=p_value,
        js_distance=js if np.isfinite(js) else 0.0,  # sqrt of a rounding-negative ~0 divergence
        categories_tested=int(table.shape[1]),
        unseen_count=unseen,
        unseen_share=unseen / n2,
        expected_unseen_share=singletons / n1,
        unseen_p_value=float(unseen_p),
    )


def _merge_small_columns(table: np.ndarray, min_total: float) -> np.ndarray:
    """Merge columns, smallest pooled total first, into groups whose total reaches ``min_total``.

    A last group still too small joins the smallest column that was large enough on its own
    (or the last group formed).
    """
    totals = table.sum(axis=0)
    order = np.argsort(totals, kind="stable")
    small = order[totals[order] < min_total]
    large = order[totals[order] >= min_total]
    groups, pending = [], np.zeros(2)
    for column in small:
        pending = pending + table[:, column]
        if pending.sum() >= min_total:
            groups.append(pending)
            pending = np.zeros(2)
    columns = [table[:, c] for c in large]
    if pending.any():
        if columns:
            columns[0] = columns[0] + pending
        elif groups:
            groups[-1] = groups[-1] + pending
        else:
            groups.append(pending)
    merged = groups + columns
    return np.column_stack(merged) if merged else np.zeros((2, 0))


@dataclasses.dataclass
class _Check:
    """One hypothesis test of a feature, before and after the correction."""

    feature: str
    name: str
    p_value: float
    effect_name: str
    effect: float | None
    ladder: SeverityLadder
    p_adjusted: float = 1.0
    severity: Severity = Severity.NONE

    def to_dict(self) -> dict[str, Any]:
        return {
            "p_value": self.p_value,
            "p_adjusted": self.p_adjusted,
            self.effect_name: self.effect,
            "severity": self.severity.value,
            "flagged": self.severity is not Severity.NONE,
        }


def detect_feature_drift(
    reference,
    current,
    *,
    feature_kinds: Mapping[str, str] | None = None,
    thresholds: DriftThresholds | None = None,
    detected_at: datetime | None = None,
) -> DriftReport:
    """Data drift of every feature, reference window vs current window.

    ``reference`` and ``current`` are DataFrames (or mappings of column name to values).
    ``feature_kinds`` may force ``numeric`` / ``categorical``; otherwise the kind is
    inferred from the reference values. Features absent from one window, mixed-up types
    and windows below ``min_samples`` get a status instead of an exception.
    """
    thresholds = thresholds or DriftThresholds()
    feature_kinds = dict(feature_kinds or {})
    names = list(dict.fromkeys([*_columns(reference), *_columns(current)]))
    if len({str(n) for n in names}) != len(names):
        raise ValueError("features: column names clash when converted to text (e.g. 0 and '0')")
    details: dict[str, dict[str, Any]] = {}
    checks: list[_Check] = []
    # Features are independent and their sorts release the GIL: two threads use both cores of a
    # small worker (measured on bench/daily_bench.py data); results keep the column order.
    with ThreadPoolExecutor(max_workers=FEATURE_THREADS) as pool:
        results = pool.map(lambda name: _feature_checks(name, reference, current, feature_kinds.get(str(name)),
                                                        thresholds), names)
        for name, (detail, feature_checks) in zip(names, results, strict=True):
            details[str(name)] = detail
            checks.extend(feature_checks)

    if checks:
        adjusted = stats.false_discovery_control([c.p_value for c in checks], method="bh")
        for check, p_adj in zip(checks, adjusted, strict=True):
            check.p_adjusted = float(p_adj)
            if p_adj < thresholds.alpha:
                check.severity = check.ladder.rate(check.effect)
    for check in checks:
        details[check.feature]["checks"][check.name] = check.to_dict()
    for detail in details.values():
        severities = [Severity(c["severity"]) for c in detail.get("checks", {}).values()]
        detail["severity"] = Severity.worst(severities).value
        detail["drifted"] = detail["severity"] != Severity.NONE.value

    affected = [name for name, d in details.items() if d["drifted"]]
    severity = Severity.worst(Severity(details[name]["severity"]) for name in affected)
    tested = sum(1 for d in details.values() if d["status"] == Status.OK.value)
    status = Status.OK if tested else Status.INSUFFICIENT_DATA
    summary = {
        "features_tested": tested,
        "features_drifted": len(affected),
        "drift_share": len(affected) / tested if tested else None,
        "checks": len(checks),
        "correction": "benjamini-hochberg",
        "alpha": thresholds.alpha,
        "min_samples": thresholds.min_samples,
    }
    return DriftReport(
        drift_type=DriftType.DATA_DRIFT,
        severity=severity,
        affected_features=affected,
        statistical_tests={"summary": summary, "features": details},
        recommendation=_feature_recommendation(status, severity, affected, details),
        status=status,
        detected_at=detected_at,
    )


def _columns(frame) -> list:
    names = list(frame.columns if hasattr(frame, "columns") else frame.keys())
    texts = [str(n) for n in names]
    if len(set(texts)) != len(texts):
        duplicated = sorted({t for t in texts if texts.count(t) > 1})
        raise ValueError(f"features: duplicate column names {duplicated}")
    return names


def _feature_checks(name, reference, current, declared_kind, thresholds):
    """Per-feature detail dict and its (uncorrected) checks."""
    ref_raw, cur_raw = _column(reference, name), _column(current, name)
    if ref_raw is None or cur_raw is None:
        missing_from = "reference" if ref_raw is None else "current"
        return _status_detail(None, Status.INVALID, f"feature absent from the {missing_from} window"), []
    kind = declared_kind or _infer_kind(ref_raw, cur_raw)
    if kind not in ("numeric", "categorical"):
        raise ValueError(f"feature_kinds[{name!r}]: must be 'numeric' or 'categorical', got {kind!r}")
    if kind == "numeric":
        ref_values, ref_bad = _numeric_values(ref_raw)
        cur_values, cur_bad = _numeric_values(cur_raw)
        if ref_bad or cur_bad:
            window, bad = ("reference", ref_bad) if ref_bad else ("current", cur_bad)
            return _status_detail(kind, Status.INVALID, f"non-numeric values in the {window} window: {bad}"), []
        ref_sorted, cur_sorted = _finite_sorted(ref_values), _finite_sorted(cur_values)
        n_ref, n_cur = ref_sorted.size, cur_sorted.size
    else:
        ref_values, cur_values = _labels(ref_raw), _labels(cur_raw)
        ref_present, cur_present = ~pd.isna(ref_values), ~pd.isna(cur_values)
        n_ref, n_cur = int(ref_present.sum()), int(cur_present.sum())

    detail = _status_detail(kind, Status.OK, None)
    detail.update(
        n_reference=n_ref,
        n_current=n_cur,
        missing_rate_reference=1 - n_ref / ref_values.size if ref_values.size else None,
        missing_rate_current=1 - n_cur / cur_values.size if cur_values.size else None,
    )
    if min(n_ref, n_cur) < thresholds.min_samples:
        detail["status"] = Status.INSUFFICIENT_DATA.value
        detail["reason"] = (
            f"{n_ref} reference and {n_cur} current values; at least {thresholds.min_samples} needed in each"
        )
        return detail, []

    checks = []
    if kind == "numeric":
        comparison = _compare_sorted(ref_sorted, cur_sorted, thresholds.psi_bins)
        checks.append(_Check(str(name), "distribution", comparison.p_value, "effect_size", comparison.effect_size,
                             thresholds.effect))
    else:
        comparison = compare_categorical(ref_values[ref_present], cur_values[cur_present],
                                         min_expected_count=thresholds.min_expected_count)
        checks.append(_Check(str(name), "distribution", comparison.p_value, "js_distance", comparison.js_distance,
                             thresholds.effect))
        if comparison.unseen_count:
            excess = max(0.0, comparison.unseen_share - comparison.expected_unseen_share)
            checks.append(_Check(str(name), "unseen_categories", comparison.unseen_p_value, "unseen_excess_share",
                                 excess, thresholds.rate))
    detail["statistics"] = comparison.to_dict()

    ref_missing, cur_missing = ref_values.size - n_ref, cur_values.size - n_cur
    if ref_missing or cur_missing:
        p_missing = stats.fisher_exact([[ref_missing, n_ref], [cur_missing, n_cur]]).pvalue
        change = abs(detail["missing_rate_current"] - detail["missing_rate_reference"])
        checks.append(_Check(str(name), "missing_rate", float(p_missing), "missing_rate_change", change,
                             thresholds.rate))
    return detail, checks


def _status_detail(kind, status: Status, reason: str | None) -> dict[str, Any]:
    return {"kind": kind, "status": status.value, "reason": reason, "checks": {}}


def _column(frame, name) -> pd.Series | None:
    if hasattr(frame, "columns"):
        return frame[name].reset_index(drop=True) if name in frame.columns else None
    values = frame.get(name)
    if values is None:
        return None
    return values.reset_index(drop=True) if isinstance(values, pd.Series) else pd.Series(np.atleast_1d(values))


def _infer_kind(reference: pd.Series, current: pd.Series) -> str:
    """Categorical for category/bool/string data, numeric for numbers, datetimes and durations."""
    for values in (reference, current):
        dtype = values.dtype
        if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype):
            return "categorical"
        if pd.api.types.is_numeric_dtype(dtype) or dtype.kind in "mM" or isinstance(dtype, pd.DatetimeTZDtype):
            return "numeric"
        inferred = pd.api.types.infer_dtype(values, skipna=True)
        if inferred != "empty":
            return "numeric" if inferred in _NUMERIC_INFERRED else "categorical"
    return "numeric"


def _finite_sorted(values: np.ndarray) -> np.ndarray:
    """Sorted finite values: one sort puts -inf first and +inf, NaN last; slice them off."""
    ordered = np.sort(values)
    return ordered[np.searchsorted(ordered, -np.inf, side="right"):np.searchsorted(ordered, np.inf, side="left")]


def _numeric_values(values: pd.Series) -> tuple[np.ndarray, str | None]:
    """Float values (missing as NaN) and a description of non-numeric entries, if any.

    Booleans count as 0/1, datetimes as seconds since the epoch, durations as seconds.
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    if values.dtype.kind == "M":
        return _seconds(values - pd.Timestamp(0)), None
    if values.dtype.kind == "m":
        return _seconds(values), None
    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "iuf":
        return values.to_numpy().astype(np.float64, copy=False), None  # no copy for float64
    if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype):
        return values.to_numpy(dtype=np.float64, na_value=np.nan), None
    raw = values.to_numpy(dtype=object)
    numeric = pd.to_numeric(pd.Series(raw, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(numeric) & ~pd.isna(raw)
    if bad.any():
        examples = pd.unique(raw[bad])[:3]
        return numeric, f"{int(bad.sum())} rows, e.g. {', '.join(repr(plain(v)) for v in examples)}"
    return numeric, None


def _seconds(durations: pd.Series) -> np.ndarray:
    return durations.dt.total_seconds().to_numpy(dtype=np.float64, na_value=np.nan)


def _labels(values: pd.Series) -> np.ndarray:
    """Category labels as text; missing values stay missing.

    Whole floats print as integers, so code 3 stays "3" when a NaN turns the column float.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):  # already coded (window reads return these)
        codes, uniques = values.cat.codes.to_numpy(), values.cat.categories
    else:
        codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=True)
    texts = np.array([label_text(u) for u in uniques] + [None], dtype=object)
    return texts[codes]


def _feature_recommendation(status, severity, affected, details) -> str:
    if status is Status.INSUFFICIENT_DATA:
        return "Not enough data in one of the windows to test for drift; widen the window or wait for more traffic."
    if not affected:
        return "No practically significant feature drift; keep monitoring."
    quality = [n for n in affected if any(
        c["flagged"] for key, c in details[n]["checks"].items() if key in ("missing_rate", "unseen_categories"))]
    listed = ", ".join(affected[:5]) + (f" and {len(affected) - 5} more" if len(affected) > 5 else "")
    advice = {
        Severity.LOW: "monitor; no action needed yet",
        Severity.MEDIUM: "investigate the cause and watch performance as labels arrive",
        Severity.HIGH: "retrain on recent data if performance confirms the shift",
        Severity.CRITICAL: "retrain on recent data and check the upstream feature pipeline",
    }[severity]
    text = f"{severity.value.capitalize()} drift in {listed}: {advice}."
    if quality:
        text += f" Data-quality change (missing or unseen values) in {', '.join(quality)}: check the source."
    return text


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
    """Absolute error (regression) or log loss per row (binary classification, predicted = P(y=1))."""
    y = as_float_array("actual", actual, min_size=0)
    p = as_float_array("predicted", predicted, min_size=0)
    check_same_length(actual=y, predicted=p)
    if TaskKind(task_kind) is TaskKind.REGRESSION:
        return np.abs(p - y)
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("actual: binary classification labels must be 0 or 1")
    if ((p < 0) | (p > 1)).any():
        raise ValueError("predicted: probabilities must lie in [0, 1]")
    eps = np.finfo(np.float64).eps  # sklearn.metrics.log_loss clips the same way
    p = np.clip(p, eps, 1 - eps)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


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
    metric = "mae" if kind is TaskKind.REGRESSION else "log_loss"
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
