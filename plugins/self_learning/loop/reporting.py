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

What a model owner asks first (issue 20): which model, since when, why, what was done. Each model
therefore carries its incident (``loop.incidents``: one line per alert cause with first and last
seen, its severity by day and the checks involved, and the retrain requests followed to their
candidate, A/B test and outcome); its open alerts once per cause (a cause whose severity rose was
listed at both severities); per drifted feature the reference-vs-current distribution the daily
run stored (``loop.analysis.feature_distribution``); and per metric the lines its chart draws
(``metric_references``): the retrain limit and the value on the baseline. Every stored metric has a
human name and a unit (``METRIC_FIGURES``): MAPE is stored in percent, WAPE as a fraction, and both
are shown in %.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from ..core.importance import importance_trends
from ..core.performance import performance_from_dict
from ..core.tasks import STORED_METRICS
from ..core.types import RETRAIN_DEFAULTS, Severity, TaskKind, as_utc
from ..store import ALL_VERSIONS
from .figures import METRIC_LIMITS, MULTICLASS_FIGURES, PER_CLASS_FIGURES, PER_CLASS_IN_METRICS
from .incidents import INCIDENT_DAYS, incident_view

METRICS = STORED_METRICS  # the stored metrics a report carries, in the core's order
SECTIONS = ("performance", "error_distribution", "baselines", "drift_results", "systematic_error_patterns",
            "feature_importance", "retraining_recommendations", "ab_test_conclusions", "alerts", "incidents")
# every kind of drift report the daily run stores (core.monitoring.reports), in the order shown
DRIFT_KINDS = ("feature_drift", "prediction_drift", "concept_drift", "performance_degradation")
IMPORTANCE_TREND_DAYS = 90




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
    thresholds = {spec.name: spec.thresholds for spec in store.list_models(active_only=False)}
    for model in models:
        report["performance"][model] = _performance(store, model, period_end, metric_window or length, length,
                                                    trend_periods)
        analyses = {(r["kind"], r["window_end"]): r["result"]
                    for r in store.read_results("error_analyses", model=model, window_ends=span)}
        latest = max((end for _, end in analyses), default=None)
        report["error_distribution"][model] = analyses.get(("error_distribution", latest))
        report["systematic_error_patterns"][model] = (analyses.get(("systematic_errors", latest)) or {}).get(
            "patterns", [])
        report["drift_results"][model], measured, degradation = _drift_by_day(store, model, span, days)
        report["performance"][model]["references"] = metric_references(thresholds.get(model) or {}, degradation)
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
        report["incidents"][model] = incident_view(store, model, until=period_end,
                                                   days=max(INCIDENT_DAYS, length.days))
    # a test is in the period when it ran during any part of it, started on its last day included
    report["ab_test_conclusions"] = [
        _ab_summary(test) for test in store.list_ab_tests()
        if (not models or test.model in models) and test.started_at <= period_end
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
        by_kind = {r["kind"]: r for r in drift}
        health["distributions"] = feature_distributions((by_kind.get("feature_drift") or {}).get("result"))
        health["references"] = metric_references(spec.thresholds, (by_kind.get("performance_degradation") or {}
                                                                   ).get("result"))
        newest = max(drift, key=lambda r: as_utc(r["window_end"]), default=None)
        health["baseline"] = baseline_view(store, spec.name, _measured_baseline(newest))
        health["open_alerts"] = open_alerts_by_cause(store.open_alerts(model=spec.name))
        health["ab_tests"] = [_ab_summary(test) for test in store.list_ab_tests(model=spec.name, status="running")]
        # the incident up to the model's newest result (a replayed or idle model's alerts are not "now")
        newest_end = max([as_utc(r["window_end"]) for r in drift] + ([end] if overall else []), default=None)
        health["incident"] = incident_view(store, spec.name, until=newest_end)
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
            for r in store.read_results("performance_snapshots", model=model, kind="performance",
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
                  ) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]:
    """Severities per day: a features x days and a degraded-metrics x days matrix, one row per
    drift kind, and the findings of the period's latest day with a result (with their "since") and
    its drifted features' distributions; plus the baseline that day's checks were measured against
    and that day's performance degradation result."""
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
    latest_result = {kind: (by_day.get((latest, kind)) or {}).get("result") for kind in DRIFT_KINDS}
    return ({"days": [_iso(day) for day in days], **kinds,
             **{name: dict(sorted(matrix.items())) for name, matrix in matrices.items()},
             "missing_days": missing, "findings": findings, "findings_window_end": _iso(latest) if latest else None,
             "distributions": feature_distributions(latest_result["feature_drift"])},
            measured, latest_result["performance_degradation"])


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


def feature_distributions(result: Mapping[str, Any] | None) -> dict[str, Any]:
    """The reference-vs-current distribution of every drifted feature of a stored feature drift
    result (``loop.analysis.feature_distribution``), with its severity and "since"; empty for a
    report stored before distributions were."""
    features = ((result or {}).get("statistical_tests") or {}).get("features") or {}
    return {name: {**entry["distribution"], "severity": entry.get("severity"), "since": entry.get("since")}
            for name, entry in features.items() if entry.get("drifted") and entry.get("distribution")}


def metric_references(thresholds: Mapping[str, Any], degradation: Mapping[str, Any] | None
                      ) -> dict[str, list[dict[str, Any]]]:
    """Per metric, the horizontal lines its chart draws: the retrain limit (the model's registered
    threshold, else the default; a run's params can override it, which a page cannot know) and
    the metric's value on the baseline (the stored performance degradation check's reference)."""
    references: dict[str, list[dict[str, Any]]] = {}
    for metric, setting, side in METRIC_LIMITS:
        limit = thresholds.get(setting, RETRAIN_DEFAULTS[setting])
        if limit is not None:
            references.setdefault(metric, []).append(
                {"kind": "limit", "label": f"retrain {side}", "value": float(limit)})
    for metric, entry in (((degradation or {}).get("statistical_tests") or {}).get("metrics") or {}).items():
        value = ((entry or {}).get("segment") or {}).get("reference_value")
        if value is not None:
            references.setdefault(metric, []).append({"kind": "baseline", "label": "on the baseline",
                                                      "value": float(value)})
    return references


def open_alerts_by_cause(alerts) -> list[dict[str, Any]]:
    """Open alerts, one per cause (dedupe key): its newest row, with the day it first opened and
    the number of open days; a cause whose severity rose is one line at its newest severity, not
    two. Most severe first, then newest."""
    by_key: dict[str, list] = {}
    for alert in alerts:
        by_key.setdefault(alert.dedupe_key, []).append(alert)
    shown = []
    for rows in by_key.values():
        rows.sort(key=lambda a: as_utc(a.window_end))
        newest = rows[-1]
        shown.append({"id": newest.id, "type": newest.alert_type, "severity": newest.severity,
                      "window_end": _iso(newest.window_end), "summary": newest.summary, "cause": newest.dedupe_key,
                      "first_open": _iso(rows[0].window_end), "open_days": len(rows),
                      "earlier_severities": sorted({a.severity for a in rows[:-1]} - {newest.severity})})
    shown.sort(key=lambda a: a["window_end"], reverse=True)
    return sorted(shown, key=lambda a: -Severity(a["severity"]).rank)  # stable: newest first within a severity


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
