"""What an A/B test judges the arms on: a primary metric and guardrails, each compared with an
always-valid interval.

Why a choice: replayed on public streams, two challengers were equal on accuracy and ROC AUC but
better on log loss; which of those decides is the model owner's call, and so is what a winner must
not break. ``AB_METRICS`` lists each task kind's metrics. All are compared as losses (lower is
better), challenger - champion:

- ``mae`` / ``squared_error`` / ``log_loss``: the mean of a per-row loss (``tasks.row_losses`` for
  the kind's own loss, so a hard-label classifier's log loss is its 0/1 loss, decided once for both
  arms), by ``ab.compare_arms`` (per randomisation unit when the test has units).
- ``accuracy``: the 0/1 loss at the 0.5 threshold (its mean is 1 - accuracy).
- ``roc_auc``: 1 - AUC of each arm with DeLong's variance (``degradation.delong_auc_variance``),
  the difference's standard error the root of their sum, in the same normal-mixture confidence
  sequence with n the rows of both arms. AUC is a statistic of pairs, not a mean per row, so its
  interval is valid per look only asymptotically (as the per-row losses are); unit clustering is
  not modelled for it.

A margin (``margin`` of a guardrail) is relative to the champion's value of the metric as users read
it (its accuracy, AUC, MAE...): accuracy 0.90 with a 2 % margin may fall to 0.882.
"""

from __future__ import annotations

import math

import numpy as np

from .ab import AB_METRICS, ArmComparison, ArmLoss, GuardrailCheck, _confidence_sequence, compare_arms
from .degradation import delong_auc_variance
from .tasks import is_hard_label, row_losses, task_spec, zero_one_loss
from .types import Status
from .validation import check_alpha

SCORE_METRICS = ("accuracy", "roc_auc")  # reported as 1 - loss


def metric_names(task_kind) -> tuple[str, ...]:
    """The metrics a test of this task kind may decide on or guard."""
    return AB_METRICS[task_spec(task_kind).kind]


def primary_metric(task_kind, metric: str | None) -> str:
    """``metric`` if the task kind has it, the kind's loss when None; ``ValueError`` naming
    ``primary_metric`` otherwise."""
    names = metric_names(task_kind)
    if metric is None:
        return names[0]
    if metric not in names:
        raise ValueError(f"primary_metric: {metric!r} is not a metric of {task_spec(task_kind).kind} models; "
                         f"valid: {', '.join(names)}")
    return metric


def metric_value(metric: str, loss: float | None) -> float | None:
    """The metric as users read it from its loss (accuracy = 1 - 0/1 loss, AUC = 1 - (1 - AUC))."""
    if loss is None:
        return None
    return 1.0 - loss if metric in SCORE_METRICS else loss


def metric_losses(metric: str, task_kind, actual, predicted, *, hard_labels: bool | None = None) -> np.ndarray:
    """Per-row loss of a per-row metric (every metric but ``roc_auc``)."""
    if metric == "roc_auc":
        raise ValueError("metric: roc_auc has no per-row loss; use compare_metric")
    losses = row_losses(task_kind, actual, predicted, hard_labels=hard_labels)  # checks the rows
    if metric == "squared_error":
        return losses * losses
    if metric == "accuracy":
        return zero_one_loss(np.asarray(actual, dtype=float), (np.asarray(predicted, dtype=float) >= 0.5).astype(float))
    return losses


def compare_metric(metric: str, task_kind, champion: tuple, challenger: tuple, *, champion_units=None,
                   challenger_units=None, adjust=None, alpha: float = 0.05, n_star: float,
                   previous_min_p: float = 1.0) -> ArmComparison:
    """Challenger - champion on ``metric`` (a loss, see the module docstring). ``champion`` and
    ``challenger`` are ``(actual, predicted)`` of each arm. ``adjust(champion_loss,
    challenger_loss)`` may return variance-reduced losses (CUPED) for the per-row metrics."""
    if metric not in metric_names(task_kind):
        primary_metric(task_kind, metric)  # raises naming the metric
    (ya, pa), (yb, pb) = champion, challenger
    if metric == "roc_auc":
        return compare_auc(ya, pa, yb, pb, alpha=alpha, n_star=n_star, previous_min_p=previous_min_p)
    both = np.concatenate((np.asarray(pa, dtype=float), np.asarray(pb, dtype=float)))
    hard = is_hard_label(both) if task_spec(task_kind).kind == "binary_classification" else None
    a = metric_losses(metric, task_kind, ya, pa, hard_labels=hard)
    b = metric_losses(metric, task_kind, yb, pb, hard_labels=hard)
    if adjust is not None:
        a, b = adjust(a, b)
    return compare_arms(a, b, champion_units=champion_units, challenger_units=challenger_units, alpha=alpha,
                        n_star=n_star, previous_min_p=previous_min_p)


def compare_auc(champion_actual, champion_score, challenger_actual, challenger_score, *, alpha: float = 0.05,
                n_star: float, previous_min_p: float = 1.0, min_per_class: int = 2) -> ArmComparison:
    """1 - AUC per arm (DeLong) and the always-valid interval of the difference."""
    check_alpha(alpha)
    if not n_star > 0:
        raise ValueError(f"n_star: must be > 0, got {n_star}")
    arms = []
    for actual, score in ((champion_actual, champion_score), (challenger_actual, challenger_score)):
        y = np.asarray(actual, dtype=float)
        positives = int((y == 1).sum())
        if min(positives, y.size - positives) < min_per_class:
            arms.append(ArmLoss(y.size, y.size, None, None))
            continue
        auc, variance = delong_auc_variance(y, score)
        arms.append(ArmLoss(y.size, y.size, 1.0 - auc, math.sqrt(variance)))
    first, second = arms
    if first.standard_error is None or second.standard_error is None:
        return ArmComparison(first, second, None, None, None, None, None, None, previous_min_p, alpha, n_star,
                             Status.INSUFFICIENT_DATA)
    difference = second.mean - first.mean
    se = math.hypot(first.standard_error, second.standard_error)
    half_width, p_value = _confidence_sequence(difference, se, first.n + second.n, n_star, alpha)
    z_p = math.erfc(abs(difference) / se / math.sqrt(2)) if se > 0 else 1.0  # two-sided, normal
    return ArmComparison(first, second, difference, se, z_p, difference - half_width, difference + half_width,
                         p_value, min(previous_min_p, p_value), alpha, n_star)


def guardrail_check(metric: str, margin: float, comparison: ArmComparison) -> GuardrailCheck:
    """The guardrail of ``metric`` on a comparison: the allowed worsening is ``margin`` times the
    champion's value of the metric (0 while the champion has none)."""
    value = metric_value(metric, comparison.champion.mean)
    allowed = margin * abs(value) if value is not None and math.isfinite(value) else 0.0
    return GuardrailCheck(metric, margin, allowed, comparison)
