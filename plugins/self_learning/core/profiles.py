"""Daily profiles: one mergeable summary per (model, version, UTC day), built once from the day's rows.

Why: every daily run used to re-read the raw rows of both windows. At 1M labelled rows a day, a
7-day current window against a 30-day baseline is 37M rows x 50 features per model per run
(extrapolated 8-9 minutes and 33-35 GB, issue 18), for days that did not change since yesterday.
A day's profile is built once and a window is the merge of its days' profiles, whose cost does
not grow with the rows. Measured at 1M labelled rows a day x 50 features (45 numeric, 5
categorical; bench/profile_bench.py, 2 shared cores): a day's build 6.6-7.1 s (the KLL updates,
~90 ms per 1M values, hold the GIL: days and models are spread over tasks, not threads), 706 KB
of bytes; the 7-day and 30-day windows merged in 0.14 s and compared on every column with both
windows' performance in 0.75 s, a 90-day merge 0.17 s; the raw-row path takes 24 s and 1.4 GB
for one numeric column of the same windows (7M vs 30M values), ~19 minutes for the 47.

A profile holds, per column of the day:
- numeric (each numeric feature, ``predicted_value`` and, labelled, the ``error`` predicted -
  actual): a KLL quantile sketch (Apache DataSketches, ``kll_doubles_sketch``, kept in
  DataSketches' standard serialisation so a sketch built by Spark's ``kll_sketch_agg_double`` or
  Druid merges with ours) plus the exact count, sum, sum of squared deviations (Chan's merge: a
  sum of squares loses the variance to cancellation once |mean| >> std), min, max and missing
  count;
- categorical: exact counts up to CATEGORY_CAP distinct values, a frequent-items sketch
  (``frequent_strings_sketch``) above it;
- performance (labelled profiles): the sufficient statistics of ``core.performance``'s metrics -
  regression sums of e, |e|, e², |e|/|y| (y != 0) with the count of y = 0, |y|, and y's mean and
  squared deviations (R²); binary confusion counts at the threshold, log-loss and Brier sums, the
  10 calibration bins of ``expected_calibration_error`` and per-class score histograms on a fine
  logit grid (SCORE_BIN_WIDTH), from which ROC AUC is exact up to the pairs sharing a bin: the
  bound ``roc_auc_bound`` = sum_b pos_b neg_b / (2 P N) is returned with it (<= 0.0005 on the
  tests' data; the target is 0.002).

``merge_profiles`` is associative (counts and sums exactly up to float rounding; KLL merges keep
the sketch's rank-error guarantee) and refuses to count a day twice. ``to_bytes`` /
``from_bytes`` are a versioned binary form (PROFILE_FORMAT). Comparisons from two profiles and
performance from their statistics are in ``core/profile_comparisons.py``.

The KS statistic from two sketches differs from the exact one by at most eps_ref + eps_cur (each
sketch's normalised rank error for a CDF, ``kll_doubles_sketch.normalized_rank_error(True)``, 99 %
confidence; 0 while a sketch still holds every value). The decision uses
D_decision = max(0, D_sketch - eps_ref - eps_cur): sketch error alone never reports drift; the
p-value is that of D_decision. Measured over 150 pairs of 60k vs 40k lognormal rows, |D_sketch - D|
stayed within 0.35 of the bound and |W_sketch - W| within 0.13 of its (loose) bound; KLL compaction
is random, so a sketch's bytes differ run to run while its guarantee does not. With KLL_K = 640,
eps = 0.0056 per sketch: at production volume (1M rows a day) the KS test is significant for
any real shift and the drift decision rests on the effect gates (W / std >= 0.05, PSI >= 0.1 in
``core.drift.checks``), which the sketch error does not reach.

Pure: no I/O, no Airflow. The store keeps the bytes (``store/profiles.py``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import date

import numpy as np
import pandas as pd
from datasketches import frequent_items_error_type, frequent_strings_sketch, kll_doubles_sketch

from .types import TaskKind

# KLL's k: eps (CDF, 99 %) 0.0056 and ~15 KB per 1M-value sketch; k = 200 is 0.0165 / 5 KB, k = 800
# 0.0045 / 19 KB (measured): 640 keeps a 50-feature day near 0.8 MB (target <= 1 MB).
KLL_K = 640
CATEGORY_CAP = 1_000  # distinct values counted exactly; beyond, a frequent-items sketch
FREQUENT_LG_MAX_K = 11  # the frequent-items sketch's map: 2,048 slots, up to 1,536 values tracked
SCORE_BIN_WIDTH = 0.002  # logit units: 2,400 bins over a CTR model's 0.005 .. 0.05
SCORE_CLIP = 1e-12  # scores clipped to [1e-12, 1 - 1e-12] before the logit (0 and 1 get end bins)
CALIBRATION_BINS = 10  # expected_calibration_error's default bins
PROFILE_FORMAT = 1
_MAGIC = b"SLPROF"
_HEADER = struct.Struct("<6sHI")  # magic, format version, header length
PROFILED_KINDS = (TaskKind.REGRESSION, TaskKind.BINARY_CLASSIFICATION)


# -- numeric columns ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class NumericProfile:
    """A numeric column of one or more days: exact moments and a KLL sketch of its finite values."""

    count: int  # finite values
    missing: int
    total: float
    squared_deviations: float  # sum (x - mean)²
    minimum: float  # NaN when count = 0
    maximum: float
    sketch: bytes  # kll_doubles_sketch.serialize()

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    @property
    def std(self) -> float:
        """Population std (numpy's default, as the raw comparisons use)."""
        return math.sqrt(self.squared_deviations / self.count) if self.count else math.nan

    def kll(self) -> kll_doubles_sketch:
        return kll_doubles_sketch.deserialize(self.sketch)


def numeric_profile(values, *, field: str, kll_k: int = KLL_K) -> NumericProfile:
    """The profile of one column; NaN (or None) is missing, +-inf an error naming ``field``.
    Four passes over a float64 column besides the sketch's (0.2 s at 1M values, the sketch 0.1 s)."""
    if isinstance(values, pd.Series):
        array = values.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        array = np.asarray(values, dtype=np.float64)
    missing = np.isnan(array)
    missing_count = int(missing.sum())
    finite = array[~missing] if missing_count else array
    sketch = kll_doubles_sketch(kll_k)
    if not finite.size:
        return NumericProfile(0, missing_count, 0.0, 0.0, math.nan, math.nan, sketch.serialize())
    low, high = float(finite.min()), float(finite.max())
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{field}: values must be finite or missing, got {low if not math.isfinite(low) else high}")
    sketch.update(np.require(finite, requirements=("C", "W")))  # the binding takes writable contiguous arrays
    total = float(finite.sum())
    centred = finite - total / finite.size
    return NumericProfile(int(finite.size), missing_count, total, float(centred @ centred), low, high,
                          sketch.serialize())


def _merge_numeric(parts: Sequence[NumericProfile]) -> NumericProfile:
    sketch = parts[0].kll()
    count, total, deviations = parts[0].count, parts[0].total, parts[0].squared_deviations
    for part in parts[1:]:
        sketch.merge(part.kll())
        if part.count:  # Chan et al.: the pooled squared deviations of two groups
            if count:
                delta = part.total / part.count - total / count
                deviations += part.squared_deviations + delta * delta * count * part.count / (count + part.count)
            else:
                deviations = part.squared_deviations
            count += part.count
            total += part.total
    present = [p for p in parts if p.count]
    return NumericProfile(count, sum(p.missing for p in parts), total, deviations,
                          min((p.minimum for p in present), default=math.nan),
                          max((p.maximum for p in present), default=math.nan), sketch.serialize())


def sketch_rank_error(sketch: kll_doubles_sketch) -> float:
    """The sketch's CDF rank error (99 % confidence); 0 while it still holds every value."""
    return float(sketch.normalized_rank_error(True)) if sketch.is_estimation_mode() else 0.0


# -- categorical columns -----------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class CategoricalProfile:
    """A categorical column: exact (label, count) pairs sorted by label up to CATEGORY_CAP
    distinct labels (``sketch`` None), else a frequent-items sketch (``counts`` None)."""

    count: int
    missing: int
    counts: tuple[tuple[str, int], ...] | None
    sketch: bytes | None = None

    @property
    def exact(self) -> bool:
        return self.counts is not None

    def estimated_counts(self) -> dict[str, int]:
        """Exact counts, or the sketch's estimates of the values it surely tracks: those whose
        lower bound exceeds the sketch's maximum error (``NO_FALSE_POSITIVES``)."""
        if self.counts is not None:
            return dict(self.counts)
        sketch = frequent_strings_sketch.deserialize(self.sketch)
        return {item: int(estimate) for item, estimate, _, _ in
                sketch.get_frequent_items(frequent_items_error_type.NO_FALSE_POSITIVES)}

    def counts_of(self, labels: Sequence[str]) -> np.ndarray:
        """The count (exact, or the sketch's estimate) of each of ``labels``."""
        if self.counts is not None:
            exact = dict(self.counts)
            return np.array([exact.get(label, 0) for label in labels], dtype=np.int64)
        sketch = frequent_strings_sketch.deserialize(self.sketch)
        return np.array([sketch.get_estimate(label) for label in labels], dtype=np.int64)


def categorical_profile(values, *, cap: int = CATEGORY_CAP) -> CategoricalProfile:
    """The profile of one categorical column (values as text; None / NaN missing)."""
    series = pd.Series(values, copy=False)
    counts = series.value_counts(dropna=True, sort=False)  # labels counted first, made text after
    totals: dict[str, int] = {}
    for label, n in counts.items():
        if n:  # a categorical's unused categories count 0
            totals[str(label)] = totals.get(str(label), 0) + int(n)
    present = sum(totals.values())
    return _categorical_from_counts(present, len(series) - present, tuple(sorted(totals.items())), cap)


def _categorical_from_counts(count: int, missing: int, pairs: tuple[tuple[str, int], ...], cap: int,
                             sketches: Iterable[bytes] = ()) -> CategoricalProfile:
    sketches = list(sketches)
    if len(pairs) <= cap and not sketches:
        return CategoricalProfile(count, missing, pairs)
    sketch = frequent_strings_sketch(FREQUENT_LG_MAX_K)
    for label, n in pairs:
        sketch.update(label, n)
    for other in sketches:
        sketch.merge(frequent_strings_sketch.deserialize(other))
    return CategoricalProfile(count, missing, None, sketch.serialize())


def _merge_categorical(parts: Sequence[CategoricalProfile], cap: int = CATEGORY_CAP) -> CategoricalProfile:
    totals: dict[str, int] = {}
    for part in parts:
        for label, n in part.counts or ():
            totals[label] = totals.get(label, 0) + n
    return _categorical_from_counts(sum(p.count for p in parts), sum(p.missing for p in parts),
                                    tuple(sorted(totals.items())), cap,
                                    [p.sketch for p in parts if p.sketch is not None])


# -- performance -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class RegressionStatistics:
    """Sufficient statistics of ``regression_performance`` (error = predicted - actual)."""

    count: int
    sum_error: float
    sum_abs_error: float
    sum_squared_error: float
    sum_abs_percentage: float  # sum |e / y| over y != 0
    zero_actual: int
    sum_abs_actual: float
    actual_total: float
    actual_squared_deviations: float
    actual_minimum: float
    actual_maximum: float


@dataclasses.dataclass(frozen=True)
class BinaryStatistics:
    """Sufficient statistics of ``classification_performance`` at ``threshold``. ``score_histogram``
    is little-endian int64 triples (logit bin, negatives, positives) sorted by bin, zlib-compressed
    (uniform scores at 1M rows fill ~14,000 bins: 330 KB raw, ~60 KB compressed)."""

    count: int
    positives: int
    threshold: float
    true_positives: int
    false_positives: int
    false_negatives: int
    sum_log_loss: float
    sum_squared_error: float
    sum_score: float
    soft_scores: int  # scores other than exactly 0 or 1 (none: a hard-label classifier)
    calibration_count: tuple[int, ...]
    calibration_actual: tuple[float, ...]
    calibration_score: tuple[float, ...]
    score_histogram: bytes

    def histogram(self) -> np.ndarray:
        return np.frombuffer(zlib.decompress(self.score_histogram), dtype="<i8").reshape(-1, 3)


def regression_statistics(actual: np.ndarray, predicted: np.ndarray) -> RegressionStatistics:
    error = predicted - actual
    nonzero = actual != 0
    with np.errstate(over="ignore"):
        percentage = float(np.abs(error[nonzero] / actual[nonzero]).sum())
    mean = float(actual.mean()) if actual.size else 0.0
    return RegressionStatistics(
        int(actual.size), float(error.sum()), float(np.abs(error).sum()), float((error * error).sum()), percentage,
        int((~nonzero).sum()), float(np.abs(actual).sum()), float(actual.sum()),
        float(((actual - mean) ** 2).sum()), float(actual.min()) if actual.size else math.nan,
        float(actual.max()) if actual.size else math.nan)


def binary_statistics(actual: np.ndarray, score: np.ndarray, threshold: float) -> BinaryStatistics:
    if not np.isin(actual, (0.0, 1.0)).all():
        raise ValueError("actual_value: binary classification labels must be 0 or 1")
    if ((score < 0) | (score > 1)).any():
        raise ValueError("predicted_value: predicted probabilities must lie in [0, 1]")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold: must be in (0, 1), got {threshold}")
    positive = actual == 1
    predicted = score >= threshold
    eps = np.finfo(np.float64).eps  # sklearn's log_loss clips each class probability at eps
    with np.errstate(divide="ignore"):
        loss = np.where(positive, -np.log(np.clip(score, eps, 1 - eps)), -np.log(np.clip(1 - score, eps, 1 - eps)))
    index = np.minimum((score * CALIBRATION_BINS).astype(np.int64), CALIBRATION_BINS - 1)
    return BinaryStatistics(
        int(actual.size), int(positive.sum()), float(threshold), int((predicted & positive).sum()),
        int((predicted & ~positive).sum()), int((~predicted & positive).sum()), float(loss.sum()),
        float(((score - actual) ** 2).sum()), float(score.sum()), int((~np.isin(score, (0.0, 1.0))).sum()),
        tuple(int(v) for v in np.bincount(index, minlength=CALIBRATION_BINS)),
        tuple(float(v) for v in np.bincount(index, weights=actual, minlength=CALIBRATION_BINS)),
        tuple(float(v) for v in np.bincount(index, weights=score, minlength=CALIBRATION_BINS)),
        _score_histogram(score, positive))


def _score_histogram(score: np.ndarray, positive: np.ndarray) -> bytes:
    clipped = np.clip(score, SCORE_CLIP, 1 - SCORE_CLIP)
    bins = np.floor(np.log(clipped / (1 - clipped)) / SCORE_BIN_WIDTH).astype(np.int64)
    return _histogram_bytes(np.concatenate((bins, bins)),
                            np.concatenate((~positive, np.zeros(bins.size, bool))).astype(np.int64),
                            np.concatenate((np.zeros(bins.size, bool), positive)).astype(np.int64))


def _histogram_bytes(bins: np.ndarray, negatives: np.ndarray, positives: np.ndarray) -> bytes:
    keys, inverse = np.unique(bins, return_inverse=True)
    table = np.column_stack((keys, np.bincount(inverse, weights=negatives, minlength=keys.size),
                             np.bincount(inverse, weights=positives, minlength=keys.size))).astype("<i8")
    return zlib.compress(table.tobytes(), 1)


def _merge_performance(parts: Sequence[RegressionStatistics | BinaryStatistics]):
    first = parts[0]
    if isinstance(first, RegressionStatistics):
        if not all(isinstance(p, RegressionStatistics) for p in parts):
            raise ValueError("performance: cannot merge regression with classification statistics")
        count, total, deviations = 0, 0.0, 0.0
        for p in parts:
            if p.count:
                if count:
                    delta = p.actual_total / p.count - total / count
                    deviations += p.actual_squared_deviations + delta * delta * count * p.count / (count + p.count)
                else:
                    deviations = p.actual_squared_deviations
                count, total = count + p.count, total + p.actual_total
        present = [p for p in parts if p.count]
        return RegressionStatistics(
            count, *(sum(getattr(p, f) for p in parts) for f in ("sum_error", "sum_abs_error", "sum_squared_error",
                                                                 "sum_abs_percentage", "zero_actual",
                                                                 "sum_abs_actual")),
            total, deviations, min((p.actual_minimum for p in present), default=math.nan),
            max((p.actual_maximum for p in present), default=math.nan))
    if not all(isinstance(p, BinaryStatistics) for p in parts):
        raise ValueError("performance: cannot merge classification with regression statistics")
    thresholds = {p.threshold for p in parts}
    if len(thresholds) > 1:
        raise ValueError(f"threshold: the profiles were built at different thresholds {sorted(thresholds)}")
    tables = np.concatenate([p.histogram() for p in parts])
    return BinaryStatistics(
        *(sum(getattr(p, f) for p in parts) for f in ("count", "positives")), first.threshold,
        *(sum(getattr(p, f) for p in parts) for f in ("true_positives", "false_positives", "false_negatives",
                                                      "sum_log_loss", "sum_squared_error", "sum_score",
                                                      "soft_scores")),
        *(tuple(sum(values) for values in zip(*(getattr(p, f) for p in parts), strict=True))
          for f in ("calibration_count", "calibration_actual", "calibration_score")),
        _histogram_bytes(tables[:, 0], tables[:, 1], tables[:, 2]))


# -- the day profile ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DayProfile:
    """The profile of one model's rows over the (model version, day) pairs it ``covers`` (one for
    a built day, several once merged).

    ``labelled``: built from the labelled rows only (``error`` and ``performance`` present; rebuilt
    when late labels arrive) or from every served row (final once the day has ended).
    """

    model: str
    covers: tuple[tuple[str, date], ...]  # sorted (model_version, day) pairs
    task_kind: TaskKind
    labelled: bool
    rows: int
    prediction: NumericProfile
    numeric: Mapping[str, NumericProfile]
    categorical: Mapping[str, CategoricalProfile]
    error: NumericProfile | None = None
    performance: RegressionStatistics | BinaryStatistics | None = None

    @property
    def days(self) -> tuple[date, ...]:
        return tuple(sorted({day for _, day in self.covers}))

    @property
    def model_versions(self) -> tuple[str, ...]:
        return tuple(sorted({version for version, _ in self.covers}))

    def merge(self, other: DayProfile) -> DayProfile:
        return merge_profiles([self, other])

    def to_bytes(self) -> bytes:
        return profile_to_bytes(self)


def build_day_profile(frame: pd.DataFrame, *, model: str, model_version: str, day: date,
                      task_kind: TaskKind | str, labelled: bool, numeric_features: Sequence[str] = (),
                      categorical_features: Sequence[str] = (), threshold: float = 0.5,
                      kll_k: int = KLL_K) -> DayProfile:
    """The profile of one day's rows of one model version (a ``read_window`` frame: predicted_value,
    with ``labelled`` actual_value on every row, and the named feature columns)."""
    kind = TaskKind(task_kind)
    if kind not in PROFILED_KINDS:
        raise ValueError(f"task_kind: profiles cover {', '.join(k.value for k in PROFILED_KINDS)}, got {kind.value}")
    if isinstance(day, pd.Timestamp) or not isinstance(day, date) or hasattr(day, "hour"):
        raise ValueError(f"day: must be a datetime.date, got {day!r}")
    for column in ("predicted_value", *(["actual_value"] if labelled else []), *numeric_features,
                   *categorical_features):
        if column not in frame.columns:
            raise ValueError(f"{column}: not a column of the day's frame")
    overlap = set(numeric_features) & set(categorical_features)
    if overlap:
        raise ValueError(f"{sorted(overlap)[0]}: named as both a numeric and a categorical feature")
    predicted = frame["predicted_value"].to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isnan(predicted).any():
        raise ValueError("predicted_value: missing in the day's frame")
    error = performance = None
    if labelled:
        actual = frame["actual_value"].to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isnan(actual).any():
            raise ValueError("actual_value: a labelled profile needs an outcome on every row "
                             f"({int(np.isnan(actual).sum())} missing)")
        error = numeric_profile(predicted - actual, field="error", kll_k=kll_k)
        performance = regression_statistics(actual, predicted) if kind is TaskKind.REGRESSION \
            else binary_statistics(actual, predicted, threshold)
    return DayProfile(
        model=model, covers=((model_version, day),), task_kind=kind, labelled=labelled,
        rows=len(frame), prediction=numeric_profile(predicted, field="predicted_value", kll_k=kll_k),
        numeric={name: numeric_profile(frame[name], field=name, kll_k=kll_k) for name in numeric_features},
        categorical={name: categorical_profile(frame[name]) for name in categorical_features},
        error=error, performance=performance)


def merge_profiles(profiles: Sequence[DayProfile]) -> DayProfile:
    """One profile of all ``profiles``' rows: same model, task kind and labelled flag, disjoint
    (model version, day) pairs; a feature one profile lacks counts as missing on its rows there."""
    profiles = list(profiles)
    if not profiles:
        raise ValueError("profiles: nothing to merge")
    first = profiles[0]
    for field in ("model", "task_kind", "labelled"):
        values = {getattr(p, field) for p in profiles}
        if len(values) > 1:
            raise ValueError(f"{field}: cannot merge profiles of different {field}s {sorted(map(str, values))}")
    seen: set[tuple[str, date]] = set()
    for p in profiles:
        twice = seen & set(p.covers)
        if twice:
            version, day = min(twice)
            raise ValueError(f"covers: {day.isoformat()} of version {version} is in two of the profiles")
        seen |= set(p.covers)
    if len(profiles) == 1:
        return first

    def numeric(name: str) -> NumericProfile:
        parts = [p.numeric.get(name) or _all_missing(p.rows) for p in profiles]
        return _merge_numeric(parts)

    numeric_names = sorted({n for p in profiles for n in p.numeric})
    categorical_names = sorted({n for p in profiles for n in p.categorical})
    return DayProfile(
        model=first.model, covers=tuple(sorted(seen)), task_kind=first.task_kind,
        labelled=first.labelled, rows=sum(p.rows for p in profiles),
        prediction=_merge_numeric([p.prediction for p in profiles]),
        numeric={name: numeric(name) for name in numeric_names},
        categorical={name: _merge_categorical([p.categorical.get(name) or CategoricalProfile(0, p.rows, ())
                                               for p in profiles]) for name in categorical_names},
        error=_merge_numeric([p.error for p in profiles]) if first.labelled else None,
        performance=_merge_performance([p.performance for p in profiles]) if first.labelled else None)


def _all_missing(rows: int) -> NumericProfile:
    return NumericProfile(0, rows, 0.0, 0.0, math.nan, math.nan, kll_doubles_sketch(KLL_K).serialize())


# -- bytes -------------------------------------------------------------------------------------

def profile_to_bytes(profile: DayProfile) -> bytes:
    """Versioned binary form: magic, PROFILE_FORMAT, a JSON header of every number (floats as
    their shortest exact repr), then the sketches and histograms as raw bytes (DataSketches'
    own serialisation) that the header points to by offset."""
    blobs: list[bytes] = []

    def blob(data: bytes) -> list[int]:
        offset = sum(len(b) for b in blobs)
        blobs.append(data)
        return [offset, len(data)]

    def numeric(p: NumericProfile) -> dict:
        return {"count": p.count, "missing": p.missing, "total": p.total, "squared_deviations": p.squared_deviations,
                "minimum": p.minimum, "maximum": p.maximum, "sketch": blob(p.sketch)}

    def categorical(p: CategoricalProfile) -> dict:
        return {"count": p.count, "missing": p.missing, "counts": p.counts,
                "sketch": None if p.sketch is None else blob(p.sketch)}

    performance = None
    if profile.performance is not None:
        performance = {f.name: getattr(profile.performance, f.name)
                       for f in dataclasses.fields(profile.performance)}
        if isinstance(profile.performance, BinaryStatistics):
            performance["score_histogram"] = blob(profile.performance.score_histogram)
        performance["kind"] = type(profile.performance).__name__
    header = {
        "model": profile.model, "covers": [[version, day.isoformat()] for version, day in profile.covers],
        "task_kind": profile.task_kind.value,
        "labelled": profile.labelled, "rows": profile.rows, "prediction": numeric(profile.prediction),
        "numeric": {k: numeric(v) for k, v in profile.numeric.items()},
        "categorical": {k: categorical(v) for k, v in profile.categorical.items()},
        "error": None if profile.error is None else numeric(profile.error), "performance": performance,
    }
    text = json.dumps(header, separators=(",", ":")).encode()
    return _HEADER.pack(_MAGIC, PROFILE_FORMAT, len(text)) + text + b"".join(blobs)


def profile_from_bytes(data: bytes) -> DayProfile:
    """The profile ``profile_to_bytes`` wrote; a ``ValueError`` names what is wrong."""
    data = bytes(data)
    if len(data) < _HEADER.size or data[:len(_MAGIC)] != _MAGIC:
        raise ValueError("profile: not a day profile (no SLPROF header)")
    _, version, length = _HEADER.unpack_from(data)
    if version != PROFILE_FORMAT:
        raise ValueError(f"profile: format {version}, this package reads format {PROFILE_FORMAT}")
    header = json.loads(data[_HEADER.size:_HEADER.size + length])
    body = memoryview(data)[_HEADER.size + length:]

    def blob(where) -> bytes:
        offset, size = where
        if offset + size > len(body):
            raise ValueError("profile: truncated (a sketch lies past the end)")
        return bytes(body[offset:offset + size])

    def numeric(h: dict) -> NumericProfile:
        return NumericProfile(h["count"], h["missing"], h["total"], h["squared_deviations"], h["minimum"],
                              h["maximum"], blob(h["sketch"]))

    def categorical(h: dict) -> CategoricalProfile:
        counts = None if h["counts"] is None else tuple((label, n) for label, n in h["counts"])
        return CategoricalProfile(h["count"], h["missing"], counts, None if h["sketch"] is None else blob(h["sketch"]))

    performance = None
    if header["performance"] is not None:
        fields = dict(header["performance"])
        kind = fields.pop("kind")
        if kind == "BinaryStatistics":
            fields["score_histogram"] = blob(fields["score_histogram"])
            for name in ("calibration_count", "calibration_actual", "calibration_score"):
                fields[name] = tuple(fields[name])
            performance = BinaryStatistics(**fields)
        else:
            performance = RegressionStatistics(**fields)
    return DayProfile(
        model=header["model"], covers=tuple((version, date.fromisoformat(day)) for version, day in header["covers"]),
        task_kind=TaskKind(header["task_kind"]),
        labelled=header["labelled"], rows=header["rows"], prediction=numeric(header["prediction"]),
        numeric={k: numeric(v) for k, v in header["numeric"].items()},
        categorical={k: categorical(v) for k, v in header["categorical"].items()},
        error=None if header["error"] is None else numeric(header["error"]), performance=performance)
