"""Performance degradation against the baseline, for every model kind: is the current window's
metric worse than the reference window's, by more than noise (significance) and by enough to
matter (a practical margin)?

Why this module exists: a binary classifier lost about 3 accuracy points with no performance
alert, because the only performance rules were absolute limits (``max_log_loss``, ``min_roc_auc``)
that default to None, and concept drift (a % change of log loss) fired 17 days later. So every
metric of the kind is compared with the baseline, each with the test that fits it:

- regression: MAE -> Welch z on |e|; RMSE -> Welch z on e² (the mean square: the square root is a
  monotone map, so testing the mean square tests the RMSE, no delta method needed); MAPE -> Welch z
  on 100·|e|/|y| over rows with y != 0 (the excluded zeros are counted in ``reason``).
- binary: accuracy -> two-proportion z with the pooled standard error; log loss -> Welch z on the
  per-row log loss (``core.tasks.row_losses``); ROC AUC -> (AUC_ref - AUC_cur) / sqrt(Var_ref +
  Var_cur) with DeLong's variance of each window's AUC (the windows are independent samples), by
  Sun & Xu's (2014) O(n log n) midrank algorithm; F1 -> the delta method: F1 = mean(u)/mean(v)
  with u = 2·TP_i and v = 2·TP_i + FP_i + FN_i per row is a ratio of means, whose variance is
  var(u - F1·v) / (n·mean(v)²). The delta method rather than a bootstrap because it is
  deterministic (the daily CUSUM reads z; a seeded bootstrap would still move with row order), costs
  O(n) instead of ~1,000 refits, and agrees with a bootstrap within a few per cent once a window has
  ``min_samples`` rows (the test compares them).

Every ``z`` is one-sided, > 0 when the current window is worse, and about N(0, 1) under no change
when rows are independent: the input the monitoring's CUSUM expects (``core.monitoring``).

Hard-label classifiers (predicted_value 0/1, no score): log loss of a 0/1 prediction is clipped at
the machine epsilon, so a reference window without mistakes had a log loss of 2e-16 and a current
one with a few mistakes gave a change of +1.9e17 %. Such models are detected (``is_hard_label``)
and compared on accuracy (0/1 loss) and F1 only; log loss and ROC AUC are ``not_comparable``.

Practical margins (``PERFORMANCE_MARGINS``): a change is worth an alert only when ``worse_by``
reaches the metric's margin, because at 100,000s of rows a 0.2-point accuracy loss is significant
and meaningless. Losses are relative (their scale is the model's own): 3 % of the baseline MAE /
RMSE / MAPE / log loss (a third of concept drift's lowest rung, +10 %). Scores in [0, 1] are
absolute: accuracy, ROC AUC and F1 0.01 (one point). The issue's target, accuracy -3 points, is
three times that margin, and measured on a simulated classifier (1M rows per window, 40 % positives,
82 % accuracy, 4.45 % of the scores flipped to lose 3.0 points) it moved ROC AUC by -0.037, F1 by
-0.034 and log loss by +13 %: every binary metric calls it practical. Noise must also be
significant to count, which the z / p-value (and the monitoring's CUSUM on z) decide.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

from .tasks import is_hard_label, row_losses, task_spec
from .types import Result, TaskKind, shown
from .validation import as_float_array

__all__ = ["DEFAULT_METRICS", "DEGENERATE_Z", "PERFORMANCE_MARGINS", "MetricComparison", "compare_metrics",
           "delong_auc_variance", "is_hard_label"]

# metric -> (how the margin is measured, the margin): see the module docstring for the why.
PERFORMANCE_MARGINS: Mapping[str, tuple[str, float]] = {
    "mae": ("relative", 0.03),
    "rmse": ("relative", 0.03),
    "mape": ("relative", 0.03),
    "log_loss": ("relative", 0.03),
    "accuracy": ("absolute", 0.01),
    "roc_auc": ("absolute", 0.01),
    "f1": ("absolute", 0.01),
}
DEFAULT_METRICS: Mapping[str, tuple[str, ...]] = {
    TaskKind.REGRESSION.value: ("mae", "rmse", "mape"),
    TaskKind.BINARY_CLASSIFICATION.value: ("accuracy", "roc_auc", "log_loss", "f1"),
}
_HIGHER_IS_BETTER = frozenset({"accuracy", "roc_auc", "f1"})
# z when both windows are constant (standard error 0) yet differ: finite, far beyond any alarm
# threshold, and never inf (a CUSUM fed inf never recovers; to_dict would show None).
DEGENERATE_Z = 10.0


@dataclasses.dataclass(frozen=True)
class MetricComparison(Result):
    """One metric, baseline (reference) vs current window.

    ``worse_by`` is in the metric's own units, > 0 when the current window is worse (a loss rose, a
    score fell); ``relative_worse_by`` = worse_by / |reference_value| (None when the reference is 0).
    ``z`` is one-sided (> 0 = worse) and ~N(0, 1) under no change; ``p_value`` = P(N(0, 1) >= z).
    ``practical``: ``worse_by`` reaches the metric's margin. ``status`` is "ok",
    "insufficient_data" (fewer than ``min_samples`` rows in a window) or "not_comparable" (the
    metric does not exist for these windows: one class for ROC AUC, hard labels for log loss);
    ``reason`` says why, or notes excluded rows.
    """

    metric: str
    reference_value: float | None
    current_value: float | None
    worse_by: float | None
    relative_worse_by: float | None
    z: float | None
    p_value: float | None
    practical: bool
    status: str
    reason: str | None = None

    @property
    def comparable(self) -> bool:
        return self.status == "ok"


def compare_metrics(
    task_kind: TaskKind | str,
    reference_actual,
    reference_predicted,
    current_actual,
    current_predicted,
    *,
    metrics: Sequence[str] | None = None,
    margins: Mapping[str, float] | None = None,
    min_samples: int = 30,
    hard_labels: bool | None = None,
    threshold: float = 0.5,
) -> list[MetricComparison]:
    """Each metric of the task kind (or ``metrics``), reference vs current window, in order.

    ``margins`` overrides the margin value of a metric (its kind, relative or absolute, stays as in
    ``PERFORMANCE_MARGINS``). ``hard_labels`` None detects a hard-label classifier from the
    predictions of either window. ``threshold`` turns a classifier's scores into labels for accuracy
    and F1. Bad input raises ``ValueError`` naming the argument; data that cannot support a metric
    gives a status, never an exception.
    """
    kind = task_spec(task_kind).kind
    binary = kind == TaskKind.BINARY_CLASSIFICATION.value
    ref_y, ref_p = _window("reference", reference_actual, reference_predicted, binary)
    cur_y, cur_p = _window("current", current_actual, current_predicted, binary)
    chosen = _metrics(kind, metrics)
    limits = _margins(margins)
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 2:
        raise ValueError(f"min_samples: must be an integer >= 2, got {shown(min_samples)}")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold: must be in (0, 1), got {shown(threshold)}")
    if hard_labels is None:
        hard_labels = binary and (is_hard_label(ref_p) or is_hard_label(cur_p))
    elif not isinstance(hard_labels, bool):
        raise ValueError(f"hard_labels: must be True, False or None, got {shown(hard_labels)}")
    elif hard_labels and binary:
        for name, values in (("reference_predicted", ref_p), ("current_predicted", cur_p)):
            if not np.isin(values, (0.0, 1.0)).all():
                raise ValueError(f"{name}: hard_labels=True needs predictions of exactly 0 or 1")
    context = _Context(ref_y, ref_p, cur_y, cur_p, min_samples, hard_labels and binary, threshold)
    return [_finish(context.compare(metric), limits[metric]) for metric in chosen]


def delong_auc_variance(actual, score) -> tuple[float, float]:
    """ROC AUC of ``score`` for 0/1 ``actual`` and DeLong's variance of it (Sun & Xu 2014).

    With m positives X and n negatives Y, midranks of X in X, Y in Y and both in the pooled sample
    give the structural components V10_i = (T_pooled(X_i) - T_X(X_i)) / n and V01_j = 1 -
    (T_pooled(Y_j) - T_Y(Y_j)) / m; AUC = mean(V10) and Var = var(V10)/m + var(V01)/n. Needs at
    least two rows of each class.
    """
    y = as_float_array("actual", actual)
    s = as_float_array("score", score)
    if y.shape != s.shape:
        raise ValueError(f"actual, score: lengths differ ({y.size} vs {s.size})")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("actual: labels must be 0 or 1")
    positives, negatives = s[y == 1], s[y == 0]
    m, n = positives.size, negatives.size
    if m < 2 or n < 2:
        raise ValueError(f"actual: needs at least 2 rows of each class, got {m} positive and {n} negative")
    pooled = stats.rankdata(np.concatenate((positives, negatives)))
    v10 = (pooled[:m] - stats.rankdata(positives)) / n
    v01 = 1.0 - (pooled[m:] - stats.rankdata(negatives)) / m
    auc = float(v10.mean())
    return auc, float(v10.var(ddof=1) / m + v01.var(ddof=1) / n)


@dataclasses.dataclass(frozen=True)
class _Context:
    ref_y: np.ndarray
    ref_p: np.ndarray
    cur_y: np.ndarray
    cur_p: np.ndarray
    min_samples: int
    hard_labels: bool
    threshold: float

    def compare(self, metric: str) -> dict:
        if self.hard_labels and metric in ("log_loss", "roc_auc"):
            return _empty(metric, "not_comparable", f"{metric} needs scores; these predictions are hard 0/1 labels "
                                                    "(compared on accuracy and F1 instead)")
        if metric == "mape":
            return self._mape()
        if metric == "roc_auc":
            return self._roc_auc()
        n_ref, n_cur = self.ref_y.size, self.cur_y.size
        if min(n_ref, n_cur) < self.min_samples:
            return _empty(metric, "insufficient_data", _too_few(n_ref, n_cur, self.min_samples))
        if metric == "accuracy":
            return _accuracy(self._correct(self.ref_y, self.ref_p), self._correct(self.cur_y, self.cur_p))
        if metric == "f1":
            return self._f1()
        if metric == "mae":
            return _welch(metric, np.abs(self.ref_p - self.ref_y), np.abs(self.cur_p - self.cur_y))
        if metric == "rmse":
            result = _welch(metric, (self.ref_p - self.ref_y) ** 2, (self.cur_p - self.cur_y) ** 2)
            return {**result, "reference_value": math.sqrt(result["reference_value"]),
                    "current_value": math.sqrt(result["current_value"])}
        return _welch(metric, row_losses(TaskKind.BINARY_CLASSIFICATION, self.ref_y, self.ref_p, hard_labels=False),
                      row_losses(TaskKind.BINARY_CLASSIFICATION, self.cur_y, self.cur_p, hard_labels=False))

    def _labels(self, predicted: np.ndarray) -> np.ndarray:
        return predicted if self.hard_labels else (predicted >= self.threshold).astype(np.float64)

    def _correct(self, actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        return (self._labels(predicted) == actual).astype(np.float64)

    def _mape(self) -> dict:
        ref_keep, cur_keep = self.ref_y != 0, self.cur_y != 0
        excluded = int((~ref_keep).sum()), int((~cur_keep).sum())
        note = (f"mape excludes {excluded[0]} reference and {excluded[1]} current rows with actual = 0"
                if any(excluded) else None)
        n_ref, n_cur = int(ref_keep.sum()), int(cur_keep.sum())
        if min(n_ref, n_cur) < self.min_samples:
            reason = _too_few(n_ref, n_cur, self.min_samples) + " with actual != 0"
            return _empty("mape", "insufficient_data", reason + (f"; {note}" if note else ""))
        with np.errstate(over="ignore"):
            ref = 100.0 * np.abs(self.ref_p[ref_keep] - self.ref_y[ref_keep]) / np.abs(self.ref_y[ref_keep])
            cur = 100.0 * np.abs(self.cur_p[cur_keep] - self.cur_y[cur_keep]) / np.abs(self.cur_y[cur_keep])
        if not (np.isfinite(ref).all() and np.isfinite(cur).all()):
            return _empty("mape", "not_comparable", "mape overflows: an actual value is too close to 0")
        return {**_welch("mape", ref, cur), "reason": note}

    def _roc_auc(self) -> dict:
        values, variances = [], []
        for window, y, p in (("reference", self.ref_y, self.ref_p), ("current", self.cur_y, self.cur_p)):
            if y.size < self.min_samples:
                return _empty("roc_auc", "insufficient_data", _too_few(self.ref_y.size, self.cur_y.size,
                                                                       self.min_samples))
            positives = int(y.sum())
            if positives in (0, y.size):
                return _empty("roc_auc", "not_comparable",
                              f"roc_auc undefined: the {window} window has a single class ({int(y[0])})")
            if min(positives, y.size - positives) < 2:
                return _empty("roc_auc", "insufficient_data",
                              f"roc_auc needs at least 2 rows of each class; the {window} window has "
                              f"{positives} positive and {y.size - positives} negative")
            auc, variance = delong_auc_variance(y, p)
            values.append(auc)
            variances.append(variance)
        return _normal("roc_auc", values[0], values[1], math.sqrt(variances[0] + variances[1]))

    def _f1(self) -> dict:
        values, variances = [], []
        for window, y, p in (("reference", self.ref_y, self.ref_p), ("current", self.cur_y, self.cur_p)):
            label = self._labels(p)
            u = 2.0 * label * y  # 2·TP per row
            v = label + y  # 2·TP + FP + FN per row
            v_mean = v.mean()
            if v_mean == 0:
                return _empty("f1", "not_comparable", f"f1 undefined: the {window} window has no positive "
                                                      "label and no positive prediction")
            f1 = u.mean() / v_mean
            values.append(float(f1))
            variances.append(float((u - f1 * v).var(ddof=1) / (y.size * v_mean ** 2)))
        return _normal("f1", values[0], values[1], math.sqrt(variances[0] + variances[1]))


def _window(name: str, actual, predicted, binary: bool) -> tuple[np.ndarray, np.ndarray]:
    y = as_float_array(f"{name}_actual", actual, min_size=0)
    p = as_float_array(f"{name}_predicted", predicted, min_size=0)
    if y.shape != p.shape:
        raise ValueError(f"{name}_actual, {name}_predicted: lengths differ ({y.size} vs {p.size})")
    if binary:
        if not np.isin(y, (0.0, 1.0)).all():
            raise ValueError(f"{name}_actual: a classifier's outcomes must be 0 or 1")
        if ((p < 0) | (p > 1)).any():
            raise ValueError(f"{name}_predicted: a classifier's predictions must be probabilities in [0, 1]")
    return y, p


def _metrics(kind: str, metrics: Sequence[str] | None) -> tuple[str, ...]:
    valid = DEFAULT_METRICS[kind]
    if metrics is None:
        return valid
    if isinstance(metrics, str):
        raise ValueError(f"metrics: expected a sequence of metric names, got the string {shown(metrics)}")
    chosen = tuple(metrics)
    unknown = [m for m in chosen if m not in valid]
    if unknown or not chosen:
        raise ValueError(f"metrics: {shown(unknown or chosen)} not among the {kind} metrics {list(valid)}")
    return chosen


def _margins(margins: Mapping[str, float] | None) -> dict[str, tuple[str, float]]:
    limits = dict(PERFORMANCE_MARGINS)
    for metric, value in (margins or {}).items():
        if metric not in limits:
            raise ValueError(f"margins: unknown metric {shown(metric)}; valid: {sorted(limits)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"margins[{metric!r}]: must be a finite number >= 0, got {shown(value)}")
        limits[metric] = (limits[metric][0], float(value))
    return limits


def _too_few(n_ref: int, n_cur: int, needed: int) -> str:
    return f"{n_ref} reference and {n_cur} current rows; at least {needed} needed in each"


def _empty(metric: str, status: str, reason: str) -> dict:
    return {"metric": metric, "reference_value": None, "current_value": None, "z": None, "status": status,
            "reason": reason}


def _welch(metric: str, reference: np.ndarray, current: np.ndarray) -> dict:
    """Welch z of the mean loss per row (current - reference: > 0 is worse)."""
    se = math.sqrt(reference.var(ddof=1) / reference.size + current.var(ddof=1) / current.size)
    return _normal(metric, float(reference.mean()), float(current.mean()), se)


def _accuracy(reference: np.ndarray, current: np.ndarray) -> dict:
    """Two-proportion z of the share of correct rows, pooled standard error."""
    pooled = (reference.sum() + current.sum()) / (reference.size + current.size)
    se = math.sqrt(pooled * (1 - pooled) * (1 / reference.size + 1 / current.size))
    return _normal("accuracy", float(reference.mean()), float(current.mean()), se)


def _normal(metric: str, reference_value: float, current_value: float, se: float) -> dict:
    worse = current_value - reference_value
    if metric in _HIGHER_IS_BETTER:
        worse = -worse
    degenerate = 0.0 if worse == 0 else math.copysign(DEGENERATE_Z, worse)  # both windows constant
    z = worse / se if se > 0 and math.isfinite(se) else degenerate
    return {"metric": metric, "reference_value": reference_value, "current_value": current_value, "z": z,
            "status": "ok", "reason": None}


def _finish(result: dict, limit: tuple[str, float]) -> MetricComparison:
    ref, cur, z = result["reference_value"], result["current_value"], result["z"]
    worse = relative = p_value = None
    practical = False
    if result["status"] == "ok":
        worse = cur - ref if result["metric"] not in _HIGHER_IS_BETTER else ref - cur
        relative = worse / abs(ref) if ref != 0 else None
        how, margin = limit
        if how == "absolute":
            practical = worse >= margin and worse > 0
        else:
            practical = (relative >= margin and worse > 0) if relative is not None else worse > 0
        if not math.isfinite(z):  # an overflowing loss: bounded like a degenerate window
            z = 0.0 if math.isnan(z) else math.copysign(DEGENERATE_Z, z)
        p_value = float(stats.norm.sf(z))
    return MetricComparison(metric=result["metric"], reference_value=ref, current_value=cur, worse_by=worse,
                            relative_worse_by=relative, z=z, p_value=p_value, practical=bool(practical),
                            status=result["status"], reason=result["reason"])
