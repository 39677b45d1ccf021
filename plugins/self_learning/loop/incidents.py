"""One incident view per model: since when it is failing, why, and what the loop did about it.

Alerts are stored one row per cause and window (``core.alerts``: dedupe key model|type|cause), so
a shift that lasts a week is seven rows, the first open and the repeats suppressed, and a cause
whose severity rose is open twice. A reader wants one line per cause: first seen, last seen, the
severity on each day, the features, metrics and checks involved (as text: a mailed copy keeps
it), and whether it is still open. Next to the causes, what the loop did in the same time: each
retrain request, the candidate it trained, the A/B test of that candidate and its outcome.

Read from the store only (alerts, retrain requests, the version registry, A/B tests); nothing is
recomputed. ``incident_view`` reads, ``build_incident`` arranges (pure, unit-tested).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from ..core.types import Severity, as_utc
from .figures import METRIC_FIGURES

INCIDENT_DAYS = 30  # how far back an incident view looks for its alerts
ALERT_TITLES = {"feature_drift": "feature drift", "prediction_drift": "prediction drift",
                "concept_drift": "concept drift", "performance_degradation": "performance degradation",
                "performance": "performance limit", "systematic_error": "systematic error", "ab_test": "A/B test"}


def incident_view(store, model: str, *, until: datetime | None, days: int = INCIDENT_DAYS) -> dict[str, Any]:
    """The incident of ``model`` over the ``days`` before ``until`` (None: the database clock)."""
    alerts = store.check_alerts(until=until, hours=days * 24, model=model, include_suppressed=True)
    versions = {v.version: v.status for v in store.version_history(model)}
    return build_incident(model, alerts, store.retrain_request_list(model=model), store.list_ab_tests(model=model),
                          versions)


def build_incident(model: str, alerts: Iterable, requests: Iterable, tests: Iterable,
                   versions: Mapping[str, str]) -> dict[str, Any]:
    """The incident of ``model`` from its alert records (``AlertRecord``), retrain requests
    (``RetrainRequestRecord``), A/B tests (``ABTestRecord``) and versions (version -> status).

    ``causes``: one entry per dedupe key, the most severe first, each with ``first_seen``,
    ``last_seen``, ``severity`` (its latest), ``worst``, ``status`` (open while any of its rows is
    open), ``timeline`` (day, severity, status), the latest ``summary`` and ``involved`` (the
    features, metrics and checks its latest alert names, each as a line of text). ``actions``: the
    retrain requests filed from a day before ``first_seen`` on, oldest first, each followed to its
    candidate, A/B test and outcome. ``timeline``: every alert as (day, severity, suppressed)."""
    alerts = sorted(alerts, key=lambda a: (as_utc(a.window_end), a.id))
    by_key: dict[str, list] = {}
    for alert in alerts:
        by_key.setdefault(alert.dedupe_key, []).append(alert)
    causes = [_cause(rows) for rows in by_key.values()]
    causes.sort(key=lambda c: (c["status"] != "open", -Severity(c["worst"]).rank, c["first_seen"]))
    first = min((c["first_seen"] for c in causes), default=None)
    last = max((c["last_seen"] for c in causes), default=None)
    since = as_utc(datetime.fromisoformat(first)) - timedelta(days=1) if first else None
    tests = list(tests)
    actions = [_action(request, tests, versions) for request in sorted(requests, key=lambda r: as_utc(r.window_end))
               if since is not None and as_utc(request.window_end) >= since]
    return {"model": model, "first_seen": first, "last_seen": last,
            "open": any(c["status"] == "open" for c in causes),
            "worst": Severity.worst(Severity(c["worst"]) for c in causes).value if causes else None,
            "causes": causes, "actions": actions,
            "timeline": [(_iso(a.window_end), a.severity, a.status == "suppressed") for a in alerts]}


def _cause(rows: list) -> dict[str, Any]:
    latest = rows[-1]
    statuses = {a.status for a in rows}
    status = "open" if "open" in statuses else next(
        (s for s in ("acknowledged", "resolved") if s in statuses), latest.status)
    cause = latest.dedupe_key.split("|", 2)[2] if latest.dedupe_key.count("|") >= 2 else latest.dedupe_key
    return {"key": latest.dedupe_key, "type": latest.alert_type, "cause": cause,
            "title": _title(latest.alert_type, cause), "first_seen": _iso(rows[0].window_end),
            "last_seen": _iso(latest.window_end), "severity": latest.severity,
            "worst": Severity.worst(Severity(a.severity) for a in rows).value, "status": status,
            "days": len({_iso(a.window_end) for a in rows}),
            "timeline": [(_iso(a.window_end), a.severity, a.status) for a in rows],
            "summary": latest.summary, "involved": involved(latest.alert_type, latest.details or {})}


def _title(alert_type: str, cause: str) -> str:
    kind = ALERT_TITLES.get(alert_type, alert_type.replace("_", " "))
    if alert_type == "feature_drift":
        return f"{kind} of {cause}"
    if alert_type in ("performance", "systematic_error") or cause not in (alert_type, "performance"):
        return f"{kind}: {cause}"
    return kind


def involved(alert_type: str, details: Mapping[str, Any]) -> list[str]:
    """What an alert's details name, one line of text each: a drifted feature's flagged checks,
    the degraded metrics (baseline -> now), a drift report's flagged checks, a crossed limit or a
    segment's error."""
    if alert_type == "feature_drift":
        return [f"{details.get('feature', '?')} · {_check_text(name, check)}"
                for name, check in (details.get("checks") or {}).items() if (check or {}).get("flagged")]
    if alert_type == "performance_degradation":
        lines = [_metric_text(name, entry) for name, entry in (details.get("metrics") or {}).items()]
        concept = details.get("concept_drift") or {}
        lines += [f"concept drift · {_check_text(name, check)}" for name, check in (concept.get("checks") or {}).items()
                  if (check or {}).get("flagged")]
        return lines
    if alert_type in ("prediction_drift", "concept_drift"):
        checks = (details.get("statistical_tests") or {}).get("checks") or {}
        return [_check_text(name, check) for name, check in checks.items() if (check or {}).get("flagged")]
    if alert_type == "performance" and details.get("limit") is not None:
        return [f"{details.get('metric')} {details.get('value'):.4g} past the limit {details.get('limit'):g}"]
    if alert_type == "systematic_error" and details.get("feature") is not None:
        return [f"{details['feature']}={details.get('bucket')}: mean error {details.get('deviation', 0):+.4g} "
                f"against the rest, {details.get('sample_count', '?')} rows"]
    return []


def _check_text(name: str, check: Mapping[str, Any]) -> str:
    text = f"{name}: CUSUM {check.get('cusum', 0):.3g} over its threshold {check.get('threshold', 0):.3g}"
    if check.get("effect") is not None:
        text += f", {check.get('effect_name') or 'effect'} {check['effect']:.3g}"
    if check.get("change_start"):
        text += f", since {str(check['change_start'])[:10]}"
    return text


def _metric_text(name: str, entry: Mapping[str, Any]) -> str:
    segment = entry.get("segment") or {}
    figure = METRIC_FIGURES.get(name)
    shown = figure.shown if figure else (lambda value: f"{value:.4g}")
    text = f"{figure.short if figure else name} ({entry.get('severity', '?')})"
    if segment.get("reference_value") is not None and segment.get("current_value") is not None:
        text += f": {shown(segment['reference_value'])} on the baseline → {shown(segment['current_value'])} now"
    if entry.get("change_start"):
        text += f", since {str(entry['change_start'])[:10]}"
    return text


def _action(request, tests: list, versions: Mapping[str, str]) -> dict[str, Any]:
    """A retrain request followed through: its candidate (the version it produced), the A/B test
    of that candidate and the outcome, as far as each got."""
    candidate = request.result_version
    test = next((t for t in reversed(tests) if candidate and t.challenger_version == candidate), None)
    return {"request_id": request.request_id, "window_end": _iso(request.window_end), "status": request.status,
            "causes": dict(request.causes), "reasons": list(request.reasons),
            "candidate": ({"version": candidate, "status": versions.get(candidate)} if candidate else None),
            "ab_test": _test(test) if test else None, "outcome": _outcome(request, test, versions)}


def _test(test) -> dict[str, Any]:
    latest = (test.result or {}).get("latest") or {}
    return {"test_id": test.test_id, "status": test.status, "champion_version": test.champion_version,
            "challenger_version": test.challenger_version, "started_at": _iso(test.started_at),
            "ended_at": _iso(test.ended_at) if test.ended_at else None,
            "looks": len((test.result or {}).get("looks") or []),
            "decision": (latest.get("decision") or {}).get("action")}


def _outcome(request, test, versions: Mapping[str, str]) -> str:
    """Where the request's chain stands, in words."""
    detail = request.detail or {}
    if request.status == "requested":
        return "waiting for a retrain run"
    if request.status == "running":
        return "retraining"
    if request.status == "failed":
        return "the retrain run failed" + (f": {detail['error']}" if detail.get("error") else "")
    if request.status == "delegated":
        return f"handed to DAG {detail.get('trainer_dag_id', '?')}"
    if not request.result_version:
        return "no candidate registered" + (f": {detail['reason']}" if detail.get("reason") else "")
    if test is None:
        status = versions.get(request.result_version)
        return f"candidate {request.result_version} registered ({status or 'status unknown'}), no A/B test yet"
    if test.status == "running":
        decision = ((test.result or {}).get("latest") or {}).get("decision") or {}
        looks = len((test.result or {}).get("looks") or [])
        latest = f", latest decision: {decision['action']}" if decision.get("action") else ""
        return (f"A/B test {test.test_id} running since {_iso(test.started_at)[:10]} "
                f"({looks} look{'' if looks == 1 else 's'}{latest})")
    ended = f" on {_iso(test.ended_at)[:10]}" if test.ended_at else ""
    if test.status == "promoted":
        return f"{test.challenger_version} promoted to champion{ended} after A/B test {test.test_id}"
    return f"A/B test {test.test_id} {test.status}{ended}; {test.champion_version} stays champion"


def _iso(value: datetime) -> str:
    return as_utc(value).isoformat()
