"""The retrain DAG's steps: claim the request, train and judge a candidate, start its A/B test, close the request."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from ..settings import AB_PARAMS, MODEL_AB_SETTINGS, RETRAIN_SETTINGS, RetrainSettings
from .common import (
    ARTIFACT_ROOT_VARIABLE,
    FeedbackStoreOperator,
    InvalidParams,
    _run_id,
    fails_at_once,
    run_interval,
    storage_path,
    trigger_once,
)


@fails_at_once
def retrain_settings(context: Mapping[str, Any]) -> RetrainSettings:
    """Settings of the running retrain run: triggered by the daily run (its conf names the model,
    request and window) or by hand (a request id is made from the run id)."""
    params = dict(context.get("params") or {})
    _, end = run_interval(context, params.get("window_end"))
    model = params.get("model")
    request_id = params.get("request_id") or f"{model}@manual:{context['dag_run'].run_id}"
    values = {name: params[name] for name in RETRAIN_SETTINGS if params.get(name) is not None}
    values.update(model=model, reason=params.get("reason") or RETRAIN_SETTINGS["reason"].default)
    return RetrainSettings(
        **values, window_end=end, request_id=request_id[:256],
        ab_test={field: params[name] for name, field in AB_PARAMS.items() if params.get(name) is not None})


class RetrainStepOperator(FeedbackStoreOperator):
    """A step of the retrain DAG: the model's spec and the run's validated settings."""

    def execute(self, context):
        settings = retrain_settings(context)
        store = self.store()
        try:
            spec = store.get_model(settings.model)
        except KeyError:
            known = sorted(s.name for s in store.list_models(active_only=False))
            raise InvalidParams(f"params.model: {settings.model!r} is not registered; registered models: {known}") \
                from None
        return self.run(store, spec, settings, context)

    @abc.abstractmethod
    def run(self, store, spec, settings: RetrainSettings, context) -> Any:
        """The step; returns a small summary for XCom."""


class ClaimRetrainRequestOperator(RetrainStepOperator):
    """Mark the retrain request running (recording it first for a manual run)."""

    def run(self, store, spec, settings, context):
        row = store.claim_retrain_request(settings.request_id, model=spec.name, reasons=[settings.reason],
                                          window_end=settings.window_end)
        self.log.info("retrain request %s for %s: %s (window ending %s)", row.request_id, spec.name,
                      "; ".join(row.reasons), settings.window_end)
        return {"request_id": settings.request_id, "model": spec.name, "window_end": settings.window_end.isoformat(),
                "trainer_dag_id": spec.thresholds.get("trainer_dag_id")}


class DelegateTrainingOperator(RetrainStepOperator):
    """For a model that names its own training DAG (``trainer_dag_id``): trigger it with the request
    (model, request id, window) and let it register the version; skips otherwise."""

    def run(self, store, spec, settings, context):
        dag_id = spec.thresholds.get("trainer_dag_id")
        if not dag_id:
            raise AirflowSkipException(f"{spec.name} is trained here (no trainer_dag_id)")
        conf = {"model": spec.name, "request_id": settings.request_id, "reason": settings.reason,
                "window_end": settings.window_end.isoformat(), "training_window_days": settings.training_window_days}
        self.log.info("delegating the training of %s to DAG %s", spec.name, dag_id)
        raise trigger_once(dag_id, _run_id("retrain__", settings.request_id), conf)


ALLOW_PICKLE_VARIABLE = "self_learning_allow_pickle_artifacts"


def artifact_storage(artifact_root: str | None, artifact_conn_id: str | None):
    """The artifact root (``ObjectStoragePath``): ``artifact_root``, else the Variable
    ``self_learning_artifact_root``, else ``file://$AIRFLOW_HOME/self_learning/artifacts``."""
    return storage_path(artifact_root, ARTIFACT_ROOT_VARIABLE, "artifacts", artifact_conn_id)


@contextlib.contextmanager
def refused_artifacts_fail_at_once():
    """An artifact refused by ``lifecycle`` (outside the root, a pickle without the opt-in, untrusted
    types) fails the task at once: a retry would read the same registry row and file."""
    from ..loop.lifecycle import UntrustedArtifact

    try:
        yield
    except UntrustedArtifact as error:
        raise AirflowFailException(str(error)) from error


def pickle_artifacts_allowed(allow_pickle: bool | None) -> bool:
    """``allow_pickle`` when given, else the Variable ``self_learning_allow_pickle_artifacts``
    (``true`` to load the pickled artifacts of versions trained before skops; unsafe wherever
    anyone but this pipeline can write under the artifact root). Off by default."""
    if allow_pickle is not None:
        return bool(allow_pickle)
    from airflow.sdk import Variable

    return str(Variable.get(ALLOW_PICKLE_VARIABLE, default="false")).strip().lower() in ("true", "1", "yes")


NOT_TRAINED = "not_trained"  # a train step's status when the window cannot give a candidate


class TrainCandidateOperator(RetrainStepOperator):
    """Train a candidate on the labelled window, judge it against the champion on the same
    time-based holdout, write its artifact and register the version: ``challenger`` when it beats
    the champion by the margin, ``rejected`` (with the numbers) otherwise. A window that cannot
    give a candidate (``training.NotTrainable``: too few rows, a multiclass window of one class)
    registers nothing and returns status ``not_trained`` with the reason; the request is then
    closed ``done`` without a version, the reason in its detail (a data condition, not a failed run).

    The artifact goes to ``<artifact_root>/<model>/<version>/model.skops`` through Airflow's
    ``ObjectStoragePath`` (see ``artifact_storage``); ``artifact_conn_id`` names an Airflow
    connection with the storage's credentials. The champion's artifact is loaded from under that
    root only, never from a pickle unless ``allow_pickle`` (see ``pickle_artifacts_allowed``)."""

    template_fields: Sequence[str] = ("artifact_root", "artifact_conn_id")

    def __init__(self, *, artifact_root: str | None = None, artifact_conn_id: str | None = None,
                 allow_pickle: bool | None = None, **kwargs):
        super().__init__(**kwargs)
        self.artifact_root = artifact_root
        self.artifact_conn_id = artifact_conn_id
        self.allow_pickle = allow_pickle

    def run(self, store, spec, settings, context):
        from ..core.training import NotTrainable
        from ..loop.lifecycle import ARTIFACT_FILE, train_candidate
        from ..loop.locations import uri_under_root

        if spec.thresholds.get("trainer_dag_id"):
            raise AirflowSkipException(f"{spec.name} is trained by DAG {spec.thresholds['trainer_dag_id']}")
        root = artifact_storage(self.artifact_root, self.artifact_conn_id)
        try:
            with refused_artifacts_fail_at_once():
                candidate = train_candidate(store, spec.name, window_end=settings.window_end, artifact_root=str(root),
                                            training_window_days=settings.training_window_days,
                                            holdout_share=settings.holdout_share, margin=settings.margin,
                                            trainer=spec.thresholds.get("trainer"),
                                            allow_pickle=pickle_artifacts_allowed(self.allow_pickle))
        except NotTrainable as error:  # the window's data, not the run: the request closes with the reason
            self.log.warning("%s: no candidate trained: %s", spec.name, error)
            return {"model": spec.name, "version": None, "status": NOT_TRAINED, "accept": False,
                    "verdict": f"no candidate trained: {error}"}
        path = root / spec.name / candidate.version / ARTIFACT_FILE
        artifact_uri = uri_under_root("artifact_uri", str(path), str(root))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(candidate.artifact)
        status = "challenger" if candidate.verdict.accept else "rejected"
        store.register_version(spec.name, candidate.version, status=status, artifact_uri=artifact_uri,
                               training_window=candidate.training_window, metrics=candidate.metrics(),
                               created_by=f"{context['dag'].dag_id}/{context['dag_run'].run_id}")
        log = self.log.info if candidate.verdict.accept else self.log.warning
        log("%s %s registered as %s (%d training rows, %d holdout rows from %s): %s%s", spec.name, candidate.version,
            status, candidate.training_rows, candidate.holdout_rows, candidate.holdout_start,
            candidate.verdict.reason, "".join(f"; {note}" for note in candidate.notes))
        return {"model": spec.name, "version": candidate.version, "status": status,
                "accept": candidate.verdict.accept, "verdict": candidate.verdict.reason,
                "metric": candidate.verdict.metric, "candidate": candidate.verdict.candidate,
                "champion": candidate.verdict.champion, "champion_source": candidate.champion_source,
                "artifact_uri": artifact_uri, "notes": list(candidate.notes)}


class StartABTestOperator(RetrainStepOperator):
    """Start champion vs challenger for an accepted candidate (the A/B params of the run, over the
    model's ``ab_primary_metric`` / ``ab_guardrails`` settings) with its plan; skips, saying why,
    for a rejected one. Before the first promotion the version serving most of the window is
    registered as the champion. The result shows the plan, and warns when its expected duration
    exceeds the maximum."""

    template_fields: Sequence[str] = ("candidate",)

    def __init__(self, *, candidate: Any, **kwargs):
        super().__init__(**kwargs)
        self.candidate = candidate

    def run(self, store, spec, settings, context):
        from ..core.ab import ABTestConfig
        from ..loop.lifecycle import ab_test_model_versions, judged_on, served_champion

        if not self.candidate or not self.candidate.get("accept"):
            raise AirflowSkipException(f"no A/B test: {(self.candidate or {}).get('verdict', 'no candidate')}")
        values = {name.removeprefix("ab_"): spec.thresholds[name] for name in MODEL_AB_SETTINGS
                  if spec.thresholds.get(name) is not None}
        try:
            config = ABTestConfig(**{**values, **settings.ab_test})
            judged_on(spec.task_kind, config)  # a metric the model's task kind has not
        except ValueError as error:
            raise InvalidParams(f"params.ab_{error}") from None
        start = settings.window_end - timedelta(days=settings.training_window_days)
        champion = served_champion(store, spec.name, start=start, end=settings.window_end)
        test = ab_test_model_versions(store, spec.name, champion, self.candidate["version"],
                                      started_at=settings.window_end, config=config)
        self.log.info("A/B test %s: %s (champion) vs %s (challenger), challenger share %s, unit %s; %s",
                      test.test_id, test.champion_version, test.challenger_version, test.config["traffic_split"],
                      test.config["unit"], test.config.get("plan_summary"))
        if (test.config.get("plan") or {}).get("exceeds_max_days"):
            self.log.warning("A/B test %s: %s", test.test_id, test.config["plan_summary"])
        return {"test_id": test.test_id, "champion_version": test.champion_version,
                "challenger_version": test.challenger_version, "status": test.status,
                "plan": test.config.get("plan"), "plan_summary": test.config.get("plan_summary")}


class FinishRetrainRequestOperator(RetrainStepOperator):
    """Close the request whatever happened upstream: ``done`` with the version (and the A/B test it
    started), ``delegated`` to the model's own training DAG, or ``failed``."""

    template_fields: Sequence[str] = ("candidate", "ab_test")

    def __init__(self, *, candidate: Any, ab_test: Any, **kwargs):
        super().__init__(**kwargs)
        self.candidate, self.ab_test = candidate, ab_test

    def run(self, store, spec, settings, context):
        candidate = self.candidate or None
        if spec.thresholds.get("trainer_dag_id"):
            status, version, detail = "delegated", None, {"trainer_dag_id": spec.thresholds["trainer_dag_id"]}
        elif candidate is None:
            status, version, detail = "failed", None, {"error": "train_candidate did not finish; see its log"}
        elif candidate["accept"] and not self.ab_test:
            status, version, detail = "failed", candidate["version"], {
                **candidate, "error": "start_ab_test did not finish; see its log"}
        else:
            status, version, detail = "done", candidate["version"], {**candidate, "ab_test": self.ab_test or None}
        store.finish_retrain_request(settings.request_id, status=status, result_version=version, detail=detail)
        self.log.info("retrain request %s: %s (version %s)", settings.request_id, status, version)
        if status == "failed":
            raise AirflowException(f"retrain request {settings.request_id} failed: {detail['error']}")
        return {"request_id": settings.request_id, "status": status, "version": version}
