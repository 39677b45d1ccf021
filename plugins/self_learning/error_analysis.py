"""Error distribution and systematic errors by segment (errors are predicted - actual).

Systematic errors: every feature is cut into buckets (reference-free quantile bins for
numeric features, a missing-value bucket, categories for categorical ones); each bucket's
mean error is t-tested against 0 and Benjamini-Hochberg controls the false discoveries
across all buckets of all features. A pattern is reported only when it is significant
after correction and its mean error is at least ``min_relative_effect`` of the overall MAE.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from .domain import Result, Status
from .validation import as_float_array, check_alpha

SHAPIRO_MAX_N = 5000  # scipy's Shapiro-Wilk p-value is not accurate above this
PERCENTILES = (25, 50, 75, 90, 95)


@dataclasses.dataclass(frozen=True)
class ErrorDistribution(Result):
    sample_count: int
    status: Status
    mean: float | None = None
    median: float | None = None
    std: float | None = None
    percentiles: dict[str, float] = dataclasses.field(default_factory=dict)
    skewness: float | None = None
    kurtosis: float | None = None  # excess kurtosis (0 for a normal distribution)
    normality_test: str | None = None
    normality_statistic: float | None = None
    normality_p_value: float | None = None
    is_normal: bool | None = None
    bias_t_statistic: float | None = None
    bias_p_value: float | None = None
    systematic_bias: bool | None = None
    notes: tuple[str, ...] = ()


def analyze_error_distribution(errors, *, alpha: float = 0.05, min_samples: int = 3) -> ErrorDistribution:
    """Summary statistics, a normality test and a one-sample t-test of the bias.

    Normality: Shapiro-Wilk up to 5,000 errors, D'Agostino-Pearson above (it needs 8+).
    """
    check_alpha(alpha)
    e = as_float_array("errors", errors, min_size=0)
    n = int(e.size)
    if n < max(min_samples, 3):
        return ErrorDistribution(sample_count=n, status=Status.INSUFFICIENT_DATA,
                                 notes=(f"{n} errors; at least {max(min_samples, 3)} needed",))
    notes = []
    constant = np.ptp(e) == 0
    normality = {}
    if constant:
        notes.append("errors are constant: normality and shape statistics are undefined")
    else:
        test_name, result = (("shapiro_wilk", stats.shapiro(e)) if n <= SHAPIRO_MAX_N
                             else ("dagostino_pearson", stats.normaltest(e)))
        normality = {
            "normality_test": test_name,
            "normality_statistic": float(result.statistic),
            "normality_p_value": float(result.pvalue),
            "is_normal": bool(result.pvalue >= alpha),
        }
    if constant:
        bias_t, bias_p = None, (1.0 if e[0] == 0 else 0.0)
    else:
        bias = stats.ttest_1samp(e, 0.0)
        bias_t, bias_p = float(bias.statistic), float(bias.pvalue)
    return ErrorDistribution(
        sample_count=n,
        status=Status.OK,
        mean=float(e.mean()),
        median=float(np.median(e)),
        std=float(e.std(ddof=1)),
        percentiles={f"p{q}": float(v) for q, v in zip(PERCENTILES, np.percentile(e, PERCENTILES), strict=False)},
        skewness=None if constant else float(stats.skew(e)),
        kurtosis=None if constant else float(stats.kurtosis(e)),
        bias_t_statistic=bias_t,
        bias_p_value=bias_p,
        systematic_bias=bias_p < alpha,
        notes=tuple(notes),
        **normality,
    )


@dataclasses.dataclass(frozen=True)
class SystematicErrorPattern(Result):
    feature: str
    bucket: str
    sample_count: int
    mean_error: float
    relative_effect: float | None  # mean error / overall MAE
    t_statistic: float
    p_value: float
    p_adjusted: float

    @property
    def direction(self) -> str:
        return "over-prediction" if self.mean_error > 0 else "under-prediction"


@dataclasses.dataclass(frozen=True)
class SystematicErrors(Result):
    patterns: list[SystematicErrorPattern]
    buckets_tested: int
    overall_mae: float | None
    alpha: float
    status: Status = Status.OK
    notes: tuple[str, ...] = ()


def identify_systematic_errors(
    features,
    errors,
    *,
    alpha: float = 0.05,
    bins: int = 5,
    min_bucket_size: int = 30,
    min_relative_effect: float = 0.1,
    max_categories: int = 50,
    feature_kinds: Mapping[str, str] | None = None,
) -> SystematicErrors:
    """Segments (feature buckets) whose mean error differs from 0, most significant first."""
    check_alpha(alpha)
    if bins < 2:
        raise ValueError(f"bins: must be >= 2, got {bins}")
    e = as_float_array("errors", errors, min_size=0)
    frame = (features if isinstance(features, pd.DataFrame) else pd.DataFrame(features)).reset_index(drop=True)
    if len(frame) != e.size:
        raise ValueError(f"length mismatch: features={len(frame)}, errors={e.size}")
    if e.size < min_bucket_size:
        return SystematicErrors([], 0, None, alpha, Status.INSUFFICIENT_DATA,
                                (f"{e.size} errors; a bucket needs at least {min_bucket_size}",))
    overall_mae = float(np.abs(e).mean())
    kinds = dict(feature_kinds or {})
    candidates = []
    for name in frame.columns:
        buckets = _buckets(frame[name], kinds.get(str(name)), bins, max_categories)
        for label, positions in buckets.groupby(buckets, observed=True).indices.items():
            values = e[positions]
            if values.size < min_bucket_size or np.ptp(values) == 0:
                continue
            test = stats.ttest_1samp(values, 0.0)
            candidates.append((str(name), str(label), values, float(test.statistic), float(test.pvalue)))
    if not candidates:
        return SystematicErrors([], 0, overall_mae, alpha, notes=("no bucket had enough rows",))
    adjusted = stats.false_discovery_control([c[4] for c in candidates], method="bh")
    patterns = []
    for (name, label, values, t, p), p_adj in zip(candidates, adjusted, strict=False):
        mean_error = float(values.mean())
        relative = abs(mean_error) / overall_mae if overall_mae > 0 else None
        if p_adj < alpha and (relative is None or relative >= min_relative_effect):
            patterns.append(SystematicErrorPattern(name, label, int(values.size), mean_error,
                                                   mean_error / overall_mae if overall_mae > 0 else None,
                                                   t, p, float(p_adj)))
    patterns.sort(key=lambda pattern: (pattern.p_adjusted, -abs(pattern.mean_error)))
    return SystematicErrors(patterns, len(candidates), overall_mae, alpha)


def _buckets(column: pd.Series, kind: str | None, bins: int, max_categories: int) -> pd.Series:
    """Bucket label per row: quantile bins (numeric) or categories, with 'missing' and 'other'."""
    numeric = pd.to_numeric(column, errors="coerce") if kind != "categorical" else None
    is_numeric = kind == "numeric" or (
        kind is None and numeric is not None and column.dtype != bool
        and numeric.notna().sum() == column.notna().sum() and numeric.notna().any()
    )
    if is_numeric:
        finite = numeric.where(np.isfinite(numeric))
        if finite.nunique() < 2:
            return finite.astype(str).where(finite.notna(), "missing")
        labels = pd.qcut(finite, q=bins, duplicates="drop").astype(str)
        return labels.where(finite.notna(), "missing")
    labels = column.astype(str).where(column.notna(), "missing")
    top = labels.value_counts().index[:max_categories]
    return labels.where(labels.isin(top), "other")
