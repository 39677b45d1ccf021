"""Performance before the labels arrive: estimated metrics of a current window from the model's own
outputs (CBPE for classifiers, DLE for regressors; the methods are in ``core.estimation_methods``),
each with a band, and a check of the estimator against the realized metric once the labels mature.

Ad outcomes arrive days to weeks late, so the realized metrics of the latest windows are provisional.
``fit_estimator(reference, task_kind=...)`` fits once on a labelled reference window (the baseline)
and ``PerformanceEstimator.estimate(current)`` estimates any later window from its predictions (and,
for regressors, its features); ``estimate_performance`` does both. The estimated metrics are the
realized ones of ``core.performance`` (``realized_metrics`` computes them with the same functions):
- binary: accuracy, precision, recall, F1 at ``threshold`` (0.5, as ``classification_performance``)
  and ROC AUC;
- multiclass: accuracy, macro precision / recall / F1 of the served class (sklearn's macro average,
  zero_division 0) and one-vs-rest macro ROC AUC (``multiclass_performance``);
- regression: MAE, RMSE and MAPE (percent, rows with actual 0 left out).

Bands: estimate +- ``band_z`` (3, as NannyML) x the sampling error of the metric at the current
window's size, the standard deviation of the realized metric over contiguous reference chunks of that
size (NannyML's chunk-to-chunk variability, not a bootstrap: contiguous chunks of a time-ordered
reference also carry its day-to-day variation, which a bootstrap of rows removes, and 50 chunks cost
50 metric evaluations instead of hundreds of resamples). A reference shorter than
``MIN_BAND_CHUNKS`` (20) windows is cut into 20 smaller chunks and their deviation scaled by
sqrt(chunk / window), the 1/sqrt(n) of a mean: a deviation from 5 chunks is off by +-30 % (a band
for 250 rows came out 1.4 instead of 2 times the one for 1,000 rows); at most ``MAX_BAND_CHUNKS``
chunks, evenly spread, are evaluated, once per chunk size (cached on the estimator).
DLE scores at most ``max_estimate_rows`` (100,000) current rows, a seeded sample: three boosted
models cost ~0.7 s of CPU per 100,000 rows, so a 1M-row window would cost ~7 s a day (3.5 s with
250,000 rows scored). The sample mean's own standard error (without replacement) is added to the
band in quadrature; it is small because it is the spread of the predicted losses (their
conditional means), not of the losses: in the bench at 1M rows, 0.0004 on an MAE of 0.60 next to
the chunks' 0.0005 (band sd 0.00064 with 100,000 rows scored, 0.00055 with 250,000). The band
says where the realized metric should fall if the estimator's assumption holds: P(y | x) and
P(y | score) as in the reference (covariate shift is fine, concept shift is not).

Measured on seeded synthetic data (``tests/unit/test_estimation.py``, 2,000-row chunks, covariate
shift growing to 2 x a 0.7 sd move of the features):
- binary CBPE, calibrated scores (identity kept) and overconfident ones (Platt chosen): mean
  |estimated - realized| 0.0074 for accuracy and 0.0079 for ROC AUC (bias 0.001-0.002: the rest is
  the realized metric's own sampling noise at 2,000 rows, sd ~0.009), realized inside the band in
  30 of 30 chunks;
- regression DLE (error growing with a shifted feature; the realized MAE rises 0.57 -> 0.84):
  mean |estimated - realized| MAE 2.1 % of the realized (bias -1.4 %), RMSE 3.1 %; inside the band
  in 80 % (MAE) and 70 % (RMSE) of the windows: trees do not extrapolate, so the farthest-shifted
  windows' error is underestimated. MAPE is estimated poorly where actuals come near 0 (31 % off
  there: a few rows' |e| / |y| dominate the realized MAPE); prefer MAE / RMSE for such targets;
- multiclass (4 classes): mean |error| accuracy 0.0071, ROC AUC 0.0038, macro F1 0.0077;
- pure concept shift: estimated accuracy 0.746 (band 0.719-0.773), realized 0.615; ROC AUC
  0.816 (0.787-0.844) vs 0.616: ``estimator_reliability`` flags it on the second matured window.
Cost (``bench/estimation_bench.py``): see the README.

``estimator_reliability(history)``: the estimator's own error on the matured windows. An estimator
whose realized value fell outside the band on each of the last ``last_n`` (2) matured windows is
flagged unreliable (concept shift, covariate shift into regions the reference never saw: CBPE's and
DLE's blind spots), so users are told not to trust the estimates until the baseline is refreshed.

Bad input raises ``ValueError`` naming the field (``reference.actual_value``, ``current.<feature>``);
data that cannot support a metric (one class in the reference, an empty current window, too few
reference rows) gives a status and a reason, not an exception.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np
import pandas as pd
from sklearn import metrics as sk_metrics

from . import estimation_methods as methods
from .multiclass import PROBABILITY_PREFIX, encode_actual, frame_class_predictions
from .performance import classification_performance, multiclass_performance, regression_performance
from .types import FEATURE_KINDS, Result, Status, TaskKind, class_list, parse_task_kind, shown

CLASSIFIER_METRICS = ("accuracy", "roc_auc", "f1", "precision", "recall")
REGRESSION_METRICS = ("mae", "rmse", "mape")
DEFAULT_BAND_Z = 3.0
MIN_BAND_CHUNKS = 20  # fewer make the band's standard deviation a noisy guess (5 chunks: +-30 %)
MIN_DEFINED_CHUNKS = 10  # chunks where the metric is defined, for a band
MAX_BAND_CHUNKS = 50
MIN_CHUNK_ROWS = 25
MIN_REFERENCE_ROWS = MIN_BAND_CHUNKS * MIN_CHUNK_ROWS
DEFAULT_MAX_FIT_ROWS = 200_000  # DLE's loss models are fitted on at most this many reference rows
DEFAULT_MAX_ESTIMATE_ROWS = 100_000  # and score at most this many current rows (a seeded sample)
DEFAULT_RELIABILITY_WINDOWS = 2
# Columns of a window that are never features (the store's window reads and the serving frames)
RESERVED_COLUMNS = frozenset({"predicted_value", "actual_value", "predicted_label", "actual_label", "prediction_id",
                              "model", "model_type", "model_version", "served_at", "timestamp", "outcome_at"})


@dataclasses.dataclass(frozen=True)
class EstimatedMetric(Result):
    """One estimated metric of a window: ``value`` within [``lower``, ``upper``] (the band), the
    metric's realized value on the whole reference, and ``sampling_error`` (the band's standard
    deviation at the window's size). ``reason`` says why a figure is None."""

    metric: str
    value: float | None
    lower: float | None = None
    upper: float | None = None
    reference_value: float | None = None
    sampling_error: float | None = None
    reason: str | None = None

    def contains(self, realized: float) -> bool:
        """Whether a realized value falls inside the band (False without a band)."""
        return self.lower is not None and self.upper is not None and self.lower <= realized <= self.upper


@dataclasses.dataclass(frozen=True)
class PerformanceEstimate(Result):
    """The estimated performance of one window. ``method`` "cbpe" or "dle"; ``calibration`` the
    chosen score calibration (classifiers); ``band`` how the bands were made."""

    task_kind: TaskKind
    method: str
    sample_count: int
    reference_count: int
    metrics: dict[str, EstimatedMetric]
    status: Status = Status.OK
    calibration: str | None = None
    band: str | None = None
    reasons: tuple[str, ...] = ()

    def value(self, metric: str) -> float | None:
        estimated = self.metrics.get(metric)
        return None if estimated is None else estimated.value

    @classmethod
    def from_dict(cls, data: Mapping) -> PerformanceEstimate:
        """A stored estimate (its ``to_dict()`` form) rebuilt, each metric an ``EstimatedMetric``."""
        estimate = super().from_dict(data)
        metrics = {name: m if isinstance(m, EstimatedMetric) else EstimatedMetric.from_dict(m)
                   for name, m in (estimate.metrics or {}).items()}
        return dataclasses.replace(estimate, metrics=metrics, reasons=tuple(estimate.reasons or ()))


def _frame(field: str, frame) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{field}: expected a pandas DataFrame, got {type(frame).__name__}")
    return frame


def _require(field: str, frame: pd.DataFrame, columns) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{field}.{missing[0]}: missing column (needed: {shown(list(columns))})")


def _scores(field: str, frame: pd.DataFrame) -> np.ndarray:
    values = pd.to_numeric(frame["predicted_value"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values < 0) | (values > 1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{field}.predicted_value: a classifier's scores must be probabilities in [0, 1], got "
                         f"{shown(frame['predicted_value'].iloc[row])} at row {row} ({int(bad.sum())} in all)")
    return values


def _predictions(field: str, frame: pd.DataFrame) -> np.ndarray:
    values = pd.to_numeric(frame["predicted_value"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{field}.predicted_value: non-numeric or non-finite prediction "
                         f"{shown(frame['predicted_value'].iloc[row])} at row {row} ({int(bad.sum())} in all)")
    return values


def _labelled(reference: pd.DataFrame, target: str, notes: list[str]) -> pd.DataFrame:
    labelled = reference[reference[target].notna()]
    if labelled.empty:
        raise ValueError(f"reference.{target}: no labelled rows (the estimator is fitted on a labelled reference)")
    if len(labelled) < len(reference):
        notes.append(f"{len(reference) - len(labelled)} reference rows without a label left out")
    return labelled


def feature_kinds_of(reference: pd.DataFrame, feature_kinds: Mapping[str, str] | None) -> dict[str, str]:
    """The features DLE models: ``feature_kinds`` as given (each must be a reference column), or every
    column that is neither reserved (``RESERVED_COLUMNS``, ``proba_*``) nor a timestamp, numeric
    columns as numeric and the rest as categorical."""
    if feature_kinds is not None:
        kinds = dict(feature_kinds)
        for name, kind in kinds.items():
            if kind not in FEATURE_KINDS:
                raise ValueError(f"feature_kinds[{shown(name)}]: must be 'numeric' or 'categorical', got {shown(kind)}")
        _require("reference", reference, list(kinds))
        return kinds
    kinds = {}
    for name in reference.columns:
        if name in RESERVED_COLUMNS or str(name).startswith(PROBABILITY_PREFIX):
            continue
        column = reference[name]
        if pd.api.types.is_datetime64_any_dtype(column):
            continue
        numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
        kinds[str(name)] = "numeric" if numeric else "categorical"
    return kinds


class _Binary:
    method, metric_names = "cbpe", CLASSIFIER_METRICS

    def __init__(self, reference: pd.DataFrame, threshold: float, rng: np.random.Generator, notes: list[str], **_):
        _require("reference", reference, ("predicted_value", "actual_value"))
        labelled = _labelled(reference, "actual_value", notes)
        self.threshold = threshold
        self.score = _scores("reference", labelled)
        outcome = pd.to_numeric(labelled["actual_value"], errors="coerce").to_numpy(dtype=np.float64)
        if not np.isin(outcome, (0.0, 1.0)).all():
            raise ValueError("reference.actual_value: a binary classifier's outcomes must be 0 or 1")
        self.outcome = outcome
        self.calibrator, self.brier = methods.fit_calibrator(self.score, outcome, rng)
        self.unsupported = None
        if self.calibrator.method == "constant":
            self.unsupported = (f"the reference has a single class ({int(outcome[0])}): scores cannot be calibrated "
                                "against outcomes")
        self.calibration = self.calibrator.method

    def estimate(self, current: pd.DataFrame) -> dict[str, float | None]:
        _require("current", current, ("predicted_value",))
        score = _scores("current", current)
        probability = self.calibrator(score)
        estimated = methods.expected_binary_metrics(probability, score >= self.threshold)
        estimated["roc_auc"] = methods.expected_roc_auc(score, probability)
        return estimated, {}

    def realized(self, rows) -> dict[str, float | None]:
        performance = classification_performance(self.outcome[rows], self.score[rows], threshold=self.threshold,
                                                  hard_labels=False)
        return {m: getattr(performance, m) for m in self.metric_names}


class _Multiclass:
    method, metric_names = "cbpe", CLASSIFIER_METRICS

    def __init__(self, reference: pd.DataFrame, classes, rng: np.random.Generator, notes: list[str], **_):
        if classes is None:
            raise ValueError("classes: a multiclass_classification estimate needs the model's class list")
        self.classes = class_list(classes)
        _require("reference", reference, ("predicted_label", "actual_label"))
        labelled = _labelled(reference, "actual_label", notes)
        index, unknown = encode_actual(self.classes, labelled["actual_label"].to_numpy(dtype=object),
                                       field="reference.actual_label")
        if unknown:
            notes.append(f"{sum(unknown.values())} reference rows with classes outside the class list left out: "
                         f"{shown(unknown)}")
        known = index >= 0
        self.predictions = _class_rows("reference", labelled[known], self.classes)
        self.actual = index[known]
        self.calibrators, self.absent = [], []
        for j, label in enumerate(self.classes):
            outcome = (self.actual == j).astype(np.float64)
            calibrator, _ = methods.fit_calibrator(self.predictions.probabilities[:, j], outcome, rng)
            self.calibrators.append(calibrator)
            if not outcome.any():
                self.absent.append(label)
        if self.absent:
            notes.append(f"classes without a reference row are estimated at probability 0: {shown(self.absent)}")
        present = len(self.classes) - len(self.absent)
        self.unsupported = None if present >= 2 else "the reference has fewer than 2 of the model's classes"
        self.calibration = "/".join(sorted({c.method for c in self.calibrators if c.method != "constant"})) or None

    def estimate(self, current: pd.DataFrame) -> dict[str, float | None]:
        rows = _class_rows("current", current, self.classes)
        scores = rows.probabilities
        calibrated = np.column_stack([c(scores[:, j]) for j, c in enumerate(self.calibrators)]) \
            if len(rows) else np.zeros((0, len(self.classes)))
        sums = calibrated.sum(axis=1, keepdims=True)
        calibrated = np.where(sums > 0, calibrated / np.where(sums > 0, sums, 1.0), scores)
        return methods.expected_multiclass_metrics(calibrated, rows.predicted, scores), {}

    def realized(self, rows) -> dict[str, float | None]:
        actual, predictions = self.actual[rows], self.predictions[rows]
        labels = np.asarray(self.classes, dtype=object)
        performance = multiclass_performance(labels[actual], predictions)
        macro = {name: float(scorer(actual, predictions.predicted, average="macro", zero_division=0.0))
                 for name, scorer in (("precision", sk_metrics.precision_score),
                                      ("recall", sk_metrics.recall_score))}
        return {"accuracy": performance.accuracy, "roc_auc": performance.roc_auc, "f1": performance.macro_f1, **macro}


def _class_rows(field: str, frame: pd.DataFrame, classes):
    _require(field, frame, ("predicted_label",))
    try:
        return frame_class_predictions(frame, classes)
    except ValueError as error:
        raise ValueError(f"{field}: {error}") from None


class _Regression:
    method, metric_names, calibration = "dle", REGRESSION_METRICS, None

    def __init__(self, reference: pd.DataFrame, feature_kinds, rng: np.random.Generator, notes: list[str],
                 random_state: int, max_fit_rows: int, max_estimate_rows: int, **_):
        self.random_state, self.max_estimate_rows = random_state, max_estimate_rows
        _require("reference", reference, ("predicted_value", "actual_value"))
        labelled = _labelled(reference, "actual_value", notes)
        self.prediction = _predictions("reference", labelled)
        actual = pd.to_numeric(labelled["actual_value"], errors="coerce").to_numpy(dtype=np.float64)
        if not np.isfinite(actual).all():
            raise ValueError("reference.actual_value: non-numeric or non-finite outcomes")
        self.actual = actual
        self.coder = methods.FeatureCoder(labelled, feature_kinds_of(labelled, feature_kinds))
        fit_rows = np.arange(actual.size)
        if actual.size > max_fit_rows:
            fit_rows = np.sort(rng.choice(actual.size, max_fit_rows, replace=False))
            notes.append(f"loss models fitted on {max_fit_rows:,} of {actual.size:,} reference rows")
        design = self.coder.matrix(labelled.iloc[fit_rows], self.prediction[fit_rows], "reference")
        error = self.prediction[fit_rows] - actual[fit_rows]
        mask = self.coder.categorical_mask
        self.absolute = methods.fit_loss_model(design, np.abs(error), mask, random_state)
        self.squared = methods.fit_loss_model(design, error ** 2, mask, random_state)
        nonzero = actual[fit_rows] != 0
        self.percentage = None
        if nonzero.sum() >= MIN_REFERENCE_ROWS:
            percentage = np.abs(error[nonzero] / actual[fit_rows][nonzero])
            self.percentage = methods.fit_loss_model(design[nonzero], percentage, mask, random_state)
        else:
            notes.append("mape not estimated: too few reference rows with a non-zero actual value")
        self.unsupported = None

    def estimate(self, current: pd.DataFrame) -> tuple[dict[str, float | None], dict[str, float]]:
        """The estimated metrics and, when only a sample of the rows was scored, each estimate's own
        standard error from the sampling (without replacement), which the band adds."""
        _require("current", current, ("predicted_value", *self.coder.kinds))
        prediction = _predictions("current", current)
        n = prediction.size
        if not n:
            return dict.fromkeys(self.metric_names), {}
        rows = np.arange(n)
        if n > self.max_estimate_rows:
            rows = np.sort(np.random.default_rng(self.random_state).choice(n, self.max_estimate_rows, replace=False))
        design = self.coder.matrix(current.iloc[rows], prediction[rows], "current")
        absolute = methods.predict_loss(self.absolute, design)
        squared = methods.predict_loss(self.squared, design)
        percentage = None if self.percentage is None else methods.predict_loss(self.percentage, design) * 100.0
        values = {"mae": float(absolute.mean()), "rmse": float(math.sqrt(squared.mean())),
                  "mape": None if percentage is None else float(percentage.mean())}
        if rows.size == n:
            return values, {}
        shrink = (1 - rows.size / n) / rows.size  # the variance of a sample mean without replacement, per unit
        errors = {"mae": float(math.sqrt(absolute.var() * shrink)),
                  # delta method: sd(sqrt(m)) = sd(m) / (2 sqrt(m))
                  "rmse": float(math.sqrt(squared.var() * shrink) / (2 * values["rmse"])) if values["rmse"] else 0.0}
        if percentage is not None:
            errors["mape"] = float(math.sqrt(percentage.var() * shrink))
        return values, errors

    def realized(self, rows) -> dict[str, float | None]:
        performance = regression_performance(self.actual[rows], self.prediction[rows])
        return {m: getattr(performance, m) for m in self.metric_names}


_KINDS = {TaskKind.BINARY_CLASSIFICATION: _Binary, TaskKind.MULTICLASS_CLASSIFICATION: _Multiclass,
          TaskKind.REGRESSION: _Regression}


class PerformanceEstimator:
    """An estimator fitted on one labelled reference window; ``estimate(current)`` as often as needed
    (in memory: plain scikit-learn objects and the reference's predictions and outcomes)."""

    def __init__(self, task_kind: TaskKind, model, reference_count: int, band_z: float, notes: list[str],
                 status: Status):
        self.task_kind, self._model, self.reference_count = task_kind, model, reference_count
        self.band_z, self.notes, self.status = band_z, tuple(notes), status
        self._bands: dict[int, tuple[dict[str, float | None], int]] = {}
        self._reference_values: dict[str, float | None] | None = None

    @property
    def method(self) -> str:
        return self._model.method

    @property
    def calibration(self) -> str | None:
        return self._model.calibration

    @property
    def metric_names(self) -> tuple[str, ...]:
        return self._model.metric_names

    def reference_values(self) -> dict[str, float | None]:
        """The realized metrics of the whole reference."""
        if self._reference_values is None:
            self._reference_values = self._model.realized(slice(None))
        return self._reference_values

    def sampling_errors(self, window_rows: int) -> tuple[dict[str, float | None], int, int]:
        """(standard deviation per metric at ``window_rows`` rows, chunk size, chunks evaluated). The
        chunks' deviations are computed once per chunk size and cached: every window at least
        reference / ``MIN_BAND_CHUNKS`` rows long (a 7-day window against a 30-day reference) uses
        the same chunks, so a daily run pays for them once per baseline."""
        chunk = min(window_rows, self.reference_count // MIN_BAND_CHUNKS)
        if chunk not in self._bands:
            count = self.reference_count // chunk
            starts = np.unique(np.linspace(0, count - 1, min(count, MAX_BAND_CHUNKS)).round().astype(int)) * chunk
            realized = [self._model.realized(slice(s, s + chunk)) for s in starts]
            deviations = {}
            for metric in self.metric_names:
                values = np.array([r[metric] for r in realized if r[metric] is not None], dtype=float)
                deviations[metric] = float(values.std(ddof=1)) if values.size >= MIN_DEFINED_CHUNKS else None
            self._bands[chunk] = (deviations, len(starts))
        deviations, chunks = self._bands[chunk]
        scale = math.sqrt(chunk / window_rows)
        return {m: None if d is None else d * scale for m, d in deviations.items()}, chunk, chunks

    def estimate(self, current, *, chunk_size: int | None = None) -> PerformanceEstimate:
        """The estimated metrics of ``current`` (its predictions; a regressor's features too), each
        with its band. ``chunk_size``: the window size the band is made for (None: the rows of
        ``current``)."""
        current = _frame("current", current)
        common = {"task_kind": self.task_kind, "method": self.method, "sample_count": len(current),
                  "reference_count": self.reference_count, "calibration": self.calibration}
        if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                       or chunk_size < 1):
            raise ValueError(f"chunk_size: must be a positive integer or None, got {shown(chunk_size)}")
        if self.status is not Status.OK:
            return self._unestimated(common, self.status, self.notes[-1] if self.notes else "not fitted")
        if current.empty:
            return self._unestimated(common, Status.INSUFFICIENT_DATA, "the current window has no rows",
                                     validate=current)
        values, estimate_errors = self._model.estimate(current)
        errors, chunk, chunks = self.sampling_errors(chunk_size or len(current))
        errors = {m: e if e is None or m not in estimate_errors else math.hypot(e, estimate_errors[m])
                  for m, e in errors.items()}
        reference = self.reference_values()
        bounded = self.task_kind is not TaskKind.REGRESSION
        estimated = {}
        for metric in self.metric_names:
            value, error = values.get(metric), errors.get(metric)
            lower = upper = reason = None
            if value is None:
                reason = "undefined for this window (no expected positives / negatives, or no data for it)"
            elif error is None:
                reason = "no band: the metric is undefined on too many reference chunks"
            else:
                lower, upper = value - self.band_z * error, value + self.band_z * error
                lower = max(lower, 0.0)
                upper = min(upper, 1.0) if bounded else upper
            estimated[metric] = EstimatedMetric(metric, value, lower, upper, reference.get(metric), error, reason)
        band = (f"estimate +- {self.band_z:g} sd of the realized metric over {chunks} contiguous reference chunks of "
                f"{chunk:,} rows" + (f", scaled to {chunk_size or len(current):,} rows" if chunk != (chunk_size or
                                                                                           len(current)) else ""))
        return PerformanceEstimate(**common, metrics=estimated, band=band, reasons=self.notes)

    def _unestimated(self, common: dict, status: Status, reason: str, validate=None) -> PerformanceEstimate:
        if validate is not None:
            self._model.estimate(validate)  # an empty window still needs its columns
        empty = {m: EstimatedMetric(m, None, reason=reason) for m in self.metric_names}
        return PerformanceEstimate(**common, metrics=empty, status=status, reasons=(*self.notes, reason))


def fit_estimator(reference, *, task_kind: TaskKind | str, classes=None, feature_kinds: Mapping[str, str] | None = None,
                  threshold: float = 0.5, band_z: float = DEFAULT_BAND_Z, random_state: int = 0,
                  max_fit_rows: int = DEFAULT_MAX_FIT_ROWS,
                  max_estimate_rows: int = DEFAULT_MAX_ESTIMATE_ROWS) -> PerformanceEstimator:
    """Fit the estimator of ``task_kind`` on a labelled ``reference`` window (fit once per baseline).

    ``reference`` columns: ``predicted_value`` (binary: the score P(y = 1); regression: the
    prediction) and ``actual_value``; multiclass: ``predicted_label``, ``actual_label`` and one
    ``proba_<class>`` per class of ``classes``; regression also its features (``feature_kinds``, or
    every other column, see ``feature_kinds_of``). Rows are taken in time order for the bands."""
    kind = parse_task_kind(task_kind)
    reference = _frame("reference", reference)
    if reference.empty:
        raise ValueError("reference: empty frame (the estimator is fitted on labelled reference rows)")
    if not (isinstance(band_z, (int, float)) and math.isfinite(band_z) and band_z > 0):
        raise ValueError(f"band_z: must be a positive number, got {shown(band_z)}")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold: must be in (0, 1), got {shown(threshold)}")
    if isinstance(max_fit_rows, bool) or not isinstance(max_fit_rows, int) or max_fit_rows < MIN_REFERENCE_ROWS:
        raise ValueError(f"max_fit_rows: must be an integer >= {MIN_REFERENCE_ROWS}, got {shown(max_fit_rows)}")
    if isinstance(max_estimate_rows, bool) or not isinstance(max_estimate_rows, int) or max_estimate_rows < 1_000:
        raise ValueError(f"max_estimate_rows: must be an integer >= 1000, got {shown(max_estimate_rows)}")
    if kind is not TaskKind.MULTICLASS_CLASSIFICATION and classes is not None:
        raise ValueError(f"classes: only multiclass_classification estimates take a class list, not {kind.value} ones")
    notes: list[str] = []
    model = _KINDS[kind](reference, classes=classes, threshold=threshold, feature_kinds=feature_kinds,
                         rng=np.random.default_rng(random_state), notes=notes, random_state=random_state,
                         max_fit_rows=max_fit_rows, max_estimate_rows=max_estimate_rows)
    rows = len(model.actual if hasattr(model, "actual") else model.outcome)
    status = Status.OK
    if model.unsupported:
        status = Status.INSUFFICIENT_DATA
        notes.append(model.unsupported)
    elif rows < MIN_REFERENCE_ROWS:
        status = Status.INSUFFICIENT_DATA
        notes.append(f"{rows} labelled reference rows; at least {MIN_REFERENCE_ROWS} needed for the bands")
    return PerformanceEstimator(kind, model, rows, float(band_z), notes, status)


def estimate_performance(reference, current, *, task_kind: TaskKind | str, classes=None,
                         chunk_size: int | None = None, random_state: int = 0, **options) -> PerformanceEstimate:
    """Fit on ``reference`` and estimate ``current`` (``fit_estimator`` then ``estimate``); to estimate
    many windows against one baseline, fit once and reuse the estimator."""
    estimator = fit_estimator(reference, task_kind=task_kind, classes=classes, random_state=random_state, **options)
    return estimator.estimate(current, chunk_size=chunk_size)


def realized_metrics(window, *, task_kind: TaskKind | str, classes=None, threshold: float = 0.5
                     ) -> dict[str, float | None]:
    """The realized values of the estimated metrics on a labelled window (the matured labels), with the
    same functions as the estimator's reference values (``core.performance``)."""
    kind = parse_task_kind(task_kind)
    window = _frame("window", window)
    if window.empty:
        raise ValueError("window: empty frame")
    notes: list[str] = []
    if kind is TaskKind.MULTICLASS_CLASSIFICATION:
        model = _Multiclass.__new__(_Multiclass)
        model.classes = class_list(classes)
        _require("window", window, ("predicted_label", "actual_label"))
        labelled = _labelled(window, "actual_label", notes)
        index, _ = encode_actual(model.classes, labelled["actual_label"].to_numpy(dtype=object), "window.actual_label")
        model.predictions, model.actual = _class_rows("window", labelled[index >= 0], model.classes), index[index >= 0]
        return model.realized(slice(None))
    _require("window", window, ("predicted_value", "actual_value"))
    labelled = _labelled(window, "actual_value", notes)
    actual = pd.to_numeric(labelled["actual_value"], errors="coerce").to_numpy(dtype=np.float64)
    if kind is TaskKind.BINARY_CLASSIFICATION:
        performance = classification_performance(actual, _scores("window", labelled), threshold=threshold,
                                                  hard_labels=False)
        return {m: getattr(performance, m) for m in CLASSIFIER_METRICS}
    performance = regression_performance(actual, _predictions("window", labelled))
    return {m: getattr(performance, m) for m in REGRESSION_METRICS}


@dataclasses.dataclass(frozen=True)
class MaturedEstimate(Result):
    """One metric of one window whose labels have matured: the estimate, its band and the realized
    value. ``window_end`` orders the history (None: the order given)."""

    metric: str
    estimated: float
    lower: float
    upper: float
    realized: float
    window_end: datetime | None = None

    @property
    def outside(self) -> bool:
        return not self.lower <= self.realized <= self.upper

    @property
    def error(self) -> float:
        return self.estimated - self.realized


@dataclasses.dataclass(frozen=True)
class EstimatorReliability(Result):
    """Whether the estimates can be trusted, from the matured windows: ``unreliable_metrics`` are the
    metrics whose realized value fell outside the band on each of the last ``last_n`` matured
    windows. ``mean_error`` / ``mean_absolute_error`` per metric (estimated - realized) over the
    windows checked; ``outside_share`` the share of them outside the band."""

    reliable: bool
    status: Status
    last_n: int
    windows_checked: dict[str, int]
    unreliable_metrics: tuple[str, ...]
    mean_error: dict[str, float]
    mean_absolute_error: dict[str, float]
    outside_share: dict[str, float]
    reason: str


def estimator_reliability(history: Sequence[MaturedEstimate | Mapping], *,
                          last_n: int = DEFAULT_RELIABILITY_WINDOWS) -> EstimatorReliability:
    """CBPE's and DLE's known blind spots, checked when the labels come: an estimator whose realized
    value fell outside its band on each of the last ``last_n`` matured windows (of one metric) is
    flagged unreliable. ``history``: ``MaturedEstimate`` s (or their ``to_dict()`` forms), one per
    metric and matured window. Fewer than ``last_n`` windows of every metric: ``insufficient_data``,
    reliable until shown otherwise."""
    if isinstance(last_n, bool) or not isinstance(last_n, int) or last_n < 1:
        raise ValueError(f"last_n: must be an integer >= 1, got {shown(last_n)}")
    entries = []
    for i, item in enumerate(history):
        entry = item if isinstance(item, MaturedEstimate) else _matured(i, item)
        values = (entry.estimated, entry.lower, entry.upper, entry.realized)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise ValueError(f"history[{i}]: estimated, lower, upper and realized must be finite numbers")
        if entry.lower > entry.upper:
            raise ValueError(f"history[{i}]: lower {entry.lower} is above upper {entry.upper}")
        entries.append(entry)
    by_metric: dict[str, list[MaturedEstimate]] = {}
    for entry in entries:
        by_metric.setdefault(entry.metric, []).append(entry)
    unreliable, counts, bias, absolute, outside = [], {}, {}, {}, {}
    for metric, given in by_metric.items():
        rows = sorted(given, key=lambda r: r.window_end) if all(r.window_end is not None for r in given) else given
        counts[metric] = len(rows)
        bias[metric] = float(np.mean([r.error for r in rows]))
        absolute[metric] = float(np.mean([abs(r.error) for r in rows]))
        outside[metric] = float(np.mean([r.outside for r in rows]))
        if len(rows) >= last_n and all(r.outside for r in rows[-last_n:]):
            unreliable.append(metric)
    enough = bool(counts) and any(n >= last_n for n in counts.values())
    status = Status.OK if enough else Status.INSUFFICIENT_DATA
    if unreliable:
        reason = (f"unreliable: the realized {', '.join(unreliable)} fell outside the estimate's band on each of the "
                  f"last {last_n} matured windows (concept shift or covariate shift into regions the reference "
                  "did not cover); do not trust the estimates until the baseline is refreshed")
    elif enough:
        reason = f"reliable: no metric's realized value fell outside its band on all of the last {last_n} windows"
    else:
        reason = f"fewer than {last_n} matured windows to check the estimator against"
    return EstimatorReliability(reliable=not unreliable, status=status, last_n=last_n, windows_checked=counts,
                                unreliable_metrics=tuple(unreliable), mean_error=bias, mean_absolute_error=absolute,
                                outside_share=outside, reason=reason)


def _matured(i: int, item) -> MaturedEstimate:
    if not isinstance(item, Mapping):
        raise ValueError(f"history[{i}]: expected a MaturedEstimate or a mapping, got {shown(item)}")
    missing = [k for k in ("metric", "estimated", "lower", "upper", "realized") if item.get(k) is None]
    if missing:
        raise ValueError(f"history[{i}].{missing[0]}: missing")
    return MaturedEstimate.from_dict(item)
