"""Performance degradation of multiclass models: the multiclass side of ``core.degradation``
(``compare_metrics`` and ``ReferenceMetrics`` dispatch here for ``multiclass_classification``).

Rows as in ``core.multiclass``: actual class labels, ``ClassPredictions``. Each window is scored
over its own class list and its rows with a known actual class; rows whose actual class is outside
the list are left out and counted in every comparison's ``reason``. The tests, each one-sided and
> 0 when the current window is worse, as the binary ones:
- accuracy -> the two-proportion z (pooled standard error) on the served class;
- log loss -> Welch z on the per-row multiclass log loss (``multiclass.index_log_loss``);
- macro F1 -> the delta method, as the binary F1, on all classes at once: with
  u_ic = 2·1[y_i = c = ŷ_i] and v_ic = 1[y_i = c] + 1[ŷ_i = c], F1_c = mean(u_c) / mean(v_c) and macro
  F1 = the mean of F1_c over the K classes that occur as actual or served class (sklearn's label
  set), so a row's influence is ψ_i = Σ_c (u_ic - F1_c·v_ic) / (K·mean(v_c)) and Var = var(ψ) / n.
  One row enters two classes' terms (its actual and its served class); the per-row sum keeps that
  covariance, which adding per-class variances would drop. When the two windows average different
  class sets, ``reason`` says so.
Hard labels (one-hot probabilities) in either window: log loss is ``not_comparable``, as for binary.
A seeded simulation (tests/unit/test_multiclass.py) holds each z to mean 0 and standard deviation 1
within 0.15 over 300 no-change replications of 1,000 rows a side (measured: means 0.08, standard
deviations 0.98-0.99), and a 20-point accuracy drop at 1,000 rows a side (0.79 -> 0.63 in the seeded
sample) gives z of about 8 on each metric (for accuracy 0.2 / sqrt(2 · 0.7 · 0.3 / 1000) = 9.8
expected at exactly 20 points; the test asks z > 6).

``ReferenceMetrics.excluding`` (the monitor's baseline days against the rest) rebuilds the rest from
the kept rows: one pass over them, no sort to save as for the binary AUC.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .degradation import DEFAULT_METRICS, ReferenceMetrics, _moments, _normal
from .multiclass import UNKNOWN_CLASS, ClassPredictions, checked_rows, index_log_loss
from .types import shown


@dataclasses.dataclass(frozen=True)
class _MacroF1:
    n: int
    classes: tuple[str, ...]  # the classes averaged: those occurring as actual or served class
    f1: float | None
    var: float | None


class MulticlassSides:
    """One multiclass window's statistic of each metric, over its rows with a known actual class."""

    def __init__(self, index: np.ndarray, predictions: ClassPredictions):
        known = index != UNKNOWN_CLASS
        self.rows = (index, predictions)  # every row, as given (what a reference pool excludes from)
        self.y, self.p = index[known], predictions[known]
        self.n, self.unknown = int(self.y.size), int((~known).sum())

    @classmethod
    def of(cls, name: str, actual, predicted) -> MulticlassSides:
        """The window's rows checked, errors naming ``{name}_actual`` / ``{name}_predicted``."""
        index, _ = checked_rows(actual, predicted, prefix=f"{name}_")
        return cls(index, predicted)

    def get(self, metric: str):
        if metric == "accuracy":
            return int((self.p.predicted == self.y).sum())
        if metric == "log_loss":
            return _moments(index_log_loss(self.y, self.p.probabilities))
        return macro_f1_side(self.y, self.p.predicted, self.p.classes)


def macro_f1_side(y: np.ndarray, served: np.ndarray, classes: tuple[str, ...]) -> _MacroF1:
    """Macro F1 over the classes that occur, and its delta-method variance (module docstring)."""
    n = int(y.size)
    if n == 0:
        return _MacroF1(0, (), None, None)
    one_hot = np.arange(len(classes))
    actual, chosen = y[:, None] == one_hot, served[:, None] == one_hot
    u = 2.0 * (actual & chosen)
    v = actual.astype(np.float64) + chosen
    v_mean = v.mean(axis=0)
    used = v_mean > 0
    u, v, v_mean = u[:, used], v[:, used], v_mean[used]
    f1 = u.mean(axis=0) / v_mean
    psi = ((u - f1 * v) / v_mean).sum(axis=1) / f1.size
    var = float(psi.var(ddof=1) / n) if n > 1 else float("nan")
    return _MacroF1(n, tuple(c for c, kept in zip(classes, used, strict=True) if kept), float(f1.mean()), var)


@dataclasses.dataclass(frozen=True, eq=False)
class MulticlassPool:
    """A multiclass reference's rows, for ``excluding``: the rest is rebuilt from the kept rows (one
    pass over them; no sort to save, unlike the binary AUC)."""

    index: np.ndarray
    predictions: ClassPredictions

    @classmethod
    def build(cls, kind: str, threshold: float, actual, predicted) -> ReferenceMetrics:
        window = MulticlassSides.of("reference", actual, predicted)
        return cls._metrics(kind, threshold, window, cls(*window.rows))

    @staticmethod
    def _metrics(kind: str, threshold: float, window: MulticlassSides, pool) -> ReferenceMetrics:
        sides = {metric: window.get(metric) for metric in DEFAULT_METRICS[kind]}
        return ReferenceMetrics(task_kind=kind, threshold=threshold, n=window.n, hard=window.p.is_one_hot,
                                zero_one=window.p.is_one_hot, sides=sides, _pool=pool, unknown_actual=window.unknown)

    def excluding(self, full: ReferenceMetrics, rows) -> ReferenceMetrics:
        keep = np.ones(self.index.size, dtype=bool)
        keep[np.asarray(rows)] = False
        return self._metrics(full.task_kind, full.threshold, MulticlassSides(self.index[keep], self.predictions[keep]),
                             None)


def left_out(result: dict, ref_unknown: int, cur_unknown: int) -> dict:
    """A multiclass comparison's ``reason`` with the rows left out for an unknown actual class."""
    if not ref_unknown and not cur_unknown:
        return result
    note = (f"left out {ref_unknown} reference and {cur_unknown} current rows whose actual class is outside the "
            "class list")
    return {**result, "reason": f"{result['reason']}; {note}" if result["reason"] else note}


def compare_macro_f1(ref: _MacroF1, cur: _MacroF1) -> dict:
    """Macro F1, reference vs current: z on the difference with the windows' variances added."""
    result = _normal("macro_f1", ref.f1, cur.f1, math.sqrt(ref.var + cur.var))
    if ref.classes != cur.classes:
        only_ref = [c for c in ref.classes if c not in cur.classes]
        only_cur = [c for c in cur.classes if c not in ref.classes]
        result["reason"] = (f"macro_f1 averages different classes: only in the reference {shown(only_ref)}, "
                            f"only in the current window {shown(only_cur)}")
    return result
