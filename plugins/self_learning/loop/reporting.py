"""The learning report of a period, assembled from what the daily and weekly runs stored.

No computation is repeated here: the report reads the stored results of the period (daily drift
reports and error analyses whose window ends in it, the period's performance and the same window of
earlier periods for the trend, retrain requests, A/B tests, alerts) and arranges them by the seed's
report sections. Days without a stored result are listed as missing, not skipped silently.

Why every model's baseline is in the report and on the page (issue 15, item 1): drift and
degradation are measured against the model's pinned baseline, not a rolling window, so a finding
means nothing without the period it is measured against. The stored (pinned) baseline is shown, or
while none is stored the young model's provisional default its latest checks used; and when the
period's latest checks used another one (moved by a promotion or a manual pin since), that too.
Each finding carries "since": the day its CUSUM's change started (``core.monitoring``), so a
model owner reads "audience_size drifted since 2026-10-28", not only "drifted on every day".

A multiclass model's figures beyond the stored metric columns live in its performance's JSON result
(``core.performance.MulticlassPerformance``): its headline figures and per-class recall, precision
and support come along with every window's metrics (``current`` per version, and each trend point,
so a per-class recall trend needs no second query), and the latest window's per-class view
(``per_class_view``: per-class table, confusion matrix, absent and unknown classes, metrics not
computable) sits next to them. Lists, not objects, carry the class order: a stored report is JSON,
whose objects keep no key order on PostgreSQL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from ..core.importance import importance_trends
from ..core.performance import performance_from_dict
from ..core.tasks import STORED_METRICS
from ..core.types import TaskKind, as_utc
from ..store import ALL_VERSIONS

METRICS = STORED_METRICS  # the stored metrics a report carries, in the core's order
SECTIONS = ("performance", "error_distribution", "baselines", "drift_results", "systematic_error_patterns",
            "feature_importance", "retraining_recommendations", "ab_test_conclusions", "alerts")
# every kind of drift report the daily run stores (core.monitoring.reports), in the order shown
DRIFT_KINDS = ("feature_drift", "prediction_drift", "concept_drift", "performance_degradation", "multivariate_drift")
IMPORTANCE_TREND_DAYS = 90


@dataclasses.dataclass(frozen=True)
class Figure:
    """How a figure is named wherever it is shown: its title, its unit or scale (what a reader needs
    to read the number), and whether it is a share (shown in %)."""

    title: str
    unit: str
    share: bool = False


# A multiclass window's headline figures, in the order shown (``{k}``: the window's top_k).
MULTICLASS_FIGURES: dict[str, Figure] = {
    "accuracy": Figure("Accuracy", "share of labelled rows served their actual class", share=True),
    "macro_f1": Figure("Macro F1", "unweighted mean of the classes' F1, 0–1"),
    "weighted_f1": Figure("Weighted F1", "mean of the classes' F1 weighted by their actual rows, 0–1"),
    "log_loss": Figure("Log loss", "mean −ln P(actual class) per row, in nats; lower is better"),
    "top_k_accuracy": Figure("Top-{k} accuracy", "share of rows whose actual class is among the {k} most probable",
                             share=True),
    "roc_auc": Figure("ROC AUC (one-vs-rest, macro)", "mean of the classes' one-vs-rest AUC; 0.5 chance, 1 perfect"),
    "brier_score": Figure("Brier score", "sum over classes of (p − 1[actual class])², mean per row, 0–2; "
                                         "lower is better"),
    "expected_calibration_error": Figure("Calibration error (class-wise ECE)",
                                         "mean over classes of |observed rate − mean probability| in 10 "
                                         "probability bins, 0–1"),
}
# The per-class figures of a multiclass window (``per_class_<name>`` in its result).
PER_CLASS_FIGURES: dict[str, Figure] = {
    "support": Figure("actual rows", "labelled rows whose actual class it is"),
    "precision": Figure("precision", "share of the rows served the class whose actual class it is", share=True),
    "recall": Figure("recall", "share of the class's actual rows served the class", share=True),
    "calibration_error": Figure("calibration error", "ECE of P(class) against the class occurring, 0–1"),
}
# The per-class figures every window's metrics carry (the rest are in the latest window's view).
PER_CLASS_IN_METRICS = ("support", "precision", "recall")


def learning_report(store, *, period_start: datetime, period_end: datetime, models: Sequence[str],
                    trend_periods: int = 8, metric_window: timedelta | None = None) -> dict[str, Any]:
    """The report of (period_start, period_end] for ``models``: one key per section in ``SECTIONS``.
    Performance is that of the ``metric_window`` (default: the period) ending at ``period_end``; its
    trend holds the windows of that length ending 0..``trend_periods`` whole periods before
    ``period_end`` (the weekly windows of earlier weeks, not every daily window)."""
    if period_end <= period_start:
        raise ValueError(f"period_end: must be after period_start, got {period_start} .. {period_end}")
    if trend_periods < 0:
        raise ValueError(f"trend_periods: must be >= 0, got {trend_periods}")
    length = period_end - period_start
    if metric_window is not None and metric_window <= timedelta(0):
        raise ValueError(f"metric_window: must be positive, got {metric_window}")
    days = [period_start + timedelta(days=d + 1) for d in range(max(1, length // timedelta(days=1)))]
    span = (period_start, period_end)
    report: dict[str, Any] = {"period": {"start": _iso(period_start), "end": _iso(period_end)},
                              "models": list(models), **{section: {} for section in SECTIONS}}
    for model in models:
        report["performance"][model] = _performance(store, model, period_end, metric_window or length, length,
                                                    trend_periods)
        analyses = {(r["kind"], r["window_end"]): r["result"]
                    for r in store.read_results("error_analyses", model=model, window_ends=span)}
        latest = max((end for _, end in analyses), default=None)
        report["error_distribution"][model] = analyses.get(("error_distribution", latest))
        report["systematic_error_patterns"][model] = (analyses.get(("systematic_errors", latest)) or {}).get(
            "patterns", [])
        report["drift_results"][model], measured = _drift_by_day(store, model, span, days)
        report["baselines"][model] = baseline_view(store, model, measured)
        report["feature_importance"][model] = _importance(store, model, period_end)
        report["retraining_recommendations"][model] = [
            {"request_id": r.request_id, "status": r.status, "reasons": r.reasons, "causes": r.causes,
             "result_version": r.result_version, "window_end": _iso(r.window_end)}
            for r in store.retrain_request_list(model=model) if period_start < r.window_end <= period_end]
        alerts = store.check_alerts(until=period_end, hours=length.total_seconds() / 3600, model=model,
                                    include_suppressed=True)
        report["alerts"][model] = [{"window_end": _iso(a.window_end), "type": a.alert_type, "severity": a.severity,
                                    "status": a.status, "summary": a.summary} for a in alerts]
    report["ab_test_conclusions"] = [
        _ab_summary(test) for test in store.list_ab_tests()
        if (not models or test.model in models) and test.started_at < period_end
        and (test.ended_at is None or test.ended_at > period_start)]
    return report


def model_health(store, *, trend_days: int = 30, report_kinds: Sequence[str] = ("weekly", "daily")
                 ) -> dict[str, Any]:
    """Where every active model stands now, from the latest stored results: champion, the latest
    window's metrics per version with the daily trend of that window length over ``trend_days``,
    the latest drift check of each kind, open alerts and running A/B tests; plus the latest stored
    report of each kind; per model also its baseline (``baseline_view``) and, per drift kind, the
    findings with their "since" (``drift_findings``). What the "Model health" page and ``/metrics``
    show."""
    models = []
    for spec in store.list_models():
        champion = store.get_champion(spec.name)
        health: dict[str, Any] = {
            "name": spec.name, "task_kind": spec.task_kind.value,
            "champion": champion.version if champion else None, "window_end": None,
            "current": {}, "trend": [], "baseline": None, "drift": {}, "open_alerts": [], "ab_tests": []}
        overall = store.latest_results("performance_snapshots", model=spec.name, model_version=ALL_VERSIONS,
                                       kind="performance")
        if overall:
            latest = overall[-1]  # the most recently computed, if windows of two lengths end together
            end = as_utc(latest["window_end"])
            health["window_end"] = _iso(end)
            health.update(_performance(store, spec.name, end, end - as_utc(latest["window_start"]),
                                       timedelta(days=1), trend_days))
        drift = store.latest_results("drift_reports", model=spec.name, model_version=ALL_VERSIONS)
        health["drift"] = {
            r["kind"]: {"window_end": _iso(r["window_end"]), "severity": r["severity"], "status": r["status"],
                        "affected_features": r["affected_features"] or [],
                        "findings": drift_findings(r["kind"], r["result"])}
            for r in drift}
        newest = max(drift, key=lambda r: as_utc(r["window_end"]), default=None)
        health["baseline"] = baseline_view(store, spec.name, _measured_baseline(newest))
        health["open_alerts"] = [
            {"id": a.id, "type": a.alert_type, "severity": a.severity, "window_end": _iso(a.window_end),
             "summary": a.summary} for a in store.open_alerts(model=spec.name)]
        health["ab_tests"] = [_ab_summary(test) for test in store.list_ab_tests(model=spec.name, status="running")]
        models.append(health)
    reports = {}
    for kind in report_kinds:
        row = store.latest_learning_report(kind)
        if row is not None:
            reports[kind] = {"period_start": _iso(row["period_start"]), "period_end": _iso(row["period_end"]),
                             "artifact_uri": row["artifact_uri"]}
    return {"models": models, "latest_reports": reports}


def _performance(store, model: str, end: datetime, window: timedelta, step: timedelta, trend_periods: int
                 ) -> dict[str, Any]:
    """Metrics of the ``window`` ending at ``end`` per version, and the trend over all versions of
    the windows of that length ending whole ``step`` s before it."""
    rows = {(r["model_version"], as_utc(r["window_end"])): r
            for r in store.read_results("performance_snapshots", model=model,
                                        window_ends=(end - step * (trend_periods + 1), end))
            if as_utc(r["window_start"]) == as_utc(r["window_end"]) - window
            and (end - as_utc(r["window_end"])) % step == timedelta(0)}  # whole periods back, not every day
    current = {version: _metrics(row) for (version, window_end), row in sorted(rows.items()) if window_end == end}
    trend = [{"window_end": _iso(window_end), **_metrics(row)}
             for (version, window_end), row in sorted(rows.items(), key=lambda item: item[0][1])
             if version == ALL_VERSIONS]
    latest = rows.get((ALL_VERSIONS, end))
    view = per_class_view(latest["result"]) if latest else None
    return {"current": current, "trend": trend, **({"per_class": view} if view else {})}


def per_class_view(result: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A stored multiclass performance (its JSON result) as the report and the page show its
    per-class part: headline ``figures`` (None where not computable, the reason in ``unavailable``),
    one ``per_class`` row per class and the ``confusion_matrix`` (rows the actual class, columns the
    served one), both in the model's class order; the absent classes, the actual labels outside
    the class list and the notes. None for a window of another task kind."""
    if (result or {}).get("task_kind") != TaskKind.MULTICLASS_CLASSIFICATION.value:
        return None
    performance = performance_from_dict(result)
    return {"status": performance.status.value, "sample_count": performance.sample_count,
            "top_k": performance.top_k, "classes": list(performance.classes),
            "figures": {name: getattr(performance, name) for name in MULTICLASS_FIGURES},
            "per_class": [{"class": label, **{name: getattr(performance, f"per_class_{name}").get(label)
                                              for name in PER_CLASS_FIGURES}}
                          for label in performance.classes],
            "confusion_matrix": [list(row) for row in performance.confusion_matrix],
            "absent_classes": list(performance.absent_classes), "unknown_actual": dict(performance.unknown_actual),
            "unavailable": dict(performance.unavailable), "notes": list(performance.notes)}


def _importance(store, model: str, end: datetime) -> dict[str, Any]:
    """The weights of the window ending at ``end`` and each feature's trend over 90 days."""
    rows = store.read_results("feature_importance", model=model, kind="weights",
                              window_ends=(end - timedelta(days=IMPORTANCE_TREND_DAYS), end))
    current = {r["feature"]: {k: r["result"][k] for k in ("weight", "association", "method", "p_value",
                                                          "permutation")}
               for r in rows if as_utc(r["window_end"]) == end}
    trends = importance_trends([(r["feature"], as_utc(r["window_end"]), r["result"]["weight"]) for r in rows])
    return {"current": current,  # a JSON object: stored key order is not kept (PostgreSQL jsonb)
            "trends": {t.feature: {"points": [[_iso(at), w] for at, w in t.points],
                                   "slope_per_30_days": t.slope_per_30_days} for t in trends}}


def _metrics(row: dict[str, Any]) -> dict[str, Any]:
    """A stored window's metric columns; for a multiclass window also its headline figures and its
    per-class support, precision and recall (``per_class_<name>``: class -> value) from the result."""
    metrics = {"sample_count": row["sample_count"], "label_coverage": row["label_coverage"],
               "provisional": row["provisional"], **{m: row[m] for m in METRICS if row.get(m) is not None}}
    result = row.get("result") or {}
    if result.get("task_kind") == TaskKind.MULTICLASS_CLASSIFICATION.value:
        metrics.update({m: result[m] for m in MULTICLASS_FIGURES if result.get(m) is not None})
        metrics.update({f"per_class_{name}": dict(result.get(f"per_class_{name}") or {})
                        for name in PER_CLASS_IN_METRICS})
    return metrics


def _drift_by_day(store, model: str, span: tuple[datetime, datetime], days: list[datetime]
                  ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Severities per day: a features x days and a degraded-metrics x days matrix, one row per
    drift kind, and the findings of the period's latest day with a result (with their "since");
    plus the baseline that day's checks were measured against."""
    rows = store.read_results("drift_reports", model=model, model_version=ALL_VERSIONS, window_ends=span)
    by_day = {(as_utc(r["window_end"]), r["kind"]): r for r in rows}
    matrices: dict[str, dict[str, list[str | None]]] = {"features": {}, "metrics": {}}
    kinds: dict[str, list[str | None]] = {k: [None] * len(days) for k in DRIFT_KINDS}
    for i, day in enumerate(days):
        for kind, severities in kinds.items():
            row = by_day.get((day, kind))
            if row is None:
                continue
            severities[i] = row["severity"] if row["status"] == "ok" else row["status"]
            matrix = {"feature_drift": "features", "performance_degradation": "metrics"}.get(kind)
            if matrix and row["status"] == "ok":
                for name, detail in (row["result"]["statistical_tests"].get(matrix) or {}).items():
                    matrices[matrix].setdefault(name, [None] * len(days))[i] = detail["severity"]
    missing = [_iso(day) for i, day in enumerate(days) if all(kinds[k][i] is None for k in kinds)]
    latest = max((day for day, _ in by_day), default=None)
    findings = [finding for kind in DRIFT_KINDS if (day_row := by_day.get((latest, kind)))
                for finding in drift_findings(kind, day_row["result"])]
    measured = _measured_baseline(next((by_day[latest, k] for k in DRIFT_KINDS if (latest, k) in by_day), None))
    return ({"days": [_iso(day) for day in days], **kinds,
             **{name: dict(sorted(matrix.items())) for name, matrix in matrices.items()},
             "missing_days": missing, "findings": findings, "findings_window_end": _iso(latest) if latest else None},
            measured)


def drift_findings(kind: str, result: dict[str, Any] | None) -> list[dict[str, Any]]:
    """What one stored drift report flags, each with the day its change started: drifted features
    (feature_drift), degraded metrics (performance_degradation, ``statistical_tests["metrics"]``),
    flagged checks (prediction and concept drift). Items: kind, name, severity and ``since`` (an
    ISO date; None for reports stored before the sequential monitor, which had no change start)."""
    tests = (result or {}).get("statistical_tests") or {}
    if kind == "feature_drift":
        entries = {name: entry for name, entry in (tests.get("features") or {}).items() if entry.get("drifted")}
    else:
        entries = {name: entry for name, entry in
                   (tests.get("metrics" if kind == "performance_degradation" else "checks") or {}).items()
                   if isinstance(entry, dict) and entry.get("severity") not in (None, "none")}
    findings = []
    for name, entry in entries.items():
        starts = [entry.get("since"), entry.get("change_start"),
                  *((check or {}).get("change_start") for check in (entry.get("checks") or {}).values()
                    if (check or {}).get("severity") not in (None, "none"))]
        days = sorted(str(start)[:10] for start in starts if start and start != "?")
        findings.append({"kind": kind, "name": name, "severity": entry["severity"], "since": days[0] if days else None})
    return findings


def baseline_view(store, model: str, measured: dict[str, Any] | None) -> dict[str, Any] | None:
    """The baseline a model's findings are measured against, as the report and the page show it:
    the stored (pinned) one, else the one its latest drift checks were measured against (a young
    model's provisional default), else None (no check compared against anything yet). ``stored``
    says which; ``measured_against`` is the latest checks' baseline when it differs from the stored
    one (moved since by a promotion or a pin, or clipped for a young model), else None."""
    stored = store.get_baseline(model)
    if stored is None and not measured:
        return None
    view = {**(stored.to_dict() if stored is not None else measured), "stored": stored is not None}
    span = ("start", "end", "source", "provisional")
    view["measured_against"] = (measured if stored is not None and measured
                                and any(measured.get(k) != view[k] for k in span) else None)
    return view


def _measured_baseline(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """The baseline a stored drift report was measured against (``statistical_tests["baseline"]``)."""
    return ((row or {}).get("result") or {}).get("statistical_tests", {}).get("baseline") or None


def _ab_summary(test) -> dict[str, Any]:
    """The report's view of an ``ABTestRecord``."""
    result = test.result or {}
    latest = result.get("latest") or {}
    comparison = latest.get("comparison") or {}
    return {"test_id": test.test_id, "model": test.model, "champion_version": test.champion_version,
            "challenger_version": test.challenger_version, "status": test.status,
            "started_at": _iso(test.started_at), "ended_at": _iso(test.ended_at) if test.ended_at else None,
            "decision": (latest.get("decision") or {}).get("action"),
            "reasons": (latest.get("decision") or {}).get("reasons", []),
            "difference": comparison.get("difference"), "ci": [comparison.get("ci_low"), comparison.get("ci_high")],
            "running_min_p": result.get("running_min_p"), "looks": result.get("looks", []),
            "metric": latest.get("metric"), "plan": (test.config or {}).get("plan"),
            "plan_summary": (test.config or {}).get("plan_summary"),
            "guardrails": [{"metric": g["metric"], "allowed": g["allowed"], "skipped": g.get("skipped"),
                            "difference": (g.get("comparison") or {}).get("difference"),
                            "ci": [(g.get("comparison") or {}).get("ci_low"),
                                   (g.get("comparison") or {}).get("ci_high")]}
                           for g in latest.get("guardrails") or []]}


def _iso(value: datetime) -> str:
    return as_utc(value).isoformat()
