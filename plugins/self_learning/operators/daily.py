"""The daily DAG's steps: outcomes in, per-model analysis, alerts, the retrain decision and trigger, the run summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowSkipException

from .common import (
    RETRAIN_DAG_ID,
    FeedbackStoreOperator,
    InvalidParams,
    ModelStepOperator,
    RunSettings,
    _run_id,
    run_settings,
    trigger_once,
)


class SelectModelsOperator(FeedbackStoreOperator):
    """The models of this run: ``params.models`` or every active model whose task kind the DAGs
    monitor (``core.tasks.selected_models``: the others are named in the log). Returns their names."""

    def execute(self, context):
        from ..core.tasks import selected_models

        settings = run_settings(context)
        store = self.store()
        try:
            if settings.models:
                chosen, _ = selected_models(store.list_models(active_only=False), settings.models)
                return chosen
            chosen, left_out = selected_models(store.list_models())
        except ValueError as error:
            raise InvalidParams(str(error)) from None
        for note in left_out:
            self.log.warning("models: %s", note)
        self.log.info("models: all %d monitored active models: %s", len(chosen), ", ".join(chosen))
        return chosen


class PerformanceOperator(ModelStepOperator):
    """Metrics of the current window, per served version and over all versions, with label
    coverage; provisional below ``min_label_coverage``. The daily DAG runs this as part of
    :class:`AnalyseModelOperator`; on its own it reads the labelled rows without features."""

    def run(self, store, spec, settings):
        start, end = settings.current_start, settings.window_end
        labelled = _labelled(spec, store.read_window(spec.name, start, end, features=False))
        served_per_version = store.count_predictions_by_version(spec.name, start, end)
        results, summary = performance_results(spec, settings, labelled, served_per_version, log=self.log)
        store.save_results(results)
        return summary


class DriftOperator(ModelStepOperator):
    """Feature, prediction and concept drift and performance degradation against the model's
    pinned baseline (the sequential monitor, ``loop.analysis``). The daily DAG runs this as part
    of :class:`AnalyseModelOperator`."""

    def run(self, store, spec, settings):
        from ..loop.analysis import analyse_recent, monitoring_rows

        _, monitoring, baseline, _ = analyse_recent(store, spec, settings, _feature_kinds(store, spec.name),
                                                    set_by=f"drift run ending {settings.window_end:%Y-%m-%d}")
        store.save_results(monitoring_rows(spec, settings, monitoring, baseline))
        return _monitoring_summary(spec, monitoring, baseline, log=self.log)


class ErrorAnalysisOperator(ModelStepOperator):
    """Error distribution and systematic errors (feature segments where the model errs) of the
    labelled rows of the current window. The daily DAG runs this as part of
    :class:`AnalyseModelOperator`."""

    def run(self, store, spec, settings):
        kinds = _feature_kinds(store, spec.name)
        labelled = _labelled(spec, store.read_window(spec.name, settings.current_start, settings.window_end))
        results, summary = error_analysis_results(spec, settings, kinds, labelled, log=self.log)
        store.save_results(results)
        return summary


class AnalyseModelOperator(ModelStepOperator):
    """A model's day in one step: performance per version and error analysis of the current
    window; feature, prediction and concept drift and performance degradation against the model's
    pinned baseline (``loop.analysis``: the sequential monitor of ``core.monitoring``, with the
    day statistics it keeps), written in one transaction (``store.save_results``).

    Why one step: as three tasks each result table was committed on its own, and a run killed
    20 s in left ``error_analyses`` rows for a model without its performance and drift rows - the
    report, the page and Grafana showed a half-updated day until a re-run. Now readers see the
    previous day or the whole new one. It reads the recent rows once (every prediction since the
    label window's start, labelled or not) and the baseline once; the labelled rows and the
    per-version counts of the current window are derived in memory. Returns the steps' summaries."""

    def run(self, store, spec, settings):
        from ..loop.analysis import analyse_recent, monitoring_rows

        kinds = _feature_kinds(store, spec.name)
        set_by = f"daily run ending {settings.window_end:%Y-%m-%d}"
        recent, monitoring, baseline, reference = analyse_recent(store, spec, settings, kinds, set_by=set_by)
        current = recent[recent["served_at"] >= settings.current_start]
        del recent
        drift_summary = _monitoring_summary(spec, monitoring, baseline, log=self.log)
        return self._store_window(store, spec, settings, kinds, current, reference,
                                  monitoring_rows(spec, settings, monitoring, baseline), drift_summary)

    def _store_window(self, store, spec, settings, kinds, current, reference, monitoring, drift_summary):
        """Performance and error analysis of ``current`` (every row served in the window), stored in
        one transaction with the monitor's rows."""
        served_per_version = {str(version): int(count) for version, count in
                              current["model_version"].value_counts(sort=False).items() if count}
        labelled = _labelled(spec, current)
        del current
        performance, performance_summary = performance_results(spec, settings, labelled, served_per_version,
                                                               log=self.log)
        # the baseline's rows (a young model's provisional one ends where the window starts)
        errors, error_summary = error_analysis_results(spec, settings, kinds, labelled, log=self.log,
                                                       reference=reference if len(reference) else None)
        del reference
        written = store.save_results([*performance, *monitoring, *errors])
        self.log.info("%s: %d results of the window ending %s stored together", spec.name, written,
                      settings.window_end)
        return {"performance": performance_summary, "drift": drift_summary, "error_analysis": error_summary}


def _labelled(spec, rows):
    """The rows with an outcome (its task kind's ``target``: a multiclass model's is ``actual_label``);
    no copy when every row is labelled."""
    from ..core.tasks import task_spec

    has_label = rows[task_spec(spec.task_kind).target].notna()
    return rows if has_label.all() else rows[has_label]


def _monitoring_summary(spec, monitoring, baseline, *, log) -> dict[str, Any]:
    """The XCom summary of the monitor's reports (and the log lines)."""
    summary: dict[str, Any] = {"baseline": None if baseline is None else {
        "start": baseline.start.isoformat(), "end": baseline.end.isoformat(), "source": baseline.source,
        "provisional": baseline.provisional}}
    for kind, report in monitoring.reports.items():
        summary[kind] = {"severity": report.severity.value, "status": report.status.value,
                         "affected_features": report.affected_features}
        log.info("%s %s: severity %s (%s) %s", spec.name, kind, report.severity.value, report.status.value,
                 report.recommendation)
    return summary


def _feature_kinds(store, model: str) -> dict[str, str]:
    return {key: kind for key, (kind, _) in store.feature_registry(model).items()}


def _result(table: str, spec, settings: RunSettings, *, model_version: str, kind: str, result, **columns
            ) -> dict[str, Any]:
    """One entry of ``store.save_results`` for the current window of ``settings``."""
    return {"table": table, "model": spec.name, "model_version": model_version, "window_start": settings.current_start,
            "window_end": settings.window_end, "kind": kind, "result": result, **columns}


def performance_results(spec, settings: RunSettings, labelled, served_per_version: Mapping[str, int], *, log
                        ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Performance over all versions and per version of the labelled rows of the current window
    (coverage against ``served_per_version``): the rows to store and the XCom summary."""
    from ..core.performance import compute_performance
    from ..core.tasks import STORED_METRICS, task_spec
    from ..store import ALL_VERSIONS

    task = task_spec(spec.task_kind)
    results, summary = [], {}
    versions = [(ALL_VERSIONS, None), *((v, v) for v in sorted(labelled["model_version"].unique()))]
    for label, version in versions:
        rows = labelled if version is None else labelled[labelled["model_version"] == version]
        served = sum(served_per_version.values()) if version is None else served_per_version.get(version, 0)
        performance = compute_performance(
            spec.task_kind, *task.window_rows(rows, spec.classes), n_predicted=served,
            min_label_coverage=settings.min_label_coverage, model_type=spec.name, model_version=label)
        # the snapshot's columns; every figure (a multiclass model's per-class ones) is in its JSON result
        metrics = {m: getattr(performance, m) for m in STORED_METRICS}
        results.append(_result("performance_snapshots", spec, settings, model_version=label, kind="performance",
                               result=performance, sample_count=performance.sample_count,
                               label_coverage=performance.label_coverage, provisional=performance.provisional,
                               **metrics))
        headline = {**metrics, **{m: getattr(performance, m, None) for m in _HEADLINE_FIGURES}}
        summary[label] = {"status": performance.status.value, "sample_count": performance.sample_count,
                          "label_coverage": performance.label_coverage, "provisional": performance.provisional,
                          **{k: v for k, v in headline.items() if v is not None}}
        log.info("%s %s: %s", spec.name, label, summary[label])
    return results, summary


# Figures of a performance beyond the stored columns that the XCom summary and the log show
# (a multiclass model's; the other kinds have them None or not at all).
_HEADLINE_FIGURES = ("accuracy", "macro_f1", "weighted_f1", "top_k_accuracy")


def _segment_errors(spec, rows):
    """The per-row error systematic-error analysis tests (``TaskSpec.segment_error``) of labelled rows."""
    import numpy as np

    from ..core.tasks import task_spec

    task = task_spec(spec.task_kind)
    if task.signed_segment_error:
        return rows["error"]  # predicted - actual, as the store reads it
    return np.asarray(task.segment_error(*task.window_rows(rows, spec.classes)), dtype=float)


def error_analysis_results(spec, settings: RunSettings, kinds: Mapping[str, str], labelled, *, log,
                           reference=None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Error distribution and systematic errors of the labelled rows of the current window: the
    rows to store and the XCom summary. ``reference``: the pinned baseline's rows; a systematic
    error must then deviate more than the same segment did there (``core.error_analysis``).

    A task kind whose segment error is a loss (``TaskSpec.signed_segment_error`` False: a multiclass
    model's 0/1 loss of the served class) has its distribution on the loss itself (mean = error
    rate), and its systematic errors tested on the loss minus the window's (the baseline's: minus
    the baseline's) mean loss, not winsorized: a 0/1 loss has no tail, and its mean is never 0, so
    test (a) of ``core.error_analysis`` would otherwise pass in every segment; centred, a segment
    is systematic where the model errs more often than in the whole window (segments where it errs
    less often are left out, with a note)."""
    import dataclasses

    from ..core.error_analysis import WINSORIZE, analyze_error_distribution, identify_systematic_errors
    from ..core.tasks import task_spec
    from ..store import ALL_VERSIONS

    task = task_spec(spec.task_kind)
    errors = _segment_errors(spec, labelled)
    distribution = analyze_error_distribution(errors, alpha=settings.alpha)
    before = None if reference is None else _labelled(spec, reference)
    before_errors = None if before is None else _segment_errors(spec, before)
    if not task.signed_segment_error:
        errors = errors - errors.mean() if len(errors) else errors
        if before_errors is not None and len(before_errors):
            before_errors = before_errors - before_errors.mean()
    regression = str(spec.task_kind) == "regression"  # a regressor's errors scale with its prediction
    systematic = identify_systematic_errors(
        labelled[list(kinds)], errors, alpha=settings.alpha, feature_kinds=kinds,
        reference_features=None if before is None else before.reindex(columns=list(kinds)),
        reference_errors=before_errors, winsorize=WINSORIZE if task.signed_segment_error else 0.0,
        predicted=labelled["predicted_value"] if regression else None,
        reference_predicted=before["predicted_value"] if regression and before is not None else None)
    if not task.signed_segment_error and systematic.patterns:
        # a loss has one bad direction: a segment where the model errs less often than elsewhere
        # (its centred loss below 0) is where it is good, not a systematic error
        kept = [p for p in systematic.patterns if p.deviation > 0]
        if len(kept) < len(systematic.patterns):
            systematic = dataclasses.replace(systematic, patterns=kept, notes=(
                *systematic.notes, f"{len(systematic.patterns) - len(kept)} segments where the model errs less "
                                   "often than elsewhere are not reported"))
    results = [_result("error_analyses", spec, settings, model_version=ALL_VERSIONS, kind=kind, result=result)
               for kind, result in (("error_distribution", distribution), ("systematic_errors", systematic))]
    log.info("%s errors: mean %s, std %s, %d systematic patterns", spec.name, distribution.mean, distribution.std,
             len(systematic.patterns))
    return results, {"sample_count": len(labelled), "mean_error": distribution.mean,
                     "systematic_patterns": len(systematic.patterns)}


def __getattr__(name: str):
    """``SYSTEMATIC_ERROR_LADDER`` moved to ``core.alerts``; loaded on first use so parsing a DAG
    file does not import the statistics."""
    if name == "SYSTEMATIC_ERROR_LADDER":
        from ..core.alerts import SYSTEMATIC_ERROR_LADDER

        return SYSTEMATIC_ERROR_LADDER
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    """The window's findings from the stored results (the policy is ``core.alerts.window_findings``)."""
    from ..core.alerts import systematic_alpha, window_findings
    from ..store import ALL_VERSIONS

    end = settings.window_end
    return window_findings(
        store.read_results("drift_reports", model=spec.name, model_version=ALL_VERSIONS, window_end=end),
        _stored_performance(store, spec.name, end), settings.retrain_thresholds(),
        store.read_results("error_analyses", model=spec.name, kind="systematic_errors", window_end=end),
        pattern_alpha=systematic_alpha(settings.false_alarm_days, settings.current_window_days))


def _stored_performance(store, model: str, end: datetime):
    """The window's stored performance over all versions, as its task kind's class (``MulticlassPerformance``)."""
    from ..core.performance import performance_from_dict
    from ..store import ALL_VERSIONS

    rows = store.read_results("performance_snapshots", model=model, model_version=ALL_VERSIONS, window_end=end)
    return performance_from_dict(rows[-1]["result"]) if rows else None


class RetrainDecisionOperator(ModelStepOperator):
    """``should_retrain`` on the window's stored results; a yes is stored as a retrain request."""

    def run(self, store, spec, settings):
        from ..core.retraining import should_retrain
        from ..core.types import DriftReport
        from ..store import ALL_VERSIONS

        end = settings.window_end
        drift = {row["kind"]: DriftReport.from_dict(row["result"]) for row in
                 store.read_results("drift_reports", model=spec.name, model_version=ALL_VERSIONS, window_end=end)}
        performance = _stored_performance(store, spec.name, end)
        decision = should_retrain(
            labelled_outcomes=performance.sample_count if performance else 0,
            feature_drift=drift.get("feature_drift"), concept_drift=drift.get("concept_drift"),
            performance=performance, thresholds=settings.retrain_thresholds(),
            performance_degradation=drift.get("performance_degradation"))
        result = {"model": spec.name, "retrain": decision.retrain, "reasons": decision.reasons,
                  "causes": decision.causes, "window_end": end.isoformat(), "request_id": None}
        request_id = f"{spec.name}@{end:%Y-%m-%dT%H:%M}Z"
        handled = self._already_handled(store, spec.name, decision, settings, request_id) if decision.retrain else None
        if handled:
            result.update(retrain=False, reasons=[*decision.reasons, handled])
            self.log.info("%s: no new retrain request - %s", spec.name, "; ".join(result["reasons"]))
        elif decision.retrain:
            reasons = [*decision.reasons,
                       *self._retrain_cover(store, spec.name, decision, settings, request_id).superseding_reasons]
            result.update(request_id=request_id, reasons=reasons)  # the retrain run's conf says what it supersedes
            status = store.request_retrain(request_id=request_id, model=spec.name, window_end=end,
                                           causes=decision.causes, reasons=reasons,
                                           cause_severities=decision.cause_severities)
            self.log.warning("RETRAIN %s requested (%s, status %s): %s", spec.name, request_id, status,
                             "; ".join(reasons))
        else:
            self.log.info("%s: no retrain - %s", spec.name, "; ".join(decision.reasons))
        return result

    @staticmethod
    def _already_handled(store, model, decision, settings, request_id) -> str | None:
        """Why a positive decision needs no new request: a champion-vs-challenger test is running
        (its conclusion decides), or a recent request holds every cause at the same or a higher
        severity (``core.retraining.covers``; a new cause or a higher severity files a new one)."""
        test = store.running_ab_test(model)
        if test is not None:
            return f"A/B test {test.test_id} is running; its conclusion decides"
        earlier = RetrainDecisionOperator._retrain_cover(store, model, decision, settings, request_id).covering
        if earlier is not None:
            held = ", ".join(f"{cause} {severity}" for cause, severity in decision.cause_severities.items())
            return (f"retrain request {earlier.request_id} ({earlier.status}) already covers {held} "
                    f"within the {settings.retrain_cooldown_days:g}-day retrain cooldown")
        return None

    @staticmethod
    def _retrain_cover(store, model, decision, settings, request_id):
        from ..core.retraining import retrain_cover

        recent = store.recent_retrain_requests(model, window_end=settings.window_end, exclude=request_id,
                                               cooldown=timedelta(days=settings.retrain_cooldown_days))
        return retrain_cover(recent, decision.cause_severities)


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
        from ..store import ALL_VERSIONS

        settings = run_settings(context)
        store = self.store()
        end = settings.window_end
        alerts = {}
        for alert in store.check_alerts(hours=24, until=end, include_suppressed=True):
            alerts.setdefault(alert["model"], []).append(alert)
        requests = {r["model"]: r for r in store.retrain_request_list(window_end=end)}
        summary, missing = {}, []
        self.log.info("run summary for the window ending %s (current %s..%s, against each model's pinned baseline)",
                      end, settings.current_start, end)
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
