"""What differs between task kinds, in one registry: one entry per kind.

An entry says how one row's loss is computed, which metric decides (champion vs candidate,
concept drift), which metrics the kind reports, how its performance is computed, which model is
trained by default and how a fitted model's output becomes the stored prediction. Code that
used to branch on ``TaskKind`` asks ``task_spec(kind)`` instead, so a new kind (multiclass) is
one more ``register_task_kind`` call here (and one more ``TaskKind`` value), not an edit of
every statistic.

The per-row loss is written once, with one clipping: log loss clips probabilities to
``[eps, 1 - eps]`` with ``eps`` the float64 machine epsilon, as ``sklearn.metrics.log_loss``
does, so the mean of the row losses equals the reported ``log_loss`` and a prediction of exactly
0 or 1 costs a large but finite loss (about 36) instead of infinity. (The A/B comparison used to
clip at 1e-15, concept drift at the machine epsilon.)

Hard-label classifiers (predicted_value exactly 0 or 1, no score; ``is_hard_label``) are scored
with the 0/1 loss instead: their log loss is ~2e-16 per right row and ~36 per wrong one, so a
reference window without mistakes had a log loss of 2e-16 and the next window's few mistakes
showed users a change of +1.9e17 %. ``row_losses`` detects them (or takes ``hard_labels``).

Multiclass (``core.multiclass``): ``actual`` is the class labels and ``predicted`` a
``ClassPredictions`` (probability matrix in the model's class order + the served class), not float
arrays; its row loss is the multiclass log loss and its segment error the 0/1 loss of the served
class. It reports the stored ``roc_auc`` (one-vs-rest, macro) and ``log_loss``; accuracy, F1 and the
per-class figures are in its ``MulticlassPerformance`` until the store has columns for them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .types import TaskKind, shown
from .validation import as_float_array, label_text

LOG_LOSS_EPS = float(np.finfo(np.float64).eps)  # the one clipping of probabilities in a log loss

# The metrics stored per window (columns of performance_snapshots, the metrics endpoint, the
# reports): every task kind's ``metric_names`` is a subset, in this order.
STORED_METRICS: tuple[str, ...] = ("mae", "rmse", "r2", "mape", "wape", "roc_auc", "log_loss")


def absolute_error(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """|predicted - actual| per row: the regression loss whose mean is the MAE."""
    return np.abs(predicted - actual)


def binary_log_loss(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Log loss per row of P(y = 1) against a 0/1 outcome, clipped at ``LOG_LOSS_EPS``. The
    caller checks the labels and the probability range (with its own field names)."""
    p = np.clip(predicted, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return -(actual * np.log(p) + (1 - actual) * np.log1p(-p))


def signed_error(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """predicted - actual per row: the error systematic-error analysis tests by segment (regressors,
    and a binary classifier's score against its 0/1 outcome)."""
    return predicted - actual


def zero_one_loss(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """1 where a hard 0/1 prediction is wrong, else 0: the loss of a hard-label classifier (its mean
    is 1 - accuracy)."""
    return (actual != predicted).astype(np.float64)


def is_hard_label(predicted) -> bool:
    """True when every finite prediction is exactly 0 or 1 (and there is at least one): a classifier
    that stores labels, not P(y = 1). An empty window is not evidence of anything: False."""
    values = as_float_array("predicted", predicted, min_size=0, allow_nonfinite=True)
    values = values[np.isfinite(values)]
    return bool(values.size) and bool(np.isin(values, (0.0, 1.0)).all())


def _regression_estimator(categorical_mask: Sequence[bool] | None, random_state: int):
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(categorical_features=categorical_mask, random_state=random_state)


def _classification_estimator(categorical_mask: Sequence[bool] | None, random_state: int):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(categorical_features=categorical_mask, random_state=random_state)


def _predicted_value(estimator, features) -> np.ndarray:
    return np.asarray(estimator.predict(features), dtype=float)


def _positive_probability(estimator, features) -> np.ndarray:
    return np.asarray(estimator.predict_proba(features)[:, 1], dtype=float)


def _class_predictions(estimator, features):
    from .multiclass import class_predictions

    # predict_proba's columns follow estimator.classes_ (the labels seen in training, sorted); the
    # served class is the most probable one, as the estimator's own predict
    return class_predictions([label_text(c) for c in estimator.classes_], estimator.predict_proba(features))


def _multiclass_log_loss(actual, predicted):
    from .multiclass import multiclass_log_loss

    return multiclass_log_loss(actual, predicted)


def _multiclass_zero_one_loss(actual, predicted):
    from .multiclass import multiclass_zero_one_loss

    return multiclass_zero_one_loss(actual, predicted)


def _value_rows(window, classes=None):
    """(actual_value, predicted_value) of a window's labelled rows (regressors, binary classifiers)."""
    return window["actual_value"], window["predicted_value"]


def _class_rows(window, classes):
    from .multiclass import window_class_predictions

    return window_class_predictions(window, classes)


def _multiclass_performance(actual, predicted, **kwargs):
    from .performance import multiclass_performance

    return multiclass_performance(actual, predicted, **kwargs)


def _regression_performance(actual, predicted, **kwargs):
    from .performance import regression_performance

    return regression_performance(actual, predicted, **kwargs)


def _classification_performance(actual, predicted, **kwargs):
    from .performance import classification_performance

    return classification_performance(actual, predicted, **kwargs)


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One task kind: everything the statistics, training and serving need to know about it.

    - ``row_loss(actual, predicted)``: per-row loss of validated float arrays; its mean is
      ``primary_metric``.
    - ``primary_metric``: the loss that decides (candidate vs champion, A/B test, concept drift).
    - ``metric_names``: the stored metrics this kind reports (a subset of ``STORED_METRICS``).
    - ``performance(actual, predicted, **kwargs)``: the window's ``ModelPerformance``.
    - ``estimator(categorical_mask, random_state)``: the unfitted default model (scikit-learn).
    - ``predict(estimator, features)``: the value a serving model stores (a value, P(y = 1), or a
      multiclass model's ``ClassPredictions``).
    - ``segment_error(actual, predicted)``: the per-row error systematic-error analysis tests by
      segment (predicted - actual; the 0/1 loss for multiclass).
    - ``target``: the column of the labelled rows a trainer fits to (``actual_value``; a multiclass
      model's outcome is a class label, ``actual_label``); a window row is labelled when it is set.
    - ``window_rows(window, classes)``: (actual, predicted) of a window's labelled rows as the
      store reads them, in the shapes ``performance`` and ``segment_error`` take (the float
      columns; a multiclass window's labels and ``ClassPredictions``, ``classes`` its class list).
    - ``signed_segment_error``: ``segment_error`` is a signed error whose mean is the bias; False
      for a loss (0/1) whose mean is the error rate, which systematic-error analysis tests centred
      on the window's mean (its "mean error != 0" test would otherwise hold in every segment).
    - ``monitored``: the daily and weekly DAGs run their steps for models of this kind. A kind the
      store and the core already handle but the steps do not yet is left out of a run by
      ``selected_models``, which says so, instead of failing it.
    """

    kind: str
    primary_metric: str
    metric_names: tuple[str, ...]
    row_loss: Callable[[np.ndarray, np.ndarray], np.ndarray]
    performance: Callable
    estimator: Callable
    predict: Callable
    segment_error: Callable = signed_error
    target: str = "actual_value"
    window_rows: Callable | None = None  # None: the float columns (``_value_rows``)
    signed_segment_error: bool = True
    monitored: bool = True

    def __post_init__(self):
        if self.window_rows is None:
            object.__setattr__(self, "window_rows", _value_rows)
        unknown = [m for m in (*self.metric_names, self.primary_metric) if m not in STORED_METRICS]
        if unknown:
            raise ValueError(f"metric_names: {unknown} are not stored metrics {list(STORED_METRICS)}")


_TASKS: dict[str, TaskSpec] = {}


def register_task_kind(spec: TaskSpec) -> TaskSpec:
    """Add a task kind (once: a second registration of a name is an error, not an override)."""
    if spec.kind in _TASKS:
        raise ValueError(f"kind: task kind {spec.kind!r} is already registered")
    _TASKS[spec.kind] = spec
    return spec


def task_spec(task_kind: TaskKind | str) -> TaskSpec:
    """The registry entry of a task kind; an unknown kind is refused listing the valid ones."""
    key = task_kind.value if isinstance(task_kind, TaskKind) else task_kind
    try:
        return _TASKS[key]
    except (KeyError, TypeError):
        raise ValueError(f"task_kind: {shown(task_kind)} is not a registered task kind; "
                         f"valid: {sorted(_TASKS)}") from None


def task_kinds() -> Mapping[str, TaskSpec]:
    """Every registered task kind (read-only view)."""
    return dict(_TASKS)


register_task_kind(TaskSpec(
    kind=TaskKind.REGRESSION.value, primary_metric="mae", metric_names=("mae", "rmse", "r2", "mape", "wape"),
    row_loss=absolute_error, performance=_regression_performance, estimator=_regression_estimator,
    predict=_predicted_value))
register_task_kind(TaskSpec(
    kind=TaskKind.BINARY_CLASSIFICATION.value, primary_metric="log_loss", metric_names=("roc_auc", "log_loss"),
    row_loss=binary_log_loss, performance=_classification_performance, estimator=_classification_estimator,
    predict=_positive_probability))
register_task_kind(TaskSpec(
    kind=TaskKind.MULTICLASS_CLASSIFICATION.value, primary_metric="log_loss", metric_names=("roc_auc", "log_loss"),
    row_loss=_multiclass_log_loss, performance=_multiclass_performance, estimator=_classification_estimator,
    predict=_class_predictions, segment_error=_multiclass_zero_one_loss, target="actual_label", window_rows=_class_rows,
    signed_segment_error=False))


def selected_models(models, requested=None) -> tuple[list[str], list[str]]:
    """The models a DAG run monitors: ``requested`` names (all of ``models``, the registered
    ``ModelSpec`` s, when None) whose task kind is ``monitored``, and the notes on those left out.
    A requested model that is not registered, or whose kind is not monitored, is refused naming
    ``params.models``."""
    specs = {spec.name: spec for spec in models}
    if requested:
        unknown = [name for name in requested if name not in specs]
        if unknown:
            raise ValueError(f"params.models: not registered: {unknown}; registered models: {sorted(specs)}")
        unmonitored = [f"{name} ({specs[name].task_kind})" for name in requested
                       if not task_spec(specs[name].task_kind).monitored]
        if unmonitored:
            raise ValueError(f"params.models: {unmonitored} are not monitored by the DAGs yet (their task kind is "
                             f"stored and scored by the core only)")
        return list(dict.fromkeys(requested)), []
    chosen, left_out = [], []
    for spec in models:
        if task_spec(spec.task_kind).monitored:
            chosen.append(spec.name)
        else:
            left_out.append(f"{spec.name}: {spec.task_kind} models are not monitored by the DAGs yet")
    return chosen, left_out


def row_losses(task_kind: TaskKind | str, actual, predicted, *, hard_labels: bool | None = None) -> np.ndarray:
    """The task kind's per-row loss (absolute error for regressors, log loss of P(y = 1) for
    classifiers) after checking the rows: what concept drift compares between windows and what
    the A/B arms are compared on, so both read a classifier's outcomes the same way.

    A classifier's hard 0/1 predictions get the 0/1 loss: ``hard_labels`` None detects them
    (``is_hard_label``) from these rows; a caller comparing two windows decides once for both and
    passes it, so both windows are scored with the same loss.

    Multiclass: ``actual`` class labels, ``predicted`` a ``ClassPredictions``; the 0/1 loss of the
    served class for hard labels (``hard_labels`` None: one-hot probabilities), else the log loss."""
    spec = task_spec(task_kind)
    if spec.kind == TaskKind.MULTICLASS_CLASSIFICATION:
        if hard_labels is None:
            hard_labels = bool(getattr(predicted, "is_one_hot", False))
        return (spec.segment_error if hard_labels else spec.row_loss)(actual, predicted)
    y = as_float_array("actual", actual, min_size=0)
    p = as_float_array("predicted", predicted, min_size=0)
    if y.shape != p.shape:
        raise ValueError(f"actual, predicted: lengths differ ({y.size} vs {p.size})")
    if spec.kind == TaskKind.BINARY_CLASSIFICATION:
        if not np.isin(y, (0.0, 1.0)).all():
            raise ValueError("actual: a classifier's outcomes must be 0 or 1")
        if ((p < 0) | (p > 1)).any():
            raise ValueError("predicted: a classifier's predictions must be probabilities in [0, 1]")
        if hard_labels is None:
            hard_labels = is_hard_label(p)
        if hard_labels:
            if not np.isin(p, (0.0, 1.0)).all():
                raise ValueError("predicted: hard_labels=True needs predictions of exactly 0 or 1")
            return zero_one_loss(y, p)
    return spec.row_loss(y, p)
