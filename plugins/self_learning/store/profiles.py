"""Day profiles: one ``core.profiles.DayProfile`` per (model, version, UTC day, labelled), as bytes.

A day is read once, profiled, and its profile stored here (table ``day_profiles``, migration
0012); a window is then the merge of its days' profiles instead of a read of its raw rows
(issue 18). The natural key is (model, model_version, day, labelled): a rebuild of a day - a
re-run, a backfill, or late labels for it - replaces its row (an upsert), so building is
idempotent. ``days_with_new_outcomes`` names the days whose labelled profile is stale: outcomes
recorded or corrected since a time (``outcomes.recorded_at``, indexed by migration 0012), joined
to their predictions by key, so the question costs O(new outcomes), not O(history).

The daily DAG's ``profile`` step (``operators/profiles.py``) drives it: ``build_all_day_profiles``
reads a day once for both profiles, ``save_day_profiles(built_as_of=...)`` stamps a profile with
the database time taken *before* its read (an outcome recorded during the read is then newer than
the profile and rebuilds it next run, never lost), ``outcome_days_recorded_since`` gives each
stale day's latest ``recorded_at`` to compare with its profile's ``built_at``, and
``days_served`` probes the ``(model, served_at)`` index once per day, so a day without rows is
not re-read every run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ..core.profiles import PROFILE_FORMAT, DayProfile, build_day_profile, profile_from_bytes
from ..core.types import as_utc, model_name, shown
from .tables import day_profiles, outcomes, predictions


def day_start(day: date) -> datetime:
    """The UTC midnight that starts ``day`` (how ``day_profiles.day`` stores it)."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _as_date(value: Any) -> date:
    """A stored day (a datetime, a date, or SQLite's ISO text) as a date."""
    if isinstance(value, datetime):
        return as_utc(value).date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _stored_time(value: Any) -> datetime:
    """A timestamp as read back: SQLite's aggregates and ``CURRENT_TIMESTAMP`` give ISO text."""
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace(" ", "T"))


def _check_days(since: date, until: date) -> None:
    for field, value in (("since", since), ("until", until)):
        if isinstance(value, datetime) or not isinstance(value, date):
            raise ValueError(f"{field}: must be a datetime.date (a UTC day), got {shown(value)}")
    if until <= since:
        raise ValueError(f"until: {until.isoformat()} is not after since {since.isoformat()}")


class DayProfilesMixin:
    """Writing and reading day profiles; finding the days late labels changed."""

    def _day_rows(self, model: str, day: date, *, labelled_only: bool):
        """(the model's spec, its numeric and categorical feature keys, ``day``'s rows) for profiling."""
        _check_days(day, day + timedelta(days=1))
        spec = self.get_model(model)
        registry = self.feature_registry(model)
        numeric = sorted(k for k, (kind, _) in registry.items() if kind == "numeric")
        categorical = sorted(k for k, (kind, _) in registry.items() if kind == "categorical")
        start = day_start(day)
        return spec, numeric, categorical, self.read_window(model, start, start + timedelta(days=1),
                                                            labelled_only=labelled_only)

    def build_day_profiles(self, model: str, day: date, *, labelled: bool) -> list[DayProfile]:
        """Read ``day``'s rows of ``model`` once (``read_window``: its labelled rows, or every served
        row) and profile each model version's (``core.profiles.build_day_profile``, with the
        model's task kind and registered features; versions by name). Nothing is stored: pass the
        result to ``save_day_profiles``. A day without rows gives no profile."""
        spec, numeric, categorical, window = self._day_rows(model, day, labelled_only=labelled)
        return [build_day_profile(rows, model=spec.name, model_version=str(version), day=day,
                                  task_kind=spec.task_kind, labelled=labelled, numeric_features=numeric,
                                  categorical_features=categorical)
                for version, rows in sorted(window.groupby("model_version", observed=True), key=lambda g: str(g[0]))]

    def build_all_day_profiles(self, model: str, day: date) -> list[DayProfile]:
        """``build_day_profiles`` for both flags from one read of ``day``: every version's
        unlabelled profile (every served row) and, where the version has labelled rows, its
        labelled one. When every row is labelled the sketches are built once: the unlabelled
        profile is the labelled one without its error and performance. Nothing is stored."""
        spec, numeric, categorical, window = self._day_rows(model, day, labelled_only=False)
        built = []
        for version, rows in sorted(window.groupby("model_version", observed=True), key=lambda g: str(g[0])):
            common = dict(model=spec.name, model_version=str(version), day=day, task_kind=spec.task_kind,
                          numeric_features=numeric, categorical_features=categorical)
            labelled = rows[rows["actual_value"].notna()]
            if len(labelled) == len(rows):  # every row labelled: one pass, the features' part is the same
                profile = build_day_profile(rows, labelled=True, **common)
                built += [dataclasses.replace(profile, labelled=False, error=None, performance=None), profile]
                continue
            built.append(build_day_profile(rows, labelled=False, **common))
            if len(labelled):
                built.append(build_day_profile(labelled, labelled=True, **common))
        return built

    def database_time(self) -> datetime:
        """The database's current time (UTC): the clock ``outcomes.recorded_at`` and
        ``day_profiles.built_at`` are written with (second resolution on SQLite)."""
        with self.engine.connect() as conn:
            return as_utc(_stored_time(conn.execute(sa.select(sa.func.current_timestamp())).scalar_one()))

    def save_day_profiles(self, profiles: Iterable[DayProfile], *, built_as_of: datetime | None = None) -> int:
        """Upsert day profiles (each covering one model version and day) in one transaction;
        returns how many were written. ``built_as_of``: the database time taken before the rows
        were read (``database_time``), stored as ``built_at``; default the time of the write."""
        if built_as_of is not None and (not isinstance(built_as_of, datetime) or built_as_of.tzinfo is None):
            raise ValueError(f"built_as_of: must be a timezone-aware datetime, got {shown(built_as_of)}")
        rows = []
        for profile in profiles:
            if len(profile.covers) != 1:
                raise ValueError(f"profile: covers {len(profile.covers)} (version, day) pairs; the store keeps "
                                 "one day of one version per row (save the days before merging them)")
            ((version, day),) = profile.covers
            rows.append({"model": model_name(profile.model), "model_version": version, "day": day_start(day),
                         "labelled": profile.labelled, "format": PROFILE_FORMAT, "row_count": profile.rows,
                         "payload": profile.to_bytes()}
                        | ({} if built_as_of is None else {"built_at": as_utc(built_as_of)}))
        if not rows:
            return 0
        statement = self.dialect.insert(day_profiles)
        keys = ("model", "model_version", "day", "labelled")
        stamp = sa.func.current_timestamp() if built_as_of is None else statement.excluded["built_at"]
        statement = statement.on_conflict_do_update(
            index_elements=list(keys), set_={k: statement.excluded[k] for k in ("format", "row_count", "payload")}
            | {"built_at": stamp})
        with self.engine.begin() as conn:
            conn.execute(statement, rows)
        return len(rows)

    def save_day_profile(self, profile: DayProfile) -> None:
        self.save_day_profiles([profile])

    def read_day_profiles(self, model: str, since: date, until: date, *, labelled: bool,
                          version: str | None = None) -> list[DayProfile]:
        """The stored profiles of ``model``'s days in [since, until) (one version, or all), by day
        then version; merge them with ``core.profiles.merge_profiles``."""
        _check_days(since, until)
        d = day_profiles.c
        query = (sa.select(d.payload).where(*self._profile_days(model, since, until, labelled, version))
                 .order_by(d.day, d.model_version))
        with self.engine.connect() as conn:
            return [profile_from_bytes(payload) for payload in conn.execute(query).scalars()]

    def day_profile_index(self, model: str, since: date, until: date, *, labelled: bool | None = None
                          ) -> list[dict[str, Any]]:
        """What is built for [since, until), without the payloads: model_version, day (a date),
        labelled, row_count and built_at (UTC) per stored profile, by day."""
        _check_days(since, until)
        d = day_profiles.c
        conditions = self._profile_days(model, since, until, labelled, None)
        query = (sa.select(d.model_version, d.day, d.labelled, d.row_count, d.built_at).where(*conditions)
                 .order_by(d.day, d.model_version, d.labelled))
        with self.engine.connect() as conn:
            rows = [dict(row) for row in conn.execute(query).mappings()]
        for row in rows:
            row["day"], row["built_at"] = _as_date(row["day"]), as_utc(row["built_at"])
        return rows

    def days_with_new_outcomes(self, model: str, recorded_since: datetime) -> list[tuple[str, date]]:
        """(model_version, UTC day served) of ``model``'s predictions whose outcome was recorded
        or corrected at or after ``recorded_since``: the labelled profiles to rebuild."""
        if not isinstance(recorded_since, datetime) or recorded_since.tzinfo is None:
            raise ValueError(f"recorded_since: must be a timezone-aware datetime, got {shown(recorded_since)}")
        p, o = predictions.c, outcomes.c
        day = self.dialect.utc_day(p.served_at)
        query = (sa.select(p.model_version, day).select_from(outcomes.join(predictions,
                                                                           p.prediction_id == o.prediction_id))
                 .where(o.recorded_at >= as_utc(recorded_since), p.model == model_name(model))
                 .group_by(p.model_version, day))
        with self.engine.connect() as conn:
            return sorted((version, _as_date(value)) for version, value in conn.execute(query))

    def outcome_days_recorded_since(self, model: str, recorded_since: datetime
                                    ) -> list[tuple[str, date, datetime]]:
        """``days_with_new_outcomes`` with, per (model_version, UTC day served), the latest
        ``recorded_at`` of those outcomes: a day's labelled profile is stale when that is at or
        after its ``built_at``."""
        if not isinstance(recorded_since, datetime) or recorded_since.tzinfo is None:
            raise ValueError(f"recorded_since: must be a timezone-aware datetime, got {shown(recorded_since)}")
        p, o = predictions.c, outcomes.c
        day = self.dialect.utc_day(p.served_at)
        query = (sa.select(p.model_version, day, sa.func.max(o.recorded_at))
                 .select_from(outcomes.join(predictions, p.prediction_id == o.prediction_id))
                 .where(o.recorded_at >= as_utc(recorded_since), p.model == model_name(model))
                 .group_by(p.model_version, day))
        with self.engine.connect() as conn:
            return sorted((version, _as_date(value), as_utc(_stored_time(latest)))
                          for version, value, latest in conn.execute(query))

    def latest_profile_build(self, model: str) -> datetime | None:
        """The latest ``built_at`` of ``model``'s stored profiles (None when none is stored)."""
        query = sa.select(sa.func.max(day_profiles.c.built_at)).where(day_profiles.c.model == model_name(model))
        with self.engine.connect() as conn:
            latest = conn.execute(query).scalar()
        return None if latest is None else as_utc(_stored_time(latest))

    def first_served_at(self, model: str) -> datetime | None:
        """When ``model``'s first stored prediction was served (None before any)."""
        query = sa.select(sa.func.min(predictions.c.served_at)).where(predictions.c.model == model_name(model))
        with self.engine.connect() as conn:
            first = conn.execute(query).scalar()
        return None if first is None else as_utc(_stored_time(first))

    def days_served(self, model: str, days: Iterable[date]) -> list[date]:
        """Which of ``days`` have a served prediction of ``model``: one index probe per day
        (``LIMIT 1`` on ``(model, served_at)``), whatever the rows per day."""
        p = predictions.c
        found = []
        with self.engine.connect() as conn:
            for day in sorted(set(days)):
                _check_days(day, day + timedelta(days=1))
                start = day_start(day)
                probe = (sa.select(p.prediction_id).where(p.model == model_name(model), p.served_at >= start,
                                                         p.served_at < start + timedelta(days=1)).limit(1))
                if conn.execute(probe).first() is not None:
                    found.append(day)
        return found

    def _profile_days(self, model, since, until, labelled, version):
        d = day_profiles.c
        conditions = [d.model == model_name(model), d.day >= day_start(since), d.day < day_start(until)]
        if labelled is not None:
            conditions.append(d.labelled == labelled)
        if version is not None:
            conditions.append(d.model_version == version)
        return conditions
