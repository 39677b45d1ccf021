"""The run's ``DriftReport``s from the checks' verdicts, in the JSON shape the alert policy, the
reports and the UI read (``statistical_tests``: per feature / per check / per metric entries, and
concept drift's top-level metric, reference_value, current_value, pct_change and p_value)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..types import DriftReport, DriftType, Severity, Status

_ADVICE = {
    Severity.LOW: "monitor; no action needed yet",
    Severity.MEDIUM: "investigate the cause and watch performance as labels arrive",
    Severity.HIGH: "retrain on recent data if performance confirms the shift",
    Severity.CRITICAL: "retrain on recent data and check the upstream pipeline",
}


def check_entry(verdict: dict[str, Any]) -> dict[str, Any]:
    """One check of a report: the latest z, the CUSUM and its threshold, the change start, the
    effect on the rows since then and its rating."""
    fit = verdict["fit"]
    start = verdict["change_start"]
    return {
        "z": verdict["z"], "cusum": verdict["cusum"], "threshold": verdict["threshold"], "k": verdict["k"],
        "alarm": verdict["alarm"], "effect_name": verdict["effect_name"], "effect": verdict["effect"],
        "change_start": start.isoformat() if start else None, "severity": verdict["severity"].value,
        "flagged": verdict["severity"] is not Severity.NONE, "days_ok": verdict["days_ok"],
        "null": {"location": fit.location, "scale": fit.scale, "days": fit.days, "source": fit.source},
        "segment": verdict["segment"],
    }


def _since(verdicts) -> str:
    starts = [v["change_start"] for v in verdicts if v["severity"] is not Severity.NONE and v["change_start"]]
    return min(starts).date().isoformat() if starts else "?"


def _status(verdicts) -> Status:
    return Status.OK if any(v["days_ok"] or v["alarm"] for v in verdicts) else Status.INSUFFICIENT_DATA


def build_reports(evaluated, task_kind: str, end: datetime, details: dict[str, Any]) -> dict[str, DriftReport]:
    by_subject: dict[str, list] = {}  # a multiclass model has several prediction subjects (class, each probability)
    for subject, verdicts in evaluated:
        if subject[0] != "feature":
            by_subject.setdefault(subject[0], []).extend(verdicts)
    features = [(subject, verdicts) for subject, verdicts in evaluated if subject[0] == "feature"]
    design = details["design"]
    return {
        "feature_drift": _feature_report(features, design["feature_drift"], end),
        "prediction_drift": _output_report(DriftType.PREDICTION_DRIFT, by_subject["prediction"],
                                           design["prediction_drift"], end),
        "concept_drift": _output_report(DriftType.CONCEPT_DRIFT, by_subject["concept"], design["concept_drift"], end,
                                        task_kind=task_kind, delay=details["label_delay"]),
        "performance_degradation": _output_report(DriftType.PERFORMANCE_DEGRADATION, by_subject["performance"],
                                                  design["performance"], end, delay=details["label_delay"]),
    }


def _feature_report(features, design: dict[str, Any], end: datetime) -> DriftReport:
    entries: dict[str, dict[str, Any]] = {}
    for (_, name, kind), verdicts in features:
        if kind is None:
            entries[name] = {"kind": None, "status": Status.INVALID.value, "severity": Severity.NONE.value,
                             "drifted": False, "reason": "feature absent from the baseline or the current window",
                             "checks": {}}
            continue
        severity = Severity.worst(v["severity"] for v in verdicts)
        entries[name] = {"kind": kind, "status": _status(verdicts).value, "severity": severity.value,
                         "drifted": severity is not Severity.NONE, "since": _since(verdicts)
                         if severity is not Severity.NONE else None,
                         "checks": {v["check"].rsplit(":", 1)[1]: check_entry(v) for v in verdicts}}
    affected = [name for name, e in entries.items() if e["drifted"]]
    severity = Severity.worst(Severity(entries[n]["severity"]) for n in affected)
    tested = sum(e["status"] == Status.OK.value for e in entries.values())
    status = Status.OK if tested else Status.INSUFFICIENT_DATA
    alarms = [n for n, e in entries.items() if any(c["alarm"] for c in e["checks"].values())]
    summary = {"features_tested": tested, "features_drifted": len(affected),
               "drift_share": len(affected) / tested if tested else None,
               "checks": sum(len(e["checks"]) for e in entries.values()), "rule": "cusum", **design,
               "alarms_below_practical_threshold": [n for n in alarms if n not in affected]}
    if status is Status.INSUFFICIENT_DATA:
        text = "Not enough data in the baseline or the current days to test for drift."
    elif not affected:
        text = "No practically significant feature drift against the baseline; keep monitoring."
    else:
        listed = ", ".join(f"{n} (since {entries[n]['since']})" for n in affected[:5])
        listed += f" and {len(affected) - 5} more" if len(affected) > 5 else ""
        text = f"{severity.value.capitalize()} drift against the baseline in {listed}: {_ADVICE[severity]}."
    return DriftReport(drift_type=DriftType.DATA_DRIFT, severity=severity, affected_features=affected,
                       statistical_tests={"summary": summary, "features": entries}, recommendation=text,
                       status=status, detected_at=end)


def _output_report(drift_type: DriftType, verdicts, design: dict[str, Any], end: datetime, *,
                   task_kind: str | None = None, delay: dict | None = None) -> DriftReport:
    entries = {v["check"].split(":", 1)[1]: check_entry(v) for v in verdicts}
    flagged = [v for v in verdicts if v["severity"] is not Severity.NONE]
    severity = Severity.worst(v["severity"] for v in flagged)
    status = _status(verdicts)
    tests: dict[str, Any] = {"rule": "cusum", **design, "checks": entries}
    if delay is not None:
        tests["label_delay"] = delay
    if drift_type is DriftType.CONCEPT_DRIFT and verdicts:
        segment = verdicts[0]["segment"]
        tests.update({"metric": "loss", **{k: segment.get(k) for k in ("reference_value", "current_value",
                                                                         "pct_change", "p_value", "n_reference",
                                                                         "n_current")}})
    affected = []
    if drift_type is DriftType.PERFORMANCE_DEGRADATION:
        tests["metrics"] = tests.pop("checks")
        affected = [v["check"].split(":", 1)[1] for v in flagged]
    text = _output_text(drift_type, status, severity, flagged, tests)
    return DriftReport(drift_type=drift_type, severity=severity, affected_features=affected,
                       statistical_tests=tests, recommendation=text, status=status, detected_at=end)


def _output_text(drift_type: DriftType, status: Status, severity: Severity, flagged, tests) -> str:
    what = {DriftType.PREDICTION_DRIFT: "prediction distribution", DriftType.CONCEPT_DRIFT: "loss",
            DriftType.PERFORMANCE_DEGRADATION: "performance"}[drift_type]
    if status is Status.INSUFFICIENT_DATA:
        pending = " (labels pending)" if drift_type is not DriftType.PREDICTION_DRIFT else ""
        return f"Not enough data to judge the {what} against the baseline{pending}."
    if severity is Severity.NONE:
        return f"The {what} is stable against the baseline."
    since = _since(flagged)
    if drift_type is DriftType.PERFORMANCE_DEGRADATION:
        parts = []
        for v in flagged:
            s = v["segment"]
            parts.append(f"{s.get('metric')} {s.get('reference_value'):.4g} -> {s.get('current_value'):.4g}")
        return (f"{severity.value.capitalize()} performance degradation since {since}: {', '.join(parts)}; "
                f"{_ADVICE[severity]}.")
    if drift_type is DriftType.CONCEPT_DRIFT:
        return (f"{severity.value.capitalize()} concept drift since {since}: mean loss "
                f"{tests['reference_value']:.4g} -> {tests['current_value']:.4g} ({tests['pct_change']:+.1f}%); "
                f"{_ADVICE[severity]}.")
    names = ", ".join(v["check"].split(":", 1)[1] for v in flagged)
    return f"{severity.value.capitalize()} shift of the predictions since {since} ({names}); {_ADVICE[severity]}."
