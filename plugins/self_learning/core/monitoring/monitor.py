"""``monitor_window``: one model's run of the sequential monitor (see the package docstring)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from ..multiclass import PROBABILITY_PREFIX
from ..tasks import task_spec
from ..types import FEATURE_KINDS, FEATURE_THREADS, Severity, TaskKind, as_utc, class_list, shown
from . import cusum, daily, labels
from .reports import build_reports
from .results import (
    BUDGET_SHARES,
    FAMILIES,
    BaselineCalibration,
    DayStatistic,
    MonitoringResult,
    MonitorSettings,
    NullFit,
)

REQUIRED_COLUMNS = ("served_at", "predicted_value", "actual_value")
# a multiclass window's (``core.multiclass.frame_class_predictions``; its proba_<class> columns may
# be absent: a class without one reads as probability 0)
MULTICLASS_COLUMNS = ("served_at", "predicted_label", "actual_label")
OVERDISPERSION_ALPHA = 0.1  # the baseline days' test of "theory holds" (variance and lag-1 correlation)
DAY_EFFECT_PHI_PRIOR = 0.5  # the least lag-1 correlation assumed for day effects that exist (see step 2)
MAX_RHO = 0.8
WEEKDAYS = 7
WEEKDAY_ALPHA = 0.01  # the baseline days' F test of a weekly pattern (package docstring, step 2)


def monitor_window(baseline: pd.DataFrame, current: pd.DataFrame, *, task_kind: str,
                   feature_kinds: Mapping[str, str], window_end: datetime, earlier: Iterable[Any] = (),
                   settings: MonitorSettings | None = None,
                   calibration: BaselineCalibration | None = None, classes=None) -> MonitoringResult:
    """Day statistics, CUSUMs and reports of one model for the window ending at ``window_end``.

    ``baseline``: the pinned baseline's rows; ``current``: the rows served in the last
    ``max(window_days, label_window_days)`` days before ``window_end`` (as
    ``FeedbackStore.read_window(..., labelled_only=False)`` returns them); rows outside are ignored.
    ``earlier``: stored ``DayStatistic`` (or their rows) of the days before; those of the
    ``lookback_days`` before the window feed the CUSUM. ``calibration``: a cached
    ``BaselineCalibration`` of this baseline (computed from ``baseline`` when None).

    A multiclass model (``classes``: its class list, required) is read from ``predicted_label``,
    ``actual_label`` and the ``proba_<class>`` columns: its prediction checks are the served
    class's distribution and each class's probability (``_subjects``), its loss the multiclass
    log loss (0/1 for one-hot probabilities) and its metrics accuracy, log loss and macro F1.
    """
    settings = MonitorSettings() if settings is None else settings
    if not isinstance(settings, MonitorSettings):
        raise ValueError(f"settings: expected MonitorSettings, got {shown(settings)}")
    kind = task_spec(task_kind).kind
    kinds = _feature_kinds(feature_kinds)
    multiclass = kind == TaskKind.MULTICLASS_CLASSIFICATION.value
    if multiclass:
        if classes is None:
            raise ValueError("classes: a multiclass model's class list is required")
        classes = class_list(classes)
    for name, frame in (("baseline", baseline), ("current", current)):
        if not isinstance(frame, pd.DataFrame):
            raise ValueError(f"{name}: expected a DataFrame, got {shown(frame)}")
        missing = [c for c in (MULTICLASS_COLUMNS if multiclass else REQUIRED_COLUMNS) if c not in frame.columns]
        if missing:
            raise ValueError(f"{name}.{missing[0]}: column missing")
    end = as_utc(window_end)
    run = _RunDays(end, settings)
    current = current[(run.numbers(current) >= run.first_label) & (current["served_at"] < pd.Timestamp(end))]
    current = current.reset_index(drop=True)
    base_days = daily.split_days(daily.day_numbers(baseline["served_at"]))
    base_groups = list(base_days.values())
    cur_groups = list(daily.split_days(daily.day_numbers(current["served_at"]), run.days).values())
    feature_groups = [g if day >= run.first_feature else None for day, g in zip(run.days, cur_groups, strict=True)]

    subjects = _subjects(kinds, baseline, current, classes if multiclass else None)
    counts = _check_counts(kind, subjects, baseline, current)
    design = {family: _family_design(family, counts[family], settings) for family in FAMILIES}
    history = _history(earlier, run)
    context = _Context(settings, run, design, history, calibration, daily.weekday(np.array(list(base_days), np.int64)))

    def evaluate(subject):
        tracks = _tracks(subject, kind, baseline, current, base_groups, cur_groups, feature_groups, settings,
                         calibrate=calibration is None, run=run, classes=classes)
        return subject, [context.resolve(track) for track in tracks]

    with ThreadPoolExecutor(max_workers=FEATURE_THREADS) as pool:
        evaluated = list(pool.map(evaluate, subjects))
    statistics = [s for _, verdicts in evaluated for v in verdicts for s in v["statistics"]]
    fits = {v["check"]: v["fit"] for _, verdicts in evaluated for v in verdicts}
    calibration = calibration or BaselineCalibration(checks=fits, baseline_days=len(base_groups),
                                                     baseline_rows=len(baseline))
    details = {
        "window_end": end.isoformat(),
        "feature_window_start": daily.day_start(run.first_feature).isoformat(),
        "label_window_start": daily.day_start(run.first_label).isoformat(),
        "design": {f: {k: v for k, v in d.items()} for f, d in design.items()},
        "label_delay": labels.label_delay(current, kind),
        "baseline_days": len(base_groups),
        "baseline_rows": len(baseline),
        "calibration": "empirical" if any(f.source == "empirical" for f in calibration.checks.values()) else
                       f"theory (fewer than {settings.min_baseline_days} baseline days with data)",
    }
    reports = build_reports(evaluated, kind, end, details)
    return MonitoringResult(day_statistics=statistics, reports=reports, calibration=calibration, details=details)


class _RunDays:
    """The run's UTC days: ``days`` (day numbers, oldest first) from the label window's first day to
    the day of ``window_end``; the feature checks use those from ``first_feature``."""

    def __init__(self, end: datetime, settings: MonitorSettings):
        last = daily.day_number(end - timedelta(microseconds=1))
        self.end = end
        self.first_feature = daily.day_number(end - timedelta(days=settings.window_days))
        self.first_label = daily.day_number(end - timedelta(days=max(settings.window_days, settings.label_window_days)))
        self.days = list(range(self.first_label, last + 1))
        self.history_start = self.first_feature - settings.lookback_days

    def numbers(self, frame: pd.DataFrame) -> np.ndarray:
        return daily.day_numbers(frame["served_at"])


def _feature_kinds(feature_kinds: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(feature_kinds, Mapping):
        raise ValueError(f"feature_kinds: expected a mapping of feature name to kind, got {shown(feature_kinds)}")
    for name, kind in feature_kinds.items():
        if kind not in FEATURE_KINDS:
            raise ValueError(f"feature_kinds[{shown(name)}]: must be one of {list(FEATURE_KINDS)}, got {shown(kind)}")
    return dict(feature_kinds)


def _subjects(kinds: dict[str, str], baseline: pd.DataFrame, current: pd.DataFrame,
              classes: tuple[str, ...] | None = None) -> list[tuple]:
    """("feature", name, kind) for every feature (kind None when a window lacks its column), then
    the prediction, concept and performance subjects. The prediction subject is the predicted
    value (numeric), or for a multiclass model (``classes``) the served class (categorical), with
    one more per class for its probability (numeric): a class whose share of the served classes
    holds while the model grows less sure of it shows in its probability first."""
    features = [("feature", name, kind if name in baseline.columns and name in current.columns else None)
                for name, kind in kinds.items()]
    if classes is None:
        outputs = [("prediction", "prediction", "numeric")]
    else:
        outputs = [("prediction", "class", "categorical"),
                   *(("prediction", PROBABILITY_PREFIX + c, "numeric") for c in classes)]
    return [*features, *outputs, ("concept", "concept", None), ("performance", "performance", None)]


def _check_counts(kind: str, subjects, baseline, current) -> dict[str, int]:
    counts = dict.fromkeys(FAMILIES, 0)
    for subject, name, feature_kind in subjects:
        if subject == "feature" and feature_kind is not None:
            columns = (baseline[name], current[name])
            missing = any(bool((~np.isfinite(c.to_numpy(dtype=np.float64, na_value=np.nan))).any())
                          if feature_kind == "numeric" else bool(c.isna().any()) for c in columns)
            counts["feature_drift"] += (3 if feature_kind == "numeric" else 1) + missing
        elif subject == "prediction":
            counts["prediction_drift"] += 3 if feature_kind == "numeric" else 1
    counts["concept_drift"] = 1
    counts["performance"] = len(labels.metric_names(kind))
    return counts


def _family_design(family: str, checks: int, settings: MonitorSettings) -> dict[str, Any]:
    """k, the per-check ARL0 (the model's budget share for the family, Bonferroni over its checks)
    and h from Siegmund's approximation."""
    family_arl0 = settings.false_alarm_days / BUDGET_SHARES[family]
    per_check = family_arl0 * max(checks, 1)
    k = settings.k(family)
    return {"checks": checks, "k": k, "family_arl0_days": family_arl0, "check_arl0_days": per_check,
            "h": cusum.threshold(k, per_check)}


def _history(earlier: Iterable[Any], run: _RunDays) -> dict[str, list[DayStatistic]]:
    """Stored day statistics of the lookback, per check, in day order; days the run recomputes
    (the feature window for feature checks, the label window for label checks) are left out."""
    by_check: dict[str, dict[datetime, DayStatistic]] = {}
    first = {"feature_drift": run.first_feature, "prediction_drift": run.first_feature,
             "concept_drift": run.first_label, "performance": run.first_label}
    for item in earlier:
        stat = item if isinstance(item, DayStatistic) else DayStatistic.from_dict(item)
        number = daily.day_number(stat.day)
        if run.history_start <= number < first[stat.family]:
            by_check.setdefault(stat.check, {})[stat.day] = stat
    return {check: [days[d] for d in sorted(days)] for check, days in by_check.items()}


class _Context:
    """What resolving a check needs: the settings, the run's days, the family designs, the history
    and the cached calibration."""

    def __init__(self, settings, run, design, history, calibration, base_weekdays):
        self.settings, self.run, self.design, self.history, self.calibration = (settings, run, design, history,
                                                                                 calibration)
        self.base_weekdays = base_weekdays

    def null_fit(self, track: daily.Track) -> NullFit:
        if self.calibration is not None:
            return self.calibration.fit(track.check)
        kept = [i for i, z in enumerate(track.baseline) if z is not None]
        values = np.array([track.baseline[i] for i in kept], dtype=np.float64)
        weekdays = self.base_weekdays[kept] if len(track.baseline) == len(self.base_weekdays) else None
        return fit_null(values, self.settings.min_baseline_days, skewed=track.skewed, weekdays=weekdays)

    def resolve(self, track: daily.Track) -> dict[str, Any]:
        fit = self.null_fit(track)
        design = self.design[track.family]
        statistics, positions = [], []
        for i, (number, value) in enumerate(zip(self.run.days, track.days, strict=True)):
            if value is None:
                continue
            positions.append(i)
            statistics.append(DayStatistic(
                check=track.check, family=track.family, day=daily.day_start(number),
                z=fit.standardise(value.raw_z, daily.weekday(number)),
                raw_z=value.raw_z, effect=value.effect, n=value.n, status=value.status, details=value.details))
        earlier = self.history.get(track.check, [])
        path = cusum.run_cusum([s.day for s in earlier] + [s.day for s in statistics],
                               [s.z for s in earlier] + [s.z for s in statistics], design["k"])
        alarm = path.last > design["h"]
        verdict: dict[str, Any] = {
            "check": track.check, "family": track.family, "statistics": statistics, "fit": fit,
            "cusum": path.last, "threshold": design["h"], "k": design["k"], "alarm": alarm,
            "effect_name": track.effect_name, "severity": Severity.NONE, "change_start": None, "segment": {},
            "z": next((s.z for s in reversed(statistics) if s.z is not None), None),
            "days_ok": sum(s.status == "ok" for s in statistics),
            "effect": next((s.effect for s in reversed(statistics) if s.effect is not None), None),
        }
        if alarm and path.change_start is not None:
            start = max(path.change_start, statistics[0].day) if statistics else path.change_start
            segment = [i for i, s in zip(positions, statistics, strict=True) if s.day >= start and s.status == "ok"]
            if not segment:  # the change started before the window and no day of it is usable: the window's
                segment = [i for i, s in zip(positions, statistics, strict=True) if s.status == "ok"]
            effect, severity, segment_details = track.gate(segment)
            verdict.update(effect=effect, severity=severity, segment=segment_details, change_start=start)
        elif track.family != "feature_drift":  # the output reports show the window's values (no rating)
            verdict["segment"] = track.gate([i for i, s in zip(positions, statistics, strict=True)
                                             if s.status == "ok"])[2]
        return verdict


def fit_null(values: np.ndarray, min_days: int, *, skewed: bool = False, weekdays: np.ndarray | None = None
             ) -> NullFit:
    """The empirical null of one check from its baseline days' raw z (see the package docstring,
    step 2): theory unless the days show overdispersion or autocorrelation; else location, a robust
    scale corrected for the autocorrelated days' small-sample bias, times the long-run factor of
    an AR(1) with its lag-1 correlation floored by the prior. With the days' ``weekdays`` (Monday
    0), a weekly pattern the baseline shows is taken out first (``weekday_offsets``)."""
    days = int(values.size)
    if days < min_days:
        return NullFit(days=days)
    offsets = None if weekdays is None else weekday_offsets(values, np.asarray(weekdays, dtype=np.int64))
    residual, estimate = 1.0, 1.0
    if offsets is not None:
        # the residuals of 7 fitted means: their spread is low by (days - 7) / days; and a future
        # day's offset is an estimate from ~days / 7 days, whose error adds 7 / days of the variance
        values = values - offsets[np.asarray(weekdays, dtype=np.int64)]
        residual, estimate = float(np.sqrt(days / (days - WEEKDAYS))), float(np.sqrt(1.0 + WEEKDAYS / days))
    location = float(np.median(values))
    centred = values - location
    rho = _lag1(values - values.mean())
    if (offsets is None and float(values @ values) <= stats.chi2.ppf(1 - OVERDISPERSION_ALPHA, days)
            and rho <= special.ndtri(1 - OVERDISPERSION_ALPHA) / np.sqrt(days)):
        return NullFit(days=days, autocorrelation=rho)
    scale = float(1.4826 * np.median(np.abs(centred))) * residual
    if skewed:  # the upper tail's own spread: (q90 - median) / z_0.9
        scale = max(scale, float(np.quantile(values, 0.9) - location) / 1.2816 * residual)
    excess = max(scale * scale - 1.0, 0.0) / max(scale * scale, 1.0)  # the day effects' share of the variance
    corrected = rho + (1 + 4 * rho) / days  # Marriott-Pope / Kendall: the lag-1 estimate is biased low
    rho_z = float(np.clip(max(corrected, DAY_EFFECT_PHI_PRIOR * excess), 0.0, MAX_RHO))
    long_run = (1 + rho_z) / (1 - rho_z)
    bias = 1.0 / max(1.0 - long_run / days, 0.5)  # a sample variance of autocorrelated days is biased low
    scale = float(scale * np.sqrt(bias * long_run) * estimate)
    return NullFit(location=location, scale=scale, days=days, source="empirical", autocorrelation=rho_z,
                   weekday_offsets=() if offsets is None else tuple(float(o) for o in offsets))


def weekday_offsets(values: np.ndarray, weekdays: np.ndarray) -> np.ndarray | None:
    """Each weekday's mean raw z less the overall mean, when a one-way F test of the days by weekday
    rejects "no weekly pattern" at ``WEEKDAY_ALPHA`` (every weekday seen at least twice); else None."""
    counts = np.bincount(weekdays, minlength=WEEKDAYS)
    if counts.size != WEEKDAYS or counts.min() < 2:
        return None
    means = np.bincount(weekdays, weights=values, minlength=WEEKDAYS) / counts
    grand = float(values.mean())
    between = float(counts @ (means - grand) ** 2) / (WEEKDAYS - 1)
    within = float(((values - means[weekdays]) ** 2).sum()) / (values.size - WEEKDAYS)
    if not within > 0 or stats.f.sf(between / within, WEEKDAYS - 1, values.size - WEEKDAYS) >= WEEKDAY_ALPHA:
        return None
    return means - grand


def _lag1(values: np.ndarray) -> float:
    """Lag-1 autocorrelation of a series (0 when constant)."""
    denominator = float(values @ values)
    return float(values[1:] @ values[:-1]) / denominator if denominator > 0 else 0.0


def _floats(frame: pd.DataFrame, column: str, window: str) -> np.ndarray:
    try:
        return frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        raise ValueError(f"{window}.{column}: must be numeric (float64, missing as NaN)") from None


def _tracks(subject, kind, baseline, current, base_groups, cur_groups, feature_groups, settings,
            calibrate: bool, run: _RunDays, classes=None) -> list[daily.Track]:
    what, name, feature_kind = subject
    min_rows = settings.min_rows_per_day
    if what in ("feature", "prediction"):
        if feature_kind is None:
            return []
        if what == "feature":
            column, prefix, family = name, f"feature:{name}", "feature_drift"
        elif name == "prediction":
            column, prefix, family = "predicted_value", "prediction", "prediction_drift"
        else:  # a multiclass model's served class or one class's probability
            column = "predicted_label" if name == "class" else name
            prefix, family = f"prediction:{name}", "prediction_drift"
            if column not in baseline.columns or column not in current.columns:  # a class added since
                baseline, current = (frame.assign(**{column: 0.0}) if column not in frame.columns else frame
                                     for frame in (baseline, current))
        if feature_kind == "numeric":
            return daily.numeric_tracks(prefix, family, _floats(baseline, column, "baseline"), base_groups,
                                        _floats(current, column, "current"), feature_groups, min_rows,
                                        settings.psi_bins, calibrate=calibrate)
        return daily.categorical_tracks(prefix, family, baseline[column], base_groups, current[column],
                                        feature_groups, min_rows, calibrate=calibrate)
    base = labels.LabelledRows(baseline, base_groups, kind, classes)
    cur = labels.LabelledRows(current, cur_groups, kind, classes)
    states = labels.maturity(base, cur, settings.min_label_coverage, min_rows)
    hard = labels.is_hard_label(kind, base.predicted_all, cur.predicted_all)
    groups = base_groups if calibrate else []
    if what == "concept":
        return [labels.concept_track(kind, base, groups, cur, states, hard, min_rows, window_end=run.end,
                                     day_numbers=run.days)]
    return labels.performance_tracks(kind, base, groups, cur, states, hard, min_rows)
