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
- multiclass (``core.degradation_multiclass``): accuracy -> the same two-proportion z on the served
  class; log loss -> Welch z on the per-row multiclass log loss; macro F1 -> the delta method over
  all classes at once.

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

One reference, many windows: ``ReferenceMetrics`` holds the reference side of every metric, built
once; the monitor compares it with 14 current days and, through ``excluding``, each of 30 baseline
days with the rest of the baseline (at 2,000 labelled rows/day x 50 features this halved a run:
``core.monitoring``'s docstring has the figures).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from .tasks import is_hard_label, row_losses, task_spec
from .types import Result, TaskKind, shown
from .validation import as_float_array

__all__ = ["DEFAULT_METRICS", "DEGENERATE_Z", "PERFORMANCE_MARGINS", "MetricComparison", "ReferenceMetrics",
           "compare_metrics", "delong_auc_variance", "is_hard_label", "placement_values"]

# metric -> (how the margin is measured, the margin): see the module docstring for the why.
PERFORMANCE_MARGINS: Mapping[str, tuple[str, float]] = {
    "mae": ("relative", 0.03),
    "rmse": ("relative", 0.03),
    "mape": ("relative", 0.03),
    "log_loss": ("relative", 0.03),
    "accuracy": ("absolute", 0.01),
    "roc_auc": ("absolute", 0.01),
    "f1": ("absolute", 0.01),
    "macro_f1": ("absolute", 0.01),
}
DEFAULT_METRICS: Mapping[str, tuple[str, ...]] = {
    TaskKind.REGRESSION.value: ("mae", "rmse", "mape"),
    TaskKind.BINARY_CLASSIFICATION.value: ("accuracy", "roc_auc", "log_loss", "f1"),
    TaskKind.MULTICLASS_CLASSIFICATION.value: ("accuracy", "log_loss", "macro_f1"),
}
_HIGHER_IS_BETTER = frozenset({"accuracy", "roc_auc", "f1", "macro_f1"})
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
    reference: ReferenceMetrics | None = None,
) -> list[MetricComparison]:
    """Each metric of the task kind (or ``metrics``), reference vs current window, in order.

    ``margins`` overrides the margin value of a metric (its kind, relative or absolute, stays as in
    ``PERFORMANCE_MARGINS``). ``hard_labels`` None detects a hard-label classifier from the
    predictions of either window. ``threshold`` turns a classifier's scores into labels for accuracy
    and F1. ``reference``: the reference window's statistics built once (``ReferenceMetrics``), for
    a caller comparing many windows with one reference; ``reference_actual`` and
    ``reference_predicted`` are then None. Multiclass: ``*_actual`` are class labels and
    ``*_predicted`` ``ClassPredictions``; ``threshold`` and ``hard_labels`` do not apply. Bad input
    raises ``ValueError`` naming the argument; data that cannot support a metric gives a status,
    never an exception.
    """
    kind = task_spec(task_kind).kind
    binary = kind == TaskKind.BINARY_CLASSIFICATION.value
    multiclass = kind == TaskKind.MULTICLASS_CLASSIFICATION.value
    if reference is None:
        reference = ReferenceMetrics.build(kind, reference_actual, reference_predicted, threshold=threshold)
    elif not isinstance(reference, ReferenceMetrics):
        raise ValueError(f"reference: expected ReferenceMetrics or None, got {shown(reference)}")
    elif reference_actual is not None or reference_predicted is not None:
        raise ValueError("reference_actual, reference_predicted: must be None when reference is given")
    elif reference.task_kind != kind:
        raise ValueError(f"reference: built for {reference.task_kind}, compared as {kind}")
    if multiclass:
        from .degradation_multiclass import MulticlassSides  # it builds on this module's helpers

        current, cur_p = MulticlassSides.of("current", current_actual, current_predicted), None
    else:
        cur_y, cur_p = _window("current", current_actual, current_predicted, binary)
    chosen = _metrics(kind, metrics)
    limits = _margins(margins)
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 2:
        raise ValueError(f"min_samples: must be an integer >= 2, got {shown(min_samples)}")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold: must be in (0, 1), got {shown(threshold)}")
    if threshold != reference.threshold:
        raise ValueError(f"threshold: {shown(threshold)} differs from the reference's {shown(reference.threshold)}")
    if hard_labels is None:
        hard_labels = binary and (reference.hard or is_hard_label(cur_p))
    elif not isinstance(hard_labels, bool):
        raise ValueError(f"hard_labels: must be True, False or None, got {shown(hard_labels)}")
    elif hard_labels and binary:
        if not reference.zero_one:
            raise ValueError("reference_predicted: hard_labels=True needs predictions of exactly 0 or 1")
        if not np.isin(cur_p, (0.0, 1.0)).all():
            raise ValueError("current_predicted: hard_labels=True needs predictions of exactly 0 or 1")
    hard = hard_labels and binary
    if multiclass:
        from .degradation_multiclass import left_out

        hard = reference.hard or current.p.is_one_hot  # labels in either window: no log loss to compare
        return [_finish(left_out(_compare(metric, reference, current, min_samples, hard), reference.unknown_actual,
                                  current.unknown), limits[metric]) for metric in chosen]
    current = _Sides(kind, cur_y, cur_p, threshold)
    return [_finish(_compare(metric, reference, current, min_samples, hard), limits[metric]) for metric in chosen]


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
    m = int((y == 1).sum())
    n = y.size - m
    if m < 2 or n < 2:
        raise ValueError(f"actual: needs at least 2 rows of each class, got {m} positive and {n} negative")
    return _delong(*placement_values(y, s))


def placement_values(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components of checked 0/1 ``y`` and scores: V10 of each positive (the
    share of negatives scored below it, ties half) and V01 of each negative (the share of positives
    scored above it), by the midranks of ``delong_auc_variance``'s docstring."""
    positives, negatives = score[y == 1], score[y == 0]
    m, n = positives.size, negatives.size
    pooled = stats.rankdata(np.concatenate((positives, negatives)))
    return (pooled[:m] - stats.rankdata(positives)) / n, 1.0 - (pooled[m:] - stats.rankdata(negatives)) / m


def _delong(v10: np.ndarray, v01: np.ndarray) -> tuple[float, float]:
    auc = float(v10.mean())
    return auc, float(v10.var(ddof=1) / v10.size + v01.var(ddof=1) / v01.size)


@dataclasses.dataclass(frozen=True, eq=False)
class ReferenceMetrics:
    """A reference window's side of every metric of its task kind, computed once: what
    ``compare_metrics(..., reference=...)`` compares each current window with.

    Why: the monitor compares the baseline with each of 14 current days, and each of 30 baseline
    days with the rest of the baseline. Rebuilt per call, the reference side cost three rank sorts
    of the whole pool (DeLong) and a pass per loss, 44 times per model-run: most of a run at 2,000
    labelled rows a day. ``excluding(rows)`` gives the rest of the window from the pool's shifted
    sums and sorted scores: only the removed rows are sorted or summed, plus one cumulative count
    over the kept scores for the AUC. The whole window's side is computed exactly as
    ``compare_metrics`` computes it from rows (bit for bit); a rest equals the side built from the
    remaining rows up to the rounding of its sums (the tests hold it to a relative 1e-9).
    """

    task_kind: str
    threshold: float
    n: int
    hard: bool  # the window alone looks like a hard-label classifier (``is_hard_label``)
    zero_one: bool  # every prediction is exactly 0 or 1
    sides: Mapping[str, Any]
    _pool: Any = dataclasses.field(default=None, repr=False)  # _Pool (degradation_multiclass: MulticlassPool)
    unknown_actual: int = 0  # multiclass: rows left out, their actual class outside the class list

    @classmethod
    def build(cls, task_kind: TaskKind | str, actual, predicted, *, threshold: float = 0.5) -> ReferenceMetrics:
        """The reference side of every metric of ``task_kind`` from the window's rows (validated
        and named ``reference_actual`` / ``reference_predicted`` in errors)."""
        kind = task_spec(task_kind).kind
        binary = kind == TaskKind.BINARY_CLASSIFICATION.value
        if kind == TaskKind.MULTICLASS_CLASSIFICATION.value:  # threshold does not apply; kept for the check
            from .degradation_multiclass import MulticlassPool

            return MulticlassPool.build(kind, float(threshold), actual, predicted)
        y, p = _window("reference", actual, predicted, binary)
        if not 0 < threshold < 1:
            raise ValueError(f"threshold: must be in (0, 1), got {shown(threshold)}")
        window = _Sides(kind, y, p, threshold)
        sides = {metric: window.get(metric) for metric in DEFAULT_METRICS[kind]}
        other = int((~np.isin(p, (0.0, 1.0))).sum()) if binary else int(p.size)
        return cls(task_kind=kind, threshold=float(threshold), n=int(y.size), hard=binary and y.size > 0 and other == 0,
                   zero_one=other == 0, sides=sides, _pool=_Pool.build(window, other))

    def get(self, metric: str):
        return self.sides[metric]

    def excluding(self, rows) -> ReferenceMetrics:
        """The window without ``rows`` (positions in its rows, as integers or a boolean mask)."""
        if self._pool is None:
            raise ValueError("reference: excluding needs a ReferenceMetrics from build, not one already excluding rows")
        return self._pool.excluding(self, rows)


@dataclasses.dataclass(frozen=True, eq=False)
class _Pool:
    """What ``ReferenceMetrics.excluding`` needs: the rows, shifted sums of each loss (Σ(x - c),
    Σ(x - c)² with c the window's mean, so that removing rows loses no precision), integer sums of
    the F1 terms, and the AUC's sorted scores with each one's doubled placement among the other
    class (the count below plus the count equal)."""

    y: np.ndarray
    p: np.ndarray
    other: int  # predictions that are not exactly 0 or 1
    overflows: int  # MAPE ratios that overflowed
    shifted: Mapping[str, tuple[float, float, float]]  # metric -> (c, Σ(x - c), Σ(x - c)²)
    f1_sums: tuple[int, int, int, int, int] | None  # Σu, Σv, Σu², Σv², Σuv
    ranks: tuple[np.ndarray, ...] | None  # positives sorted, their rows, 2·placement; the same for negatives

    @classmethod
    def build(cls, window: _Sides, other: int) -> _Pool:
        shifted, overflows = {}, 0
        for metric in _MOMENT_METRICS.intersection(DEFAULT_METRICS[window.kind]):
            x = window.rows(metric)
            finite = np.isfinite(x)
            overflows += int(x.size - finite.sum()) if metric == "mape" else 0
            x = x[finite]
            c = float(x.mean()) if x.size else 0.0
            dev = x - c
            shifted[metric] = (c, float(dev.sum()), float(dev @ dev))
        f1_sums = ranks = None
        if window.kind == TaskKind.BINARY_CLASSIFICATION.value:
            f1_sums = _f1_sums(window.y, window.labels())
            ranks = (*_placements(window.p, window.y == 1, window.y == 0),
                     *_placements(window.p, window.y == 0, window.y == 1))
        return cls(window.y, window.p, other, overflows, shifted, f1_sums, ranks)

    def excluding(self, full: ReferenceMetrics, rows) -> ReferenceMetrics:
        removed = np.zeros(self.y.size, dtype=bool)
        try:
            removed[rows] = True
        except (IndexError, TypeError, ValueError):
            raise ValueError(f"rows: expected positions in the reference's {self.y.size} rows or a boolean mask "
                             f"of that length, got {shown(rows)}") from None
        day = _Sides(full.task_kind, self.y[removed], self.p[removed], full.threshold)
        n = full.n - day.n
        sides: dict[str, Any] = {}
        for metric, side in full.sides.items():
            if metric in ("mae", "rmse", "log_loss"):
                sides[metric] = _rest_moments(self.shifted[metric], n, day.rows(metric))
            elif metric == "mape":
                ratio, cut = day.rows("mape"), day.get("mape")
                finite = ratio[np.isfinite(ratio)]
                nonfinite = self.overflows - (ratio.size - finite.size)
                kept = side.kept - cut.kept
                moments = _rest_moments(self.shifted["mape"], kept, finite) if nonfinite == 0 else None
                sides[metric] = _Mape(kept, side.excluded - cut.excluded, nonfinite == 0, moments)
            elif metric == "accuracy":
                sides[metric] = side - day.get("accuracy")
            elif metric == "f1":
                sides[metric] = _f1_from_sums(n, [a - b for a, b in zip(self.f1_sums, _f1_sums(day.y, day.labels()),
                                                                        strict=True)])
            else:
                sides[metric] = self._rest_auc(removed, n)
        other = self.other - int((~np.isin(day.p, (0.0, 1.0))).sum())
        binary = full.task_kind == TaskKind.BINARY_CLASSIFICATION.value
        return ReferenceMetrics(task_kind=full.task_kind, threshold=full.threshold, n=n,
                                hard=binary and n > 0 and other == 0, zero_one=other == 0, sides=sides)

    def _rest_auc(self, removed: np.ndarray, n: int) -> _Auc:
        """DeLong's AUC and variance of the rows not removed: each kept score's placement among the
        other class is the pool's minus the removed rows' (counted by one cumulative sum)."""
        pos, pos_rows, pos_twice, neg, neg_rows, neg_twice = self.ranks
        gone_pos, gone_neg = removed[pos_rows], removed[neg_rows]
        m, k = pos.size - int(gone_pos.sum()), neg.size - int(gone_neg.sum())
        if min(m, k) < 2:
            return _Auc(n, m, None, None)
        v10 = _less_placement(pos[~gone_pos], pos_twice[~gone_pos], neg[gone_neg]) / k
        v01 = 1.0 - _less_placement(neg[~gone_neg], neg_twice[~gone_neg], pos[gone_pos]) / m
        auc, variance = _delong(v10, v01)
        return _Auc(n, m, auc, variance)


_MOMENT_METRICS = frozenset({"mae", "rmse", "log_loss", "mape"})


def _placements(score: np.ndarray, these: np.ndarray, others: np.ndarray) -> tuple[np.ndarray, ...]:
    """``these`` rows' scores sorted, their row positions, and twice each one's placement among
    the ``others`` (count below + count equal: the midrank difference of Sun & Xu, doubled to stay
    an integer)."""
    rows = np.flatnonzero(these)
    order = np.argsort(score[rows], kind="stable")
    mine, other = score[rows][order], np.sort(score[others])
    twice = np.searchsorted(other, mine, side="left") + np.searchsorted(other, mine, side="right")
    return mine, rows[order], twice


def _less_placement(kept: np.ndarray, twice: np.ndarray, removed_other: np.ndarray) -> np.ndarray:
    """The placements (halved) of sorted ``kept`` scores among the other class once the sorted
    ``removed_other`` scores are gone: removed values below / at most each kept score are counted
    by a cumulative sum over where they fall among the kept scores."""
    size = kept.size + 1
    below = np.cumsum(np.bincount(np.searchsorted(kept, removed_other, side="right"), minlength=size))[:-1]
    at_most = np.cumsum(np.bincount(np.searchsorted(kept, removed_other, side="left"), minlength=size))[:-1]
    return (twice - below - at_most) * 0.5


def _rest_moments(shifted: tuple[float, float, float], n: int, removed: np.ndarray) -> _Moments:
    """Mean and variance of a window without the ``removed`` values, from the window's shifted sums."""
    c, s1, s2 = shifted
    dev = removed - c
    s1, s2 = s1 - float(dev.sum()), s2 - float(dev @ dev)
    if n <= 0:
        return _Moments(0, float("nan"), 0.0)
    return _Moments(n, c + s1 / n, max(s2 - s1 * s1 / n, 0.0) / (n - 1) if n > 1 else 0.0)


def _f1_sums(y: np.ndarray, label: np.ndarray) -> tuple[int, int, int, int, int]:
    u = 2 * (label * y).astype(np.int64)
    v = (label + y).astype(np.int64)
    return int(u.sum()), int(v.sum()), int(u @ u), int(v @ v), int(u @ v)


def _f1_from_sums(n: int, sums) -> _F1:
    su, sv, suu, svv, suv = sums
    if n <= 0 or sv == 0:
        return _F1(n, 0.0, None, None)
    v_mean = sv / n
    f1 = (su / n) / v_mean
    centred = suu - 2 * f1 * suv + f1 * f1 * svv - n * (su / n - f1 * v_mean) ** 2
    return _F1(n, v_mean, f1, max(centred, 0.0) / (n - 1) / (n * v_mean ** 2) if n > 1 else float("nan"))


# --- one window's side of each comparison -------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Moments:
    """Count, mean and variance (ddof=1) of a per-row loss over a window."""

    n: int
    mean: float
    var: float


@dataclasses.dataclass(frozen=True)
class _Mape:
    kept: int  # rows with actual != 0
    excluded: int
    finite: bool  # no ratio overflowed
    moments: _Moments | None


@dataclasses.dataclass(frozen=True)
class _Auc:
    n: int
    positives: int
    auc: float | None  # None below 2 rows of a class
    var: float | None


@dataclasses.dataclass(frozen=True)
class _F1:
    n: int
    v_mean: float
    f1: float | None
    var: float | None


def _moments(values: np.ndarray) -> _Moments:
    n = int(values.size)
    return _Moments(n, float(values.mean()) if n else float("nan"), float(values.var(ddof=1)) if n > 1 else 0.0)


def _auc_side(y: np.ndarray, p: np.ndarray) -> _Auc:
    positives = int(y.sum())
    if min(positives, y.size - positives) < 2:
        return _Auc(int(y.size), positives, None, None)
    auc, variance = delong_auc_variance(y, p)
    return _Auc(int(y.size), positives, auc, variance)


def _f1_side(y: np.ndarray, label: np.ndarray) -> _F1:
    u = 2.0 * label * y  # 2·TP per row
    v = label + y  # 2·TP + FP + FN per row
    v_mean = float(v.mean()) if v.size else 0.0
    if v_mean == 0:
        return _F1(int(y.size), 0.0, None, None)
    f1 = u.mean() / v_mean
    return _F1(int(y.size), v_mean, float(f1), float((u - f1 * v).var(ddof=1) / (y.size * v_mean ** 2)))


class _Sides:
    """One window's statistic of each metric, computed on first use from its rows."""

    def __init__(self, kind: str, y: np.ndarray, p: np.ndarray, threshold: float):
        self.kind, self.y, self.p, self.threshold = kind, y, p, threshold
        self.n = int(y.size)
        self._cache: dict[str, Any] = {}

    def get(self, metric: str):
        if metric not in self._cache:
            self._cache[metric] = self._compute(metric)
        return self._cache[metric]

    def labels(self) -> np.ndarray:
        # A hard-label window's 0/1 predictions are their own labels, and p >= threshold keeps them.
        return (self.p >= self.threshold).astype(np.float64)

    def _compute(self, metric: str):
        y, p = self.y, self.p
        if metric in ("mae", "rmse", "log_loss"):
            return _moments(self.rows(metric))
        if metric == "accuracy":
            return int((self.labels() == y).sum())
        if metric == "f1":
            return _f1_side(y, self.labels())
        if metric == "roc_auc":
            return _auc_side(y, p)
        ratio = self.rows("mape")
        finite = bool(np.isfinite(ratio).all())
        return _Mape(int(ratio.size), self.n - int(ratio.size), finite, _moments(ratio) if finite else None)

    def rows(self, metric: str) -> np.ndarray:
        """The per-row values whose mean is the metric (MAPE: over the rows with actual != 0)."""
        y, p = self.y, self.p
        if metric == "mae":
            return np.abs(p - y)
        if metric == "rmse":
            return (p - y) ** 2
        if metric == "log_loss":
            return row_losses(TaskKind.BINARY_CLASSIFICATION, y, p, hard_labels=False)
        keep = y != 0
        with np.errstate(over="ignore"):
            return 100.0 * np.abs(p[keep] - y[keep]) / np.abs(y[keep])


def _compare(metric: str, ref, cur: _Sides, min_samples: int, hard: bool) -> dict:
    if hard and metric in ("log_loss", "roc_auc"):
        return _empty(metric, "not_comparable", f"{metric} needs scores; these predictions are hard 0/1 labels "
                                                "(compared on accuracy and F1 instead)")
    if metric == "mape":
        return _mape(ref.get("mape"), cur.get("mape"), min_samples)
    if metric == "roc_auc":
        return _roc_auc(ref, cur, min_samples)
    if min(ref.n, cur.n) < min_samples:
        return _empty(metric, "insufficient_data", _too_few(ref.n, cur.n, min_samples))
    if metric == "accuracy":
        return _accuracy(ref.get("accuracy"), ref.n, cur.get("accuracy"), cur.n)
    if metric == "macro_f1":
        from .degradation_multiclass import compare_macro_f1

        return compare_macro_f1(ref.get("macro_f1"), cur.get("macro_f1"))
    if metric == "f1":
        values, variances = [], []
        for window, side in (("reference", ref.get("f1")), ("current", cur.get("f1"))):
            if side.f1 is None:
                return _empty("f1", "not_comparable", f"f1 undefined: the {window} window has no positive "
                                                      "label and no positive prediction")
            values.append(side.f1)
            variances.append(side.var)
        return _normal("f1", values[0], values[1], math.sqrt(variances[0] + variances[1]))
    result = _welch(metric, ref.get(metric), cur.get(metric))
    if metric == "rmse":
        return {**result, "reference_value": math.sqrt(result["reference_value"]),
                "current_value": math.sqrt(result["current_value"])}
    return result


def _mape(ref: _Mape, cur: _Mape, min_samples: int) -> dict:
    excluded = ref.excluded, cur.excluded
    note = (f"mape excludes {excluded[0]} reference and {excluded[1]} current rows with actual = 0"
            if any(excluded) else None)
    if min(ref.kept, cur.kept) < min_samples:
        reason = _too_few(ref.kept, cur.kept, min_samples) + " with actual != 0"
        return _empty("mape", "insufficient_data", reason + (f"; {note}" if note else ""))
    if not (ref.finite and cur.finite):
        return _empty("mape", "not_comparable", "mape overflows: an actual value is too close to 0")
    return {**_welch("mape", ref.moments, cur.moments), "reason": note}


def _roc_auc(ref, cur: _Sides, min_samples: int) -> dict:
    values, variances = [], []
    for window, side in (("reference", ref), ("current", cur)):
        if side.n < min_samples:
            return _empty("roc_auc", "insufficient_data", _too_few(ref.n, cur.n, min_samples))
        auc = side.get("roc_auc")
        if auc.positives in (0, auc.n):
            return _empty("roc_auc", "not_comparable",
                          f"roc_auc undefined: the {window} window has a single class ({int(auc.positives > 0)})")
        if auc.auc is None:
            return _empty("roc_auc", "insufficient_data",
                          f"roc_auc needs at least 2 rows of each class; the {window} window has "
                          f"{auc.positives} positive and {auc.n - auc.positives} negative")
        values.append(auc.auc)
        variances.append(auc.var)
    return _normal("roc_auc", values[0], values[1], math.sqrt(variances[0] + variances[1]))


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


def _welch(metric: str, reference: _Moments, current: _Moments) -> dict:
    """Welch z of the mean loss per row (current - reference: > 0 is worse)."""
    se = math.sqrt(reference.var / reference.n + current.var / current.n)
    return _normal(metric, reference.mean, current.mean, se)


def _accuracy(ref_correct: int, ref_n: int, cur_correct: int, cur_n: int) -> dict:
    """Two-proportion z of the share of correct rows, pooled standard error."""
    pooled = (ref_correct + cur_correct) / (ref_n + cur_n)
    se = math.sqrt(pooled * (1 - pooled) * (1 / ref_n + 1 / cur_n))
    return _normal("accuracy", ref_correct / ref_n, cur_correct / cur_n, se)


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
