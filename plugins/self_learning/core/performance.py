"""Model performance from labelled predictions (regression, binary and multiclass classification).

Labels arrive late, so every result carries its label coverage (labelled / predicted)
and is ``provisional`` below ``min_label_coverage``: the DAG recomputes it when more
labels arrive. Metrics that are undefined for the data (MAPE with all-zero actuals,
ROC AUC with one class, R² with constant actuals) are ``None`` with a note saying why.

A hard-label classifier (predictions exactly 0 or 1, no score; ``core.tasks.is_hard_label``) has no
log loss or ROC AUC worth showing: its log loss is ~36 per wrong row (a probability of 0 clipped at
the machine epsilon) and ~2e-16 per right one, which made a +1.9e17 % change reach users, and the
AUC of labels is not a ranking. Both are ``None`` with a note; accuracy, precision, recall, F1 and
Brier (= 1 - accuracy) are its metrics.

Multiclass (``MulticlassPerformance``, rows as in ``core.multiclass``): every figure is
``sklearn.metrics``' on the rows whose actual class is in the model's class list; rows with another
actual class are left out and reported (``unknown_actual``, a note), so a class the model does not
know yet never crashes a run. Conventions where sklearn leaves a choice:
- macro / weighted F1: sklearn's default label set, the classes that occur as actual or served
  class in the window (a class absent from both has no F1 to average);
- per-class precision / recall: None where undefined (a class never served / never actual), and
  classes with no actual row are listed in ``absent_classes``;
- ROC AUC: one-vs-rest, the unweighted mean of the binary AUCs of the classes that occur in the
  window (sklearn's ``multi_class="ovr"`` macro when all occur, which sklearn requires); fewer than
  two classes present gives None with a reason in ``unavailable``, not an exception;
- Brier: sum over classes of (p - 1[class])² per row, averaged (range 0..2; ``scale_by_half=False``
  also for two classes, so it means the same for every class count);
- calibration: per class the ECE of P(class) against 1[actual = class] (``expected_calibration_error``);
  ``expected_calibration_error`` is their unweighted mean (class-wise ECE);
- top-k accuracy: the actual class among the k most probable (k = 2 by default; None when k is not
  below the class count, where it is trivially 1);
- hard labels (one-hot probabilities, ``ClassPredictions.is_one_hot``): no log loss, ROC AUC or
  top-k accuracy (a label is not a score); accuracy, F1, Brier and calibration remain.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from sklearn import metrics

from .multiclass import UNKNOWN_CLASS, ClassPredictions, checked_rows, class_counts
from .tasks import is_hard_label
from .types import Result, Status, TaskKind, shown
from .validation import as_float_array, check_same_length

DEFAULT_MIN_LABEL_COVERAGE = 0.8


@dataclasses.dataclass(frozen=True)
class ModelPerformance(Result):
    """Metrics of one model (and version) over one window; irrelevant metrics are None.

    ``mean_error`` is the bias, mean(predicted - actual). ``mape`` is in percent and
    excludes rows with actual = 0 (``mape_excluded`` counts them); ``wape`` =
    sum|error| / sum|actual| is defined whenever any actual is non-zero.
    """

    task_kind: TaskKind
    sample_count: int
    label_coverage: float | None
    provisional: bool
    status: Status = Status.OK
    model_type: str | None = None
    model_version: str | None = None
    mae: float | None = None
    rmse: float | None = None
    r2: float | None = None
    mape: float | None = None
    mape_excluded: int | None = None
    wape: float | None = None
    mean_error: float | None = None
    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    roc_auc: float | None = None
    log_loss: float | None = None
    brier_score: float | None = None
    expected_calibration_error: float | None = None
    notes: tuple[str, ...] = ()


def label_coverage(n_labelled: int, n_predicted: int | None) -> float | None:
    """Share of predictions that have an outcome; None when the predicted count is unknown."""
    if n_predicted is None:
        return None
    if n_predicted < 0 or n_labelled < 0:
        raise ValueError(f"n_predicted: counts must be >= 0, got {n_labelled}/{n_predicted}")
    if n_labelled > n_predicted:
        raise ValueError(f"n_predicted: {n_predicted} is less than the {n_labelled} labelled rows")
    return n_labelled / n_predicted if n_predicted else None


def regression_performance(
    actual,
    predicted,
    *,
    n_predicted: int | None = None,
    min_label_coverage: float = DEFAULT_MIN_LABEL_COVERAGE,
    model_type: str | None = None,
    model_version: str | None = None,
) -> ModelPerformance:
    """MAE, RMSE, R², MAPE, WAPE and bias of a regressor."""
    y = as_float_array("actual", actual, min_size=0)
    p = as_float_array("predicted", predicted, min_size=0)
    n = check_same_length(actual=y, predicted=p)
    common = _common(TaskKind.REGRESSION, n, n_predicted, min_label_coverage, model_type, model_version)
    if n == 0:
        return ModelPerformance(**common, status=Status.INSUFFICIENT_DATA, notes=("no labelled rows",))
    notes = []
    error = p - y
    nonzero = y != 0
    mape = None
    if nonzero.any():
        with np.errstate(over="ignore"):  # a huge ratio is an honest inf, reported as None
            mape = float(np.mean(np.abs(error[nonzero] / y[nonzero])) * 100.0)
    else:
        notes.append("mape undefined: every actual value is 0")
    if not nonzero.all() and nonzero.any():
        notes.append(f"mape excludes {int((~nonzero).sum())} rows with actual = 0")
    total_actual = float(np.abs(y).sum())
    with np.errstate(over="ignore"):  # as for MAPE: a huge ratio is an honest inf, reported as None
        wape = float(np.abs(error).sum() / total_actual) if total_actual > 0 else None
    r2 = None
    if n >= 2 and np.ptp(y) > 0:
        r2 = float(metrics.r2_score(y, p))
    else:
        notes.append("r2 undefined: fewer than 2 rows or constant actual values")
    return ModelPerformance(
        **common,
        mae=float(metrics.mean_absolute_error(y, p)),
        rmse=float(metrics.root_mean_squared_error(y, p)),
        r2=r2,
        mape=mape,
        mape_excluded=int((~nonzero).sum()),
        wape=wape,
        mean_error=float(error.mean()),
        notes=tuple(notes),
    )


def classification_performance(
    actual,
    score,
    *,
    threshold: float = 0.5,
    calibration_bins: int = 10,
    n_predicted: int | None = None,
    min_label_coverage: float = DEFAULT_MIN_LABEL_COVERAGE,
    model_type: str | None = None,
    model_version: str | None = None,
    hard_labels: bool | None = None,
) -> ModelPerformance:
    """Accuracy, precision, recall, F1 (at ``threshold``), ROC AUC, log loss, Brier, ECE.

    ``score`` is the predicted probability of class 1; ``actual`` holds 0/1 labels.
    ``hard_labels`` None detects 0/1 predictions (no score): then log loss and ROC AUC are None.
    """
    y = as_float_array("actual", actual, min_size=0)
    s = as_float_array("score", score, min_size=0)
    n = check_same_length(actual=y, score=s)
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("actual: binary classification labels must be 0 or 1")
    if ((s < 0) | (s > 1)).any():
        raise ValueError("score: predicted probabilities must lie in [0, 1]")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold: must be in (0, 1), got {threshold}")
    if hard_labels is None:
        hard_labels = is_hard_label(s)
    elif hard_labels and not np.isin(s, (0.0, 1.0)).all():
        raise ValueError("score: hard_labels=True needs predictions of exactly 0 or 1")
    common = _common(TaskKind.BINARY_CLASSIFICATION, n, n_predicted, min_label_coverage, model_type, model_version)
    if n == 0:
        return ModelPerformance(**common, status=Status.INSUFFICIENT_DATA, notes=("no labelled rows",))
    notes = []
    labels = y.astype(int)
    predicted = (s >= threshold).astype(int)
    roc_auc = log_loss = None
    if hard_labels:
        notes.append("log_loss and roc_auc undefined: the predictions are hard 0/1 labels, not scores")
    else:
        log_loss = float(metrics.log_loss(labels, s, labels=[0, 1]))
        if np.unique(labels).size == 2:
            roc_auc = float(metrics.roc_auc_score(labels, s))
        else:
            notes.append(f"roc_auc undefined: actual has a single class ({labels[0]})")
    return ModelPerformance(
        **common,
        accuracy=float(metrics.accuracy_score(labels, predicted)),
        precision=float(metrics.precision_score(labels, predicted, zero_division=0.0)),
        recall=float(metrics.recall_score(labels, predicted, zero_division=0.0)),
        f1=float(metrics.f1_score(labels, predicted, zero_division=0.0)),
        roc_auc=roc_auc,
        log_loss=log_loss,
        brier_score=float(metrics.brier_score_loss(labels, s, labels=[0, 1])),
        expected_calibration_error=expected_calibration_error(labels, s, bins=calibration_bins),
        mean_error=float(np.mean(s - y)),
        notes=tuple(notes),
    )


def expected_calibration_error(actual, score, *, bins: int = 10) -> float:
    """ECE over equal-width probability bins: sum of (bin share) * |observed rate - mean score|."""
    y = as_float_array("actual", actual)
    s = as_float_array("score", score)
    check_same_length(actual=y, score=s)
    if bins < 1:
        raise ValueError(f"bins: must be >= 1, got {bins}")
    index = np.minimum((s * bins).astype(np.int64), bins - 1)
    count = np.bincount(index, minlength=bins)
    gap = np.abs(np.bincount(index, weights=y, minlength=bins) - np.bincount(index, weights=s, minlength=bins))
    return float(gap.sum() / count.sum())


@dataclasses.dataclass(frozen=True)
class MulticlassPerformance(ModelPerformance):
    """A multiclass model's window: the base fields it shares with the other kinds (``accuracy``,
    ``roc_auc`` one-vs-rest macro, ``log_loss``, ``brier_score``, ``expected_calibration_error``
    class-wise; ``precision`` / ``recall`` / ``f1`` stay None: their averages are named) plus the
    per-class figures, keyed by class label in the model's class order.

    ``confusion_matrix[i][j]``: rows with actual class i served class j. ``sample_count`` counts the
    rows scored (actual class in the list); ``unknown_actual`` the rows left out, by label.
    ``unavailable``: metric -> why it is None for this window.
    """

    classes: tuple[str, ...] = ()
    macro_f1: float | None = None
    weighted_f1: float | None = None
    top_k: int = 2
    top_k_accuracy: float | None = None
    per_class_support: dict[str, int] = dataclasses.field(default_factory=dict)
    per_class_precision: dict[str, float | None] = dataclasses.field(default_factory=dict)
    per_class_recall: dict[str, float | None] = dataclasses.field(default_factory=dict)
    per_class_calibration_error: dict[str, float] = dataclasses.field(default_factory=dict)
    confusion_matrix: tuple[tuple[int, ...], ...] = ()
    absent_classes: tuple[str, ...] = ()
    unknown_actual: dict[str, int] = dataclasses.field(default_factory=dict)
    unavailable: dict[str, str] = dataclasses.field(default_factory=dict)


def multiclass_performance(
    actual,
    predicted: ClassPredictions,
    *,
    top_k: int = 2,
    calibration_bins: int = 10,
    n_predicted: int | None = None,
    min_label_coverage: float = DEFAULT_MIN_LABEL_COVERAGE,
    model_type: str | None = None,
    model_version: str | None = None,
) -> MulticlassPerformance:
    """Accuracy, macro / weighted F1, per-class precision and recall, log loss, one-vs-rest macro ROC
    AUC, Brier, top-k accuracy, confusion matrix and per-class calibration error of a window.

    ``actual``: the class labels; ``predicted``: ``ClassPredictions`` over the model's classes. Data
    that cannot support a metric (one class, a class absent) gives None and a reason, never an
    exception; bad input raises ``ValueError`` naming the argument."""
    index, unknown = checked_rows(actual, predicted)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k: must be an integer >= 1, got {shown(top_k)}")
    if isinstance(calibration_bins, bool) or not isinstance(calibration_bins, int) or calibration_bins < 1:
        raise ValueError(f"calibration_bins: must be an integer >= 1, got {shown(calibration_bins)}")
    classes = predicted.classes
    known = index != UNKNOWN_CLASS
    y, rows = index[known], predicted[known]
    n, k = int(y.size), len(classes)
    common = {**_common(TaskKind.MULTICLASS_CLASSIFICATION, n, n_predicted, min_label_coverage, model_type,
                        model_version), "classes": classes, "top_k": top_k, "unknown_actual": unknown}
    notes = []
    if unknown:
        notes.append(f"{int((~known).sum())} rows with actual classes outside the class list left out: "
                     f"{shown(unknown)} (extend the class list)")
    support = class_counts(classes, y)
    absent = tuple(c for c, count in support.items() if count == 0)
    if n == 0:
        return MulticlassPerformance(**common, status=Status.INSUFFICIENT_DATA, per_class_support=support,
                                     absent_classes=absent, notes=(*notes, "no labelled rows with a known class"))
    if absent:
        notes.append(f"classes without an actual row in the window: {shown(list(absent))}")
    labels = list(range(k))
    served, probabilities = rows.predicted, rows.probabilities
    precision, recall, _, _ = metrics.precision_recall_fscore_support(y, served, labels=labels, zero_division=np.nan)
    calibration = {c: expected_calibration_error((y == j).astype(float), probabilities[:, j], bins=calibration_bins)
                   for j, c in enumerate(classes)}
    unavailable = {}
    roc_auc = top = log_loss = None
    if rows.is_one_hot:
        for metric in ("log_loss", "roc_auc", "top_k_accuracy"):
            unavailable[metric] = "undefined: the predictions are hard class labels (one-hot), not probabilities"
    else:
        log_loss = float(metrics.log_loss(y, probabilities, labels=labels))
        roc_auc = _ovr_macro_auc(y, probabilities, classes, support, unavailable, notes)
        if top_k < k:
            top = float(metrics.top_k_accuracy_score(y, probabilities, k=top_k, labels=labels))
        else:
            unavailable["top_k_accuracy"] = f"top_k {top_k} is not below the {k} classes (always 1)"
    return MulticlassPerformance(
        **common,
        accuracy=float(metrics.accuracy_score(y, served)),
        macro_f1=float(metrics.f1_score(y, served, average="macro", zero_division=0.0)),
        weighted_f1=float(metrics.f1_score(y, served, average="weighted", zero_division=0.0)),
        roc_auc=roc_auc,
        log_loss=log_loss,
        brier_score=float(metrics.brier_score_loss(y, probabilities, labels=labels, scale_by_half=False)),
        expected_calibration_error=float(np.mean(list(calibration.values()))),
        top_k_accuracy=top,
        per_class_support=support,
        per_class_precision={c: _defined(v) for c, v in zip(classes, precision, strict=True)},
        per_class_recall={c: _defined(v) for c, v in zip(classes, recall, strict=True)},
        per_class_calibration_error=calibration,
        confusion_matrix=tuple(map(tuple, metrics.confusion_matrix(y, served, labels=labels).tolist())),
        absent_classes=absent,
        unavailable=unavailable,
        notes=tuple(notes),
    )


def _ovr_macro_auc(y: np.ndarray, probabilities: np.ndarray, classes, support, unavailable: dict,
                   notes: list) -> float | None:
    """Mean of the one-vs-rest AUCs of the classes present (each with rows of it and of the rest)."""
    present = [j for j, c in enumerate(classes) if support[c] > 0]
    if len(present) < 2:
        only = classes[present[0]] if present else None
        unavailable["roc_auc"] = f"not computable: the window has a single actual class ({only!r})"
        return None
    aucs = [metrics.roc_auc_score(y == j, probabilities[:, j]) for j in present]
    if len(present) < len(classes):
        notes.append(f"roc_auc averages the {len(present)} classes present of {len(classes)}")
    return float(np.mean(aucs))


def _defined(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def performance_from_dict(data) -> ModelPerformance:
    """A stored performance (``to_dict()`` form, e.g. the JSON ``result`` of a performance snapshot)
    rebuilt as its task kind's class: a multiclass window comes back as ``MulticlassPerformance``
    with its per-class figures (the snapshot's metric columns hold only ``STORED_METRICS``)."""
    kind = data.get("task_kind")
    if kind != TaskKind.MULTICLASS_CLASSIFICATION.value:
        return ModelPerformance.from_dict(data)
    performance = MulticlassPerformance.from_dict(data)
    # JSON has no tuples (the confusion matrix's rows come back as lists), and PostgreSQL's JSONB
    # keeps no key order: the per-class figures are put back in the model's class order
    ordered = {name: {c: getattr(performance, name)[c] for c in performance.classes if c in getattr(performance, name)}
               for name in ("per_class_support", "per_class_precision", "per_class_recall",
                            "per_class_calibration_error")}
    return dataclasses.replace(performance, confusion_matrix=tuple(tuple(row) for row in performance.confusion_matrix),
                               **ordered)


def compute_performance(task_kind: TaskKind | str, actual, predicted, **kwargs) -> ModelPerformance:
    """The performance of the model's task kind (its entry in ``core.tasks``)."""
    from .tasks import task_spec  # the registry refers back to this module's functions

    return task_spec(task_kind).performance(actual, predicted, **kwargs)


def _common(task_kind, n, n_predicted, min_label_coverage, model_type, model_version) -> dict:
    if not 0 <= min_label_coverage <= 1:
        raise ValueError(f"min_label_coverage: must be in [0, 1], got {min_label_coverage}")
    coverage = label_coverage(n, n_predicted)
    return {
        "task_kind": task_kind,
        "sample_count": n,
        "label_coverage": coverage,
        "provisional": coverage is not None and coverage < min_label_coverage,
        "model_type": model_type,
        "model_version": model_version,
    }
