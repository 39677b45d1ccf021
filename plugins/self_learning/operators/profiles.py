"""The daily DAG's ``profile`` step: each day of a model profiled once, late labels rebuilding it.

Why: a window read of raw rows costs O(rows in the window) every run, and at production volume
(1M rows a day, a 30-day baseline) that is most of a run for days that did not change since
yesterday (issue 18). A day's profile (``core.profiles``) is built once and the monitor will merge
profiles instead (that wiring is a later step: the analysis still reads raw rows today).

What a run builds, for one model, from the run's window (``RunSettings``: the data interval or
``window_end``, never the clock), complete days only (a day ending after the window end waits):

- the days the monitor reads: the recent ones (``loop.analysis.read_start``: the label window
  reaches further back than the current one) and the pinned baseline's (the stored baseline, the
  one the run's params pin, else the default first ``baseline_days`` of served data; read only,
  nothing is pinned here: the ``analyse`` step does that);
- a day with served rows and no profile is built: one read for its unlabelled profile (every
  served row; final once the day has ended) and its labelled one (the rows with an outcome);
- a day whose outcomes were recorded or corrected at or after its labelled profile's
  ``built_at`` has its labelled profile rebuilt (``store.outcome_days_recorded_since``, looking
  back ``REBUILD_LOOKBACK`` before the model's latest build so outcomes recorded while an
  earlier run was building are not skipped; ``built_at`` is the database time taken before the
  day's read, so an outcome recorded during the read counts as new). A re-run finds nothing
  stale and rebuilds nothing: idempotent;
- at most ``max_days_per_run`` missing days are built per run, newest first (the recent days
  before an old baseline's); the rest waits for the next run, logged and returned. Stale labelled
  days are all rebuilt in the run that finds them: postponed, their outcomes could fall out of
  the lookback by the next run and the stale profile would stay (late labels cover the last
  couple of weeks, so this is ~14 days a run, more only after a mass correction).

A multiclass model (``core.profiles.PROFILED_KINDS`` covers regression and binary
classification) is skipped with status ``unsupported_task_kind``: not an error, so its analysis
runs as before.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from .common import ModelStepOperator

# Outcomes recorded up to this long before the model's latest profile build are looked at again
# (a profile task - with its retries - runs within the daily DAG's 6-hour dagrun_timeout).
REBUILD_LOOKBACK = timedelta(hours=6)
# Missing days built per model and run: a 30-day baseline and the 14-day label window fit in one
# backfill; a longer history is built over the next runs.
DEFAULT_MAX_PROFILE_DAYS = 45


@dataclasses.dataclass(frozen=True)
class ProfilePlan:
    """What one run reads: ``labelled`` days whose labelled profiles are stale, ``missing`` days
    to profile for the first time (both profiles; newest first), and ``postponed`` missing days
    over the run's bound."""

    labelled: tuple[date, ...]
    missing: tuple[date, ...]
    postponed: tuple[date, ...]


def plan_profile_days(*, wanted: Iterable[date], served: Iterable[date], index: Iterable[Mapping[str, Any]],
                      recorded: Iterable[tuple[str, date, datetime]], until: date, max_days: int) -> ProfilePlan:
    """The days to read (pure: the store's answers in, the plan out).

    ``wanted``: the days the monitor reads; ``served``: those of them with rows; ``index``: the
    stored profiles (``store.day_profile_index`` rows); ``recorded``: (version, day, latest
    recorded_at) of outcomes recorded since the lookback; ``until``: the first incomplete day."""
    if not isinstance(max_days, int) or isinstance(max_days, bool) or max_days < 1:
        raise ValueError(f"max_days_per_run: must be a positive integer, got {max_days!r}")
    index = list(index)
    profiled = {row["day"] for row in index if not row["labelled"]}
    labelled_built = {(row["model_version"], row["day"]): row["built_at"] for row in index if row["labelled"]}
    missing = sorted((set(wanted) & set(served)) - profiled, reverse=True)
    stale = set()
    for version, day, latest in recorded:
        if day >= until or day in missing:
            continue  # an incomplete day waits; a missing one is built whole anyway
        built = labelled_built.get((version, day))
        if built is None:
            if day in profiled:  # its first labels arrived after the day was profiled
                stale.add(day)
        elif latest >= built:
            stale.add(day)
    return ProfilePlan(labelled=tuple(sorted(stale, reverse=True)), missing=tuple(missing[:max_days]),
                       postponed=tuple(missing[max_days:]))


def monitored_days(store, spec, settings) -> tuple[list[date], date]:
    """The complete days the monitor reads for the run of ``settings`` (recent and baseline, oldest
    first) and the first day that is not complete at the window end."""
    from ..core.baselines import Baseline, check_baseline_before, default_baseline
    from ..core.types import as_utc
    from ..loop.analysis import monitor_settings, read_start

    until = as_utc(settings.window_end).date()  # a window end at noon leaves its day incomplete
    days = set(_days(read_start(settings, monitor_settings(settings)), settings.window_end))
    baseline: Baseline | None = None
    if settings.baseline_window is not None:  # the run pins it in ``analyse``; profiled already here
        start, end = settings.baseline_window
        baseline = Baseline(spec.name, start, end, "explicit")
    else:
        baseline = store.get_baseline(spec.name)
        if baseline is None:
            first = store.first_served_at(spec.name)
            if first is not None:
                baseline = check_baseline_before(
                    default_baseline(spec.name, first, baseline_days=settings.baseline_days,
                                     until=settings.current_start), settings.current_start)
    if baseline is not None:
        days |= set(_days(baseline.start, baseline.end))
    return sorted(d for d in days if d < until), until


def _days(start: datetime, end: datetime) -> list[date]:
    """The UTC days [start, end) touches."""
    first, last = start.date(), (end - timedelta(microseconds=1)).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)] if end > start else []


class ProfileDaysOperator(ModelStepOperator):
    """Build the model's missing day profiles and rebuild those late labels made stale, for the
    days the monitor reads (see the module docstring); at most ``max_days_per_run`` day reads.
    Returns a small summary: status, the days built and rebuilt, the days left for the next run."""

    def __init__(self, *, max_days_per_run: int = DEFAULT_MAX_PROFILE_DAYS, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(max_days_per_run, int) or isinstance(max_days_per_run, bool) or max_days_per_run < 1:
            raise ValueError(f"max_days_per_run: must be a positive integer, got {max_days_per_run!r}")
        self.max_days_per_run = max_days_per_run

    def run(self, store, spec, settings) -> dict[str, Any]:
        from ..core.profiles import PROFILED_KINDS

        summary: dict[str, Any] = {"model": spec.name, "window_end": settings.window_end.isoformat()}
        if spec.task_kind not in PROFILED_KINDS:
            self.log.info("%s: not profiled - day profiles cover %s, not %s; its analysis reads raw rows",
                          spec.name, ", ".join(k.value for k in PROFILED_KINDS), spec.task_kind.value)
            return {**summary, "status": "unsupported_task_kind", "task_kind": spec.task_kind.value}
        wanted, until = monitored_days(store, spec, settings)
        if not wanted:
            self.log.info("%s: no complete day to profile before %s", spec.name, until)
            return {**summary, "status": "no_data", "built": [], "labelled_rebuilt": [], "postponed": []}
        latest = store.latest_profile_build(spec.name)
        recorded = [] if latest is None else store.outcome_days_recorded_since(spec.name, latest - REBUILD_LOOKBACK)
        first = min([wanted[0], *(day for _, day, _ in recorded)])
        plan = plan_profile_days(
            wanted=wanted, served=store.days_served(spec.name, wanted),
            index=store.day_profile_index(spec.name, first, max(until, first + timedelta(days=1))),
            recorded=recorded, until=until, max_days=self.max_days_per_run)
        for day in plan.labelled:
            self._build(store, spec.name, day, labelled_only=True)
        for day in plan.missing:
            self._build(store, spec.name, day, labelled_only=False)
        if plan.postponed:
            self.log.warning("%s: %d days left for the next run (at most %d day reads per run): %s..%s",
                             spec.name, len(plan.postponed), self.max_days_per_run, min(plan.postponed),
                             max(plan.postponed))
        self.log.info("%s: profiles of %s..%s: %d days built, %d labelled profiles rebuilt after late labels, "
                      "%d postponed", spec.name, wanted[0], wanted[-1], len(plan.missing), len(plan.labelled),
                      len(plan.postponed))
        return {**summary, "status": "built" if plan.missing or plan.labelled else "up_to_date",
                "days": [wanted[0].isoformat(), wanted[-1].isoformat()],
                "built": [d.isoformat() for d in sorted(plan.missing)],
                "labelled_rebuilt": [d.isoformat() for d in sorted(plan.labelled)],
                "postponed": [d.isoformat() for d in sorted(plan.postponed)]}

    def _build(self, store, model: str, day: date, *, labelled_only: bool) -> None:
        started = time.perf_counter()
        as_of = store.database_time()  # before the read: an outcome recorded during it is newer
        profiles = store.build_day_profiles(model, day, labelled=True) if labelled_only \
            else store.build_all_day_profiles(model, day)
        store.save_day_profiles(profiles, built_as_of=as_of)
        self.log.info("%s %s: %s %d profiles (%s rows) in %.1f s", model, day,
                      "rebuilt labelled" if labelled_only else "built", len(profiles),
                      "/".join(str(p.rows) for p in profiles) or "no", time.perf_counter() - started)
