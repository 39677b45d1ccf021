"""Training a candidate and judging it against the champion on the same time-based holdout.

Pure scikit-learn: frames in, fitted estimators and small results out; storing the artifact and
registering the version are the operators' work.

- ``time_holdout``: the most recent share of the labelled window is the holdout (a random split
  would leak the future into training).
- ``default_trainer``: a HistGradientBoosting regressor or classifier by task kind over the stored
  features (the classifier handles multiclass targets natively: one tree per class and round);
  numeric features go in as they are (missing values are handled natively), categorical ones
  through an ordinal encoder as native categorical splits.
- ``load_trainer``: a model may name its own trainer factory by dotted path.
- ``judge``: candidate and champion scored with the same metrics on the same rows; the candidate
  wins only by a relative margin on the primary loss (MAE for regressors, log loss for
  classifiers, multiclass included), so noise does not replace a working model.

A multiclass model fits to its class labels (its ``TaskSpec.target``, ``actual_label``) and
predicts ``core.multiclass.ClassPredictions``: the probability matrix in the fitted estimator's
class order (the labels seen in training, sorted) and the most probable class. A class in the
model's list that the training window lacks has no column; ``ClassPredictions.with_classes``
puts the matrix in the model's class order, the missing classes at probability 0.

Class windows a trainer cannot take as they are (``class_training_rows``), each measured on
scikit-learn 1.9's HistGradientBoostingClassifier: a training window of a single class "fits" and
then serves two probability columns for its one class (no model of the list's classes: refused,
``NotTrainable``); a class with one example fails the fit once early stopping turns on (over 10,000
rows: "The least populated classes in y have only 1 member"), so such a class is left out, as are
rows whose actual class is outside the model's class list (a model serving that list could never
serve it; extend the list to train on it). Each leaving-out is a note on the candidate; the holdout
keeps every row, so candidate and champion are judged on the same rows. ``NotTrainable`` (a
``ValueError``) carries the reason a window cannot give a candidate; the retrain step closes the
request with it instead of failing the run.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from .performance import ModelPerformance, compute_performance
from .tasks import task_kinds, task_spec
from .types import Result, TaskKind

MIN_ROWS_PER_CLASS = 2  # a class with fewer training rows is left out (see the module docstring)


class NotTrainable(ValueError):
    """The labelled window cannot give a candidate (too few rows, fewer than two classes); the
    message names the reason. The retrain request ends with it instead of failing the run."""


# Kept for callers of the old constant; the registry (core.tasks) is the source.
PRIMARY_LOSS = {TaskKind(kind): spec.primary_metric for kind, spec in task_kinds().items()}
MAX_CATEGORIES = 250  # HistGradientBoosting splits natively on at most 255 category codes


def time_holdout(frame: pd.DataFrame, *, holdout_share: float = 0.2, time_column: str = "served_at"
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout): the holdout is the latest ``holdout_share`` of the rows by time."""
    if not 0 < holdout_share < 1:
        raise ValueError(f"holdout_share: must be in (0, 1), got {holdout_share}")
    ordered = frame.sort_values(time_column, kind="stable")
    cut = len(ordered) - max(1, round(len(ordered) * holdout_share))
    return ordered.iloc[:cut], ordered.iloc[cut:]


def default_trainer(task_kind: TaskKind | str, feature_kinds: Mapping[str, str], *, random_state: int = 0):
    """An unfitted scikit-learn pipeline for the task kind and features."""
    spec = task_spec(task_kind)
    numeric = [f for f, kind in feature_kinds.items() if kind == "numeric"]
    categorical = [f for f, kind in feature_kinds.items() if kind == "categorical"]
    encode = ColumnTransformer(
        [("categorical", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                        encoded_missing_value=np.nan, max_categories=MAX_CATEGORIES), categorical),
         ("numeric", "passthrough", numeric)],
        verbose_feature_names_out=False)
    mask = [True] * len(categorical) + [False] * len(numeric)
    estimator = spec.estimator(mask or None, random_state)
    return Pipeline([("encode", encode), ("model", estimator)])


def load_trainer(dotted_path: str) -> Callable:
    """A trainer factory named ``package.module:function`` (or ``package.module.function``) with the
    signature of ``default_trainer``."""
    module_name, _, attribute = dotted_path.replace(":", ".").rpartition(".")
    if not module_name:
        raise ValueError(f"trainer: expected 'package.module:function', got {dotted_path!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"trainer: cannot import {dotted_path!r}: {error}") from None
    if not callable(factory):
        raise ValueError(f"trainer: {dotted_path!r} is not callable")
    return factory


def fit(estimator, frame: pd.DataFrame, feature_kinds: Mapping[str, str], *, target: str = "actual_value"):
    """Fit on the labelled rows of ``frame`` (features as stored, the outcome in column ``target``:
    ``task_spec(kind).target``, ``actual_label`` for a multiclass model)."""
    if frame.empty:
        raise ValueError("frame: no labelled rows to train on")
    if target not in frame.columns:
        raise ValueError(f"target: the frame has no column {target!r}")
    return estimator.fit(feature_frame(frame, feature_kinds), frame[target].to_numpy())


def predict(estimator, frame: pd.DataFrame, feature_kinds: Mapping[str, str], task_kind: TaskKind | str):
    """The prediction a serving model would store: a value, P(y = 1) for binary classifiers, a
    ``ClassPredictions`` for multiclass ones."""
    return task_spec(task_kind).predict(estimator, feature_frame(frame, feature_kinds))


def feature_frame(frame: pd.DataFrame, feature_kinds: Mapping[str, str]) -> pd.DataFrame:
    """The model input: the features in registry order, numeric as floats, categorical as objects
    (a feature the frame lacks is all missing)."""
    columns = {}
    for name, kind in feature_kinds.items():
        values = frame[name] if name in frame.columns else pd.Series(np.nan, index=frame.index)
        columns[name] = values.astype(object).where(values.notna(), np.nan) if kind == "categorical" \
            else pd.to_numeric(values, errors="coerce")
    return pd.DataFrame(columns, index=frame.index)


def class_training_rows(train: pd.DataFrame, classes, *, target: str = "actual_label"
                        ) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The rows of a multiclass training window a trainer can take, and a note per leaving-out:
    rows whose class is outside ``classes`` (the model's list), then classes with fewer than
    ``MIN_ROWS_PER_CLASS`` rows. ``NotTrainable`` naming the classes when fewer than two remain."""
    from .multiclass import encode_actual

    index, unknown = encode_actual(classes, train[target].to_numpy(dtype=object), field=target)
    notes = []
    if unknown:
        notes.append(f"{sum(unknown.values())} training rows of classes outside the model's class list left out "
                     f"{sorted(unknown)} (a model serving the list cannot serve them; extend it to train on them)")
    counts = np.bincount(index[index >= 0], minlength=len(classes))
    rare = [j for j, n in enumerate(counts) if 0 < n < MIN_ROWS_PER_CLASS]
    if rare:
        notes.append(f"classes with fewer than {MIN_ROWS_PER_CLASS} training rows left out "
                     f"{[classes[j] for j in rare]}")
    kept = (index >= 0) & ~np.isin(index, rare)
    present = [classes[j] for j in np.unique(index[kept])]
    if len(present) < 2:
        found = f"only class {present[0]!r}" if present else "no class of the model's list"
        raise NotTrainable(f"{target}: the training window has {found} with at least {MIN_ROWS_PER_CLASS} rows"
                           f"{' (' + '; '.join(notes) + ')' if notes else ''}; a classifier needs two classes")
    return train[kept], tuple(notes)


@dataclasses.dataclass(frozen=True)
class Verdict(Result):
    """Candidate vs champion on one holdout: ``accept`` when the candidate's primary loss is lower
    by at least ``margin`` (relative)."""

    accept: bool
    metric: str
    candidate: float | None
    champion: float | None
    relative_improvement: float | None
    margin: float
    reason: str


def judge(candidate: ModelPerformance, champion: ModelPerformance | None, *, margin: float = 0.02) -> Verdict:
    """Compare two performances computed on the same holdout rows, on the task kind's primary loss
    (the 0/1 loss when the champion served hard labels and so has none)."""
    if not 0 <= margin < 1:
        raise ValueError(f"margin: must be in [0, 1), got {margin}")
    metric = task_spec(candidate.task_kind).primary_metric
    if champion is not None and getattr(champion, metric) is None and champion.accuracy is not None \
            and candidate.accuracy is not None:
        # A hard-label champion (0/1 predictions) has no log loss: both are judged on the 0/1 loss.
        metric, new, old = "error_rate", 1.0 - candidate.accuracy, 1.0 - champion.accuracy
    else:
        new = getattr(candidate, metric)
        old = getattr(champion, metric) if champion is not None else None
    if new is None:
        return Verdict(False, metric, None, None, None, margin, f"the candidate has no {metric} on the holdout")
    if old is None:
        return Verdict(True, metric, new, None, None, margin, "no champion to compare with")
    improvement = (old - new) / old if old > 0 else (0.0 if new >= old else float("inf"))
    accept = improvement >= margin and new < old
    relation = "beats" if accept else "does not beat"
    return Verdict(accept, metric, new, old, improvement, margin,
                   f"candidate {metric} {new:.4g} {relation} the champion's {old:.4g} by the margin {margin:.0%} "
                   f"(improvement {improvement:.1%})")


def holdout_performance(task_kind: TaskKind | str, holdout: pd.DataFrame, predicted,
                        *, model_version: str) -> ModelPerformance:
    """Metrics of ``predicted`` against the holdout's outcomes (all rows are labelled; the outcome
    column is the task kind's ``target``)."""
    return compute_performance(task_kind, holdout[task_spec(task_kind).target].to_numpy(), predicted,
                               n_predicted=len(holdout), model_version=model_version)
