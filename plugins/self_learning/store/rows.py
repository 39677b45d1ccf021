"""Row validation, encoding and the small helpers every part of the store shares (no SQL text)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ..core.multiclass import PROBABILITY_PREFIX, PROBABILITY_TOLERANCE
from ..core.types import MAX_CLASS_LABEL, Result, model_name, shown, to_jsonable
from ..core.validation import label_text
from .tables import (
    DEFAULT_VERSION,
    MAX_FEATURES,
    MAX_KEY_LENGTH,
    MAX_REJECT_PAYLOAD_BYTES,
    MAX_TEXT_LENGTH,
    OUTCOME_WINDOW_COLUMNS,
    PLAUSIBLE_TIMESTAMPS,
    RESERVED,
)


@dataclasses.dataclass(frozen=True)
class RowError(Result):
    """One rejected input row: its position in the input, its id if known, the field and why."""

    row: int
    prediction_id: str | None
    field: str
    reason: str


@dataclasses.dataclass(frozen=True)
class IngestReport(Result):
    received: int
    inserted: int
    unchanged: int  # already stored with the same payload (idempotent re-send)
    corrected: int  # outcomes only: an existing value replaced (old value kept in outcome_history)
    rejected: list[RowError]


class ConflictError(ValueError):
    """A known prediction id arrived with a different payload; nothing was overwritten."""



def _check_window(start: datetime, end: datetime) -> None:
    for name, value in (("window_start", start), ("window_end", end)):
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"{name}: must be a timezone-aware datetime, got {value!r}")
    if end <= start:
        raise ValueError(f"window_end: {end.isoformat()} is not after window_start {start.isoformat()}")


def _equal_to(table: sa.Table, **values: Any) -> list:
    """``column == value`` for every value given (None: no filter on that column)."""
    return [table.c[column] == value for column, value in values.items() if value is not None]


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _plain(value):
    """pandas/numpy scalars to what a DB-API driver binds (NaN/NaT -> None)."""
    if value is None or (not isinstance(value, (str, bytes, list, dict)) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value.item() if isinstance(value, np.generic) else value


def _database_now(conn) -> pd.Timestamp:
    """The database's clock: default served_at / observed_at of rows sent without one."""
    return _utc(conn.execute(sa.select(sa.func.current_timestamp())).scalar_one())


def _utc(value) -> pd.Timestamp:
    """A timestamp from either dialect as UTC (SQLite hands back naive UTC datetimes)."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _json_row(frame: pd.DataFrame, position: int) -> dict[str, Any] | None:
    """A rejected row as stored in ``ingest_rejects.payload``: whole up to MAX_REJECT_PAYLOAD_BYTES
    of JSON, else the start of its JSON text under ``head``, marked ``truncated`` with its size."""
    if not 0 <= position < len(frame):
        return None
    text = json.dumps(to_jsonable(frame.iloc[position].to_dict()), default=str)
    size = len(text.encode("utf-8"))
    if size <= MAX_REJECT_PAYLOAD_BYTES:
        return json.loads(text)
    marker = {"truncated": True, "original_bytes": size}
    room = MAX_REJECT_PAYLOAD_BYTES - len(json.dumps(marker | {"head": ""}))
    # ``text`` is ASCII (json.dumps escapes the rest), so its JSON string literal only adds backslashes;
    # cut it to fit, then drop a cut escape (a lone trailing backslash).
    literal = json.dumps(text)[:room]
    while True:
        try:
            return marker | {"head": json.loads(literal + '"')}
        except ValueError:
            literal = literal[:-1]



# A bulk frame's class probabilities: one column per class named PROBABILITY_PREFIX + class (or a
# ``probabilities`` column of {class: p} mappings, as register_prediction takes); window reads of a
# multiclass model return the same columns. Neither is ever a feature column.
_P = "_p:"  # the validated meta's column of one class's probability


@dataclasses.dataclass(frozen=True)
class ClassRows:
    """The multiclass fields of a batch, checked: ``has`` (rows carrying probabilities), their
    served class ``labels`` (the most probable one where none was sent), ``probabilities`` (one
    column per class the batch names, 0 where a row lacks the class; kept as sent, not divided by
    the row sum: ``core.multiclass.ClassPredictions`` does that when a window is scored),
    ``value`` (P(served class), a multiclass row's predicted_value) and by row the first problem
    as (field, reason)."""

    has: pd.Series
    labels: pd.Series
    probabilities: pd.DataFrame
    value: pd.Series
    problems: dict


def _class_rows(frame: pd.DataFrame) -> ClassRows:
    """Check the class probabilities and served classes of a frame (see ``ClassRows``): values are
    numbers, non-negative (errors name ``proba_<class>`` or ``probabilities.<class>``), each row
    sums to 1 within ``PROBABILITY_TOLERANCE`` (errors name ``probabilities``); class labels are
    non-empty text of at most MAX_CLASS_LABEL characters."""
    index = frame.index
    problems: dict[Any, tuple[str, str]] = {}
    columns: dict[str, pd.Series] = {}
    fields: dict[str, str] = {}
    for name in frame.columns:
        if isinstance(name, str) and name.startswith(PROBABILITY_PREFIX):
            values, bad = _numeric_feature(frame[name])
            for i, reason in bad.items():
                problems.setdefault(i, (name, reason))
            label = name[len(PROBABILITY_PREFIX):]
            columns[label], fields[label] = values, name
    if "probabilities" in frame.columns:
        for i, mapping in frame["probabilities"].items():
            if not isinstance(mapping, Mapping):
                if not _is_missing(mapping):
                    problems.setdefault(i, ("probabilities", "must be a mapping of class label to probability, "
                                                             f"got {shown(mapping)}"))
                continue
            for key, p in mapping.items():
                label = key if isinstance(key, str) else label_text(key)
                problem = _number_problem(p)
                if problem:
                    problems.setdefault(i, (f"probabilities.{label}", problem))
                    continue
                columns.setdefault(label, pd.Series(np.nan, index=index)).at[i] = float(p)
                fields.setdefault(label, f"probabilities.{label}")
    probabilities = pd.DataFrame(columns, index=index, dtype=np.float64)
    if probabilities.empty and not problems:  # no multiclass rows (a regression or binary batch)
        nothing = pd.Series(None, index=index, dtype=object)
        return ClassRows(pd.Series(False, index=index), nothing, probabilities, pd.Series(np.nan, index=index), {})
    for label in probabilities.columns:
        problem = _text_problem(label, MAX_CLASS_LABEL)
        for i in index[probabilities[label].notna()] if problem else ():
            problems.setdefault(i, (fields[label], f"not a valid class label: {problem}"))
    has = probabilities.notna().any(axis=1) | index.to_series().isin(list(problems))
    matrix = probabilities.fillna(0.0).to_numpy()
    for j, label in enumerate(probabilities.columns):
        for i in np.flatnonzero(matrix[:, j] < 0):
            problems.setdefault(index[i], (fields[label], f"must be non-negative, got {matrix[i, j]!r}"))
    sums = matrix.sum(axis=1)
    for i in np.flatnonzero(has.to_numpy() & (np.abs(sums - 1.0) > PROBABILITY_TOLERANCE)):
        problems.setdefault(index[i], ("probabilities", f"sum to {float(sums[i])!r}, not 1 within "
                                                         f"{PROBABILITY_TOLERANCE}"))
    raw = frame["predicted_label"] if "predicted_label" in frame.columns else pd.Series(None, index=index,
                                                                                       dtype=object)
    labels, label_problems = _class_labels(raw.where(has, None))
    for i, reason in label_problems.items():
        problems.setdefault(i, ("predicted_label", reason))
    position = {label: j for j, label in enumerate(probabilities.columns)}
    if position:
        most_probable = np.asarray(probabilities.columns, dtype=object)[np.argmax(matrix, axis=1)]
        labels = labels.where(labels.notna() | ~has, pd.Series(most_probable, index=index))
    served = [position.get(label, -1) if isinstance(label, str) else -1 for label in labels]
    value = np.array([matrix[i, j] if j >= 0 else 0.0 for i, j in enumerate(served)])
    return ClassRows(has, labels.where(has, None), pd.DataFrame(matrix, index=index, columns=probabilities.columns),
                     pd.Series(value, index=index), problems)


def _validate_predictions(frame: pd.DataFrame, offset: int) -> tuple[pd.DataFrame, pd.DataFrame, list[RowError]]:
    """Split a batch into validated reserved columns (``meta``, with an ``_ok`` mask) and features."""
    errors: list[RowError] = []
    n = len(frame)
    if "features" in frame.columns:
        raw = frame["features"]
        not_mapping = ~raw.map(lambda v: isinstance(v, Mapping))
        features = pd.DataFrame.from_records([dict(v) if isinstance(v, Mapping) else {} for v in raw],
                                             index=frame.index)
    else:
        not_mapping = pd.Series(False, index=frame.index)
        features = frame[[c for c in frame.columns if c not in RESERVED and not _is_class_column(c)]]
    meta = pd.DataFrame(index=frame.index)
    ok = pd.Series(True, index=frame.index)

    def reject(mask: pd.Series, field: str, reason) -> None:
        for i in np.flatnonzero((mask & ok).to_numpy()):
            pid = meta["prediction_id"].iat[i] if "prediction_id" in meta else None
            errors.append(RowError(offset + int(i), pid if isinstance(pid, str) else None, field,
                                   reason(i) if callable(reason) else reason))
        ok[mask] = False

    ids = frame["prediction_id"] if "prediction_id" in frame.columns else pd.Series([None] * n, index=frame.index)
    missing_id = ids.isna()
    meta["prediction_id"] = ids.astype(object)
    meta.loc[missing_id, "prediction_id"] = [uuid.uuid4().hex for _ in range(int(missing_id.sum()))]
    reject(~_is_short_text(meta["prediction_id"], 128), "prediction_id",
           "must be a non-empty string of at most 128 characters")
    reject(not_mapping, "features", "must be a mapping of feature name to value")
    if "model" not in frame.columns:
        reject(pd.Series(True, index=frame.index), "model", "is required")
        meta["model"] = None
    else:
        meta["model"] = frame["model"]
        valid = {m: _valid_model(m) for m in frame["model"].dropna().unique()}
        reject(~frame["model"].map(lambda m: valid.get(m, False)), "model",
               lambda i: f"{shown(frame['model'].iat[i])} is not a valid model name")
    version = frame.get("model_version", pd.Series(DEFAULT_VERSION, index=frame.index))
    meta["model_version"] = version.fillna(DEFAULT_VERSION)
    reject(~_is_short_text(meta["model_version"], 128), "model_version",
           "must be a non-empty string of at most 128 characters")
    # A multiclass row (one carrying class probabilities): its served class is text and its
    # predicted_value is P(served class), derived when not sent.
    classes = _class_rows(frame)
    multiclass = classes.has
    by_field: dict[str, dict[Any, str]] = {}
    for i, (field, reason) in classes.problems.items():
        by_field.setdefault(field, {})[i] = reason
    for field, reasons in by_field.items():
        reject(frame.index.to_series().isin(list(reasons)), field, lambda i, r=reasons: r[frame.index[i]])
    given = _numeric_feature(frame["predicted_value"]) if "predicted_value" in frame.columns else (
        pd.Series(np.nan, index=frame.index), {})
    values, problems = given
    reject(frame.index.to_series().isin(list(problems)), "predicted_value", lambda i: problems[frame.index[i]])
    # In a frame carrying class probabilities, a row with neither is the model's to judge
    # (``_class_group``: predicted_value or probabilities is required, by the model's kind).
    undecided = values.isna() & ~multiclass & (not classes.probabilities.empty)
    reject(values.isna() & ~multiclass & ~undecided, "predicted_value", "is required")
    meta["_value_missing"] = undecided
    meta["predicted_value"] = values.where(~multiclass, classes.value)
    # checked against P(served class) by ``_class_group`` once the model is known to be multiclass
    meta["_given_value"] = values.where(multiclass)
    label = frame["predicted_label"] if "predicted_label" in frame.columns else pd.Series([None] * n, index=frame.index)
    if multiclass.any():  # a multiclass row's label is its served class (text), checked by _class_rows
        label = label.where(~multiclass, None)
    label_numbers = _to_float(label)
    integral = (np.isfinite(label_numbers) & (label_numbers == np.floor(label_numbers))
                & label_numbers.between(*LABEL_RANGE))
    reject(label.notna() & ~integral, "predicted_label",
           lambda i: f"must be an integer class label within {LABEL_RANGE}, got {shown(label.iat[i])} "
                     "(a multiclass model's served class comes with its probabilities)")
    meta["predicted_label"] = label_numbers.where(integral).astype("Int64")
    meta["predicted_class"] = classes.labels
    for label_name in classes.probabilities.columns:
        meta[_P + label_name] = classes.probabilities[label_name].where(multiclass)
    unit = frame["unit_id"] if "unit_id" in frame.columns else pd.Series([None] * n, index=frame.index)
    meta["unit_id"] = unit.astype(object).map(label_text, na_action="ignore").where(unit.notna(), None)
    present_units = meta["unit_id"].dropna()
    reject((~_is_short_text(present_units, 256)).reindex(frame.index, fill_value=False), "unit_id",
           "longer than 256 characters")
    served = frame["served_at"] if "served_at" in frame.columns else pd.Series([None] * n, index=frame.index)
    meta["served_at"], problems = _timestamps(served)
    meta["_served_given"] = served.notna()  # a re-send without served_at matches whatever was stored
    reject(frame.index.to_series().isin(list(problems)), "served_at", lambda i: problems[frame.index[i]])
    if features.shape[1] > MAX_FEATURES:  # only then can a row carry too many
        reject(features.notna().sum(axis=1) > MAX_FEATURES, "features", f"more than {MAX_FEATURES} features")
    for key in features.columns:
        problem = _key_problem(key)
        if problem:
            reject(features[key].notna(), "features", problem)
    # A row repeated within the batch is a re-send (unchanged); the same id with another payload is rejected.
    repeated = meta["prediction_id"].duplicated(keep=False)
    meta["_repeat"] = False
    if repeated.any():
        rows = frame[repeated].astype(str).assign(_id=meta.loc[repeated, "prediction_id"])
        payload = pd.util.hash_pandas_object(rows.drop(columns="_id"), index=False)
        first = payload.groupby(rows["_id"]).transform("first")
        later = meta["prediction_id"].duplicated(keep="first") & ok
        identical = later & (payload == first).reindex(frame.index, fill_value=False)
        meta.loc[identical, "_repeat"] = True
        ok[identical] = False
        reject(later & ~identical, "prediction_id", "appears more than once in the batch with different payloads")
    meta["_ok"] = ok
    return meta, features, errors


def _value_mismatch(given: float, value: float) -> str:
    """Why a multiclass row's predicted_value is refused (it is P(served class), derived)."""
    return (f"a multiclass prediction's value is the probability of its served class ({value!r}); send none, "
            f"got {shown(given)}")


def _is_class_column(column) -> bool:
    """A bulk frame's class-probability column (never a feature)."""
    return column == "probabilities" or (isinstance(column, str) and column.startswith(PROBABILITY_PREFIX))


def _valid_model(name) -> bool:
    try:
        model_name(name)
    except ValueError:
        return False
    return True


def _is_short_text(values: pd.Series, limit: int) -> pd.Series:
    """Row mask: a non-empty string of at most ``limit`` characters (vectorised when all are text)."""
    if pd.api.types.is_string_dtype(values.dtype) and pd.api.types.infer_dtype(values, skipna=False) == "string":
        lengths = values.str.len()
        ok = (lengths > 0) & (lengths <= limit) & ~values.str.contains("\x00", regex=False)
        try:
            "".join(values.dropna()).encode("utf-8")
            return ok
        except UnicodeEncodeError:
            pass  # some value holds a lone surrogate: check one by one
    return values.map(lambda v: _text_problem(v, limit) is None).astype(bool)


def _storable_problem(text: str) -> str | None:
    """PostgreSQL text holds no NUL character and only valid UTF-8 (no lone surrogates)."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (lone surrogate)"
    return None


def _text_problem(value, limit: int) -> str | None:
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        return f"must be a non-empty string of at most {limit} characters, got {shown(value)}"
    return _storable_problem(value)


def _number_problem(value) -> str | None:
    if not _is_number(value):
        return f"must be a number, got {shown(value)}"
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int beyond the float range
        finite = False
    return None if finite else f"must be finite, got {value}"


LABEL_RANGE = (-(2**31) + 1, 2**31 - 1)  # int4, minus the value the window read uses for "no label"


def _label_problem(value) -> str | None:
    if _number_problem(value) or not float(value).is_integer() or not LABEL_RANGE[0] <= value <= LABEL_RANGE[1]:
        return f"must be an integer class label within {LABEL_RANGE}, got {shown(value)}"
    return None


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


# Text that reads as a fractional or scientific number ("120.5", "1e3"): as a new feature's only
# evidence it does not say whether the feature is numeric (sent as text by mistake) or categorical.
# Whole-number text ("12345") reads as a code or id and is categorical.
_DECIMAL_TEXT = r"\s*[+-]?(?:(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)\s*"
_DECIMAL_TEXT_PATTERN = re.compile(_DECIMAL_TEXT)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _scalar_kind(value) -> str | None:
    """Kind of a feature key first seen in a single registration, from its one value: numeric for
    a number, None (undecided: the caller refuses it) for decimal text, categorical otherwise."""
    if _is_number(value):
        return "numeric"
    return None if isinstance(value, str) and _DECIMAL_TEXT_PATTERN.fullmatch(value) else "categorical"


def _undecided_kind(key: str, example) -> str:
    """Why a new feature key's kind cannot be decided from its values."""
    return (f"cannot tell whether {key!r} is numeric or categorical: {shown(example)} is text that reads as a "
            "number; send numbers for a numeric feature, or declare its kind in the model's feature_schema")


def _key_problem(key) -> str | None:
    if not isinstance(key, str) or not key:
        return f"feature names must be non-empty strings, got {key!r}"
    if len(key) > MAX_KEY_LENGTH:
        return f"feature name longer than {MAX_KEY_LENGTH} characters: {key[:40]!r}..."
    if key in RESERVED or key in (*OUTCOME_WINDOW_COLUMNS, "error"):
        return f"feature name {key!r} is reserved"
    problem = _storable_problem(key)
    return f"feature name {key[:40]!r} {problem}" if problem else None


def _infer_feature_kind(column: pd.Series) -> str | None:
    """Kind of a feature key seen for the first time in a bulk batch, decided on all its values
    in the batch, not the first: numeric when its values are numbers, or numbers and decimal text
    (the text is then refused); categorical when some text is not a number, unless most values are
    numbers (the others are refused). None (undecided: its rows are refused, naming the feature)
    when every value is decimal text such as "120.5"."""
    if pd.api.types.is_bool_dtype(column.dtype) or isinstance(column.dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(column.dtype):
        return "numeric"
    present = column.dropna()
    if pd.api.types.infer_dtype(present, skipna=True) == "string":
        decimal = present.astype(str).str.fullmatch(_DECIMAL_TEXT)
        return None if decimal.all() else "categorical"
    numbers = present.map(_is_number)
    decimal = present.map(lambda v: isinstance(v, str) and _DECIMAL_TEXT_PATTERN.fullmatch(v) is not None)
    if (numbers | decimal).all():
        return "numeric" if numbers.any() else None
    return "numeric" if numbers.sum() * 2 > len(present) else "categorical"


def _timestamps(raw: pd.Series) -> tuple[pd.Series, dict[Any, str]]:
    """Timestamps as UTC (missing -> NaT; naive ones are UTC) and, by row, why a given value is
    refused: not a timestamp, or outside PLAUSIBLE_TIMESTAMPS (year 1, 9999, 1970-01-01 ...)."""
    parsed = pd.to_datetime(raw, utc=True, errors="coerce", format="mixed")
    if (parsed.isna() & raw.notna()).any():  # one odd value can make pandas give up on all: one by one
        parsed = pd.to_datetime(raw.map(_one_timestamp, na_action="ignore"), utc=True)
    parsed = parsed.astype("datetime64[us, UTC]")
    earliest, latest = (pd.Timestamp(bound) for bound in PLAUSIBLE_TIMESTAMPS)
    implausible = (parsed < earliest) | (parsed >= latest)
    problems = {i: f"not a timestamp: {shown(raw.at[i])}" for i in raw.index[parsed.isna() & raw.notna()]}
    problems |= {i: f"{parsed.at[i].isoformat()} is outside the plausible range {earliest.date()} .. {latest.date()}"
                 for i in raw.index[implausible]}
    return parsed.where(~implausible), problems


def _one_timestamp(value) -> pd.Timestamp:
    if isinstance(value, (bool, np.bool_)):
        return pd.NaT
    try:
        return _utc(value)
    except (ValueError, TypeError, OverflowError):
        return pd.NaT


def _to_float(values: pd.Series) -> pd.Series:
    """pd.to_numeric(errors="coerce") as float64; ints beyond the float range become inf."""
    try:
        return pd.to_numeric(values, errors="coerce").astype(np.float64)
    except OverflowError:
        return values.map(lambda v: np.nan if _is_missing(v) else _float_or_nan(v)).astype(np.float64)


def _float_or_nan(value) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf
    except (TypeError, ValueError):
        return math.nan


def _numeric_feature(column: pd.Series) -> tuple[pd.Series, dict[int, str]]:
    """Float values (missing -> NaN) and, by row, why a value is not a finite number: text ("3.5")
    and booleans are refused, not converted. The one number rule of features, predicted_value
    and actual_value."""
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        values = column.astype(np.float64)
        problems = {}
    else:
        is_number = column.map(_is_number).astype(bool)
        not_number = ~is_number & column.notna()
        problems = {i: f"must be a number, got {shown(column.at[i])}" for i in column.index[not_number]}
        values = _to_float(column.where(is_number))
    problems |= {i: f"must be finite, got {values.at[i]}" for i in values.index[np.isinf(values.to_numpy())]}
    return values.where(np.isfinite(values)), problems


def _category_feature(column: pd.Series) -> tuple[pd.Series, dict[int, str]]:
    """Category labels as text (missing stays missing) and, by row, why a value is refused.

    Each distinct value is checked once; rows holding unhashable values (dicts, lists) are
    checked one by one.
    """
    try:
        codes, uniques = pd.factorize(column.astype(object), use_na_sentinel=True)
    except TypeError:
        codes, uniques = np.arange(len(column)), column.to_numpy(dtype=object)
    texts = np.empty(len(uniques) + 1, dtype=object)
    reasons = np.full(len(uniques) + 1, None, dtype=object)
    for position, value in enumerate(uniques):
        if value is None or (not isinstance(value, (str, Mapping, list, tuple, set)) and pd.isna(value)):
            continue
        try:
            texts[position] = _category_text(value)
        except ValueError as error:
            reasons[position] = str(error)
    problems = {column.index[i]: reasons[c] for i, c in enumerate(codes) if c >= 0 and reasons[c] is not None} \
        if any(r is not None for r in reasons) else {}
    return pd.Series(texts[codes], index=column.index, dtype=object), problems


def _category_text(value) -> str:
    """A categorical feature's value as stored text. Integer codes are categories; a fractional
    number is a kind conflict (the feature is categorical), refused instead of stored as text."""
    if isinstance(value, (Mapping, list, tuple, set)):
        raise ValueError(f"nested values are not supported: {shown(value)}")
    if isinstance(value, (float, np.floating)) and not float(value).is_integer():
        raise ValueError(f"the feature is categorical, got the number {shown(value)} "
                         "(a feature's kind never changes: send it as text, or use a new feature name)")
    text = label_text(value)
    if len(text) > MAX_TEXT_LENGTH:
        raise ValueError(f"text longer than {MAX_TEXT_LENGTH} characters")
    problem = _storable_problem(text)
    if problem:
        raise ValueError(problem)
    return text


def _pack(vector: np.ndarray) -> bytes:
    """A numeric feature vector as stored on PostgreSQL: big-endian float8 bytes, NaN = missing."""
    return np.asarray(vector, dtype=">f8").tobytes()


def _unpack(stored) -> np.ndarray:
    """A stored feature vector (PostgreSQL bytes or SQLite JSON list) as float64, NaN = missing."""
    if isinstance(stored, np.ndarray):
        return stored.astype(np.float64)
    if isinstance(stored, (bytes, bytearray, memoryview)):
        return np.frombuffer(bytes(stored), dtype=">f8").astype(np.float64)
    return np.array([np.nan if v is None else v for v in (stored or [])], dtype=np.float64)


def _differing_fields(new: pd.Series, new_vector: np.ndarray, stored: Mapping[str, Any]) -> list[str]:
    differing = [f for f in ("model", "model_version", "unit_id") if (new[f] or None) != (stored[f] or None)]
    served_given = new.get("_served_given", True) if hasattr(new, "get") else True
    if float(new["predicted_value"]) != float(stored["predicted_value"]):
        differing.append("predicted_value")
    if _plain(new["predicted_label"]) != stored["predicted_label"] or (
            _plain(new.get("predicted_class"))) != stored.get("predicted_class"):
        differing.append("predicted_label")
    if not _same_probabilities(new.get("class_probabilities"), stored.get("class_probabilities")):
        differing.append("probabilities")
    if served_given and pd.Timestamp(new["served_at"]) != _utc(stored["served_at"]):
        differing.append("served_at")
    old_vector = _unpack(stored["num_features"])
    width = max(old_vector.size, new_vector.size)
    padded_old = np.pad(old_vector, (0, width - old_vector.size), constant_values=np.nan)
    padded_new = np.pad(new_vector, (0, width - new_vector.size), constant_values=np.nan)
    if not np.array_equal(padded_old, padded_new, equal_nan=True) or json.loads(new["cat_json"]) != (
            stored["cat_features"] or {}):
        differing.append("features")
    return differing


def _same_probabilities(new, stored) -> bool:
    """Two probability vectors are equal, a shorter one read with 0 for the classes appended since."""
    old, fresh = _unpack(stored), _unpack(new) if new is not None else np.zeros(0)
    width = max(old.size, fresh.size)
    return np.array_equal(np.pad(old, (0, width - old.size)), np.pad(fresh, (0, width - fresh.size)))


def _validate_outcomes(frame: pd.DataFrame, offset: int, *, keep_repeats: bool = False
                       ) -> tuple[pd.DataFrame, list[RowError]]:
    """Valid rows (prediction_id, actual_value, observed_at, business_value, actual_label) and the
    errors of the others. ``business_value`` is optional (missing / None / NaN: the outcome carries
    none) and otherwise a finite number by the same rule as actual_value. ``actual_label`` is a
    multiclass outcome's actual class (text of at most MAX_CLASS_LABEL characters, compared as
    ``label_text``); an outcome needs an actual_value or an actual_label. Repeated ids are
    collapsed (different values are an error) unless ``keep_repeats``, which also keeps the
    frame's index on the valid rows."""
    errors: list[RowError] = []
    n = len(frame)

    def column(name: str) -> pd.Series:
        return frame[name] if name in frame.columns else pd.Series([None] * n, index=frame.index)

    ids = column("prediction_id")
    ok = _is_short_text(ids, 128).copy()
    for i in np.flatnonzero(~ok.to_numpy()):
        errors.append(RowError(offset + int(i), None, "prediction_id",
                               "must be a non-empty string of at most 128 characters"))
    # The same number rule as predicted_value: text such as "3.5" and booleans are refused, not converted.
    values, problems = _numeric_feature(column("actual_value"))
    labels, label_problems = _class_labels(column("actual_label"))
    business, business_problems = _numeric_feature(column("business_value"))
    observed, observed_problems = _timestamps(column("observed_at"))
    # received_at (the inbox's arrival time) is checked by the same rule when a row carries one.
    received_problems = _timestamps(frame["received_at"])[1] if "received_at" in frame.columns else {}
    required = {i: "is required (or an actual_label, for a multiclass model)"
                for i in values.index[values.isna() & labels.isna()] if i not in problems and i not in label_problems}
    for field, field_problems in (("actual_value", problems | required), ("actual_label", label_problems),
                                  ("business_value", business_problems), ("observed_at", observed_problems),
                                  ("received_at", received_problems)):
        for i in np.flatnonzero((ok & frame.index.to_series().isin(list(field_problems))).to_numpy()):
            errors.append(RowError(offset + int(i), ids.iat[i], field, field_problems[frame.index[i]]))
            ok.iat[i] = False
    clean = pd.DataFrame({"prediction_id": ids, "actual_value": values, "observed_at": observed,
                          "business_value": business, "actual_label": labels})[ok]
    if keep_repeats:
        errors.sort(key=lambda e: e.row)
        return clean, errors
    by_id = clean.groupby("prediction_id")
    fields = ("actual_value", "actual_label", "business_value")
    # a field no row carries cannot differ (nunique of an all-None object column is slow)
    differ = {field: by_id[field].transform("nunique", dropna=False) > 1 if clean[field].notna().any()
              else pd.Series(False, index=clean.index) for field in fields}
    conflicting = differ["actual_value"] | differ["actual_label"] | differ["business_value"]
    for i in clean.index[conflicting & clean["prediction_id"].duplicated(keep="first")]:
        field = next(f for f in fields if differ[f].at[i])
        errors.append(RowError(offset + int(i), ids.iat[i], field,
                               "the batch holds different values for this prediction_id"))
    clean = clean[~(conflicting & clean["prediction_id"].duplicated(keep="first"))]
    clean = clean.drop_duplicates("prediction_id", keep="first").reset_index(drop=True)
    errors.sort(key=lambda e: e.row)
    return clean, errors


def _class_labels(column: pd.Series) -> tuple[pd.Series, dict[Any, str]]:
    """Class labels as text (``label_text``: code 3 is "3"; missing stays None) and, by row, why a
    value is refused: not text or a whole number, empty, or longer than MAX_CLASS_LABEL."""
    texts = pd.Series([None] * len(column), index=column.index, dtype=object)
    problems = {}
    if column.isna().all():  # the usual frame: no labels (a regression or binary model's outcomes)
        return texts, problems
    for i, value in column.items():
        if _is_missing(value) or value is pd.NA:
            continue
        if not (isinstance(value, str) or (_is_number(value) and float(value).is_integer())):
            problems[i] = f"must be a class label (text), got {shown(value)}"
            continue
        text = label_text(value)
        problem = _text_problem(text, MAX_CLASS_LABEL)
        if problem:
            problems[i] = problem
        else:
            texts[i] = text
    return texts, problems


def _single_class_row(predicted_value, predicted_label, probabilities) -> tuple[float, str, dict[str, float]]:
    """A single multiclass prediction checked as a bulk row is (``_class_rows``): returns its
    predicted_value (P(served class)), served class and probabilities (as sent); raises
    ``ValueError`` naming the field."""
    if isinstance(probabilities, Mapping) and not probabilities:
        raise ValueError("probabilities: needs at least one class")
    frame = pd.DataFrame({"probabilities": [probabilities], "predicted_label": [predicted_label]}, dtype=object)
    checked = _class_rows(frame)
    if checked.problems:
        field, reason = checked.problems[0]
        raise ValueError(f"{field}: {reason}")
    value = float(checked.value.iat[0])
    if predicted_value is not None and (_number_problem(predicted_value)
                                        or abs(predicted_value - value) > PROBABILITY_TOLERANCE):
        raise ValueError(f"predicted_value: {_value_mismatch(predicted_value, value)}")
    return value, checked.labels.iat[0], checked.probabilities.iloc[0].to_dict()


def _single_prediction_row(model, predicted_value, features, *, prediction_id, model_version, predicted_label,
                           unit_id, served_at) -> dict[str, Any]:
    """The checked reserved fields of one prediction as stored columns (features are checked
    against the registry by the caller); raises ``ValueError`` naming the field."""
    if not isinstance(features, Mapping):  # checked first: the checks below iterate over it
        raise ValueError(f"features: must be a mapping of feature name to value, got {shown(features)}")
    served, served_problems = (None, {}) if served_at is None else _timestamps(pd.Series([served_at], dtype=object))
    for field, problem in (
        ("prediction_id", _text_problem(prediction_id, 128)),
        ("model", None if _valid_model(model) else f"{shown(model)} is not a valid model name"),
        ("model_version", _text_problem(model_version, 128)),
        ("predicted_value", _number_problem(predicted_value)),
        ("predicted_label", None if predicted_label is None else _label_problem(predicted_label)),
        ("unit_id", None if unit_id is None else _text_problem(str(unit_id), 256)),
        ("features", f"more than {MAX_FEATURES} features" if len(features) > MAX_FEATURES else None),
        *(("features", _key_problem(key)) for key in features),
        ("served_at", served_problems.get(0)),
    ):
        if problem:
            raise ValueError(f"{field}: {problem}")
    row = {"prediction_id": prediction_id, "model": model, "model_version": model_version,
           "predicted_value": float(predicted_value), "unit_id": None if unit_id is None else str(unit_id),
           "predicted_label": None if predicted_label is None else int(predicted_label)}
    if served is not None:
        row["served_at"] = served.iat[0].to_pydatetime()
    return row
