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
- multiclass models (``AB_METRICS["multiclass_classification"]``): ``log_loss`` is the multiclass
  log loss -ln p(actual class) per row (``core.multiclass``; the arms are read from the store as
  ``actual_label`` and ``ClassPredictions`` of the ``proba_<class>`` columns), ``accuracy`` the
  0/1 loss of the served class; the default guardrail is accuracy (2 %). A model serving one-hot
  probabilities (labels only) has no log loss worth the name (~36 a wrong row, as binary hard
  labels): when every row of both arms is one-hot (``arms_hard_labels``) the default primary is
  ``accuracy``. Measured (tests/unit/test_ab_multiclass.py, 5 classes, 500 outcomes per arm per
  day, weekly looks, planned for the default 5 % MDE): a challenger with 20 % lower log loss (and
  6 points more accuracy) is promoted in 200 of 200 runs, all at the first look (day 7, 3,500
  rows an arm); an equal one in 1 of 200 (the others keep the champion at the planned size, day
  35-42). A challenger better on log loss only (the champion's probabilities better tempered, the
  same served class: 6 % lower log loss, equal accuracy) must show its accuracy within 2 % of the
  champion's, which takes more rows than its log loss gain does: promoted in 10 of 30 runs (the
  others keep the champion at the planned size, day 35), 29 of 30 with ``"accuracy:0.05"``, 30 of
  30 without guardrails (a one-off simulation, same stream). Kept at 2 %, as for binary models: a
  challenger that serves the wrong class more often is what the guardrail is for; a test of a
  recalibration widens it or sets ``guardrails=[]``.
- ``roc_auc``: 1 - AUC of each arm with DeLong's variance (``degradation.delong_auc_variance``),
  the difference's standard error the root of their sum, in the same normal-mixture confidence
  sequence with n the rows of both arms. AUC is a statistic of pairs, not a mean per row, so its
  interval is valid per look only asymptotically (as the per-row losses' are). When the test
  randomises campaigns or accounts, rows of a unit are correlated and DeLong's variance, which
  takes them as independent, is too small: the variance is then clustered (Obuchowski 1997,
  ``clustered_auc_variance``: the placement values summed per unit) and n counts units. Measured
  (tests/unit/test_ab_metrics.py, 60 units of 40 rows an arm, a unit effect on the scores and the
  base rate, 400 seeded runs): the 95 % interval of the difference of two equal arms covers 0 in
  68.5 % of runs with DeLong's variance, in 96.3 % with the clustered one.
- ``calibration_error`` (binary classifiers, guardrail only): the binned expected calibration
  error, ECE = sum over bins of (rows in bin / rows) |mean(y - p) in the bin|, rows sorted by
  prediction into equal-count bins. Not a mean of a per-row loss, but it is the mean of per-row
  terms ``s_b (y - p)`` once each bin's sign ``s_b`` is fixed (``calibration_terms``), so it goes
  through ``compare_arms`` like a loss: its standard error is the delta method's (per unit when
  the test has units, with the same ratio estimator), the interval the same confidence sequence.
  Two choices, measured: (1) the smaller arm is cut into ``CALIBRATION_BINS`` bins and the larger
  arm into bins of as many rows: a bin's |mean| has a noise floor of about 0.8 sd / sqrt(rows in
  bin), so ten bins in each arm of a 20/80 split made two equally calibrated arms differ by +0.012
  on average (about two standard errors: false harm), equal-size bins by -0.0003 (300 seeded runs,
  8,000 and 2,000 rows). (2) The delta method's error is conservative near perfect calibration
  (where |mean| folds): 0.0061 against a measured spread of 0.0040 at 4,200 rows, so the interval
  is ~1.5 times wider than needed, which delays showing the guardrail rather than tripping it.
  Measured with weekly looks (tests/unit/test_ab_metrics.py, outcome rate 0.3, 700 rows an arm a
  week): a challenger 0.05 better on log loss but 0.09 too high (ECE +0.07) is promoted in 0 of
  150 runs (129 stopped for harm; 147 of 150 promoted without the guardrail); an equal, calibrated
  one is stopped for harm in 1 of 200; a better, calibrated one is promoted in 200 of 200 by ten
  looks (7,000 rows an arm), in 153-169 of 200 by six (4,200 rows; two seeds), where the interval
  is still wider than the margin.
  Its margin is relative to the champion's outcome rate (default 0.10: predictions may be off by
  10 % of the rate more than the champion's), not to its own ECE: a good model's ECE is mostly
  the binning noise floor (~0.015-0.02 at these sizes), and 2 % of that would block every
  promotion. Guardrail only: a challenger better calibrated and nothing else is had by
  recalibrating the champion (Platt / isotonic), and the floor makes its level no effect size to
  plan a test for. Hard-label classifiers (0/1 predictions) have no calibration: the guardrail is
  skipped, saying so (``NO_CALIBRATION``), and blocks nothing.
- ``business_value``: a value the outcome carries (e.g. revenue of the impression; the store's
  ``outcomes.business_value``), higher is better, compared as the loss -value per row (per unit
  when the test has units: revenue per campaign), over the rows whose outcome carries one. Arms
  without any have no comparison: status ``invalid`` with a reason naming ``business_value``.

A margin (``margin`` of a guardrail) is relative to the champion's value of the metric as users read
it (its accuracy, AUC, MAE, business value...): accuracy 0.90 with a 2 % margin may fall to 0.882;
calibration error's to the champion's outcome rate (above).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .ab import (
    AB_METRICS,
    GUARDRAIL_ONLY,
    ArmComparison,
    ArmLoss,
    GuardrailCheck,
    _confidence_sequence,
    compare_arms,
)
from .degradation import delong_auc_variance, placement_values
from .tasks import is_hard_label, row_losses, task_spec, zero_one_loss
from .types import Status, TaskKind
from .validation import as_float_array, check_alpha

SCORE_METRICS = ("accuracy", "roc_auc")  # reported as 1 - loss
VALUE_METRICS = ("business_value",)  # higher is better: reported as -loss
CALIBRATION_BINS = 10  # equal-count bins of the smaller arm; the larger arm's bins hold as many rows
NO_CALIBRATION = "hard 0/1 predictions have no calibration (a label is not a probability)"


def metric_names(task_kind) -> tuple[str, ...]:
    """The metrics a test of this task kind may decide on or guard."""
    return AB_METRICS[task_spec(task_kind).kind]


def primary_metric(task_kind, metric: str | None, *, hard_labels: bool = False) -> str:
    """``metric`` if the task kind has it and it may decide, the kind's loss when None (``accuracy``
    for a multiclass model serving one-hot probabilities, ``hard_labels``: its log loss would be
    its 0/1 loss under another name); ``ValueError`` naming ``primary_metric`` otherwise."""
    names = metric_names(task_kind)
    if metric is None:
        multiclass = task_spec(task_kind).kind == TaskKind.MULTICLASS_CLASSIFICATION
        return "accuracy" if hard_labels and multiclass else names[0]
    if metric not in names or metric in GUARDRAIL_ONLY:
        why = "may only be a guardrail" if metric in GUARDRAIL_ONLY else \
            f"is not a metric of {task_spec(task_kind).kind} models"
        raise ValueError(f"primary_metric: {metric!r} {why}; valid: "
                         f"{', '.join(m for m in names if m not in GUARDRAIL_ONLY)}")
    return metric


def metric_value(metric: str, loss: float | None) -> float | None:
    """The metric as users read it from its loss (accuracy = 1 - 0/1 loss, AUC = 1 - (1 - AUC),
    a business value = -loss)."""
    if loss is None:
        return None
    if metric in VALUE_METRICS:
        return -loss
    return 1.0 - loss if metric in SCORE_METRICS else loss


def metric_losses(metric: str, task_kind, actual, predicted, *, hard_labels: bool | None = None,
                  values=None) -> np.ndarray:
    """Per-row loss of a per-row metric (every metric but ``roc_auc`` and ``calibration_error``);
    ``business_value`` is ``-values`` (NaN where an outcome carries none)."""
    if metric in ("roc_auc", "calibration_error"):
        raise ValueError(f"metric: {metric} has no per-row loss; use compare_metric")
    if metric == "business_value":
        if values is None:
            raise ValueError("business_value: the outcomes' business values are needed for this metric")
        return -as_float_array("business_value", values, min_size=0, allow_nonfinite=True)
    if metric == "accuracy" and task_spec(task_kind).kind == TaskKind.MULTICLASS_CLASSIFICATION:
        return row_losses(task_kind, actual, predicted, hard_labels=True)  # the served class's 0/1 loss
    losses = row_losses(task_kind, actual, predicted, hard_labels=hard_labels)  # checks the rows
    if metric == "squared_error":
        return losses * losses
    if metric == "accuracy":
        return zero_one_loss(np.asarray(actual, dtype=float), (np.asarray(predicted, dtype=float) >= 0.5).astype(float))
    return losses


def compare_metric(metric: str, task_kind, champion: tuple, challenger: tuple, *, champion_units=None,
                   challenger_units=None, values: tuple | None = None, adjust=None, alpha: float = 0.05,
                   n_star: float, previous_min_p: float = 1.0) -> ArmComparison:
    """Challenger - champion on ``metric`` (a loss, see the module docstring). ``champion`` and
    ``challenger`` are ``(actual, predicted)`` of each arm; ``values`` the business value of each
    arm's rows (champion, challenger; NaN where an outcome carries none), for ``business_value``.
    ``adjust(champion_loss, challenger_loss)`` may return variance-reduced losses (CUPED) for the
    per-row metrics."""
    if metric not in metric_names(task_kind):
        raise ValueError(f"metric: {metric!r} is not a metric of {task_spec(task_kind).kind} models; "
                         f"valid: {', '.join(metric_names(task_kind))}")
    (ya, pa), (yb, pb) = champion, challenger
    units = dict(champion_units=champion_units, challenger_units=challenger_units)
    options = dict(alpha=alpha, n_star=n_star, previous_min_p=previous_min_p)
    if metric == "roc_auc":
        return compare_auc(ya, pa, yb, pb, **units, **options)
    hard = arms_hard_labels(task_kind, pa, pb)
    if metric == "calibration_error":
        if hard:
            return _not_compared(f"calibration_error: {NO_CALIBRATION}", len(ya), len(yb), alpha, n_star,
                                 previous_min_p, Status.INVALID)
        return compare_calibration(ya, pa, yb, pb, **units, **options)
    if metric == "business_value":
        return _compare_business_value(values, **units, **options)
    a = metric_losses(metric, task_kind, ya, pa, hard_labels=hard)
    b = metric_losses(metric, task_kind, yb, pb, hard_labels=hard)
    if adjust is not None:
        a, b = adjust(a, b)
    return compare_arms(a, b, **units, **options)


def arms_hard_labels(task_kind, *predicted) -> bool | None:
    """Whether a classifier's arms serve hard labels, decided once for all of them so that every
    arm is scored with the same loss: binary, every prediction 0 or 1 (``is_hard_label``);
    multiclass, every row of every non-empty arm one-hot (``ClassPredictions.is_one_hot``). None
    for regressors."""
    kind = task_spec(task_kind).kind
    if kind == TaskKind.BINARY_CLASSIFICATION:
        return is_hard_label(np.concatenate([np.asarray(p, dtype=float) for p in predicted]))
    if kind == TaskKind.MULTICLASS_CLASSIFICATION:
        served = [p for p in predicted if len(p)]
        return bool(served) and all(p.is_one_hot for p in served)
    return None


def _not_compared(reason: str, champion_rows: int, challenger_rows: int, alpha: float, n_star: float,
                  previous_min_p: float, status: Status = Status.INSUFFICIENT_DATA) -> ArmComparison:
    arms = [ArmLoss(rows, rows, None, None) for rows in (champion_rows, challenger_rows)]
    return ArmComparison(*arms, None, None, None, None, None, None, previous_min_p, alpha, n_star, status, reason)


def _compare_business_value(values, *, champion_units, challenger_units, **options) -> ArmComparison:
    """-value per row, over the rows whose outcome carries a value (per unit when the test has units)."""
    if values is None:
        raise ValueError("business_value: the outcomes' business values are needed for this metric")
    losses, units = [], []
    for arm, arm_values, arm_units in zip(("champion", "challenger"), values, (champion_units, challenger_units),
                                          strict=True):
        loss = metric_losses("business_value", None, None, None, values=arm_values)
        carried = ~np.isnan(loss)
        if np.isinf(loss).any():
            raise ValueError(f"business_value: the {arm} arm has a non-finite value")
        losses.append(loss[carried])
        units.append(None if arm_units is None else np.asarray(arm_units)[carried])
    missing = [arm for arm, loss in zip(("champion", "challenger"), losses, strict=True) if not loss.size]
    if missing:
        return _not_compared(f"business_value: no outcome of the {' and '.join(missing)} arm"
                             f"{'s' if len(missing) > 1 else ''} carries one (record outcomes with business_value "
                             "to judge on it)", *(len(v) for v in values), options["alpha"], options["n_star"],
                             options["previous_min_p"], Status.INVALID)
    return compare_arms(*losses, champion_units=units[0], challenger_units=units[1], **options)


def calibration_terms(actual, predicted, rows_per_bin: int) -> np.ndarray:
    """Per-row terms whose mean is the binned expected calibration error (ECE): the rows sorted by
    prediction into equal-count bins of about ``rows_per_bin`` rows, each row's term ``s_b (y - p)``
    with ``s_b`` the sign of its bin's mean residual, so that ``mean = sum_b (n_b / n) |mean_b(y - p)|``."""
    y = as_float_array("actual", actual, min_size=0)
    p = as_float_array("predicted", predicted, min_size=0)
    if y.shape != p.shape:
        raise ValueError(f"actual, predicted: lengths differ ({y.size} vs {p.size})")
    if not y.size:
        return y
    bins = max(1, round(y.size / max(rows_per_bin, 1)))
    position = np.empty(y.size, dtype=np.int64)
    position[np.argsort(p, kind="stable")] = np.arange(y.size)
    bin_of = position * bins // y.size
    residual = y - p
    return np.sign(np.bincount(bin_of, residual, bins))[bin_of] * residual


def compare_calibration(champion_actual, champion_score, challenger_actual, challenger_score, *,
                        champion_units=None, challenger_units=None, alpha: float = 0.05, n_star: float,
                        previous_min_p: float = 1.0) -> ArmComparison:
    """Binned ECE per arm (``calibration_terms``; the smaller arm in ``CALIBRATION_BINS`` bins, the
    larger in bins of the same size) and the always-valid interval of the difference, by
    ``compare_arms`` on the terms (per unit when the test has units)."""
    rows_per_bin = max(1, min(len(champion_actual), len(challenger_actual)) // CALIBRATION_BINS)
    a = calibration_terms(champion_actual, champion_score, rows_per_bin)
    b = calibration_terms(challenger_actual, challenger_score, rows_per_bin)
    return compare_arms(a, b, champion_units=champion_units, challenger_units=challenger_units, alpha=alpha,
                        n_star=n_star, previous_min_p=previous_min_p)


def clustered_auc_variance(actual, score, units) -> tuple[float, float, int]:
    """ROC AUC, its variance when rows are correlated within ``units`` (Obuchowski 1997: the
    placement values summed per cluster) and the number of clusters.

    With K clusters, M positives and N negatives, ``a_k = sum of V10 in k - m_k AUC`` and ``b_k =
    sum of V01 in k - n_k AUC``: Var = K / (K - 1) (sum a^2 / M^2 + sum b^2 / N^2 + 2 sum ab / (M N)).
    One row per cluster gives DeLong's variance (up to the K / (K - 1) factor)."""
    y = as_float_array("actual", actual)
    s = as_float_array("score", score)
    if y.shape != s.shape or len(units) != y.size:
        raise ValueError(f"actual, score, units: lengths differ ({y.size}, {s.size}, {len(units)})")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("actual: labels must be 0 or 1")
    codes, names = pd.factorize(np.asarray(units, dtype=object))
    k = names.size
    positive = y == 1
    if k < 2 or min(positive.sum(), (~positive).sum()) < 2:
        raise ValueError(f"units: needs at least 2 units and 2 rows of each class, got {k} units")
    v10, v01 = placement_values(y, s)
    m_k, n_k = np.bincount(codes[positive], minlength=k), np.bincount(codes[~positive], minlength=k)
    total_m, total_n = m_k.sum(), n_k.sum()
    auc = float(v10.sum() / total_m)
    a = np.bincount(codes[positive], v10, k) - m_k * auc
    b = np.bincount(codes[~positive], v01, k) - n_k * auc
    variance = k / (k - 1) * ((a @ a) / total_m**2 + (b @ b) / total_n**2 + 2 * (a @ b) / (total_m * total_n))
    return auc, float(variance), k


def compare_auc(champion_actual, champion_score, challenger_actual, challenger_score, *, champion_units=None,
                challenger_units=None, alpha: float = 0.05, n_star: float, previous_min_p: float = 1.0,
                min_per_class: int = 2) -> ArmComparison:
    """1 - AUC per arm (DeLong, or clustered by unit when the arm's ``units`` are given) and the
    always-valid interval of the difference, n being the rows (or units) of both arms."""
    check_alpha(alpha)
    if not n_star > 0:
        raise ValueError(f"n_star: must be > 0, got {n_star}")
    arms = []
    for actual, score, units in ((champion_actual, champion_score, champion_units),
                                 (challenger_actual, challenger_score, challenger_units)):
        y = np.asarray(actual, dtype=float)
        positives = int((y == 1).sum())
        clusters = y.size if units is None else len(set(units))
        if min(positives, y.size - positives) < min_per_class or clusters < 2:
            arms.append(ArmLoss(clusters, y.size, None, None))
            continue
        if units is None:
            auc, variance = delong_auc_variance(y, score)
        else:
            auc, variance, clusters = clustered_auc_variance(y, score, units)
        arms.append(ArmLoss(clusters, y.size, 1.0 - auc, math.sqrt(variance)))
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


def guardrail_check(metric: str, margin: float, comparison: ArmComparison, *,
                    reference: float | None = None) -> GuardrailCheck:
    """The guardrail of ``metric`` on a comparison: the allowed worsening is ``margin`` times
    ``reference``, by default the champion's value of the metric (0 while the champion has none)."""
    value = metric_value(metric, comparison.champion.mean) if reference is None else reference
    allowed = margin * abs(value) if value is not None and math.isfinite(value) else 0.0
    return GuardrailCheck(metric, margin, allowed, comparison)


def guardrail(metric: str, margin: float, task_kind, champion: tuple, challenger: tuple,
              **options) -> GuardrailCheck:
    """Compare the arms on a guardrail metric (``compare_metric``'s arguments) and check it:
    ``calibration_error``'s margin is relative to the champion's outcome rate, and it is skipped,
    saying why, for hard-label classifiers."""
    if metric != "calibration_error":
        return guardrail_check(metric, margin, compare_metric(metric, task_kind, champion, challenger, **options))
    comparison = compare_metric(metric, task_kind, champion, challenger, **options)
    if comparison.status is Status.INVALID:
        return GuardrailCheck(metric, margin, 0.0, comparison, skipped=NO_CALIBRATION)
    actual = np.asarray(champion[0], dtype=float)
    return guardrail_check(metric, margin, comparison, reference=float(actual.mean()) if actual.size else None)
