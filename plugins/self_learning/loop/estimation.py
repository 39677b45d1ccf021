"""A model's day before its labels arrive: the estimated performance of the current window against
the pinned baseline (``core.estimation``: CBPE for classifiers, DLE for regressors), the estimator
checked against the realized metrics of the windows whose labels have matured since, and
multivariate drift of the features (``core.drift.multivariate``), as rows to store. No Airflow: the
daily DAG's ``analyse`` step calls it with the rows it has already read.

What is stored (``performance_snapshots``, kind ``estimated``, model_version ``*``, the current
window; upserted on that natural key, so a re-run replaces it). Its metric columns stay NULL (every
reader of the table that asks for realized metrics filters ``kind = 'performance'``); the JSON
``result`` holds:
- ``estimate``: the window's ``PerformanceEstimate`` (each metric's value and band);
- ``day``: the estimate of the window's last day alone and its standardised statistic ``z``, the
  input of the ``estimated_performance`` alert (``core.estimation_alerts``: a CUSUM over days);
- ``label_coverage`` / ``matured`` / ``realized``: once the window's label coverage reaches
  ``min_label_coverage`` (the performance step's "not provisional"), its realized metrics. An earlier
  window's row is rewritten with them by the first run that sees its labels matured (its window
  must lie inside the rows the run read: the last ``label_window_days``), so the estimate made days
  ago and its realized value end up side by side;
- ``reliability``: ``estimator_reliability`` over the matured windows of the same estimator (the
  same baseline) in the last ``lookback_days``; unreliable suppresses the alert;
- ``alert``: the CUSUM's verdict and whether it alerts.
Consecutive daily windows overlap (6/7 of their rows), so "the last 2 matured windows" of the
reliability check are 2 consecutive days, not 2 independent weeks: a concept shift is flagged a
couple of days after its labels mature, and a chance flag on a stable stream costs only a
suppressed estimated alert and a notice to distrust the estimate.

Fit once per baseline. Fitting costs a CBPE calibration (milliseconds) or DLE's three boosted loss
models (seconds at a million rows), plus the reference chunks behind the bands. The scikit-learn
models cannot be stored as JSON (only pickles, which this project does not load from its database),
so the fitted estimator is cached in the process (``_ESTIMATORS``, keyed by the model and the
baseline calibration's key, which covers the baseline's dates and the monitor settings, plus
``ESTIMATION_VERSION``, and the reference's row and labelled-row counts, so late labels of the
baseline's days refit it and a cached estimator gives what a refit would); a new process (each
Airflow task runs in its own) refits. The measured
refit cost is in the README ("Estimated performance").

Multivariate drift is stored as a drift report of kind ``multivariate_drift`` (current window vs
the pinned baseline, never vs the days just before). Its alarm needs persistence: the stored
severity is the detector's only when the previous day's run flagged it too (the raw verdicts are in
``statistical_tests.persistence``). Why: the detector's own false-alarm rate was measured at 0 in
170 stable windows (its docstring), i.e. below ~2 % per window at 95 % confidence, which over 365
daily runs could still be several false alarms a year; a one-day blip of the domain classifier's
AUC at its p-value limit is the typical one, and a real correlation change persists for as long as
the data stay changed (the baseline does not move). It costs one day of delay.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import timedelta
from typing import Any

import pandas as pd

from ..core.baselines import Baseline

ESTIMATED_KIND = "estimated"
MULTIVARIATE_KIND = "multivariate_drift"
# Bump when the estimator is fitted differently: cached estimators and stored histories of another
# version are not mixed with new ones.
ESTIMATION_VERSION = 1
_CACHE_SIZE = 16
_ESTIMATORS: OrderedDict[tuple, Any] = OrderedDict()


def estimator_key(calibration_key: str | None) -> str | None:
    """What an estimator was fitted for: the baseline calibration's key (dates and settings) and
    ``ESTIMATION_VERSION``; None for a provisional baseline (not cached)."""
    return None if calibration_key is None else f"{calibration_key}|estimation-v{ESTIMATION_VERSION}"


def fitted_estimator(spec, reference: pd.DataFrame, kinds, key: str | None) -> tuple[Any, dict[str, Any]]:
    """The estimator of ``spec`` fitted on the baseline's ``reference`` rows: the cached one for
    ``key``, else fitted (and cached under ``key`` when there is one). Returns it and how it was
    obtained (``cached``, ``fit_seconds``)."""
    from ..core.estimation import fit_estimator
    from ..core.tasks import task_spec

    # the reference's row and labelled-row counts are part of the cache key: late labels of the
    # baseline's days make a refit give another estimator, and a cached one must give what a refit
    # would (a re-run in a new process refits)
    labelled = int(reference[task_spec(spec.task_kind).target].notna().sum())
    cache_key = (spec.name, key, len(reference), labelled) if key else None
    if cache_key is not None and cache_key in _ESTIMATORS:
        _ESTIMATORS.move_to_end(cache_key)
        return _ESTIMATORS[cache_key], {"key": key, "cached": True, "fit_seconds": 0.0}
    started = time.perf_counter()
    estimator = fit_estimator(reference, task_kind=spec.task_kind, classes=spec.classes or None,
                              feature_kinds=dict(kinds) if str(spec.task_kind) == "regression" else None)
    estimator.reference_values()  # the bands' chunks are computed on first use and cached on the estimator
    seconds = time.perf_counter() - started
    if cache_key is not None:
        _ESTIMATORS[cache_key] = estimator
        while len(_ESTIMATORS) > _CACHE_SIZE:
            _ESTIMATORS.popitem(last=False)
    return estimator, {"key": key, "cached": False, "fit_seconds": round(seconds, 4)}


def clear_estimator_cache() -> None:
    """Forget every cached estimator (tests; a process that wants to measure a refit)."""
    _ESTIMATORS.clear()


def _coverage(rows: pd.DataFrame, target: str) -> float | None:
    return float(rows[target].notna().mean()) if len(rows) else None


def _matured_entries(result: dict[str, Any], window_end) -> list[Any]:
    """One ``MaturedEstimate`` per metric of a stored estimated result with a realized value."""
    from ..core.estimation import MaturedEstimate

    realized = result.get("realized") or {}
    entries = []
    for metric, estimated in ((result.get("estimate") or {}).get("metrics") or {}).items():
        value = realized.get(metric)
        if value is None or estimated.get("value") is None or estimated.get("lower") is None \
                or estimated.get("upper") is None:
            continue
        entries.append(MaturedEstimate(metric, estimated["value"], estimated["lower"], estimated["upper"], value,
                                       window_end))
    return entries


def estimation_rows(store, spec, settings, kinds, recent: pd.DataFrame, reference: pd.DataFrame,
                    baseline: Baseline | None, calibration_key: str | None, *, log=None
                    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The ``store.save_results`` entries of the day's estimate (and of earlier windows whose labels
    matured since) and a summary. ``recent``: every row served since the label window's start
    (labelled or not); ``reference``: the pinned baseline's rows (empty when it is too young)."""
    from ..core.estimation import MIN_REFERENCE_ROWS, estimator_reliability, realized_metrics
    from ..core.estimation_alerts import alert_metric, day_z, estimated_cusum, estimated_severity
    from ..core.tasks import task_spec
    from ..core.types import Status, as_utc
    from ..store import ALL_VERSIONS
    from .analysis import monitor_settings

    target = task_spec(spec.task_kind).target
    end, start = settings.window_end, settings.current_start
    current = recent[recent["served_at"] >= start]
    coverage = _coverage(current, target)
    matured = coverage is not None and coverage >= settings.min_label_coverage
    labelled_reference = int(reference[target].notna().sum()) if len(reference) else 0

    def row(window_start, window_end, result, sample_count, label_coverage, provisional) -> dict[str, Any]:
        return {"table": "performance_snapshots", "model": spec.name, "model_version": ALL_VERSIONS,
                "window_start": window_start, "window_end": window_end, "kind": ESTIMATED_KIND, "result": result,
                "sample_count": sample_count, "label_coverage": label_coverage, "provisional": provisional}

    if baseline is None or labelled_reference < MIN_REFERENCE_ROWS:
        reason = (f"the baseline has {labelled_reference} labelled rows; at least {MIN_REFERENCE_ROWS} are needed to "
                  "fit the estimator and its bands" if baseline is not None and len(reference)
                  else "no baseline of at least a week yet")
        result = {"status": Status.INSUFFICIENT_DATA.value, "reason": reason, "label_coverage": coverage,
                  "matured": matured}
        return [row(start, end, result, len(current), coverage, not matured)], {"status": result["status"],
                                                                                "reason": reason}
    key = estimator_key(calibration_key)
    try:
        estimator, how = fitted_estimator(spec, reference, kinds, key)
        estimate = estimator.estimate(current)
        day = recent[recent["served_at"] >= end - timedelta(days=1)]
        day_estimate = estimator.estimate(day)
    except ValueError as error:  # data the estimator cannot read: named, stored, the rest of the day goes on
        if log is not None:
            log.warning("%s: no estimated performance - %s", spec.name, error)
        result = {"status": Status.INVALID.value, "reason": str(error), "label_coverage": coverage, "matured": matured}
        return [row(start, end, result, len(current), coverage, not matured)], {"status": result["status"],
                                                                                "reason": str(error)}
    metric = alert_metric(spec.task_kind)
    watched = day_estimate.metrics.get(metric)
    z = None if watched is None else day_z(metric, watched.value, watched.reference_value, watched.sampling_error)
    result: dict[str, Any] = {
        "status": estimate.status.value,
        "reason": None if estimate.status is Status.OK else "; ".join(estimate.reasons),
        # the estimator's key, not the fit's time or cache hit: a re-run must store the same row
        "estimate": estimate.to_dict(), "estimator": {"key": key},
        "label_coverage": coverage, "matured": matured,
        "realized": None, "day": {"window_start": (end - timedelta(days=1)).isoformat(), "metric": metric,
                                  "sample_count": day_estimate.sample_count, "z": z,
                                  "value": None if watched is None else watched.value,
                                  "sampling_error": None if watched is None else watched.sampling_error}}
    if matured:
        result["realized"] = realized_metrics(current, task_kind=spec.task_kind, classes=spec.classes or None)

    # earlier windows of the same estimator: their labels may have matured since
    earlier = [r for r in store.read_results("performance_snapshots", model=spec.name, kind=ESTIMATED_KIND,
                                             model_version=ALL_VERSIONS,
                                             window_ends=(end - timedelta(days=settings.lookback_days), end))
               if as_utc(r["window_end"]) < end and (r["result"].get("estimator") or {}).get("key") == key]
    first_read = recent["served_at"].min() if len(recent) else None
    rows, realized_now = [], []
    for stored in earlier:
        old = dict(stored["result"])
        window_start, window_end = as_utc(stored["window_start"]), as_utc(stored["window_end"])
        if old.get("matured") or old.get("status") != Status.OK.value or first_read is None \
                or window_start < first_read.floor("D"):
            continue
        window = recent[(recent["served_at"] >= window_start) & (recent["served_at"] < window_end)]
        window_coverage = _coverage(window, target)
        if window_coverage is None or window_coverage < settings.min_label_coverage:
            continue
        old.update(matured=True, label_coverage=window_coverage, realized_at=end.isoformat(),
                   realized=realized_metrics(window, task_kind=spec.task_kind, classes=spec.classes or None))
        stored["result"] = old
        realized_now.append(window_end.isoformat())
        rows.append(row(window_start, window_end, old, len(window), window_coverage, False))

    history = [entry for stored in earlier
               for entry in _matured_entries(stored["result"], as_utc(stored["window_end"]))]
    history += _matured_entries(result, end)
    reliability = estimator_reliability(history)
    result["reliability"] = reliability.to_dict()

    days = [as_utc(r["window_end"]) for r in earlier] + [end]
    zs = [((r["result"].get("day") or {}).get("z")) for r in earlier] + [z]
    verdict = estimated_cusum(days, zs, k=monitor_settings(settings).k_performance,
                              false_alarm_days=float(settings.false_alarm_days))
    window_metric = estimate.metrics.get(metric)
    verdict.update(metric=metric, suppressed=verdict["alarm"] and not reliability.reliable, severity=None)
    if verdict["alarm"] and window_metric is not None and window_metric.value is not None \
            and window_metric.reference_value is not None:
        verdict["severity"] = estimated_severity(metric, window_metric.value, window_metric.upper,
                                                 window_metric.lower, window_metric.reference_value)
        band = (f" (band {window_metric.lower:.4g}-{window_metric.upper:.4g})"
                if window_metric.lower is not None and window_metric.upper is not None else "")
        verdict["summary"] = (f"estimated {metric} {window_metric.value:.4g}{band} vs the baseline's realized "
                              f"{window_metric.reference_value:.4g} - an estimate from the model's outputs; the labels "
                              "have not confirmed it yet")
    result["alert"] = verdict
    rows.append(row(start, end, result, len(current), coverage, not matured))
    summary = {"status": result["status"], "metric": metric, "value": None if window_metric is None
               else window_metric.value, "matured_since": realized_now, "reliable": reliability.reliable,
               "alarm": verdict["alarm"], "fit_seconds": how["fit_seconds"], "cached": how["cached"]}
    if log is not None:
        log.info("%s estimated: %s", spec.name, summary)
    return rows, summary


def multivariate_row(store, spec, settings, kinds, current: pd.DataFrame, reference: pd.DataFrame,
                     baseline: Baseline | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``drift_reports`` entry of the current window's multivariate drift against the baseline,
    its severity kept only when the previous day's run flagged it too (see the module docstring)."""
    from ..core.drift.multivariate import detect_multivariate_drift
    from ..core.types import Severity
    from ..store import ALL_VERSIONS

    names = list(kinds)
    empty = pd.DataFrame(columns=names)
    report = detect_multivariate_drift(reference[names] if len(reference) and names else empty,
                                       current[names] if names else empty, feature_kinds=dict(kinds) or None,
                                       detected_at=settings.window_end) if names else None
    if report is None:
        return {}, {"status": "no features"}
    stored = report.to_dict()
    raw = report.severity
    previous = store.read_results("drift_reports", model=spec.name, model_version=ALL_VERSIONS, kind=MULTIVARIATE_KIND,
                                  window_end=settings.window_end - timedelta(days=1))
    previous_raw = ((previous[0]["result"]["statistical_tests"].get("persistence") or {}).get("raw_severity")
                    if previous else None)
    persisted = raw is not Severity.NONE and previous_raw not in (None, Severity.NONE.value)
    severity = raw if persisted else Severity.NONE
    tests = {**stored["statistical_tests"], "baseline": baseline.to_dict() if baseline is not None else None,
             "persistence": {"raw_severity": raw.value, "previous_raw_severity": previous_raw, "persisted": persisted,
                             "rule": "reported when the previous day's run flagged it too"}}
    recommendation = stored["recommendation"]
    if raw is not Severity.NONE and not persisted:
        recommendation = (f"First day of possible multivariate drift ({raw.value}); reported if the next run sees it "
                          f"too. {recommendation}")
    stored.update(statistical_tests=tests, severity=severity.value, recommendation=recommendation)
    entry = {"table": "drift_reports", "model": spec.name, "model_version": ALL_VERSIONS,
             "window_start": settings.current_start, "window_end": settings.window_end, "kind": MULTIVARIATE_KIND,
             "result": stored, "severity": severity.value, "status": report.status.value, "affected_features": []}
    return entry, {"status": report.status.value, "severity": severity.value, "raw_severity": raw.value}


def cached_estimators() -> int:
    """How many fitted estimators the process holds."""
    return len(_ESTIMATORS)


__all__ = ["ESTIMATED_KIND", "ESTIMATION_VERSION", "MULTIVARIATE_KIND", "cached_estimators", "clear_estimator_cache",
           "estimation_rows", "estimator_key", "fitted_estimator", "multivariate_row"]
