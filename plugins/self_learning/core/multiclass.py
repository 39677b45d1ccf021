"""How a multiclass model's rows look in the core: class labels, the served class and a probability
matrix, checked once, so every statistic reads them the same way.

- The model's class list (``ModelSpec.classes``, ``types.class_list``) fixes the column order: a
  window's probabilities are an (n rows x k classes) float matrix, column j = P(class j).
- ``ClassPredictions``: the probability matrix plus the served class of each row (an index into the
  class list). The served class is kept apart from the matrix because a model may serve something
  else than the most probable class (class-specific costs or thresholds); accuracy, F1 and the
  confusion matrix score what was served, the probability metrics score the matrix. Without a
  served class it is the most probable one (the first on ties, as ``numpy.argmax``).
- Actual outcomes are class labels (text, compared as ``validation.label_text``). ``encode_actual``
  turns them into indices into the class list; a label outside it is ``UNKNOWN_CLASS`` (-1) and
  counted by label, never an exception: a class the model does not know yet is reported.

Probabilities: finite, non-negative, and each row sums to 1 within ``PROBABILITY_TOLERANCE`` (1e-6,
relative to the sum 1, i.e. |sum - 1| <= 1e-6: float32 softmax outputs sum to 1 within ~1e-7, a
row off by more is a bug, not rounding). Accepted rows are divided by their sum, so every later
statistic (and ``sklearn.metrics``, whose own check is tighter) sees rows that sum to 1.

Per-row losses (``core.tasks``' multiclass entry): the log loss -ln p(actual class), clipped at
``tasks.LOG_LOSS_EPS`` like ``sklearn.metrics.log_loss`` (the mean of the rows is sklearn's value),
and the 0/1 loss of the served class. One-hot probabilities (``ClassPredictions.is_one_hot``: a
model serving labels only) are scored on the 0/1 loss, and have no log loss, AUC or top-k accuracy,
as binary hard labels. A row whose actual class is outside the class list costs the
clipped maximum (-ln eps, about 36) and a 0/1 loss of 1: the model gave that class no probability,
so a new class shows up as concept drift and as systematic errors in its segments. The window's
metrics (``performance.multiclass_performance``, ``degradation``) instead leave such rows out and
report them, as sklearn's metrics are defined over the model's classes only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .tasks import LOG_LOSS_EPS
from .types import class_list, shown
from .validation import label_text

PROBABILITY_TOLERANCE = 1e-6  # |row sum - 1| allowed before a probability row is refused
# A frame's probability column of a class (the serving client's bulk frames, the store's window reads)
PROBABILITY_PREFIX = "proba_"
UNKNOWN_CLASS = -1  # the index of an actual class outside the model's class list


@dataclasses.dataclass(frozen=True, eq=False)
class ClassPredictions:
    """A window of multiclass predictions: ``probabilities`` (n x k, columns in ``classes`` order,
    rows summing to 1) and ``predicted``, the served class of each row as an index into
    ``classes``. Checked on construction (errors name ``classes``, ``probabilities`` or
    ``predicted``); ``class_predictions`` builds one from labels or a frame of class columns.
    Indexing (``predictions[rows]``) takes rows like a numpy array: a mask, positions or a slice."""

    classes: tuple[str, ...]
    probabilities: np.ndarray
    predicted: np.ndarray | None = None

    def __post_init__(self):
        classes = class_list(self.classes)
        matrix = _probability_matrix(self.probabilities, len(classes))
        if self.predicted is None:
            served = np.argmax(matrix, axis=1) if matrix.size else np.zeros(0, dtype=np.int64)
        else:
            served = np.asarray(self.predicted)
            if served.ndim != 1 or served.size != matrix.shape[0]:
                raise ValueError(f"predicted: expected {matrix.shape[0]} class indices, got shape {served.shape}")
            if served.size and (served.dtype.kind not in "iu" or served.min() < 0 or served.max() >= len(classes)):
                raise ValueError(f"predicted: class indices must be integers in 0..{len(classes) - 1} "
                                 "(class_predictions takes labels)")
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "probabilities", matrix)
        object.__setattr__(self, "predicted", served.astype(np.int64, copy=False))

    def __len__(self) -> int:
        return int(self.probabilities.shape[0])

    def __getitem__(self, rows) -> ClassPredictions:
        if isinstance(rows, (int, np.integer)):
            rows = [rows]
        return self._checked(self.classes, self.probabilities[rows], self.predicted[rows])

    @classmethod
    def _checked(cls, classes: tuple[str, ...], matrix: np.ndarray, served: np.ndarray) -> ClassPredictions:
        """Rows of checked predictions, not checked again: a second division by the row sums would
        move the probabilities by an ulp, and a sliced window would score differently from its rows."""
        rows = object.__new__(cls)
        for name, value in (("classes", classes), ("probabilities", matrix), ("predicted", served)):
            object.__setattr__(rows, name, value)
        return rows

    @property
    def is_one_hot(self) -> bool:
        """Every probability is exactly 0 or 1 (and there is a row): a model that serves class labels,
        not probabilities. Its log loss is ~36 per wrong row and ~2e-16 per right one, as for a
        binary hard-label classifier (``core.tasks``), so it is scored on the 0/1 loss instead."""
        return bool(len(self)) and bool(np.isin(self.probabilities, (0.0, 1.0)).all())

    @property
    def predicted_labels(self) -> np.ndarray:
        """The served class of each row as its label."""
        return np.asarray(self.classes, dtype=object)[self.predicted]

    def with_classes(self, classes) -> ClassPredictions:
        """The same rows over another class list: columns reordered, classes this window lacks added
        with probability 0 (a window stored before ``extend_classes``). Dropping a class is refused."""
        target = class_list(classes)
        missing = [c for c in self.classes if c not in target]
        if missing:
            raise ValueError(f"classes: {shown(missing)} of the predictions are not in the new class list")
        position = {c: j for j, c in enumerate(target)}
        matrix = np.zeros((len(self), len(target)))
        columns = [position[c] for c in self.classes]
        matrix[:, columns] = self.probabilities
        return self._checked(target, matrix, np.asarray(columns, dtype=np.int64)[self.predicted])


def class_predictions(classes, probabilities, predicted=None) -> ClassPredictions:
    """``ClassPredictions`` from the serving side's shapes: ``probabilities`` an (n x k) array in
    ``classes`` order or a DataFrame with one column per class (any order, extra columns refused);
    ``predicted`` the served class labels (None: the most probable class). A served label outside
    the class list is refused naming ``predicted`` (extend the list first: ``types.extend_classes``)."""
    classes = class_list(classes)
    if isinstance(probabilities, pd.DataFrame):
        columns = [str(c) for c in probabilities.columns]
        missing = [c for c in classes if c not in columns]
        extra = [c for c in columns if c not in classes]
        if missing or extra or len(set(columns)) != len(columns):
            raise ValueError(f"probabilities: needs one column per class {shown(list(classes))}; "
                             f"missing {shown(missing)}, not classes {shown(extra)}")
        probabilities = probabilities.set_axis(columns, axis=1)[list(classes)].to_numpy()
    index = None
    if predicted is not None:
        labels = _labels("predicted", predicted)
        index, unknown = _encode(classes, labels)
        if unknown:
            raise ValueError(f"predicted: served classes {shown(sorted(unknown))} are not in the class list "
                             f"{shown(list(classes))} (extend it first)")
    return ClassPredictions(classes, probabilities, index)


def window_class_predictions(window: pd.DataFrame, classes) -> tuple[np.ndarray, ClassPredictions]:
    """(actual labels, ``ClassPredictions``) of a multiclass window as the store reads it: the
    served class in ``predicted_label``, the actual class in ``actual_label`` and one
    ``proba_<class>`` column per class of ``classes`` (the model's list; a class without a column
    reads as probability 0). Rows without an actual label (unlabelled) are left out; an actual
    label outside the list is kept (``encode_actual`` reports it)."""
    if "actual_label" not in window.columns:
        raise ValueError("window: a multiclass window needs the column 'actual_label'")
    labelled = window[window["actual_label"].notna()]
    return labelled["actual_label"].to_numpy(dtype=object), frame_class_predictions(labelled, classes)


def frame_class_predictions(window: pd.DataFrame, classes) -> ClassPredictions:
    """``ClassPredictions`` of every row of a multiclass window (labelled or not): the served class
    in ``predicted_label``, one ``proba_<class>`` column per class of ``classes`` (a class without
    a column reads as probability 0)."""
    classes = class_list(classes)
    if "predicted_label" not in window.columns:
        raise ValueError("window: a multiclass window needs the column 'predicted_label'")
    columns = [PROBABILITY_PREFIX + c for c in classes]
    matrix = np.column_stack([window[name].to_numpy(dtype=np.float64) if name in window.columns
                              else np.zeros(len(window)) for name in columns]) \
        if len(window) else np.zeros((0, len(classes)))
    return class_predictions(classes, matrix, window["predicted_label"].to_numpy(dtype=object))


def probability_rows(classes, rows) -> np.ndarray:
    """An (n x k) probability matrix in ``classes`` order from served or stored rows, each either a
    mapping {class: p} (the serving client's ``probabilities=``; a class it lacks is 0, a class
    outside the list is refused) or a sequence in class order that may be shorter than the list (a
    vector stored before ``extend_classes`` appended classes, which it gives 0). How the store is
    meant to keep a row: its vector in the class order of the day, never reordered, so that
    appending classes leaves every stored vector valid. Values are checked when the matrix becomes a
    ``ClassPredictions``."""
    classes = class_list(classes)
    position = {c: j for j, c in enumerate(classes)}
    matrix = np.zeros((len(rows), len(classes)))
    for i, row in enumerate(rows):
        try:
            if isinstance(row, Mapping):
                unknown = [c for c in row if c not in position]
                if unknown:
                    raise ValueError(f"probabilities: row {i} has classes outside the class list {shown(unknown)}")
                matrix[i, [position[c] for c in row]] = [float(p) for p in row.values()]
                continue
            values = np.asarray(row, dtype=np.float64)
        except (TypeError, ValueError) as error:
            if str(error).startswith("probabilities:"):
                raise
            raise ValueError(f"probabilities: row {i} is not numbers: {shown(row)}") from None
        if values.ndim != 1 or values.size > len(classes):
            raise ValueError(f"probabilities: row {i} has {values.size} values for {len(classes)} classes")
        matrix[i, :values.size] = values
    return matrix


def encode_actual(classes, actual, field: str = "actual") -> tuple[np.ndarray, dict[str, int]]:
    """Actual class labels as indices into ``classes`` (``UNKNOWN_CLASS`` outside it) and the rows per
    unknown label. A missing label (None, NaN) is refused naming ``field``: unlabelled rows are
    the caller's to drop."""
    return _encode(tuple(classes), _labels(field, actual))


def class_counts(classes, index: np.ndarray) -> Mapping[str, int]:
    """Rows per class of an index array (``UNKNOWN_CLASS`` rows left out), in class order."""
    counts = np.bincount(index[index >= 0], minlength=len(classes))
    return {c: int(n) for c, n in zip(classes, counts, strict=True)}


def multiclass_log_loss(actual, predicted: ClassPredictions) -> np.ndarray:
    """-ln p(actual class) per row, clipped at ``LOG_LOSS_EPS`` as ``sklearn.metrics.log_loss``; an
    actual class outside the class list costs -ln(eps) (probability 0, clipped)."""
    index, _ = checked_rows(actual, predicted)
    return index_log_loss(index, predicted.probabilities)


def index_log_loss(index: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """The per-row log loss of checked rows: ``index`` from ``encode_actual``, ``probabilities`` a
    ``ClassPredictions``' matrix (``UNKNOWN_CLASS`` rows: probability 0, clipped)."""
    taken = np.where(index >= 0, probabilities[np.arange(index.size), np.maximum(index, 0)], 0.0)
    return -np.log(np.clip(taken, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS))


def multiclass_zero_one_loss(actual, predicted: ClassPredictions) -> np.ndarray:
    """1 where the served class is not the actual one (always, for a class outside the list), else 0:
    its mean is 1 - accuracy, the loss systematic errors are tested on per segment."""
    index, _ = checked_rows(actual, predicted)
    return (index != predicted.predicted).astype(np.float64)


def checked_rows(actual, predicted, *, prefix: str = "") -> tuple[np.ndarray, dict[str, int]]:
    """A window's rows checked: ``predicted`` a ``ClassPredictions``, ``actual`` labels of the same
    length; returns ``encode_actual``'s indices and unknown labels. Errors name ``{prefix}actual`` /
    ``{prefix}predicted`` (``prefix`` "current_" for a window of ``compare_metrics``)."""
    if not isinstance(predicted, ClassPredictions):
        raise ValueError(f"{prefix}predicted: a multiclass model's predictions are ClassPredictions, "
                         f"got {shown(predicted)}")
    index, unknown = encode_actual(predicted.classes, actual, field=f"{prefix}actual")
    if index.size != len(predicted):
        raise ValueError(f"{prefix}actual, {prefix}predicted: lengths differ ({index.size} vs {len(predicted)})")
    return index, unknown


def _labels(field: str, values) -> np.ndarray:
    if isinstance(values, (str, bytes)):
        raise ValueError(f"{field}: expected a sequence of class labels, got a string")
    array = np.asarray(values, dtype=object)
    if array.ndim != 1:
        raise ValueError(f"{field}: expected a 1-D sequence of class labels, got shape {array.shape}")
    missing = np.flatnonzero(pd.isna(array))
    if missing.size:
        raise ValueError(f"{field}: missing class label at index {int(missing[0])} ({missing.size} in all)")
    return array


def _encode(classes: tuple[str, ...], labels: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """Labels as class indices; each distinct label is turned into text once (``pd.factorize``), not
    each row: an A/B look encodes every row of both arms for each metric, and with the row-by-row
    loop 200 simulated tests of equal arms took 41.8 s instead of 26.8 s (tests/unit/test_ab_multiclass.py)."""
    position = {c: j for j, c in enumerate(classes)}
    codes, distinct = pd.factorize(labels, use_na_sentinel=False)
    text = [label_text(v) for v in distinct]
    of_distinct = np.fromiter((position.get(t, UNKNOWN_CLASS) for t in text), dtype=np.int64, count=len(text))
    index = of_distinct[codes] if len(codes) else np.zeros(0, dtype=np.int64)
    unknown: dict[str, int] = {}
    for t, j, n in zip(text, of_distinct, np.bincount(codes, minlength=len(text)), strict=True):
        if j == UNKNOWN_CLASS:
            unknown[t] = unknown.get(t, 0) + int(n)
    return index, unknown


def _probability_matrix(values, k: int) -> np.ndarray:
    try:
        matrix = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"probabilities: expected an (n x {k}) array of numbers, got {shown(values)}") from None
    if matrix.ndim == 1 and matrix.size == 0:
        matrix = matrix.reshape(0, k)
    if matrix.ndim != 2 or matrix.shape[1] != k:
        raise ValueError(f"probabilities: expected one column per class (n x {k}), got shape {matrix.shape}")
    bad = ~np.isfinite(matrix)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        raise ValueError(f"probabilities: non-finite value in row {row} ({int(bad.sum())} in all)")
    negative = (matrix < 0).any(axis=1)
    if negative.any():
        row = int(np.flatnonzero(negative)[0])
        raise ValueError(f"probabilities: negative probability in row {row} ({int(negative.sum())} rows in all)")
    sums = matrix.sum(axis=1)
    off = np.abs(sums - 1.0) > PROBABILITY_TOLERANCE
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise ValueError(f"probabilities: row {row} sums to {float(sums[row])!r}, not 1 within {PROBABILITY_TOLERANCE} "
                         f"({int(off.sum())} rows in all)")
    return matrix / sums[:, None]

