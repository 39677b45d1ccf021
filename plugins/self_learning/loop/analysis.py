"""A model's day against its pinned baseline: which baseline, which rows, and the monitor's results
as rows to store (no Airflow; the daily DAG's ``analyse`` step calls it, so can a notebook).

Why it reads what it reads:
- the baseline is the model's pinned one (``store.resolve_baseline``; a manual run may pin it
  first), never the days just before the window: a reference that rolls forward forgets a shift
  about 35 days after it happened (issue 15); a young model's baseline shorter than a week
  (``min_baseline_days``) gives ``insufficient_data``: on 5 baseline days a day-of-week feature
  looked like high drift every day;
- the current rows reach back ``max(current_window_days, label_window_days)`` days: feature and
  prediction checks use the last ``current_window_days`` (7), concept and performance checks are
  recomputed over the last ``label_window_days`` (14) because a day is judged only once its labels
  have matured;
- the CUSUM's history is the day statistics stored by earlier runs (``lookback_days`` before the
  read), so a run is a pure function of the stored data and re-running or backfilling a window
  gives the same verdict;
- the baseline's calibration (its empirical null: every baseline day against the rest, for every
  check) depends on the pinned baseline alone, so it is computed once and cached with it
  (``store.baseline_calibration``); it was most of a run's monitoring time.

``settings`` is the daily run's ``RunSettings`` (duck-typed: this room does not import the Airflow
layer).

Each drifted feature's stored entry also carries a small ``distribution`` of the baseline and the
current feature window (``feature_distribution``: shares of rows in 20 bins cut at the baseline's
quantiles, or the top categories and "other"), so the report and the page can draw the reference
against the current window. Computed here, from the rows the run already holds, because at page
time the rows would have to be read again (the baseline's 30 days, per model, per page view) and may
be gone (retention); stored for the drifted features only (about 1 kB each), since those are the
ones a reader is sent to look at.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from ..core.baselines import Baseline, check_baseline_before
from ..core.monitoring import BaselineCalibration, MonitoringResult, MonitorSettings, monitor_window


def monitor_settings(settings) -> MonitorSettings:
    """The monitor's settings from a run's settings."""
    return MonitorSettings(window_days=settings.current_window_days, lookback_days=settings.lookback_days,
                           min_label_coverage=settings.min_label_coverage,
                           false_alarm_days=float(settings.false_alarm_days))


def baseline_for(store, model: str, settings, *, set_by: str) -> Baseline | None:
    """The baseline the window of ``settings`` is compared with: pinned first when the run sets
    ``baseline_start`` / ``baseline_end``; None when nothing of the model's default baseline lies
    before the window yet (its first days)."""
    pinned = settings.baseline_window
    if pinned is not None:
        store.set_baseline(model, *pinned, source="explicit", on_promotion=settings.baseline_on_promotion,
                           set_by=set_by, note="pinned from the daily run's params")
    baseline = store.resolve_baseline(model, baseline_days=settings.baseline_days, until=settings.current_start,
                                      on_promotion=settings.baseline_on_promotion)
    return check_baseline_before(baseline, settings.current_start)


def read_start(settings, monitor: MonitorSettings) -> datetime:
    """The earliest served time the run reads: the label window reaches further back than the current one."""
    return settings.window_end - timedelta(days=max(monitor.window_days, monitor.label_window_days))


def analyse_recent(store, spec, settings, kinds, *, set_by: str
                   ) -> tuple[pd.DataFrame, MonitoringResult, Baseline | None, pd.DataFrame]:
    """Read every prediction served since ``read_start`` (labelled or not) and monitor them: the
    rows read (the caller derives the current window from them), the verdict, the baseline and
    its rows (empty while it has fewer than ``min_baseline_days``)."""
    recent = store.read_window(spec.name, read_start(settings, monitor_settings(settings)), settings.window_end,
                               labelled_only=False)
    return (recent, *monitor_model(store, spec, settings, kinds, recent, set_by=set_by))


def monitor_model(store, spec, settings, kinds, current: pd.DataFrame, *, set_by: str
                  ) -> tuple[MonitoringResult, Baseline | None, pd.DataFrame]:
    """The monitor's verdict for one model, its baseline and the baseline's rows: ``current`` holds
    every prediction served since ``read_start`` (labelled or not); the baseline's rows and the
    stored history are read here."""
    monitor = monitor_settings(settings)
    baseline = baseline_for(store, spec.name, settings, set_by=set_by)
    if baseline is None or baseline.days < monitor.min_baseline_days:
        # Fewer days cannot tell a weekday from a change (a day-of-week feature differs from a
        # 5-day pool every day): insufficient data, never drift, until the baseline has a week.
        reference = current.iloc[:0]
    else:
        reference = store.read_window(spec.name, baseline.start, baseline.end, labelled_only=False)
    first = read_start(settings, monitor)
    earlier = store.read_day_statistics(spec.name, first - timedelta(days=monitor.lookback_days), first)
    key = calibration_key(baseline, monitor) if baseline is not None and not baseline.provisional else None
    cached = store.baseline_calibration(spec.name, key) if key and len(reference) else None
    result = monitor_window(reference, current, task_kind=spec.task_kind, feature_kinds=kinds,
                            window_end=settings.window_end, earlier=earlier, settings=monitor,
                            calibration=BaselineCalibration.from_dict(cached) if cached else None,
                            classes=spec.classes or None)
    if key and len(reference) and cached is None:
        store.save_baseline_calibration(spec.name, key, result.calibration.to_dict())
    return with_distributions(result, reference, current, kinds), baseline, reference


DISTRIBUTION_BINS = 20  # numeric: bins cut at the baseline's quantiles (5 % of its rows each)
DISTRIBUTION_CATEGORIES = 10  # categorical: the most frequent categories over both windows, then "other"
OTHER, MISSING = "(other)", "(missing)"


def with_distributions(result: MonitoringResult, reference: pd.DataFrame, current: pd.DataFrame,
                       kinds: Mapping[str, str]) -> MonitoringResult:
    """``result`` with a ``distribution`` in the feature drift report's entry of every drifted
    feature: the baseline's rows against the rows of the feature window (the days the feature
    checks read, from ``details["feature_window_start"]``)."""
    report = result.reports.get("feature_drift")
    if report is None or not report.affected_features or not len(reference):
        return result
    since = pd.Timestamp(result.details["feature_window_start"])
    window = current[(current["served_at"] >= since) & (current["served_at"] < pd.Timestamp(result.details[
        "window_end"]))]
    entries = dict(report.statistical_tests["features"])
    for name in report.affected_features:
        if name in reference.columns and name in window.columns and kinds.get(name):
            entries[name] = {**entries[name],
                             "distribution": feature_distribution(reference[name], window[name], kinds[name])}
    tests = {**report.statistical_tests, "features": entries}
    return dataclasses.replace(result, reports={**result.reports,
                                                "feature_drift": dataclasses.replace(report, statistical_tests=tests)})


def feature_distribution(reference: pd.Series, current: pd.Series, kind: str) -> dict[str, Any]:
    """A feature's rows in bins, counted for both windows: ``labels`` (a bin's range, a value or a
    category), ``reference`` and ``current`` counts per label, ``missing`` counts and row totals.
    Numeric: bins cut at the baseline's quantiles (``edges``; the outer bins also hold the current
    values beyond the baseline's range), or one bin per value for a feature of at most
    ``DISTRIBUTION_BINS`` distinct values. Categorical: the ``DISTRIBUTION_CATEGORIES`` most
    frequent categories over both windows, the rest as "(other)"."""
    totals = {"rows": {"reference": len(reference), "current": len(current)},
              "missing": {"reference": int(reference.isna().sum()), "current": int(current.isna().sum())}}
    if kind == "numeric":
        ref = pd.to_numeric(reference, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        cur = pd.to_numeric(current, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
        values = np.unique(ref)
        if 0 < len(values) <= DISTRIBUTION_BINS:
            return {"kind": "values", "labels": [f"{v:g}" for v in values], **totals,
                    "reference": _counts_at(ref, values), "current": _counts_at(cur, values),
                    "beyond": int(np.isin(cur, values, invert=True).sum())}
        edges = np.unique(np.quantile(ref, np.linspace(0, 1, DISTRIBUTION_BINS + 1))) if len(ref) else np.array([])
        if len(edges) < 2:
            return {"kind": "numeric", "labels": [], "edges": [], "reference": [], "current": [], **totals}
        return {"kind": "numeric", "labels": [f"{a:.3g}–{b:.3g}" for a, b in itertools.pairwise(edges)],
                "edges": [float(e) for e in edges], **totals,
                "reference": _binned(ref, edges), "current": _binned(cur, edges),
                "beyond": int(((cur < edges[0]) | (cur > edges[-1])).sum())}
    ref, cur = reference.dropna().astype(str), current.dropna().astype(str)
    both = pd.concat([ref, cur]).value_counts()
    top = sorted(both.index[:DISTRIBUTION_CATEGORIES], key=lambda c: (-int(both[c]), c))
    labels = [*top, *([OTHER] if len(both) > len(top) else [])]
    counted = {side: values.where(values.isin(top), OTHER).value_counts() for side, values in
               (("reference", ref), ("current", cur))}
    return {"kind": "categorical", "labels": labels, **totals,
            **{side: [int(counts.get(label, 0)) for label in labels] for side, counts in counted.items()}}


def _binned(values: np.ndarray, edges: np.ndarray) -> list[int]:
    """Counts per bin [edges[i], edges[i+1]), the last bin closed; values beyond go to the outer bins."""
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    return [int(c) for c in np.bincount(index, minlength=len(edges) - 1)]


def _counts_at(values: np.ndarray, points: np.ndarray) -> list[int]:
    return [int(c) for c in (values[:, None] == points[None, :]).sum(axis=0)] if len(values) else [0] * len(points)


# Bump when the monitor computes a baseline's calibration differently: cached ones are then recomputed.
# 2: concept drift's baseline days are normal-score z of the losses (were Welch z of the mean loss).
# 3: a weekly pattern of the baseline days is taken out of each check (NullFit.weekday_offsets).
CALIBRATION_VERSION = 3


def calibration_key(baseline: Baseline, monitor: MonitorSettings) -> str:
    """What a cached calibration was computed for: the baseline's dates, the monitor's settings and
    ``CALIBRATION_VERSION`` (a SHA-256, so it fits the column whatever the settings)."""
    described = json.dumps({"start": baseline.start.isoformat(), "end": baseline.end.isoformat(),
                            "settings": dataclasses.asdict(monitor), "version": CALIBRATION_VERSION},
                           sort_keys=True)
    return "sha256:" + hashlib.sha256(described.encode()).hexdigest()


def monitoring_rows(spec, settings, result: MonitoringResult, baseline: Baseline | None) -> list[dict[str, Any]]:
    """``store.save_results`` entries: one drift report per kind (with the baseline it was measured
    against) and the day statistics (upserted on model, check and day)."""
    from ..store import ALL_VERSIONS

    described = baseline.to_dict() if baseline is not None else None
    rows = []
    for kind, report in result.reports.items():
        stored = report.to_dict()
        stored["statistical_tests"] = {**stored["statistical_tests"], "baseline": described}
        rows.append({"table": "drift_reports", "model": spec.name, "model_version": ALL_VERSIONS,
                     "window_start": settings.current_start, "window_end": settings.window_end, "kind": kind,
                     "result": stored, "severity": report.severity.value, "status": report.status.value,
                     "affected_features": report.affected_features})
    for statistic in result.day_statistics:
        rows.append({"table": "day_statistics", "model": spec.name, "window_end": settings.window_end,
                     **{key: value for key, value in statistic.to_dict().items()}})
    return rows
