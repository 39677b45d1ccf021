"""Airflow operators of the feedback loop: thin steps that read a window from the store, call the
statistics and write the results.

Windows come only from the run: the ``window_end`` param if given, else the run's data interval
end, else (a manual run without a logical date) its ``run_after`` floored to midnight UTC - never
from the clock at execution time. Every write is an upsert on a natural key, so a re-run of an
interval leaves exactly one row per result, and XCom carries only small summaries.

The DAG files import this module at parse time, so it imports Airflow only; the store (pandas,
SQLAlchemy) and the statistics (scipy, scikit-learn) are imported when a task runs.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseHook, BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowSkipException

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
# How a model is retrained: a trainer factory by dotted path, or its own training DAG to trigger.
MODEL_RETRAIN_SETTINGS = ("trainer", "trainer_dag_id")
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
        unknown = sorted(set(thresholds) - set(MODEL_OVERRIDABLE) - set(MODEL_RETRAIN_SETTINGS))
        if unknown:
            raise ValueError(f"thresholds: unknown keys {unknown}; a model may set "
                             f"{', '.join(MODEL_OVERRIDABLE + MODEL_RETRAIN_SETTINGS)}")
        return dataclasses.replace(self, **{k: v for k, v in thresholds.items() if k in MODEL_OVERRIDABLE})

    def retrain_thresholds(self):
        """The retrain decision's thresholds of these settings."""
        from .retraining import RetrainThresholds

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
        from .hooks import FeedbackStoreHook

        return FeedbackStoreHook(self.feedback_conn_id).get_store()


class EnsureSchemaOperator(FeedbackStoreOperator):
    """Create or upgrade the feedback-store schema (idempotent); returns the revision."""

    def execute(self, context):
        revision = self.store().ensure_schema()
        self.log.info("feedback store at schema revision %s", revision)
        return revision


class PullOutcomesOperator(FeedbackStoreOperator):
    """Pull the outcomes that arrived during the run's interval and join them to predictions.

    Default source: the store's ``outcome_inbox`` (rows received in the interval). Any other
    source: ``source_sql`` on the Airflow connection ``source_conn_id``, returning
    ``prediction_id, actual_value[, observed_at]`` with ``:start`` and ``:end`` bound to the
    interval. Logs and returns matched / orphan / late counts.
    """

    template_fields: Sequence[str] = ("source_conn_id", "source_sql")

    def __init__(self, *, source_conn_id: str | None = None, source_sql: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.source_conn_id = source_conn_id
        self.source_sql = source_sql

    def execute(self, context):
        settings = run_settings(context)
        start, end = settings.interval_start, settings.window_end
        store = self.store()
        if self.source_sql:
            if not self.source_conn_id:
                raise ValueError("source_conn_id: required when source_sql is set")
            frame = self._query_source(start, end)
            source = f"connection {self.source_conn_id!r}"
        else:
            frame = store.read_outcome_inbox(start, end)
            source = "outcome_inbox"
        frame = frame.drop_duplicates("prediction_id", keep="last")  # the latest value of a corrected outcome
        report = store.record_outcomes(frame)
        counts = store.outcome_join_counts(frame["prediction_id"], served_before=start)
        summary = {"source": source, "interval_start": start.isoformat(), "interval_end": end.isoformat(),
                   "received": report.received, "recorded": report.inserted, "corrected": report.corrected,
                   "unchanged": report.unchanged, "rejected": len(report.rejected), **counts,
                   "orphans_waiting": store.count_orphan_outcomes()}
        self.log.info("outcomes %s..%s from %s: %d received, %d matched (%d late), %d orphan, %d corrected, "
                      "%d rejected", start, end, source, report.received, counts["matched"], counts["late"],
                      counts["orphan"], report.corrected, len(report.rejected))
        for error in report.rejected[:20]:
            self.log.warning("rejected outcome row %d (%s): %s %s", error.row, error.prediction_id, error.field,
                             error.reason)
        return summary

    def _query_source(self, start: datetime, end: datetime):
        import pandas as pd
        import sqlalchemy as sa

        hook = BaseHook.get_connection(self.source_conn_id).get_hook()
        with hook.get_sqlalchemy_engine().connect() as conn:
            frame = pd.read_sql(sa.text(self.source_sql), conn, params={"start": start, "end": end})
        missing = {"prediction_id", "actual_value"} - set(frame.columns)
        if missing:
            raise ValueError(f"source_sql: the query must return {sorted(missing)} (got {list(frame.columns)})")
        return frame


class SelectModelsOperator(FeedbackStoreOperator):
    """The models of this run: ``params.models`` or every active model. Returns their names."""

    def execute(self, context):
        settings = run_settings(context)
        if not settings.models:
            active = [spec.name for spec in self.store().list_models()]
            self.log.info("models: all %d active models: %s", len(active), ", ".join(active))
            return active
        known = {spec.name for spec in self.store().list_models(active_only=False)}
        unknown = [m for m in settings.models if m not in known]
        if unknown:
            raise ValueError(f"params.models: not registered: {unknown}; registered models: {sorted(known)}")
        return list(dict.fromkeys(settings.models))


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


class PerformanceOperator(ModelStepOperator):
    """Metrics of the current window, per served version and over all versions, with label
    coverage; provisional below ``min_label_coverage``."""

    def run(self, store, spec, settings):
        from .performance import compute_performance
        from .store import ALL_VERSIONS

        start, end = settings.current_start, settings.window_end
        window = store.read_window(spec.name, start, end, features=False)
        served_per_version = store.count_predictions_by_version(spec.name, start, end)
        summary = {}
        versions = [(ALL_VERSIONS, None), *((v, v) for v in sorted(window["model_version"].unique()))]
        for label, version in versions:
            rows = window if version is None else window[window["model_version"] == version]
            served = sum(served_per_version.values()) if version is None else served_per_version.get(version, 0)
            performance = compute_performance(
                spec.task_kind, rows["actual_value"], rows["predicted_value"], n_predicted=served,
                min_label_coverage=settings.min_label_coverage, model_type=spec.name, model_version=label)
            metrics = {m: getattr(performance, m) for m in ("mae", "rmse", "r2", "mape", "wape", "roc_auc", "log_loss")}
            store.save_result("performance_snapshots", model=spec.name, model_version=label, window_start=start,
                              window_end=end, kind="performance", result=performance,
                              sample_count=performance.sample_count, label_coverage=performance.label_coverage,
                              provisional=performance.provisional, **metrics)
            summary[label] = {"status": performance.status.value, "sample_count": performance.sample_count,
                              "label_coverage": performance.label_coverage, "provisional": performance.provisional,
                              **{k: v for k, v in metrics.items() if v is not None}}
            self.log.info("%s %s: %s", spec.name, label, summary[label])
        return summary


class DriftOperator(ModelStepOperator):
    """Feature, prediction and concept drift of the current vs the reference window."""

    def run(self, store, spec, settings):
        from .drift import DriftThresholds, detect_concept_drift, detect_feature_drift, detect_prediction_drift
        from .store import ALL_VERSIONS

        registry = store.feature_registry(spec.name)
        kinds = {key: kind for key, (kind, _) in registry.items()}
        reference = store.read_window(spec.name, settings.reference_start, settings.current_start, labelled_only=False)
        current = store.read_window(spec.name, settings.current_start, settings.window_end, labelled_only=False)
        thresholds = DriftThresholds(alpha=settings.alpha)
        detected_at = settings.window_end
        ref_labelled = reference[reference["actual_value"].notna()]
        cur_labelled = current[current["actual_value"].notna()]
        reports = {
            "feature_drift": detect_feature_drift(reference[list(kinds)], current[list(kinds)], feature_kinds=kinds,
                                                  thresholds=thresholds, detected_at=detected_at),
            "prediction_drift": detect_prediction_drift(reference["predicted_value"], current["predicted_value"],
                                                        thresholds=thresholds, detected_at=detected_at),
            "concept_drift": detect_concept_drift(
                ref_labelled["actual_value"], ref_labelled["predicted_value"], cur_labelled["actual_value"],
                cur_labelled["predicted_value"], task_kind=spec.task_kind, alpha=settings.alpha,
                min_samples=thresholds.min_samples, detected_at=detected_at),
        }
        summary = {"reference_rows": len(reference), "current_rows": len(current)}
        for kind, report in reports.items():
            store.save_result("drift_reports", model=spec.name, model_version=ALL_VERSIONS,
                              window_start=settings.current_start, window_end=settings.window_end, kind=kind,
                              result=report, severity=report.severity.value, status=report.status.value,
                              affected_features=report.affected_features)
            summary[kind] = {"severity": report.severity.value, "status": report.status.value,
                             "affected_features": report.affected_features}
            self.log.info("%s %s: severity %s (%s) %s", spec.name, kind, report.severity.value, report.status.value,
                          report.recommendation)
        return summary


class ErrorAnalysisOperator(ModelStepOperator):
    """Error distribution and systematic errors (feature segments where the model errs) of the
    labelled rows of the current window."""

    def run(self, store, spec, settings):
        from .error_analysis import analyze_error_distribution, identify_systematic_errors
        from .store import ALL_VERSIONS

        kinds = {key: kind for key, (kind, _) in store.feature_registry(spec.name).items()}
        window = store.read_window(spec.name, settings.current_start, settings.window_end)
        distribution = analyze_error_distribution(window["error"], alpha=settings.alpha)
        systematic = identify_systematic_errors(window[list(kinds)], window["error"], alpha=settings.alpha,
                                                feature_kinds=kinds)
        for kind, result in (("error_distribution", distribution), ("systematic_errors", systematic)):
            store.save_result("error_analyses", model=spec.name, model_version=ALL_VERSIONS,
                              window_start=settings.current_start, window_end=settings.window_end, kind=kind,
                              result=result)
        self.log.info("%s errors: mean %s, std %s, %d systematic patterns", spec.name, distribution.mean,
                      distribution.std, len(systematic.patterns))
        return {"sample_count": len(window), "mean_error": distribution.mean,
                "systematic_patterns": len(systematic.patterns)}


# Severity of a systematic-error pattern by its deviation relative to the model's MAE.
SYSTEMATIC_ERROR_LADDER = (("low", 0.1), ("medium", 0.25), ("high", 0.5), ("critical", 1.0))


class AlertOperator(ModelStepOperator):
    """One alert per finding of the window, deduplicated by cause with a cooldown."""

    def run(self, store, spec, settings):
        findings = findings_of(store, spec, settings)
        cooldown = timedelta(days=settings.alert_cooldown_days)
        raised = []
        for finding in findings:
            alert = store.raise_alert(model=spec.name, window_end=settings.window_end, cooldown=cooldown, **finding)
            raised.append({"type": finding["alert_type"], "cause": finding["cause"], **alert})
            if alert["status"] == "open":
                self.log.warning("ALERT %s [%s] %s: %s - %s", spec.name, alert["severity"], finding["alert_type"],
                                 finding["cause"], finding["details"].get("summary", ""))
            else:
                self.log.info("alert %s %s %s is %s (same cause within the %s-day cooldown)", spec.name,
                              finding["alert_type"], finding["cause"], alert["status"], settings.alert_cooldown_days)
        if not findings:
            self.log.info("%s: no findings, no alerts", spec.name)
        return raised


def findings_of(store, spec, settings: RunSettings) -> list[dict[str, Any]]:
    """The window's findings from the stored results: drift (feature by feature), performance
    limits crossed and systematic errors."""
    from .retraining import performance_breaches
    from .store import ALL_VERSIONS

    end = settings.window_end
    findings = []
    for row in store.read_results("drift_reports", model=spec.name, model_version=ALL_VERSIONS, window_end=end):
        if row["status"] != "ok" or row["severity"] == "none":
            continue
        tests = row["result"]["statistical_tests"]
        if row["kind"] == "feature_drift":
            for feature in row["affected_features"]:
                detail = tests["features"][feature]
                findings.append(_finding("feature_drift", feature, detail["severity"], {
                    "summary": f"feature {feature!r} drifted ({detail['kind']})", "feature": feature,
                    "checks": detail["checks"]}))
        else:
            findings.append(_finding(row["kind"], row["kind"], row["severity"], {
                "summary": row["result"]["recommendation"], "statistical_tests": tests}))
    for breach in performance_breaches(_stored_performance(store, spec.name, end), settings.retrain_thresholds()):
        findings.append(_finding("performance", breach.metric, "high", {"summary": breach.reason, **breach.to_dict()}))
    for row in store.read_results("error_analyses", model=spec.name, kind="systematic_errors", window_end=end):
        for pattern in row["result"]["patterns"]:
            effect = abs(pattern["relative_effect"] or 0.0)
            severity = next((s for s, cut in reversed(SYSTEMATIC_ERROR_LADDER) if effect >= cut), None)
            if severity:
                cause = f"{pattern['feature']}={pattern['bucket']}"
                direction = "over" if pattern["deviation"] > 0 else "under"
                findings.append(_finding("systematic_error", cause, severity, {
                    "summary": f"{direction}-predicts where {cause} (deviation {pattern['deviation']:.4g}, "
                               f"{effect:.0%} of MAE, n={pattern['sample_count']})", **pattern}))
    return findings


def _finding(alert_type: str, cause: str, severity: str, details: dict[str, Any]) -> dict[str, Any]:
    return {"alert_type": alert_type, "cause": cause, "severity": severity, "details": details}


def _stored_performance(store, model: str, end: datetime):
    from .performance import ModelPerformance
    from .store import ALL_VERSIONS

    rows = store.read_results("performance_snapshots", model=model, model_version=ALL_VERSIONS, window_end=end)
    return ModelPerformance.from_dict(rows[-1]["result"]) if rows else None


class RetrainDecisionOperator(ModelStepOperator):
    """``should_retrain`` on the window's stored results; a yes is stored as a retrain request."""

    def run(self, store, spec, settings):
        from .domain import DriftReport
        from .retraining import should_retrain
        from .store import ALL_VERSIONS

        end = settings.window_end
        drift = {row["kind"]: DriftReport.from_dict(row["result"]) for row in
                 store.read_results("drift_reports", model=spec.name, model_version=ALL_VERSIONS, window_end=end)}
        performance = _stored_performance(store, spec.name, end)
        decision = should_retrain(
            labelled_outcomes=performance.sample_count if performance else 0,
            feature_drift=drift.get("feature_drift"), concept_drift=drift.get("concept_drift"),
            performance=performance, thresholds=settings.retrain_thresholds())
        result = {"model": spec.name, "retrain": decision.retrain, "reasons": decision.reasons,
                  "causes": decision.causes, "window_end": end.isoformat(), "request_id": None}
        request_id = f"{spec.name}@{end:%Y-%m-%dT%H:%M}Z"
        handled = self._already_handled(store, spec.name, decision, settings, request_id) if decision.retrain else None
        if handled:
            result.update(retrain=False, reasons=[*decision.reasons, handled])
            self.log.info("%s: no new retrain request - %s", spec.name, "; ".join(result["reasons"]))
        elif decision.retrain:
            result["request_id"] = request_id
            status = store.request_retrain(request_id=request_id, model=spec.name, reasons=decision.reasons,
                                           window_end=end, causes=decision.causes)
            self.log.warning("RETRAIN %s requested (%s, status %s): %s", spec.name, request_id, status,
                             "; ".join(decision.reasons))
        else:
            self.log.info("%s: no retrain - %s", spec.name, "; ".join(decision.reasons))
        return result

    @staticmethod
    def _already_handled(store, model, decision, settings, request_id) -> str | None:
        """Why a positive decision needs no new request: a champion-vs-challenger test is running
        (its conclusion decides), or a recent request already covers these causes."""
        test = store.running_ab_test(model)
        if test is not None:
            return f"A/B test {test['test_id']} is running; its conclusion decides"
        earlier = store.covering_retrain_request(model, decision.causes, window_end=settings.window_end,
                                                 cooldown=timedelta(days=settings.retrain_cooldown_days),
                                                 exclude=request_id)
        if earlier is not None:
            return (f"retrain request {earlier['request_id']} ({earlier['status']}) already covers "
                    f"{', '.join(decision.causes)} within the {settings.retrain_cooldown_days:g}-day retrain cooldown")
        return None


class RetrainTriggerOperator(BaseOperator):
    """Trigger the retrain DAG for a positive decision, once per request: a deterministic run id
    and "skip when it already exists", so retries and re-runs never start a second retrain.
    Skips, saying why, when there is nothing to retrain or the retrain DAG is not deployed (the
    request stays stored). Raises the task SDK's ``DagRunTriggerException`` as Airflow 3's
    ``TriggerDagRunOperator`` does, without importing that operator's Airflow-2 compatibility
    layer (SQLAlchemy, ORM models) into every parse of the DAG file."""

    template_fields: Sequence[str] = ("decision",)

    def __init__(self, *, decision: Any, trigger_dag_id: str = RETRAIN_DAG_ID, **kwargs):
        kwargs.setdefault("map_index_template", "{{ task.decision.model if task.decision else '' }}")
        super().__init__(**kwargs)
        self.decision = decision
        self.trigger_dag_id = trigger_dag_id

    def execute(self, context):
        decision = self.decision
        if not decision or not decision.get("retrain"):
            raise AirflowSkipException(f"no retrain: {'; '.join((decision or {}).get('reasons') or ['no decision'])}")
        if not self._dag_deployed(context):
            raise AirflowSkipException(
                f"retrain DAG {self.trigger_dag_id!r} is not deployed; retrain request {decision['request_id']} "
                "is stored in retrain_requests and waits for it")
        run_id = _run_id("retrain__", decision["request_id"])
        conf = {"model": decision["model"], "reason": "; ".join(decision["reasons"]),
                "request_id": decision["request_id"], "window_end": decision["window_end"]}
        self.log.info("triggering %s run %s for %s", self.trigger_dag_id, run_id, decision["model"])
        raise trigger_once(self.trigger_dag_id, run_id, conf)

    def _dag_deployed(self, context) -> bool:
        from airflow.sdk.api.client import ServerResponseError

        try:
            context["ti"].get_dag(self.trigger_dag_id)
        except ServerResponseError as error:
            if error.response is not None and error.response.status_code == 404:
                return False
            raise
        return True


class RunSummaryOperator(FeedbackStoreOperator):
    """Log one line per model: performance, drift severities, alerts and the retrain decision.
    Runs whatever happened upstream and fails the run when a model has no results."""

    template_fields: Sequence[str] = ("models",)

    def __init__(self, *, models: Any, **kwargs):
        super().__init__(**kwargs)
        self.models = models

    def execute(self, context):
        from .store import ALL_VERSIONS

        settings = run_settings(context)
        store = self.store()
        end = settings.window_end
        alerts = {}
        for alert in store.check_alerts(hours=24, until=end, include_suppressed=True):
            alerts.setdefault(alert["model"], []).append(alert)
        requests = {r["model"]: r for r in store.retrain_request_list(window_end=end)}
        summary, missing = {}, []
        self.log.info("run summary for the window ending %s (current %s..%s, reference from %s)", end,
                      settings.current_start, end, settings.reference_start)
        for model in self.models or []:
            performance = _stored_performance(store, model, end)
            drift = {r["kind"]: r["severity"] if r["status"] == "ok" else r["status"] for r in
                     store.read_results("drift_reports", model=model, model_version=ALL_VERSIONS, window_end=end)}
            if performance is None or len(drift) < 3:
                missing.append(model)
            model_alerts = alerts.get(model, [])
            summary[model] = {
                "sample_count": performance.sample_count if performance else None,
                "label_coverage": performance.label_coverage if performance else None,
                "provisional": performance.provisional if performance else None,
                "main_metric": _main_metric(performance),
                "drift": drift,
                "alerts_open": sum(a["status"] == "open" for a in model_alerts),
                "alerts_suppressed": sum(a["status"] == "suppressed" for a in model_alerts),
                "retrain": model in requests,
                "retrain_reasons": requests[model]["reasons"] if model in requests else [],
            }
            self.log.info("%-20s %s", model, summary[model])
        if missing:
            raise AirflowException(f"no complete results for {missing} in the window ending {end}; see their tasks")
        return summary


def _main_metric(performance) -> dict[str, float] | None:
    if performance is None:
        return None
    for metric in ("mape", "mae", "log_loss", "roc_auc"):
        value = getattr(performance, metric)
        if value is not None:
            return {metric: value}
    return None


# -- retraining ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RetrainSettings:
    """The validated params of a retrain run."""

    model: str
    window_end: datetime
    request_id: str
    reason: str
    training_window_days: int = 30
    holdout_share: float = 0.2
    margin: float = 0.02
    ab_test: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"params.model: the name of a registered model is required, got {self.model!r}")
        days = self.training_window_days
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 3660:
            raise ValueError(f"params.training_window_days: must be an integer in 1..3660, got {days!r}")
        _check_number("holdout_share", self.holdout_share, 0.0, 1.0, inclusive=False)
        _check_number("margin", self.margin, 0.0, 1.0)
        from .ab_testing import ABTestConfig  # validates the A/B params, naming them

        try:
            ABTestConfig(**self.ab_test)
        except ValueError as error:
            raise ValueError(f"params.ab_{error}") from None


AB_PARAMS = {"ab_traffic_split": "traffic_split", "ab_unit": "unit", "ab_min_days": "min_days",
             "ab_max_days": "max_days", "ab_min_outcomes_per_arm": "min_outcomes_per_arm", "ab_margin": "margin",
             "ab_alpha": "alpha"}


def retrain_settings(context: Mapping[str, Any]) -> RetrainSettings:
    """Settings of the running retrain run: triggered by the daily run (its conf names the model,
    request and window) or by hand (a request id is made from the run id)."""
    params = dict(context.get("params") or {})
    _, end = run_interval(context, params.get("window_end"))
    model = params.get("model")
    request_id = params.get("request_id") or f"{model}@manual:{context['dag_run'].run_id}"
    return RetrainSettings(
        model=model, window_end=end, request_id=request_id[:256], reason=params.get("reason") or "manual retrain",
        training_window_days=params.get("training_window_days", 30), holdout_share=params.get("holdout_share", 0.2),
        margin=params.get("margin", 0.02),
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
            raise ValueError(f"params.model: {settings.model!r} is not registered; registered models: {known}") \
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
        self.log.info("retrain request %s for %s: %s (window ending %s)", row["request_id"], spec.name,
                      "; ".join(row["reasons"]), settings.window_end)
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


class TrainCandidateOperator(RetrainStepOperator):
    """Train a candidate on the labelled window, judge it against the champion on the same
    time-based holdout, write its artifact and register the version: ``challenger`` when it beats
    the champion by the margin, ``rejected`` (with the numbers) otherwise.

    The artifact goes to ``<artifact_root>/<model>/<version>/model.pkl`` through Airflow's
    ``ObjectStoragePath``: ``artifact_root`` defaults to the Variable
    ``self_learning_artifact_root`` and then to ``file://$AIRFLOW_HOME/self_learning/artifacts``;
    ``artifact_conn_id`` names an Airflow connection with the storage's credentials."""

    template_fields: Sequence[str] = ("artifact_root", "artifact_conn_id")

    def __init__(self, *, artifact_root: str | None = None, artifact_conn_id: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.artifact_root = artifact_root
        self.artifact_conn_id = artifact_conn_id

    def run(self, store, spec, settings, context):
        from .lifecycle import artifact_bytes, train_candidate

        if spec.thresholds.get("trainer_dag_id"):
            raise AirflowSkipException(f"{spec.name} is trained by DAG {spec.thresholds['trainer_dag_id']}")
        candidate = train_candidate(store, spec.name, window_end=settings.window_end,
                                    training_window_days=settings.training_window_days,
                                    holdout_share=settings.holdout_share, margin=settings.margin,
                                    trainer=spec.thresholds.get("trainer"))
        path = self._artifact_path(spec.name, candidate.version)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(artifact_bytes(candidate.estimator))
        status = "challenger" if candidate.verdict.accept else "rejected"
        store.register_version(spec.name, candidate.version, status=status, artifact_uri=str(path),
                               training_window=candidate.training_window, metrics=candidate.metrics(),
                               created_by=f"{context['dag'].dag_id}/{context['dag_run'].run_id}")
        log = self.log.info if candidate.verdict.accept else self.log.warning
        log("%s %s registered as %s (%d training rows, %d holdout rows from %s): %s", spec.name, candidate.version,
            status, candidate.training_rows, candidate.holdout_rows, candidate.holdout_start,
            candidate.verdict.reason)
        return {"model": spec.name, "version": candidate.version, "status": status,
                "accept": candidate.verdict.accept, "verdict": candidate.verdict.reason,
                "metric": candidate.verdict.metric, "candidate": candidate.verdict.candidate,
                "champion": candidate.verdict.champion, "champion_source": candidate.champion_source,
                "artifact_uri": str(path)}

    def _artifact_path(self, model: str, version: str):
        return storage_path(self.artifact_root, ARTIFACT_ROOT_VARIABLE, "artifacts", self.artifact_conn_id,
                            model, version, "model.pkl")


class StartABTestOperator(RetrainStepOperator):
    """Start champion vs challenger for an accepted candidate (the A/B params of the run); skips,
    saying why, for a rejected one. Before the first promotion the version serving most of the
    window is registered as the champion."""

    template_fields: Sequence[str] = ("candidate",)

    def __init__(self, *, candidate: Any, **kwargs):
        super().__init__(**kwargs)
        self.candidate = candidate

    def run(self, store, spec, settings, context):
        from .ab_testing import ABTestConfig
        from .lifecycle import ab_test_model_versions, served_champion

        if not self.candidate or not self.candidate.get("accept"):
            raise AirflowSkipException(f"no A/B test: {(self.candidate or {}).get('verdict', 'no candidate')}")
        start = settings.window_end - timedelta(days=settings.training_window_days)
        champion = served_champion(store, spec.name, start=start, end=settings.window_end)
        test = ab_test_model_versions(store, spec.name, champion, self.candidate["version"],
                                      started_at=settings.window_end, config=ABTestConfig(**settings.ab_test))
        self.log.info("A/B test %s: %s (champion) vs %s (challenger), challenger share %s, unit %s", test["test_id"],
                      test["champion_version"], test["challenger_version"], test["config"]["traffic_split"],
                      test["config"]["unit"])
        return {"test_id": test["test_id"], "champion_version": test["champion_version"],
                "challenger_version": test["challenger_version"], "status": test["status"]}


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


class ConcludeABTestsOperator(FeedbackStoreOperator):
    """Look at every running A/B test (of ``params.models`` if set) as of the run's window end and
    act on it: promote the winner, close at the maximum duration, alert on a sample ratio mismatch."""

    def execute(self, context):
        from .lifecycle import conclude_ab_tests

        settings = run_settings(context)
        conclusions = conclude_ab_tests(self.store(), as_of=settings.window_end, models=list(settings.models))
        for c in conclusions:
            self.log.info("A/B test %s (%s): %s, test %s, champion %s - %s", c.test_id, c.model, c.action,
                          c.test_status, c.champion_version, "; ".join(c.reasons))
        if not conclusions:
            self.log.info("no running A/B test")
        return [{"test_id": c.test_id, "model": c.model, "action": c.action, "test_status": c.test_status,
                 "champion_version": c.champion_version} for c in conclusions]


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


class LearningReportOperator(FeedbackStoreOperator):
    """Assemble the learning report of the run's period from the stored results and store it
    (``learning_reports``, upserted on period and kind). ``period_days`` is the report's length,
    ending at the run's window end; its metrics are those of the run's current window
    (``current_window_days``), with their trend at ``period_days`` steps. The daily DAG writes a
    one-day summary (kind ``daily``), the weekly DAG the weekly report."""

    template_fields: Sequence[str] = ("models", "report_root", "report_conn_id")

    def __init__(self, *, models: Any, kind: str = "weekly", period_days: int = 7, trend_periods: int = 8,
                 title: str = "Weekly learning report", report_root: str | None = None,
                 report_conn_id: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.models, self.kind, self.period_days, self.trend_periods = models, kind, period_days, trend_periods
        self.title = title
        self.report_root, self.report_conn_id = report_root, report_conn_id

    def execute(self, context):
        from .reporting import SECTIONS, learning_report

        settings = run_settings(context)
        end = settings.window_end
        start = end - timedelta(days=self.period_days)
        store = self.store()
        report = learning_report(store, period_start=start, period_end=end, models=list(self.models or []),
                                 trend_periods=self.trend_periods,
                                 metric_window=timedelta(days=settings.current_window_days))
        from .report_html import render_learning_report

        page = storage_path(self.report_root, REPORT_ROOT_VARIABLE, "reports", self.report_conn_id, self.kind,
                            f"learning_report_{end:%Y-%m-%d}.html")
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(render_learning_report(report, title=self.title))
        store.save_learning_report(period_start=start, period_end=end, kind=self.kind, report=report,
                                   artifact_uri=str(page))
        self.log.info("learning report page: %s", page)
        missing = {m: d["missing_days"] for m, d in report["drift_results"].items() if d["missing_days"]}
        self.log.info("%s learning report %s..%s stored: %d models, %d A/B tests, %d retrain requests", self.kind,
                      start, end, len(report["models"]), len(report["ab_test_conclusions"]),
                      sum(len(r) for r in report["retraining_recommendations"].values()))
        if missing:
            self.log.warning("days without daily results: %s", missing)
        return {"kind": self.kind, "period_start": start.isoformat(), "period_end": end.isoformat(),
                "sections": list(SECTIONS), "days_missing": missing, "html": str(page)}


class NotifyAlertsOperator(FeedbackStoreOperator):
    """Send the run's new open alerts to the notification channels (see ``notifications``): at most
    one notification per model and cause per ``notification_cooldown_days``, each channel with its
    severity filter. Alerts are marked notified once every channel took them."""

    def __init__(self, *, title: str = "self-learning alerts", **kwargs):
        super().__init__(**kwargs)
        self.title = title

    def execute(self, context):
        from .notifications import configured_channels, deliver, render

        settings = run_settings(context)
        store = self.store()
        hours = (settings.window_end - settings.interval_start).total_seconds() / 3600
        due = store.alerts_to_notify(until=settings.window_end, hours=hours,
                                     cooldown=timedelta(days=settings.notification_cooldown_days))
        sent, taken = [], set()
        for channel in configured_channels():
            selected = [a for a in due if channel.takes(a["severity"])]
            if not selected:
                continue
            subject, text, html = render(selected, f"{self.title}, window ending {settings.window_end:%Y-%m-%d}")
            sent.append({"channel": deliver(channel, subject, text, html, context), "alerts": len(selected)})
            taken.update(a["id"] for a in selected)
        store.mark_notified(sorted(taken))
        self.log.info("%d alerts due, %d notified: %s", len(due), len(taken), sent or "nothing to send")
        return {"due": len(due), "notified": len(taken), "sent": sent}


class FeatureImportanceOperator(ModelStepOperator):
    """The window's feature weights (association with the real outcome) and, where the champion has
    an artifact, its permutation importance; one stored row per feature, so trends read back."""

    def run(self, store, spec, settings):
        from .importance import permutation_weights, update_feature_weights
        from .lifecycle import load_artifact
        from .store import ALL_VERSIONS

        kinds = {key: kind for key, (kind, _) in store.feature_registry(spec.name).items()}
        window = store.read_window(spec.name, settings.current_start, settings.window_end)
        weights = update_feature_weights(window[list(kinds)], window["actual_value"], feature_kinds=kinds)
        champion = store.get_champion(spec.name)
        permutation, source = {}, None
        if champion and champion["artifact_uri"] and len(window) >= 20:
            permutation = permutation_weights(load_artifact(champion["artifact_uri"]), window, kinds, spec.task_kind)
            source = champion["version"]
        for weight in weights.weights:
            store.save_result("feature_importance", model=spec.name, model_version=ALL_VERSIONS,
                              window_start=settings.current_start, window_end=settings.window_end, kind="weights",
                              feature=weight.feature, result={**weight.to_dict(), "permutation_of": source,
                                                              "permutation": permutation.get(weight.feature)})
        top = [(w.feature, round(w.weight, 3)) for w in weights.weights[:5]]
        self.log.info("%s feature weights (%s, %d rows): %s%s", spec.name, weights.status.value, weights.sample_count,
                      top, f"; permutation importance of champion {source}" if source else "")
        return {"status": weights.status.value, "sample_count": weights.sample_count, "top": top,
                "permutation_of": source}
