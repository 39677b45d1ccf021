"""Error distribution and systematic errors by segment (errors are predicted - actual).

Systematic errors: every feature is cut into buckets (quantile bins for numeric features,
a missing-value bucket, categories for categorical ones). A bucket is a systematic error
when its errors are both (a) non-zero on average (one-sample t-test against 0) and (b)
different from the rest of the rows (Welch t-test), in the same direction: it is where the
model is more wrong than elsewhere. The bucket's p-value is the larger of the two (an
intersection-union test, valid at level alpha), and Benjamini-Hochberg controls false
discoveries across all buckets of all features. Test (b) matters: a global bias (reported
by ``analyze_error_distribution``) or one strongly biased segment would otherwise make
every bucket of every feature look "systematic". A pattern is also required to deviate
from the rest by at least ``min_relative_effect`` of the overall MAE.

Against the baseline. A segment where the model errs one way is often the model's shape, not a
change: a classifier serving hard 0/1 labels under-predicts wherever P(y=1|x) is below 0.5 and
over-predicts above it, and a regressor's errors follow the outcome's scale. Tests (a) and (b)
find such a segment in every window, so the daily run alerted on it every day: on the
monitoring-quality bench's stable hard-label stream (1,000 rows/day, 20 features) 196 alerts in
90 runs. Given the pinned baseline's labelled rows (the daily run passes them), a bucket must also
deviate from the rest more than the same bucket (same edges or category) did in the baseline, in
the same direction: (c) a z test of the two deviations, whose variances add. The bucket's p-value
is then the largest of the three (still an intersection-union test); a bucket the baseline has
fewer than 2 rows of is judged by (a) and (b) alone (a new segment is news).

Heavy tails. The three tests compare means, and a regressor's errors carry the outcome's tail (a
lognormal ROAS, a revenue): on the bench's stable regressor at 100 rows/day, a 211-row bucket of
the top category had a mean error 1.2 x the MAE below the rest (p 3e-5, adjusted 0.003) from a
handful of extreme outcomes, and raised a false systematic-error alert; the stream had two in 90
runs. A systematic error is a segment whose typical error moved, not one outcome, so the tests run
on errors winsorized at the 1st and 99th percentiles (``WINSORIZE``) of the window's and the
baseline's errors together (the same limits for both, so the comparison with the baseline is like
for like); the reported means and deviations are those of the winsorized errors, the overall MAE
and mean error the raw ones.

Relative errors. Outcomes move by day for every row at once (a market-wide ROAS or conversion
level), and a regressor's error then moves in proportion to its prediction: on the same stream a
window whose outcomes ran low made the top category (the highest predictions) over-predict by 1.3 x
the MAE more than the rest, p 6e-12, against a baseline deviation of 0.04; test (b) removes a
global additive bias, not a proportional one. Given the predictions (``predicted``,
``reference_predicted``: the daily run passes a regressor's) and all of them positive (ROAS, revenue),
the errors are divided by the prediction, (predicted - actual) / predicted, so a proportional
level change is one global bias again, which (b) removes, and a segment's own bias still passes
(a) and (b). Residuals from a global line a + b x prediction were tried first and rejected: they
have mean 0 by construction, so test (a) no longer protected the other segments, and one biased
segment (a third of the rows) made another report the opposite bias. Such patterns' means and
deviations are relative (the result's notes say so); a model with a prediction <= 0 keeps absolute
errors. (The error distribution's bias test and the performance checks report the global part.)
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from scipy import stats

from .types import FEATURE_THREADS, Result, Status
from .validation import as_float_array, check_alpha, label_text

WINSORIZE = 0.01  # systematic errors: the share of each tail clipped (module docstring)
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
    # counts of the errors in equal bins over p0.5..p99.5 (tails in the first / last bin), for charts
    histogram: dict[str, list[float]] = dataclasses.field(default_factory=dict)


HISTOGRAM_BINS = 30


def _histogram(e: np.ndarray) -> dict[str, list[float]]:
    low, high = np.percentile(e, [0.5, 99.5])
    if not high > low:
        low, high = float(e.min()), float(e.max())
    if not high > low:
        return {"edges": [float(low), float(low)], "counts": [int(e.size)]}
    counts, edges = np.histogram(np.clip(e, low, high), bins=HISTOGRAM_BINS, range=(low, high))
    return {"edges": edges.tolist(), "counts": counts.tolist()}


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
        histogram=_histogram(e),
        **normality,
    )


@dataclasses.dataclass(frozen=True)
class SystematicErrorPattern(Result):
    feature: str
    bucket: str
    sample_count: int
    mean_error: float
    deviation: float  # mean error of the bucket - mean error of all other rows
    relative_effect: float | None  # deviation / overall MAE
    t_statistic: float  # one-sample, against 0
    p_value_zero: float  # mean error != 0
    p_value_rest: float  # mean error != the rest's
    p_value: float  # max of the two (three with a baseline)
    p_adjusted: float
    baseline_deviation: float | None = None  # the same bucket's deviation in the baseline
    p_value_baseline: float | None = None  # deviation != the baseline's, the same way

    @property
    def direction(self) -> str:
        return "over-prediction" if self.deviation > 0 else "under-prediction"


@dataclasses.dataclass(frozen=True)
class SystematicErrors(Result):
    patterns: list[SystematicErrorPattern]
    buckets_tested: int
    overall_mae: float | None
    overall_mean_error: float | None
    alpha: float
    status: Status = Status.OK
    notes: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class _Reference:
    """The baseline's labelled rows for the comparison of each bucket's deviation with its own."""

    frame: pd.DataFrame
    centred: np.ndarray
    squares: np.ndarray

    @classmethod
    def of(cls, features, errors, columns) -> _Reference | None:
        if features is None and errors is None:
            return None
        e = as_float_array("reference_errors", errors, min_size=0)
        frame = (features if isinstance(features, pd.DataFrame) else pd.DataFrame(features)).reset_index(drop=True)
        if len(frame) != e.size:
            raise ValueError(f"length mismatch: reference_features={len(frame)}, reference_errors={e.size}")
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"reference_features.{missing[0]}: column missing")
        centred = e - e.mean() if e.size else e
        return cls(frame, centred, np.square(centred))

    def deviations(self, name, encode, buckets: int) -> tuple[list[float | None], list[float]]:
        """Per bucket of feature ``name``: the baseline's deviation from the rest (None with fewer
        than 2 baseline rows on either side) and that deviation's variance."""
        deviation: list[float | None] = [None] * buckets
        variance = [0.0] * buckets
        n_total = self.centred.size
        codes = encode(self.frame[name])
        inside = codes >= 0
        counts = np.bincount(codes[inside], minlength=buckets)
        sums = np.bincount(codes[inside], weights=self.centred[inside], minlength=buckets)
        squares = np.bincount(codes[inside], weights=self.squares[inside], minlength=buckets)
        total, total_squares = float(self.centred.sum()), float(self.squares.sum())
        for b in range(buckets):
            n, rest = int(counts[b]), n_total - int(counts[b])
            if n < 2 or rest < 2:
                continue
            mean, var, rest_mean, rest_var = _inside_and_rest(n, sums[b], squares[b], n_total, total, total_squares)
            deviation[b], variance[b] = float(mean - rest_mean), float(max(var, 0.0) / n + rest_var / rest)
        return deviation, variance


def _inside_and_rest(n: int, inside_sum: float, inside_squares: float, n_total: int, total: float,
                     total_squares: float) -> tuple[float, float, float, float]:
    """A bucket's mean and variance (ddof 1) and the rest's, from the sums of the (centred) errors
    and their squares inside it and overall; the rest's variance is clipped at 0."""
    rest = n_total - n
    mean, rest_mean = inside_sum / n, (total - inside_sum) / rest
    var = (inside_squares - n * mean**2) / (n - 1)
    rest_var = max((total_squares - inside_squares - rest * rest_mean**2) / (rest - 1), 0.0)
    return mean, var, rest_mean, rest_var


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
    reference_features=None,
    reference_errors=None,
    winsorize: float = WINSORIZE,
    predicted=None,
    reference_predicted=None,
) -> SystematicErrors:
    """Segments (feature buckets) where the model errs more than elsewhere, most significant first.

    With ``reference_features`` / ``reference_errors`` (the baseline's labelled rows), a segment
    must also deviate from the rest more than the same segment did in the baseline (module
    docstring): a pattern the model always had is its shape, not news. With ``predicted`` (and
    ``reference_predicted`` when there is a reference), all positive: a regressor's errors are
    judged relative to its predictions (module docstring)."""
    check_alpha(alpha)
    if bins < 2:
        raise ValueError(f"bins: must be >= 2, got {bins}")
    if not 0 <= winsorize < 0.25:
        raise ValueError(f"winsorize: a tail share in [0, 0.25), got {winsorize!r}")
    raw = as_float_array("errors", errors, min_size=0)
    frame = (features if isinstance(features, pd.DataFrame) else pd.DataFrame(features)).reset_index(drop=True)
    if len(frame) != raw.size:
        raise ValueError(f"length mismatch: features={len(frame)}, errors={raw.size}")
    if raw.size < min_bucket_size:
        return SystematicErrors([], 0, None, None, alpha, Status.INSUFFICIENT_DATA,
                                (f"{raw.size} errors; a bucket needs at least {min_bucket_size}",))
    before = None if reference_errors is None else as_float_array("reference_errors", reference_errors, min_size=0)
    scale = _relative_scale(raw, before, predicted, reference_predicted)
    notes = ()
    if scale is not None:
        raw, before = raw / scale[0], None if before is None else before / scale[1]
        notes = ("errors relative to the prediction: (predicted - actual) / predicted",)
    overall_mae = float(np.abs(raw).mean())
    e, before = _winsorized(raw, before, winsorize)
    kinds = dict(feature_kinds or {})
    candidates = []
    # Per-bucket counts and sums come from one bincount per feature; the rest of the rows enter
    # Welch's test through the totals (errors centred first, so the subtraction stays exact
    # enough), and the one-sample test through the bucket's own mean and deviation.
    centred = e - e.mean()
    squares = np.square(centred)
    total, total_squares = centred.sum(), squares.sum()

    reference = _Reference.of(reference_features, before, frame.columns)

    def bucket_sums(name):
        codes, labels, encode = _buckets(frame[name], kinds.get(str(name)), bins, max_categories)
        return (labels, np.bincount(codes, minlength=len(labels)),
                np.bincount(codes, weights=centred, minlength=len(labels)),
                np.bincount(codes, weights=squares, minlength=len(labels)),
                None if reference is None else reference.deviations(name, encode, len(labels)))

    with ThreadPoolExecutor(max_workers=FEATURE_THREADS) as pool:  # features are independent
        sums = list(pool.map(bucket_sums, frame.columns))
    for name, (labels, count, inside_sum, inside_squares, before) in zip(frame.columns, sums, strict=True):
        for code, label in enumerate(labels):
            n = int(count[code])
            rest_n = e.size - n
            if n < min_bucket_size or rest_n < 2:
                continue
            mean_c, var, rest_mean, rest_var = _inside_and_rest(n, inside_sum[code], inside_squares[code], e.size,
                                                                total, total_squares)
            if var <= 1e-24 * max(total_squares / e.size, 1e-300):  # a constant bucket
                continue
            mean_error = mean_c + e.mean()
            t_zero = mean_error / np.sqrt(var / n)
            p_rest = float(stats.ttest_ind_from_stats(mean_c, np.sqrt(var), n, rest_mean, np.sqrt(rest_var), rest_n,
                                                      equal_var=False).pvalue)
            p_zero = float(2 * stats.t.sf(abs(t_zero), n - 1))
            deviation = float(mean_c - rest_mean)
            same_direction = np.sign(mean_error) == np.sign(deviation)
            p_value = max(p_zero, p_rest) if same_direction else 1.0
            baseline = {}
            if before is not None and before[0][code] is not None:
                baseline_deviation, baseline_variance = before[0][code], before[1][code]
                excess = deviation - baseline_deviation
                z = excess / np.sqrt(var / n + rest_var / rest_n + baseline_variance)
                p_baseline = float(2 * stats.norm.sf(abs(z))) if np.sign(excess) == np.sign(deviation) else 1.0
                baseline = {"baseline_deviation": float(baseline_deviation), "p_value_baseline": p_baseline}
                p_value = max(p_value, p_baseline)
            candidates.append({
                "feature": str(name), "bucket": label, "sample_count": n,
                "mean_error": float(mean_error), "deviation": deviation,
                "relative_effect": deviation / overall_mae if overall_mae > 0 else None,
                "t_statistic": float(t_zero), "p_value_zero": p_zero, "p_value_rest": p_rest,
                "p_value": p_value, **baseline,
            })
    if not candidates:
        return SystematicErrors([], 0, overall_mae, float(raw.mean()), alpha,
                                notes=(*notes, "no bucket had enough rows"))
    adjusted = stats.false_discovery_control([c["p_value"] for c in candidates], method="bh")
    patterns = [
        SystematicErrorPattern(**c, p_adjusted=float(p_adj))
        for c, p_adj in zip(candidates, adjusted, strict=True)
        if p_adj < alpha and (c["relative_effect"] is None or abs(c["relative_effect"]) >= min_relative_effect)
    ]
    patterns.sort(key=lambda pattern: (pattern.p_adjusted, -abs(pattern.deviation)))
    return SystematicErrors(patterns, len(candidates), overall_mae, float(raw.mean()), alpha, notes=notes)


def _relative_scale(errors: np.ndarray, reference: np.ndarray | None, predicted, reference_predicted
                    ) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The predictions to divide the errors by (module docstring), when they are given for every
    window compared and all positive; else None (absolute errors)."""
    if predicted is None or (reference is not None and reference_predicted is None):
        return None
    sides = [("predicted", predicted, "errors", errors)]
    if reference is not None:
        sides.append(("reference_predicted", reference_predicted, "reference_errors", reference))
    scales = []
    for name, values, against_name, against in sides:
        p = as_float_array(name, values, min_size=0)
        if p.size != against.size:
            raise ValueError(f"length mismatch: {name}={p.size}, {against_name}={against.size}")
        if not (p > 0).all():
            return None
        scales.append(p)
    return scales[0], scales[1] if reference is not None else None


def _winsorized(errors: np.ndarray, reference: np.ndarray | None, share: float
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """The errors (and the baseline's) clipped at the ``share`` and 1 - ``share`` quantiles of both
    together (module docstring: a bucket's mean is not one outcome's)."""
    if share <= 0:
        return errors, reference
    pooled = errors if reference is None or not reference.size else np.concatenate((errors, reference))
    low, high = np.quantile(pooled, (share, 1.0 - share))
    return np.clip(errors, low, high), None if reference is None else np.clip(reference, low, high)


def _buckets(column: pd.Series, kind: str | None, bins: int, max_categories: int
             ) -> tuple[np.ndarray, list[str], Callable[[pd.Series], np.ndarray]]:
    """Bucket code per row, the buckets' labels (with 'missing' for missing values), and a
    function coding other rows of the feature (the baseline's) into the same buckets (-1: a value
    none of them holds).

    Numeric: one bucket per value when there are at most ``bins`` distinct values (binary
    and small discrete features), quantile bins otherwise. Categorical (and boolean, and
    category-dtype): one bucket per category, the least frequent beyond ``max_categories``
    pooled as 'other'.
    """
    categorical_dtype = isinstance(column.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(column.dtype)
    numeric = None
    if kind == "numeric" or (kind is None and not categorical_dtype):
        numeric = pd.to_numeric(column, errors="coerce").astype("float64")
    is_numeric = numeric is not None and (
        kind == "numeric" or (numeric.notna().sum() == column.notna().sum() and numeric.notna().any())
    )
    if is_numeric:
        values = numeric.to_numpy()
        present = np.isfinite(values)
        finite = values[present]
        # Quantile edges by selection, not a full sort; equal edges mean few distinct values.
        edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, bins + 1))) if finite.size else np.array([])
        distinct = np.sort(pd.unique(finite)) if edges.size <= bins else None
        if distinct is not None and distinct.size <= bins:
            labels = [str(int(v)) if float(v).is_integer() else str(v) for v in distinct]

            def code(v):
                at = np.minimum(np.searchsorted(distinct, v), distinct.size - 1)
                return np.where(distinct[at] == v, at, -1)
        else:  # quantile bins, right-closed like pandas.qcut: (e0, e1], (e1, e2], ...
            labels = [f"({low:.6g}, {high:.6g}]" for low, high in itertools.pairwise(edges)]

            def code(v):
                return np.searchsorted(edges[1:-1], v, side="left")
        missing = len(labels)

        def encode(other: pd.Series) -> np.ndarray:
            v = pd.to_numeric(other, errors="coerce").astype("float64").to_numpy()
            return np.where(np.isfinite(v), code(v), missing).astype(np.int64)

        return encode(column), [*labels, "missing"], encode
    if isinstance(column.dtype, pd.CategoricalDtype) and column.cat.categories.is_unique:
        codes, labels = _category_codes(column, max_categories)
        return codes, labels, _label_encoder(labels, lambda other: other.astype(object).map(label_text,
                                                                                           na_action="ignore"))
    text = column.astype(str).where(column.notna(), "missing")
    top = text.value_counts().index[:max_categories]
    text = text.where(text.isin(top), "other")
    codes, labels = pd.factorize(text, sort=True)
    labels = [str(label) for label in labels]
    return codes.astype(np.int64), labels, _label_encoder(labels, lambda other: other.astype(str))


def _label_encoder(labels: list[str], as_text: Callable[[pd.Series], pd.Series]
                   ) -> Callable[[pd.Series], np.ndarray]:
    """Codes of other rows of a categorical feature in ``labels``: missing values to 'missing', a
    category outside them to 'other' when there is one, else -1."""
    index = {label: i for i, label in enumerate(labels)}
    fallback = index.get("other", -1)

    def encode(other: pd.Series) -> np.ndarray:
        text = as_text(other).where(other.notna(), "missing")
        return text.map(index).fillna(fallback).to_numpy(dtype=np.int64)

    return encode


def _category_codes(column: pd.Series, max_categories: int) -> tuple[np.ndarray, list[str]]:
    """``_buckets`` of an already coded column, working on the codes instead of the rows."""
    codes = column.cat.codes.to_numpy().astype(np.int64)
    names = [label_text(c) for c in column.cat.categories]
    counts = np.bincount(codes[codes >= 0], minlength=len(names))
    order = np.argsort(-counts, kind="stable")
    order = order[counts[order] > 0]
    top, rest = order[:max_categories], order[max_categories:]
    labels = [names[i] for i in top] + (["other"] if rest.size else []) + ["missing"]
    mapping = np.full(len(names) + 1, len(labels) - 1)  # the extra last slot is code -1: missing
    mapping[top] = np.arange(top.size)
    mapping[rest] = top.size
    return mapping[codes], labels
