"""What every step shares: the run's settings and window, the store connection, storage paths, triggers."""

from __future__ import annotations

import abc
import functools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from ..settings import RUN_SETTINGS, RunSettings

FEEDBACK_CONN_ID = "feedback_db"
DB_POOL = "self_learning_db"
# Every task of the package's DAGs: retried with backoff, store work limited by one pool.
DEFAULT_ARGS = {"retries": 2, "retry_delay": timedelta(minutes=2), "retry_exponential_backoff": True, "pool": DB_POOL}
RETRAIN_DAG_ID = "self_learning_retrain"
ARTIFACT_ROOT_VARIABLE = "self_learning_artifact_root"
REPORT_ROOT_VARIABLE = "self_learning_report_root"


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
    params["models"] = params.get("models") or ()  # empty: every active model
    return RunSettings(window_end=end, interval_start=start,
                       **{k: v for k, v in params.items() if k in RUN_SETTINGS})


def run_interval(context: Mapping[str, Any], window_end: Any = None) -> tuple[datetime, datetime]:
    """The run's interval: one day ending at ``window_end`` if given, else the data interval, else
    (a manual run without a logical date) the last complete day before the run was queued. Plain
    ``datetime`` values in UTC (Airflow hands out pendulum instances)."""
    from ..core.types import as_utc  # at run time: the DAG files import this module at parse

    if window_end:
        try:
            end = as_utc(datetime.fromisoformat(str(window_end)))  # naive: UTC
        except ValueError:
            raise ValueError(f"params.window_end: not an ISO 8601 timestamp: {window_end!r}") from None
        if not datetime(1971, 1, 1, tzinfo=UTC) <= end <= datetime(9000, 1, 1, tzinfo=UTC):
            raise ValueError(f"params.window_end: {window_end!r} is outside the plausible range 1971..9000")
        return end - timedelta(days=1), end
    if context.get("data_interval_end") is not None and context["data_interval_end"] > context["data_interval_start"]:
        return as_utc(context["data_interval_start"]), as_utc(context["data_interval_end"])
    run_after = context["dag_run"].run_after.astimezone(UTC)
    end = run_after.replace(hour=0, minute=0, second=0, microsecond=0)
    return as_utc(end - timedelta(days=1)), as_utc(end)


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
