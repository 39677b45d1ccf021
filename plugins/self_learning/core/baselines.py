"""Baselines: the pinned period a model's drift and degradation are measured against.

Why pinned. Until now the reference was the 30 days before the current window, so it rolled
forward with every run: in the replay of issue 15, about 35 days after a real shift the reference
was made of drifted data and every check went back to ``none`` although nothing was retrained and
the model was still worse. A baseline moves only when someone moves it: a user (``explicit``, from
the trigger form or the serving client), the champion's training window (``champion_training``),
or a promotion (``promotion``, when the baseline's ``on_promotion`` is ``move``).

The default (``source="default"``) is the first ``baseline_days`` (30) of the model's served data,
from the UTC midnight of its first served prediction. It is stored ("pinned") by the first run
that sees it complete and is provisional before that: a young model's default baseline is then
clipped to the days before the current window (``check_baseline_before``), so its first runs
compare against what it has, and stop doing so once the 30 days are complete and pinned.

An explicit baseline that ends after the current window starts is an error, never clipped: the
user asked for those dates, and silently analysing others would hide the mistake.

Pure: no I/O, no clock. The store (``store/baselines.py``) reads and writes them.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from .types import Result, as_utc, shown

BASELINE_SOURCES = ("default", "explicit", "champion_training", "promotion")
ON_PROMOTION = ("move", "keep")
DEFAULT_BASELINE_DAYS = 30
MAX_NOTE_LENGTH = 1024
MAX_SET_BY_LENGTH = 256


@dataclasses.dataclass(frozen=True)
class Baseline(Result):
    """A model's baseline [start, end) in UTC. ``provisional``: the default baseline of a model
    that has not yet served ``baseline_days`` of data; not stored (``set_at`` is None)."""

    model: str
    start: datetime
    end: datetime
    source: str
    on_promotion: str = "move"
    set_at: datetime | None = None
    set_by: str = "self_learning"
    note: str | None = None
    provisional: bool = False

    def __post_init__(self):
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, datetime):
                raise ValueError(f"baseline.{name}: must be a datetime, got {shown(value)}")
            object.__setattr__(self, name, as_utc(value))
        if self.set_at is not None:
            object.__setattr__(self, "set_at", as_utc(self.set_at))
        if self.end <= self.start:
            raise ValueError(f"baseline.end: {self.end.isoformat()} is not after baseline.start "
                             f"{self.start.isoformat()}")
        if self.source not in BASELINE_SOURCES:
            raise ValueError(f"baseline.source: one of {', '.join(BASELINE_SOURCES)}, got {shown(self.source)}")
        if self.on_promotion not in ON_PROMOTION:
            raise ValueError(f"baseline.on_promotion: one of {', '.join(ON_PROMOTION)}, got {shown(self.on_promotion)}")

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86_400

    def describe(self) -> str:
        """One line for reports and logs, e.g. ``2026-01-01..2026-01-31 (default, pinned)``."""
        state = "provisional" if self.provisional else "pinned"
        return f"{self.start:%Y-%m-%d}..{self.end:%Y-%m-%d} ({self.source}, {state})"


def utc_midnight(value: datetime) -> datetime:
    """The UTC midnight at or before ``value``."""
    return as_utc(value).replace(hour=0, minute=0, second=0, microsecond=0)


def check_baseline_days(baseline_days) -> int:
    if isinstance(baseline_days, bool) or not isinstance(baseline_days, int) or baseline_days < 1:
        raise ValueError(f"params.baseline_days: must be a positive integer, got {shown(baseline_days)}")
    return baseline_days


def default_baseline(model: str, first_served: datetime, *, baseline_days: int, until: datetime,
                     on_promotion: str = "move") -> Baseline:
    """The first ``baseline_days`` from the UTC midnight of the first served prediction;
    ``provisional`` while its end is after ``until`` (the data the run may use ends there)."""
    start = utc_midnight(first_served)
    end = start + timedelta(days=check_baseline_days(baseline_days))
    return Baseline(model, start, end, "default", on_promotion=on_promotion,
                    note=f"the first {baseline_days} days of served data", provisional=end > as_utc(until))


def check_baseline_before(baseline: Baseline, current_start: datetime) -> Baseline | None:
    """The baseline to compare the window starting at ``current_start`` against.

    A baseline ending at or before ``current_start`` is returned as it is. A default baseline
    (provisional, or pinned but replayed on a window before its end) is clipped to end at
    ``current_start`` and marked provisional; None when nothing of it lies before the window (a
    model's first day: there is nothing to compare against yet). Any other baseline ending after
    ``current_start`` is a ``ValueError`` naming ``baseline``."""
    current_start = as_utc(current_start)
    if baseline.end <= current_start:
        return baseline
    if baseline.source == "default":
        if baseline.start >= current_start:
            return None
        return dataclasses.replace(baseline, end=current_start, provisional=True)
    raise ValueError(f"baseline: ends {baseline.end:%Y-%m-%d %H:%M}, after the current window starts "
                     f"{current_start:%Y-%m-%d %H:%M} ({baseline.model}, {baseline.source}); set a baseline "
                     "before the analysed window")
