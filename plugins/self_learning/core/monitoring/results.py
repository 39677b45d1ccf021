"""The monitor's settings and records: what a run is configured with, the day statistics it stores,
the baseline's calibration it may cache, and its result."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..types import DriftReport, Result, as_utc, shown

FAMILIES = ("feature_drift", "prediction_drift", "concept_drift", "performance")
DAY_STATUSES = ("ok", "labels_pending", "insufficient_data")
# The model's false-alarm budget split over the families (shares of 1 / false_alarm_days): the
# features get the largest share because they have the most checks (50 features x 3 checks share
# theirs by Bonferroni), the three output families a fifth each.
BUDGET_SHARES: Mapping[str, float] = {"feature_drift": 0.4, "prediction_drift": 0.2, "concept_drift": 0.2,
                                      "performance": 0.2}


def _is_real(value: Any) -> bool:
    """A real number (Python or numpy), not a bool."""
    if isinstance(value, (bool, str, bytes)):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, complex)


@dataclasses.dataclass(frozen=True)
class MonitorSettings:
    """How a model is monitored; the defaults and their reasons are in ``core.monitoring``'s docstring.

    - ``window_days``: the current window of the feature and prediction checks (days before
      ``window_end``); ``label_window_days``: how far back concept and performance days are
      recomputed (a day is judged once its labels have matured, so the window must outlast the
      label delay).
    - ``lookback_days``: stored days before the window that the CUSUM reads.
    - ``min_rows_per_day``: fewer rows (for a check) make that day ``insufficient_data``.
    - ``min_label_coverage``: a day's labelled share, relative to the baseline's own, needed for
      its concept and performance checks (else ``labels_pending``).
    - ``false_alarm_days``: expected in-control days between false alarms of one model, all checks.
    - ``k_*``: the CUSUM reference value per family (in units of the daily z).
    - ``min_baseline_days``: baseline days needed for an empirical null (else theory: N(0, 1)).
    """

    window_days: int = 7
    label_window_days: int = 14
    lookback_days: int = 28
    min_rows_per_day: int = 30
    min_label_coverage: float = 0.8
    false_alarm_days: float = 365.0
    k_features: float = 1.5
    k_prediction: float = 1.5
    k_concept: float = 1.0
    k_performance: float = 1.0
    min_baseline_days: int = 7
    psi_bins: int = 10

    def __post_init__(self):
        for name, low in (("window_days", 1), ("label_window_days", 1), ("lookback_days", 0),
                          ("min_rows_per_day", 2), ("min_baseline_days", 3), ("psi_bins", 2)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"settings.{name}: must be an integer >= {low}, got {shown(value)}")
        if not 0 <= self.min_label_coverage <= 1:
            raise ValueError(f"settings.min_label_coverage: must be in [0, 1], got {shown(self.min_label_coverage)}")
        if not (_is_real(self.false_alarm_days) and self.false_alarm_days >= 10):
            raise ValueError(f"settings.false_alarm_days: must be a number >= 10, got {shown(self.false_alarm_days)}")
        for name in ("k_features", "k_prediction", "k_concept", "k_performance"):
            value = getattr(self, name)
            if not (_is_real(value) and 0.1 <= value <= 5):
                raise ValueError(f"settings.{name}: must be a number in [0.1, 5], got {shown(value)}")

    def k(self, family: str) -> float:
        return {"feature_drift": self.k_features, "prediction_drift": self.k_prediction,
                "concept_drift": self.k_concept, "performance": self.k_performance}[family]


@dataclasses.dataclass(frozen=True)
class DayStatistic(Result):
    """One check on one UTC day of the current window: ``raw_z`` (the one-sided standardised
    statistic against the baseline), ``z`` (after the baseline's empirical null; what the CUSUM
    adds up), ``effect`` (the day's effect size), ``n`` (rows used) and ``status``."""

    check: str
    family: str
    day: datetime
    z: float | None
    raw_z: float | None
    effect: float | None
    n: int
    status: str
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"day_statistic.family: must be one of {list(FAMILIES)}, got {shown(self.family)}")
        if self.status not in DAY_STATUSES:
            raise ValueError(f"day_statistic.status: must be one of {list(DAY_STATUSES)}, got {shown(self.status)}")
        if not isinstance(self.day, datetime):
            raise ValueError(f"day_statistic.day: must be a datetime, got {shown(self.day)}")
        object.__setattr__(self, "day", as_utc(self.day))
        for name in ("z", "raw_z", "effect"):
            value = getattr(self, name)
            if value is not None:
                if not _is_real(value):
                    raise ValueError(f"day_statistic.{name}: must be a number or None, got {shown(value)}")
                object.__setattr__(self, name, float(value) if math.isfinite(value) else None)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DayStatistic:
        """From ``to_dict()`` or a stored row (``FeedbackStore.read_day_statistics``: extra columns
        such as model and window_end are ignored; ``day`` a datetime or ISO text)."""
        day = data["day"]
        if isinstance(day, str):
            day = datetime.fromisoformat(day)
        return cls(check=data["check"], family=data["family"], day=day, z=data.get("z"), raw_z=data.get("raw_z"),
                   effect=data.get("effect"), n=int(data.get("n") or 0), status=data["status"],
                   details=dict(data.get("details") or {}))


@dataclasses.dataclass(frozen=True)
class NullFit:
    """The empirical null of one check: z = (raw_z - weekday_offsets[weekday] - max(location, 0)) /
    max(scale, 1); ``weekday_offsets`` (Monday first) only when the baseline shows a weekly pattern."""

    location: float = 0.0
    scale: float = 1.0
    days: int = 0
    source: str = "theory"  # "empirical" (from the baseline's own days) or "theory" (N(0, 1))
    autocorrelation: float = 0.0  # lag-1, of the baseline days' statistics
    weekday_offsets: tuple[float, ...] = ()

    def standardise(self, raw_z: float | None, weekday: int | None = None) -> float | None:
        if raw_z is None:
            return None
        offset = self.weekday_offsets[weekday] if self.weekday_offsets and weekday is not None else 0.0
        return (raw_z - offset - max(self.location, 0.0)) / max(self.scale, 1.0)


THEORY = NullFit()
_NULL_FIELDS = tuple(f.name for f in dataclasses.fields(NullFit))


@dataclasses.dataclass(frozen=True)
class BaselineCalibration(Result):
    """The empirical null of every check, from the baseline's own days (it depends on the baseline
    alone, so it can be cached with it). ``checks`` maps a check name to its ``NullFit``."""

    checks: dict[str, NullFit]
    baseline_days: int
    baseline_rows: int

    def fit(self, check: str) -> NullFit:
        return self.checks.get(check, THEORY)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BaselineCalibration:
        checks = {name: NullFit(**{k: tuple(v) if k == "weekday_offsets" else v for k, v in fit.items()
                                   if k in _NULL_FIELDS})
                  for name, fit in data["checks"].items()}
        return cls(checks=checks, baseline_days=int(data["baseline_days"]), baseline_rows=int(data["baseline_rows"]))


@dataclasses.dataclass(frozen=True)
class MonitoringResult(Result):
    """One model's run: the day statistics to store, the reports (``feature_drift``,
    ``prediction_drift``, ``concept_drift``, ``performance_degradation``), the calibration used and
    run-level details (the CUSUM design, the measured label delay)."""

    day_statistics: list[DayStatistic]
    reports: dict[str, DriftReport]
    calibration: BaselineCalibration
    details: dict[str, Any]
