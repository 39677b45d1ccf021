"""Feature importance: how strongly each feature goes with the outcome, what the champion relies on,
and how both move over time.

- ``update_feature_weights`` (the seed's name): a model-free association of every feature with the
  real outcome, comparable across feature kinds: Spearman's |ρ| for numeric features (rank based, so
  skewed spend or audience sizes do not dominate) and the correlation ratio η for categorical ones
  (the share of the outcome's spread explained by the categories, square-rooted, on the same 0..1
  scale), each with its p-value; weights are the associations normalised to sum to 1. A multiclass
  model's outcome is a class label, which has no ranks or mean (its ``actual_value`` is NULL, and
  every association read as missing): against it, a numeric feature's association is the
  correlation ratio of the feature's ranks by actual class (η² of the ranks is Kruskal-Wallis' H /
  (n - 1): rank based like Spearman's, and on the same 0..1 scale) and a categorical feature's is
  Cramér's V (χ² of the feature-by-class table), each with its p-value (the one-way ANOVA F test of
  the ranks, the χ² test).
- ``permutation_weights``: the drop in the champion's primary loss when one feature is shuffled
  (scikit-learn's permutation importance), on a bounded sample.
- ``importance_trends`` (the seed's ``get_feature_importance_trends``): per feature, the stored
  weights over time and their least-squares slope per 30 days.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np
import pandas as pd
from scipy import stats

from .tasks import task_spec
from .types import Result, Status, TaskKind

PERMUTATION_MAX_ROWS = 20_000
MIN_ROWS = 20


@dataclasses.dataclass(frozen=True)
class FeatureWeight(Result):
    feature: str
    kind: str
    method: str  # "spearman" | "correlation_ratio"; a class outcome: "rank_correlation_ratio" | "cramers_v"
    association: float | None
    p_value: float | None
    weight: float
    sample_count: int


@dataclasses.dataclass(frozen=True)
class FeatureWeights(Result):
    weights: list[FeatureWeight]
    sample_count: int
    status: Status = Status.OK


def update_feature_weights(features: pd.DataFrame, outcome, *, feature_kinds: Mapping[str, str] | None = None,
                           task_kind: TaskKind | str | None = None) -> FeatureWeights:
    """Association of each feature with the outcome, normalised to weights that sum to 1 (all zero
    when nothing is associated). Rows with a missing value are left out feature by feature.
    ``outcome`` is the task kind's target (``TaskSpec.target``): a value, or for a multiclass model
    (``task_kind``) the actual class labels."""
    class_outcome = task_kind is not None and task_spec(task_kind).target == "actual_label"
    if class_outcome:
        y_labels = pd.Series(np.asarray(outcome, dtype=object)).astype(object)
        present = y_labels.notna().to_numpy()
        y = np.where(present, 0.0, np.nan)  # only which rows have an outcome
    else:
        y = pd.to_numeric(pd.Series(np.asarray(outcome)), errors="coerce").to_numpy(dtype=float)
    if len(features) != y.size:
        raise ValueError(f"outcome: {y.size} values for {len(features)} feature rows")
    kinds = dict(feature_kinds or {c: "categorical" if not pd.api.types.is_numeric_dtype(features[c]) else "numeric"
                                   for c in features.columns})
    if y.size < MIN_ROWS:
        return FeatureWeights([], int(y.size), Status.INSUFFICIENT_DATA)
    rows = []
    for feature, kind in kinds.items():
        column = features[feature] if feature in features.columns else pd.Series(np.nan, index=features.index)
        if kind == "numeric":
            x = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
            ok = np.isfinite(x) & np.isfinite(y)
            if class_outcome:
                association, p_value = _correlation_ratio(_text(y_labels[ok]), stats.rankdata(x[ok]))
                rows.append((feature, kind, "rank_correlation_ratio", association, p_value, int(ok.sum())))
            else:
                association, p_value = _spearman(x[ok], y[ok])
                rows.append((feature, kind, "spearman", association, p_value, int(ok.sum())))
        else:
            labels = column.astype(object).where(column.notna(), None).to_numpy()
            ok = np.array([v is not None for v in labels]) & np.isfinite(y)
            if class_outcome:
                association, p_value = _cramers_v(_text(labels[ok]), _text(y_labels[ok]))
                rows.append((feature, kind, "cramers_v", association, p_value, int(ok.sum())))
            else:
                association, p_value = _correlation_ratio(_text(labels[ok]), y[ok])
                rows.append((feature, kind, "correlation_ratio", association, p_value, int(ok.sum())))
    total = sum(a for *_, a, _, _ in rows if a is not None)
    weights = [FeatureWeight(f, k, m, a, p, (a / total) if total > 0 and a is not None else 0.0, n)
               for f, k, m, a, p, n in rows]
    return FeatureWeights(sorted(weights, key=lambda w: -w.weight), int(y.size))


def _text(labels) -> np.ndarray:
    return pd.Series(np.asarray(labels, dtype=object)).astype(str).to_numpy()


def _cramers_v(feature: np.ndarray, outcome: np.ndarray) -> tuple[float | None, float | None]:
    """Cramér's V = sqrt(χ² / (n (min(r, c) - 1))) of the feature-by-class table and the χ² test's
    p-value (no continuity correction); None with fewer than ``MIN_ROWS`` rows, 0 when either side
    has one value."""
    n = feature.size
    if n < MIN_ROWS:
        return None, None
    table = pd.crosstab(feature, outcome).to_numpy()
    if min(table.shape) < 2:
        return 0.0, 1.0
    chi2, p_value, _, _ = stats.chi2_contingency(table, correction=False)
    return math.sqrt(min(chi2 / (n * (min(table.shape) - 1)), 1.0)), float(p_value)


def _spearman(x: np.ndarray, y: np.ndarray) -> tuple[float | None, float | None]:
    if x.size < MIN_ROWS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, None
    result = stats.spearmanr(x, y)
    return abs(float(result.statistic)), float(result.pvalue)


def _correlation_ratio(labels: np.ndarray, y: np.ndarray) -> tuple[float | None, float | None]:
    """η = sqrt(between-group sum of squares / total) and the one-way ANOVA p-value, from group sums."""
    n = y.size
    if n < MIN_ROWS:
        return None, None
    codes, uniques = pd.factorize(labels)
    k = len(uniques)
    total_ss = float(((y - y.mean()) ** 2).sum())
    if k < 2 or total_ss == 0:
        return (0.0, 1.0) if k >= 1 and total_ss == 0 else (None, None)
    counts = np.bincount(codes, minlength=k)
    means = np.bincount(codes, weights=y, minlength=k) / counts
    between = float((counts * (means - y.mean()) ** 2).sum())
    within = max(total_ss - between, 0.0)
    eta = math.sqrt(min(between / total_ss, 1.0))
    if n <= k or within == 0:
        return eta, 0.0 if between > 0 else 1.0
    f = (between / (k - 1)) / (within / (n - k))
    return eta, float(stats.f.sf(f, k - 1, n - k))


def permutation_weights(estimator, frame: pd.DataFrame, feature_kinds: Mapping[str, str],
                        task_kind: TaskKind | str, *, repeats: int = 5, random_state: int = 0) -> dict[str, dict]:
    """Mean and spread of the increase in the primary loss (MAE or log loss) when a feature is
    shuffled, on at most ``PERMUTATION_MAX_ROWS`` labelled rows of ``frame``."""
    from sklearn.inspection import permutation_importance

    from .training import feature_frame

    rows = frame if len(frame) <= PERMUTATION_MAX_ROWS else frame.sample(PERMUTATION_MAX_ROWS,
                                                                          random_state=random_state)
    scoring = "neg_mean_absolute_error" if TaskKind(task_kind) is TaskKind.REGRESSION else "neg_log_loss"
    target = task_spec(task_kind).target  # a multiclass model's outcome is its class label
    known = getattr(estimator, "classes_", None)
    if target == "actual_label" and known is not None:
        # a class the champion was never trained on has no probability column: the log loss scorer
        # refuses such rows (a new class shows in the drift and error reports, not here)
        rows = rows[rows[target].astype(str).isin([str(c) for c in known])]
        if len(rows) < MIN_ROWS:
            return {}
    result = permutation_importance(estimator, feature_frame(rows, feature_kinds), rows[target].to_numpy(),
                                    scoring=scoring, n_repeats=repeats, random_state=random_state)
    return {feature: {"mean": float(result.importances_mean[i]), "std": float(result.importances_std[i])}
            for i, feature in enumerate(feature_kinds)}


@dataclasses.dataclass(frozen=True)
class ImportanceTrend(Result):
    feature: str
    points: list[tuple[datetime, float]]
    slope_per_30_days: float | None


def importance_trends(history: Sequence[tuple[str, datetime, float]]) -> list[ImportanceTrend]:
    """Per feature, its weights over time (oldest first) and their least-squares slope per 30 days
    (None with fewer than 3 points)."""
    by_feature: dict[str, list[tuple[datetime, float]]] = {}
    for feature, at, weight in history:
        by_feature.setdefault(feature, []).append((at, float(weight)))
    trends = []
    for feature, points in sorted(by_feature.items()):
        points.sort()
        slope = None
        if len(points) >= 3 and len({p[0] for p in points}) >= 2:
            days = np.array([(at - points[0][0]).total_seconds() / 86_400 for at, _ in points])
            slope = float(stats.linregress(days, [w for _, w in points]).slope * 30)
        trends.append(ImportanceTrend(feature, points, slope))
    return trends
