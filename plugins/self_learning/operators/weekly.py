"""The weekly DAG's steps (some serve the daily DAG too): A/B conclusions, learning reports,
notifications, feature importance."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from .common import REPORT_ROOT_VARIABLE, FeedbackStoreOperator, ModelStepOperator, run_settings, storage_path


class ConcludeABTestsOperator(FeedbackStoreOperator):
    """Look at every running A/B test (of ``params.models`` if set) as of the run's window end and
    act on it: promote the winner, close at the maximum duration, alert on a sample ratio mismatch."""

    def execute(self, context):
        from ..loop.lifecycle import conclude_ab_tests

        settings = run_settings(context)
        conclusions = conclude_ab_tests(self.store(), as_of=settings.window_end, models=list(settings.models))
        for c in conclusions:
            self.log.info("A/B test %s (%s): %s, test %s, champion %s - %s", c.test_id, c.model, c.action,
                          c.test_status, c.champion_version, "; ".join(c.reasons))
        if not conclusions:
            self.log.info("no running A/B test")
        return [{"test_id": c.test_id, "model": c.model, "action": c.action, "test_status": c.test_status,
                 "champion_version": c.champion_version} for c in conclusions]


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
        from ..loop.reporting import SECTIONS, learning_report

        settings = run_settings(context)
        end = settings.window_end
        start = end - timedelta(days=self.period_days)
        store = self.store()
        report = learning_report(store, period_start=start, period_end=end, models=list(self.models or []),
                                 trend_periods=self.trend_periods,
                                 metric_window=timedelta(days=settings.current_window_days))
        from ..loop.report_html import render_learning_report

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
    severity filter. Alerts are marked notified once every channel took them; a channel that took
    them before a retry (another channel failed) is not sent them again."""

    def __init__(self, *, title: str = "self-learning alerts", **kwargs):
        super().__init__(**kwargs)
        self.title = title

    def execute(self, context):
        from ..notifications import configured_channels, deliver, render

        settings = run_settings(context)
        store = self.store()
        hours = (settings.window_end - settings.interval_start).total_seconds() / 3600
        due = store.alerts_to_notify(until=settings.window_end, hours=hours,
                                     cooldown=timedelta(days=settings.notification_cooldown_days))
        # a retry after one channel failed half-way skips what the other channels already took
        delivered = store.delivered_channels(a.id for a in due)
        sent, taken = [], set()
        for channel in configured_channels():
            wanted = [a for a in due if channel.takes(a.severity)]
            selected = [a for a in wanted if (a.id, channel.key) not in delivered]
            taken.update(a.id for a in wanted)
            if not selected:
                continue
            subject, text, html = render(selected, f"{self.title}, window ending {settings.window_end:%Y-%m-%d}")
            sent.append({"channel": deliver(channel, subject, text, html, context), "alerts": len(selected)})
            store.mark_delivered([a.id for a in selected], channel.key)
        store.mark_notified(sorted(taken))
        self.log.info("%d alerts due, %d notified: %s", len(due), len(taken), sent or "nothing to send")
        return {"due": len(due), "notified": len(taken), "sent": sent}


class FeatureImportanceOperator(ModelStepOperator):
    """The window's feature weights (association with the real outcome) and, where the champion has
    an artifact, its permutation importance; one stored row per feature, so trends read back. The
    artifact is loaded as the retrain loads it: from under the artifact root only, never a pickle
    unless ``allow_pickle`` (see ``retrain.artifact_storage`` and ``retrain.pickle_artifacts_allowed``)."""

    template_fields: Sequence[str] = (*ModelStepOperator.template_fields, "artifact_root", "artifact_conn_id")

    def __init__(self, *, artifact_root: str | None = None, artifact_conn_id: str | None = None,
                 allow_pickle: bool | None = None, **kwargs):
        super().__init__(**kwargs)
        self.artifact_root, self.artifact_conn_id, self.allow_pickle = artifact_root, artifact_conn_id, allow_pickle

    def run(self, store, spec, settings):
        from ..core.importance import permutation_weights, update_feature_weights
        from ..core.tasks import task_spec
        from ..loop.lifecycle import load_artifact, model_trusted_types
        from ..store import ALL_VERSIONS
        from .retrain import artifact_storage, pickle_artifacts_allowed, refused_artifacts_fail_at_once

        kinds = {key: kind for key, (kind, _) in store.feature_registry(spec.name).items()}
        window = store.read_window(spec.name, settings.current_start, settings.window_end)
        weights = update_feature_weights(window[list(kinds)], window[task_spec(spec.task_kind).target],
                                         feature_kinds=kinds, task_kind=spec.task_kind)
        champion = store.get_champion(spec.name)
        permutation, source = {}, None
        if champion and champion.artifact_uri and len(window) >= 20:
            with refused_artifacts_fail_at_once():
                estimator = load_artifact(champion.artifact_uri,
                                          root=str(artifact_storage(self.artifact_root, self.artifact_conn_id)),
                                          trusted_types=model_trusted_types(spec),
                                          allow_pickle=pickle_artifacts_allowed(self.allow_pickle))
            permutation = permutation_weights(estimator, window, kinds, spec.task_kind)
            source = champion.version
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
