"""What every step shares: the run's settings and window, the store connection, storage paths, triggers."""

from __future__ import annotations

import abc
import dataclasses
import functools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

FEEDBACK_CONN_ID = "feedback_db"
DB_POOL = "self_learning_db"
# Every task of the package's DAGs: retried with backoff, store work limited by one pool.
DEFAULT_ARGS = {"retries": 2, "retry_delay": timedelta(minutes=2), "retry_exponential_backoff": True, "pool": DB_POOL}
RETRAIN_DAG_ID = "self_learning_retrain"
SEVERITIES = ("low", "medium", "high", "critical")

# Run settings a model may override through its registered ``thresholds``.
MODEL_OVERRIDABLE = ("alpha", "min_label_coverage", "alert_cooldown_days", "feature_drift_severity",
                     "concept_drift_severity", "max_mape", "max_log_loss", "min_roc_auc", "min_labelled_outcomes",
                     "retrain_cooldown_days")
# How a model is retrained: a trainer factory by dotted path (and the extra types its artifacts may
# hold, see lifecycle.load_artifact), or its own training DAG to trigger.
MODEL_RETRAIN_SETTINGS = ("trainer", "trainer_dag_id", "trusted_types")
# Read by the store itself: the cap on a model's registered feature keys.
MODEL_STORE_SETTINGS = ("max_features",)
ARTIFACT_ROOT_VARIABLE = "self_learning_artifact_root"
REPORT_ROOT_VARIABLE = "self_learning_report_root"


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """The validated params of one run, with the windows they define."""

    window_end: datetime
    interval_start: datetime
    current_window_days: int = 7
    reference_window_days: int = 30
    alpha: float = 0.05
    min_label_coverage: float = 0.8
    alert_cooldown_days: float = 3.0
    feature_drift_severity: str = "high"
    concept_drift_severity: str = "medium"
    max_mape: float | None = 30.0
    max_log_loss: float | None = None
    min_roc_auc: float | None = None
    min_labelled_outcomes: int = 100
    retrain_cooldown_days: float = 7.0
    notification_cooldown_days: float = 7.0
    models: tuple[str, ...] = ()

    def __post_init__(self):
        for name, low, high in (("current_window_days", 1, 366), ("reference_window_days", 1, 3660)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ValueError(f"params.{name}: must be an integer in {low}..{high}, got {value!r}")
        _check_number("alpha", self.alpha, 0.0, 0.5, inclusive=False)
        _check_number("min_label_coverage", self.min_label_coverage, 0.0, 1.0)
        _check_number("alert_cooldown_days", self.alert_cooldown_days, 0.0, 365.0)
        _check_number("retrain_cooldown_days", self.retrain_cooldown_days, 0.0, 365.0)
        _check_number("notification_cooldown_days", self.notification_cooldown_days, 0.0, 365.0)
        for name in ("feature_drift_severity", "concept_drift_severity"):
            if getattr(self, name) not in SEVERITIES:
                raise ValueError(f"params.{name}: must be one of {', '.join(SEVERITIES)}, got {getattr(self, name)!r}")
        for name, low, high in (("max_mape", 0.0, 1e6), ("max_log_loss", 0.0, 1e3), ("min_roc_auc", 0.0, 1.0)):
            if getattr(self, name) is not None:
                _check_number(name, getattr(self, name), low, high)
        if not isinstance(self.min_labelled_outcomes, int) or self.min_labelled_outcomes < 1:
            raise ValueError(
                f"params.min_labelled_outcomes: must be an integer >= 1, got {self.min_labelled_outcomes!r}")

    @property
    def current_start(self) -> datetime:
        return self.window_end - timedelta(days=self.current_window_days)

    @property
    def reference_start(self) -> datetime:
        return self.current_start - timedelta(days=self.reference_window_days)

    def for_model(self, thresholds: Mapping[str, Any]) -> RunSettings:
        """These settings with a model's registered threshold overrides applied."""
        unknown = sorted(set(thresholds) - set(MODEL_OVERRIDABLE + MODEL_RETRAIN_SETTINGS + MODEL_STORE_SETTINGS))
        if unknown:
            raise ValueError(f"thresholds: unknown keys {unknown}; a model may set "
                             f"{', '.join(MODEL_OVERRIDABLE + MODEL_RETRAIN_SETTINGS + MODEL_STORE_SETTINGS)}")
        return dataclasses.replace(self, **{k: v for k, v in thresholds.items() if k in MODEL_OVERRIDABLE})

    def retrain_thresholds(self):
        """The retrain decision's thresholds of these settings."""
        from ..retraining import RetrainThresholds

        return RetrainThresholds(
            feature_drift_severity=self.feature_drift_severity, concept_drift_severity=self.concept_drift_severity,
            max_mape=self.max_mape, max_log_loss=self.max_log_loss, min_roc_auc=self.min_roc_auc,
            min_labelled_outcomes=self.min_labelled_outcomes)


def _check_number(name: str, value, low: float, high: float, *, inclusive: bool = True) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        low <= value <= high if inclusive else low < value < high)
    if not ok:
        bounds = f"[{low}, {high}]" if inclusive else f"({low}, {high})"
        raise ValueError(f"params.{name}: must be a number in {bounds}, got {value!r}")


class InvalidParams(AirflowFailException, ValueError):
    """A param or model setting that no retry can fix: the task fails at once (no retries with
    backoff), with the message naming the field. Still a ``ValueError`` for callers that check."""


def fails_at_once(settings_of):
    """Settings builders raise ``ValueError`` naming the field; turn it into :class:`InvalidParams`."""

    @functools.wraps(settings_of)
    def checked(context):
        try:
            return settings_of(context)
        except InvalidParams:
            raise
        except ValueError as error:
            raise InvalidParams(str(error)) from error

    return checked


@fails_at_once
def run_settings(context: Mapping[str, Any]) -> RunSettings:
    """Validated settings of the running DAG run (see the module docstring for the window)."""
    params = dict(context.get("params") or {})
    start, end = run_interval(context, params.pop("window_end", None))
    known = {f.name for f in dataclasses.fields(RunSettings)} - {"window_end", "interval_start"}
    models = params.pop("models", None) or ()
    if isinstance(models, str) or not all(isinstance(m, str) for m in models):
        raise ValueError(f"params.models: must be a list of model names, got {models!r}")
    return RunSettings(window_end=_utc(end), interval_start=_utc(start), models=tuple(models),
                       **{k: v for k, v in params.items() if k in known})


def run_interval(context: Mapping[str, Any], window_end: Any = None) -> tuple[datetime, datetime]:
    """The run's interval: one day ending at ``window_end`` if given, else the data interval, else
    (a manual run without a logical date) the last complete day before the run was queued."""
    if window_end:
        try:
            end = datetime.fromisoformat(str(window_end))
        except ValueError:
            raise ValueError(f"params.window_end: not an ISO 8601 timestamp: {window_end!r}") from None
        end = end.replace(tzinfo=UTC) if end.tzinfo is None else end.astimezone(UTC)
        if not datetime(1971, 1, 1, tzinfo=UTC) <= end <= datetime(9000, 1, 1, tzinfo=UTC):
            raise ValueError(f"params.window_end: {window_end!r} is outside the plausible range 1971..9000")
        return end - timedelta(days=1), end
    if context.get("data_interval_end") is not None and context["data_interval_end"] > context["data_interval_start"]:
        return _utc(context["data_interval_start"]), _utc(context["data_interval_end"])
    run_after = context["dag_run"].run_after.astimezone(UTC)
    end = run_after.replace(hour=0, minute=0, second=0, microsecond=0)
    return _utc(end - timedelta(days=1)), _utc(end)


def _utc(value: datetime) -> datetime:
    """A plain ``datetime`` in UTC (Airflow hands out pendulum instances)."""
    return datetime.fromtimestamp(value.timestamp(), tz=UTC)


class FeedbackStoreOperator(BaseOperator):
    """Base of the steps: the feedback-store connection and the run's settings."""

    def __init__(self, *, feedback_conn_id: str = FEEDBACK_CONN_ID, **kwargs):
        super().__init__(**kwargs)
        self.feedback_conn_id = feedback_conn_id

    def store(self):
        from ..hooks import FeedbackStoreHook

        return FeedbackStoreHook(self.feedback_conn_id).get_store()


class EnsureSchemaOperator(FeedbackStoreOperator):
    """Create or upgrade the feedback-store schema (idempotent); returns the revision."""

    def execute(self, context):
        revision = self.store().ensure_schema()
        self.log.info("feedback store at schema revision %s", revision)
        return revision


class ModelStepOperator(FeedbackStoreOperator):
    """A per-model step (mapped over the models); ``model`` is templated."""

    template_fields: Sequence[str] = ("model",)

    def __init__(self, *, model: str, **kwargs):
        kwargs.setdefault("map_index_template", "{{ task.model }}")  # the UI lists mapped runs by model
        super().__init__(**kwargs)
        self.model = model

    def execute(self, context):
        store = self.store()
        spec = store.get_model(self.model)
        settings = run_settings(context).for_model(spec.thresholds)
        return self.run(store, spec, settings)

    @abc.abstractmethod
    def run(self, store, spec, settings: RunSettings) -> Any:
        """The step for one model: read, compute, write; returns a small summary for XCom."""


def storage_path(root: str | None, variable: str, default_folder: str, conn_id: str | None, *parts: str):
    """An ``ObjectStoragePath`` under ``root``, else the Variable's value, else
    ``file://$AIRFLOW_HOME/self_learning/<default_folder>``; ``conn_id`` holds the storage's credentials."""
    import os

    from airflow.sdk import ObjectStoragePath, Variable

    root = root or Variable.get(variable, default=None) or \
        f"file://{os.environ.get('AIRFLOW_HOME', os.path.expanduser('~/airflow'))}/self_learning/{default_folder}"
    path = ObjectStoragePath(root, conn_id=conn_id or None)
    for part in parts:
        path = path / part
    return path


def trigger_once(dag_id: str, run_id: str, conf: Mapping[str, Any]):
    """The task SDK's exception that triggers ``dag_id`` (as Airflow 3's ``TriggerDagRunOperator``
    does), without waiting, skipping when a run with this id already exists: retries and re-runs
    never start a second one."""
    from airflow.sdk.exceptions import DagRunTriggerException

    return DagRunTriggerException(
        trigger_dag_id=dag_id, dag_run_id=run_id, conf=dict(conf), logical_date=None, reset_dag_run=False,
        skip_when_already_exists=True, wait_for_completion=False, allowed_states=["success"],
        failed_states=["failed"], poke_interval=60, deferrable=False)


def _run_id(prefix: str, key: str) -> str:
    """A DAG run id from a request id, in Airflow's run id alphabet."""
    return prefix + "".join(c if c.isascii() and (c.isalnum() or c in "_.~:+-") else "_" for c in key)
