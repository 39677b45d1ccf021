"""Domain types shared by the statistics, the store and the operators (``self_learning.domain``
re-exports them): the one severity list, the one UTC helper, the result base class.

Models are data, not code: ``ModelType`` lists the four default models, but every
function takes a plain model-name string, so any registered model works.
Results are small dataclasses whose ``to_dict()`` is JSON-serialisable (NaN/inf
become ``None``, enums their values, numpy scalars Python numbers).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import reprlib
import typing
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

FEATURE_THREADS = 2  # per-feature statistics (sorts, binning) release the GIL: use both cores of a small worker
# Checked with fullmatch: "$" also matches before a trailing newline, which let "m\n" pass as a second
# model that prints exactly like "m".
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
FEATURE_KINDS = ("numeric", "categorical")
# The retrain decision's defaults, written once: the daily DAG's form (``settings``) and
# ``retraining.RetrainThresholds`` both read them.
RETRAIN_DEFAULTS: dict[str, Any] = {"feature_drift_severity": "high", "concept_drift_severity": "medium",
                                    "performance_degradation_severity": "medium", "max_mape": 30.0,
                                    "max_log_loss": None, "min_roc_auc": None,
                                    "min_labelled_outcomes": 100}
# How an A/B test may randomise: every prediction on its own, or whole campaigns / accounts.
RANDOMISATION_UNITS = ("prediction", "campaign", "account")
DEFAULT_MAX_FEATURES = 500  # registered feature keys per model unless its thresholds set ``max_features``
MAX_FEATURES_CEILING = 5_000  # the most a model may set: every drift run tests each registered feature
# A multiclass model's class list: every served row stores one probability per class, and every
# report shows a k x k confusion matrix; past a few hundred classes the task is a ranking one.
MAX_CLASSES = 500
MAX_CLASS_LABEL = 128  # characters of one class label (a label is stored with every labelled row)


class TaskKind(enum.StrEnum):
    REGRESSION = "regression"
    BINARY_CLASSIFICATION = "binary_classification"
    MULTICLASS_CLASSIFICATION = "multiclass_classification"


def parse_task_kind(value: TaskKind | str, field: str = "task_kind") -> TaskKind:
    """``value`` as a ``TaskKind``; an unknown kind is refused naming ``field`` and listing the valid
    kinds (the enum's own error, "'multiclass' is not a valid TaskKind", listed none)."""
    try:
        return TaskKind(value)
    except ValueError:
        raise ValueError(f"{field}: {shown(value)} is not a valid task kind; "
                         f"valid: {[kind.value for kind in TaskKind]}") from None


class ModelType(enum.StrEnum):
    """The default models; any other valid model name is accepted wherever a model is named."""

    ROAS_PREDICTOR = "roas_predictor"
    HOOK_CLASSIFIER = "hook_classifier"
    VISUAL_PATTERN = "visual_pattern"
    CTR_PREDICTOR = "ctr_predictor"


class DriftType(enum.StrEnum):
    DATA_DRIFT = "data_drift"
    CONCEPT_DRIFT = "concept_drift"
    PREDICTION_DRIFT = "prediction_drift"
    PERFORMANCE_DEGRADATION = "performance_degradation"
    MULTIVARIATE_DRIFT = "multivariate_drift"  # how the features move together (``core.drift.multivariate``)


class Severity(enum.StrEnum):
    """Ordered severities; ``Severity.rank`` makes them comparable."""

    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_ORDER.index(self)

    @classmethod
    def worst(cls, severities) -> Severity:
        return max(severities, key=lambda s: s.rank, default=cls.NONE)

    def at_least(self, other: Severity | str) -> bool:
        return self.rank >= Severity(other).rank


_SEVERITY_ORDER = list(Severity)
# The one list of severity names, least severe first: the store's CHECK constraint, the settings'
# choices, the page and the reports import it instead of spelling the five names again.
SEVERITY_NAMES: tuple[str, ...] = tuple(s.value for s in Severity)
ALERT_SEVERITY_NAMES: tuple[str, ...] = SEVERITY_NAMES[1:]  # an alert is at least "low"


class Status(enum.StrEnum):
    """Whether a statistic could be computed; anything but OK carries a reason."""

    OK = "ok"
    INSUFFICIENT_DATA = "insufficient_data"
    INVALID = "invalid"


@dataclasses.dataclass(frozen=True)
class SeverityLadder:
    """Cut-offs at which an effect size becomes low / medium / high / critical."""

    low: float
    medium: float
    high: float
    critical: float

    def __post_init__(self):
        cuts = [self.low, self.medium, self.high, self.critical]
        if any(not math.isfinite(c) or c < 0 for c in cuts) or cuts != sorted(cuts):
            raise ValueError(f"severity cut-offs must be finite, >= 0 and increasing, got {cuts}")

    def rate(self, value: float | None) -> Severity:
        if value is None or not math.isfinite(value):
            return Severity.NONE if value is None or math.isnan(value) else Severity.CRITICAL
        for severity, cut in (
            (Severity.CRITICAL, self.critical),
            (Severity.HIGH, self.high),
            (Severity.MEDIUM, self.medium),
            (Severity.LOW, self.low),
        ):
            if value >= cut:
                return severity
        return Severity.NONE


def model_name(model: ModelType | str) -> str:
    """Validate a model name (a ``ModelType`` or any string of letters, digits, ``_.-``)."""
    name = model.value if isinstance(model, ModelType) else model
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
        raise ValueError(
            f"model: {shown(name)} is not a valid model name "
            "(1-128 characters: letters, digits, '_', '.', '-'; starting with a letter or digit)"
        )
    return name


_SHORT_REPR = reprlib.Repr()  # Python 3.11: no keyword arguments yet
_SHORT_REPR.maxstring = _SHORT_REPR.maxother = 80
_SHORT_REPR.maxdict = _SHORT_REPR.maxlist = _SHORT_REPR.maxtuple = _SHORT_REPR.maxset = 4


def shown(value: Any) -> str:
    """``repr(value)`` cut to about 80 characters, for error messages: a rejected 1 MB value
    must not make a 1 MB reason (reasons are stored in ``ingest_rejects``)."""
    return _SHORT_REPR.repr(value)


def feature_cap(thresholds: Mapping[str, Any]) -> int:
    """How many feature keys a model may register: its ``thresholds["max_features"]`` (an integer
    in 1..MAX_FEATURES_CEILING) or DEFAULT_MAX_FEATURES. Without a cap, six batches of new keys
    registered 3,000 features; every later row was padded to that width and every drift run
    tested all of them."""
    cap = thresholds.get("max_features", DEFAULT_MAX_FEATURES)
    if isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= MAX_FEATURES_CEILING:
        raise ValueError(f"thresholds.max_features: must be an integer in 1..{MAX_FEATURES_CEILING}, got {shown(cap)}")
    return cap


def as_utc(value: datetime) -> datetime:
    """A plain ``datetime`` in UTC, the package's one conversion: a naive value is taken as UTC
    (SQLite hands stored timestamps back without a zone), an aware one is converted, and a
    subclass (Airflow's pendulum instances, ``pandas.Timestamp``) becomes a plain ``datetime`` so
    results compare, hash and serialise alike wherever they came from."""
    if not isinstance(value, datetime):
        raise ValueError(f"value: expected a datetime, got {shown(value)}")
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime.combine(aware.date(), aware.time(), tzinfo=UTC)


def to_jsonable(value: Any) -> Any:
    """Convert results to plain JSON types; non-finite floats become None."""
    import numpy as np  # here, not at the top: the DAG files' settings import this module at parse time

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class Result:
    """Mixin for result dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        """Rebuild a result from its ``to_dict()`` form (e.g. stored JSON); other keys are ignored."""
        hints = typing.get_type_hints(cls)
        return cls(**{f.name: _from_jsonable(hints[f.name], data[f.name])
                      for f in dataclasses.fields(cls) if f.name in data})


def _from_jsonable(hint, value):
    if value is None:
        return None
    for option in typing.get_args(hint) or (hint,):
        if isinstance(option, type) and issubclass(option, enum.Enum):
            return option(value)
        if option is datetime:
            return datetime.fromisoformat(value)
    return tuple(value) if typing.get_origin(hint) is tuple else value


@dataclasses.dataclass(frozen=True)
class ModelSpec(Result):
    """A registered model: its name, task kind and the features it is served with.

    ``feature_schema`` declares feature kinds ("numeric" or "categorical"); declared kinds are
    authoritative: they are registered with the model, before any data, and a value of the other
    kind is refused naming the feature. Undeclared features get their kind from the data (see
    ``store.rows``). ``thresholds["max_features"]`` caps the model's registered features
    (default ``DEFAULT_MAX_FEATURES``); the declared features count towards it. The model's feature
    keys are closed by its first stored prediction (``store.features``) unless
    ``thresholds["extend_features"]`` is true.

    ``classes``: a ``multiclass_classification`` model's class list (``class_list``), required for
    it and refused for the other kinds; its order is the order of the probability columns.
    ``extend_classes`` appends a class first served later.
    """

    name: str
    task_kind: TaskKind
    feature_schema: Mapping[str, str] = dataclasses.field(default_factory=dict)
    thresholds: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    classes: tuple[str, ...] | None = None

    def __post_init__(self):
        object.__setattr__(self, "name", model_name(self.name))
        object.__setattr__(self, "task_kind", parse_task_kind(self.task_kind))
        if self.task_kind is TaskKind.MULTICLASS_CLASSIFICATION:
            if self.classes is None:
                raise ValueError("classes: a multiclass_classification model needs its class list")
            object.__setattr__(self, "classes", class_list(self.classes))
        elif self.classes is not None:
            raise ValueError(f"classes: only multiclass_classification models have a class list, "
                             f"not {self.task_kind.value} ones")
        for feature, kind in self.feature_schema.items():
            if not isinstance(feature, str) or not feature:
                raise ValueError(f"feature_schema: feature names must be non-empty strings, got {shown(feature)}")
            if kind not in FEATURE_KINDS:
                raise ValueError(
                    f"feature_schema[{shown(feature)}]: kind must be 'numeric' or 'categorical', got {shown(kind)}"
                )
        if not isinstance(self.thresholds.get("extend_features", False), bool):
            raise ValueError("thresholds.extend_features: must be true or false, got "
                             f"{shown(self.thresholds['extend_features'])}")
        cap = feature_cap(self.thresholds)
        if len(self.feature_schema) > cap:
            raise ValueError(f"feature_schema: declares {len(self.feature_schema)} features, more than the model's "
                             f"cap of {cap} (thresholds.max_features)")

    @property
    def max_features(self) -> int:
        return feature_cap(self.thresholds)


def class_list(classes, field: str = "classes") -> tuple[str, ...]:
    """A multiclass model's class list, checked: 2..MAX_CLASSES distinct non-empty strings of at most
    MAX_CLASS_LABEL characters, in the model's order (the order of its probability columns)."""
    if isinstance(classes, (str, bytes)) or not isinstance(classes, (list, tuple)):
        raise ValueError(f"{field}: expected a list of class labels, got {shown(classes)}")
    for label in classes:
        if not isinstance(label, str) or not label or len(label) > MAX_CLASS_LABEL:
            raise ValueError(f"{field}: class labels must be non-empty strings of at most {MAX_CLASS_LABEL} "
                             f"characters, got {shown(label)}")
    duplicated = sorted({label for label in classes if classes.count(label) > 1})
    if duplicated:
        raise ValueError(f"{field}: duplicated class labels {shown(duplicated)}")
    if not 2 <= len(classes) <= MAX_CLASSES:
        raise ValueError(f"{field}: a multiclass model needs 2 to {MAX_CLASSES} classes, got {len(classes)}")
    return tuple(classes)


def extend_classes(classes, served, *, model: str | None = None) -> tuple[tuple[str, ...], str | None]:
    """The class list with the classes first ``served`` (labels outside ``classes``) appended in the
    order they were served, and a warning naming them (None when nothing is new).

    Appending keeps every earlier probability column where it was: a window stored before the
    extension reads as giving the new classes probability 0. Pure: the caller stores the new list
    and logs or alerts the warning."""
    known = class_list(classes)
    if isinstance(served, (str, bytes)):
        served = [served]
    new = [label for label in dict.fromkeys(served) if label not in known]
    if not new:
        return known, None
    extended = class_list([*known, *new])
    owner = f"model {model!r}" if model else "the model"
    return extended, (f"{owner} served {len(new)} class(es) outside its class list: {shown(new)}; the list is "
                      f"extended to {len(extended)} classes (earlier rows read as probability 0 for them)")


DEFAULT_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(ModelType.ROAS_PREDICTOR.value, TaskKind.REGRESSION),
    ModelSpec(ModelType.HOOK_CLASSIFIER.value, TaskKind.BINARY_CLASSIFICATION),
    ModelSpec(ModelType.VISUAL_PATTERN.value, TaskKind.BINARY_CLASSIFICATION),
    ModelSpec(ModelType.CTR_PREDICTOR.value, TaskKind.REGRESSION),
)


@dataclasses.dataclass(frozen=True)
class PredictionOutcome(Result):
    """One prediction joined with its real outcome; ``error`` is predicted - actual."""

    prediction_id: str
    model_type: str
    predicted_value: float
    actual_value: float
    features: Mapping[str, Any]
    timestamp: datetime
    model_version: str | None = None

    @property
    def error(self) -> float:
        return self.predicted_value - self.actual_value

    @property
    def error_percentage(self) -> float | None:
        """|error| / |actual| in percent; None where the actual value is 0."""
        if self.actual_value == 0:
            return None
        return abs(self.error) / abs(self.actual_value) * 100.0

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "error": self.error, "error_percentage": self.error_percentage}


@dataclasses.dataclass(frozen=True)
class DriftReport(Result):
    """A drift finding of one kind for one model and window.

    ``statistical_tests`` holds the per-feature (or per-test) details; ``severity`` is the
    worst of them; ``status`` is ``insufficient_data`` when nothing could be tested.
    """

    drift_type: DriftType
    severity: Severity
    affected_features: list[str]
    statistical_tests: dict[str, Any]
    recommendation: str
    status: Status = Status.OK
    detected_at: datetime | None = None

    @property
    def drift_detected(self) -> bool:
        return self.severity is not Severity.NONE
