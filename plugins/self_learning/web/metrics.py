"""The model-health snapshot (``reporting.model_health``) in the Prometheus text format.

Gauges, one sample per model (and version, drift kind, severity, A/B test): Prometheus scrapes the
plugin app's ``/metrics`` and Grafana or alert rules take it from there. Values are what the store
holds after the last daily/weekly run, so a scrape costs a few indexed queries and computes nothing.
Pure: the snapshot dict in, text out (``prometheus_client`` does the format and the escaping).

Drift kinds are labelled without their ``_drift`` suffix: feature, prediction, concept and
performance_degradation (the sequential monitor's degraded metrics, also counted by
``degraded_metrics``). The baseline every finding is measured against is exported as its start and
end (labelled with its source, and ``provisional`` while a young model's default is not pinned), so
an alert rule or a Grafana panel can tell "drifted" from "drifted against a baseline moved yesterday".

A multiclass model also exports its accuracy and macro F1, and per class (label ``class``) its
recall, precision and support, per version like the other metrics: a per-class recall alert rule
needs no second source. A class whose recall or precision is undefined in the window (no actual
row, never served) has no sample, not a 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..core.types import Severity
from ..loop.figures import PER_CLASS_FIGURES, PER_CLASS_IN_METRICS

PREFIX = "self_learning"
PERFORMANCE_METRICS = {
    "mae": "Mean absolute error (the outcome's unit)", "rmse": "Root mean squared error (the outcome's unit)",
    "mape": "Mean absolute percentage error (percent, 12.5 = 12.5 %)",
    "wape": "Weighted absolute percentage error, sum |error| / sum |actual| (ratio, 0.125 = 12.5 %)",
    "r2": "Coefficient of determination (1 perfect, 0 no better than the mean)",
    "roc_auc": "Area under the ROC curve (0.5 chance, 1 perfect; multiclass: mean of the one-vs-rest AUCs)",
    "log_loss": "Log loss, mean -ln P(actual outcome) per row (nats; lower is better)",
    "accuracy": "Share of labelled rows served their actual class (ratio 0-1; multiclass models)",
    "macro_f1": "Unweighted mean of the classes' F1 scores (0-1; multiclass models)",
    "label_coverage": "Share of the window's predictions with a real outcome (ratio 0-1)",
    "sample_count": "Labelled predictions the metrics are computed on",
}
# Per-class gauges of a multiclass model (``self_learning_class_<name>``, label ``class``)
PER_CLASS_HELP = {name: f"Per class: {PER_CLASS_FIGURES[name].unit}"
                        f"{' (ratio 0-1)' if PER_CLASS_FIGURES[name].share else ''}, latest window"
                  for name in PER_CLASS_IN_METRICS}
SEVERITY_HELP = "0 none, 1 low, 2 medium, 3 high, 4 critical"


def exposition(health: dict[str, Any]) -> bytes:
    """The Prometheus text exposition (format 0.0.4) of a ``model_health`` snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_HealthCollector(health))
    return generate_latest(registry)


class _HealthCollector(Collector):
    def __init__(self, health: dict[str, Any]):
        self.health = health

    def collect(self) -> Iterator[Metric]:
        models = self.health["models"]
        performance = {name: GaugeMetricFamily(f"{PREFIX}_{name}", f"{text}, latest window",
                                               labels=["model", "version"])
                       for name, text in PERFORMANCE_METRICS.items()}
        per_class = {name: GaugeMetricFamily(f"{PREFIX}_class_{name}", text, labels=["model", "version", "class"])
                     for name, text in PER_CLASS_HELP.items()}
        window_end = GaugeMetricFamily(f"{PREFIX}_window_end_timestamp_seconds",
                                       "End of the latest analysed window (Unix time)", labels=["model"])
        provisional = GaugeMetricFamily(f"{PREFIX}_provisional", "1 when label coverage was below the minimum",
                                        labels=["model", "version"])
        champion = GaugeMetricFamily(f"{PREFIX}_champion_info", "The registry's champion version (value 1)",
                                     labels=["model", "version"])
        drift = GaugeMetricFamily(f"{PREFIX}_drift_severity", f"Latest drift severity per kind: {SEVERITY_HELP}",
                                  labels=["model", "kind"])
        drifted = GaugeMetricFamily(f"{PREFIX}_drifted_features", "Features whose drift was significant",
                                    labels=["model"])
        degraded = GaugeMetricFamily(f"{PREFIX}_degraded_metrics", "Metrics significantly and practically worse than "
                                     "on the baseline", labels=["model"])
        baseline_start = GaugeMetricFamily(f"{PREFIX}_baseline_start_timestamp_seconds",
                                           "Start of the baseline the checks compare against (Unix time)",
                                           labels=["model", "source"])
        baseline_end = GaugeMetricFamily(f"{PREFIX}_baseline_end_timestamp_seconds",
                                         "End (exclusive) of the baseline the checks compare against (Unix time)",
                                         labels=["model", "source"])
        baseline_provisional = GaugeMetricFamily(f"{PREFIX}_baseline_provisional", "1 while the baseline is a young "
                                                 "model's default, not yet pinned", labels=["model"])
        alerts = GaugeMetricFamily(f"{PREFIX}_open_alerts", "Causes (model, type, cause) with an alert neither "
                                   "acknowledged nor resolved, at the cause's newest severity",
                                   labels=["model", "severity"])
        ab_running = GaugeMetricFamily(f"{PREFIX}_ab_test_running", "A running champion-vs-challenger test (value 1)",
                                       labels=["model", "test_id", "champion", "challenger"])
        ab_difference = GaugeMetricFamily(f"{PREFIX}_ab_test_loss_difference",
                                          "Challenger minus champion mean loss at the latest look (negative: "
                                          "challenger better)", labels=["model", "test_id"])
        ab_p = GaugeMetricFamily(f"{PREFIX}_ab_test_p_value", "Always-valid p-value (running minimum) of the test",
                                 labels=["model", "test_id"])
        for model in models:
            name = model["name"]
            if model["champion"]:
                champion.add_metric([name, model["champion"]], 1)
            if model["window_end"]:
                window_end.add_metric([name], datetime.fromisoformat(model["window_end"]).timestamp())
            for version, values in model["current"].items():
                for metric, family in performance.items():
                    if values.get(metric) is not None:
                        family.add_metric([name, version], float(values[metric]))
                provisional.add_metric([name, version], float(bool(values.get("provisional"))))
                for figure, family in per_class.items():
                    for label, value in (values.get(f"per_class_{figure}") or {}).items():
                        if value is not None:
                            family.add_metric([name, version, label], float(value))
            for kind, check in model["drift"].items():
                if check["status"] == "ok":  # insufficient data has no severity to report
                    drift.add_metric([name, kind.removesuffix("_drift")], Severity(check["severity"]).rank)
            if "feature_drift" in model["drift"]:
                drifted.add_metric([name], len(model["drift"]["feature_drift"]["affected_features"]))
            if "performance_degradation" in model["drift"]:
                degraded.add_metric([name], len(model["drift"]["performance_degradation"]["affected_features"]))
            if baseline := model.get("baseline"):
                source = str(baseline["source"])
                baseline_start.add_metric([name, source], datetime.fromisoformat(baseline["start"]).timestamp())
                baseline_end.add_metric([name, source], datetime.fromisoformat(baseline["end"]).timestamp())
                baseline_provisional.add_metric([name], float(bool(baseline.get("provisional"))))
            for severity in list(Severity)[1:]:
                alerts.add_metric([name, severity.value],
                                  sum(1 for a in model["open_alerts"] if a["severity"] == severity.value))
            for test in model["ab_tests"]:
                ab_running.add_metric([name, test["test_id"], test["champion_version"], test["challenger_version"]], 1)
                if test["difference"] is not None:
                    ab_difference.add_metric([name, test["test_id"]], float(test["difference"]))
                if test["running_min_p"] is not None:
                    ab_p.add_metric([name, test["test_id"]], float(test["running_min_p"]))
        yield from performance.values()
        yield from per_class.values()
        yield from (provisional, window_end, champion, drift, drifted, degraded, baseline_start, baseline_end,
                    baseline_provisional, alerts, ab_running, ab_difference, ab_p)
