"""Day profiles: one ``core.profiles.DayProfile`` per (model, version, UTC day, labelled), as bytes.

A day is read once, profiled, and its profile stored here (table ``day_profiles``, migration
0012); a window is then the merge of its days' profiles instead of a read of its raw rows
(issue 18). The natural key is (model, model_version, day, labelled): a rebuild of a day - a
re-run, a backfill, or late labels for it - replaces its row (an upsert), so building is
idempotent. ``days_with_new_outcomes`` names the days whose labelled profile is stale: outcomes
recorded or corrected since a time (``outcomes.recorded_at``, indexed by migration 0012), joined
to their predictions by key, so the question costs O(new outcomes), not O(history).
"""

from __future__ import annotations

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


def _check_days(since: date, until: date) -> None:
    for field, value in (("since", since), ("until", until)):
        if isinstance(value, datetime) or not isinstance(value, date):
            raise ValueError(f"{field}: must be a datetime.date (a UTC day), got {shown(value)}")
    if until <= since:
        raise ValueError(f"until: {until.isoformat()} is not after since {since.isoformat()}")


class DayProfilesMixin:
    """Writing and reading day profiles; finding the days late labels changed."""

    def build_day_profiles(self, model: str, day: date, *, labelled: bool) -> list[DayProfile]:
        """Read ``day``'s rows of ``model`` once (``read_window``: its labelled rows, or every served
        row) and profile each model version's (``core.profiles.build_day_profile``, with the
        model's task kind and registered features; versions by name). Nothing is stored: pass the
        result to ``save_day_profiles``. A day without rows gives no profile."""
        _check_days(day, day + timedelta(days=1))
        spec = self.get_model(model)
        registry = self.feature_registry(model)
        numeric = sorted(k for k, (kind, _) in registry.items() if kind == "numeric")
        categorical = sorted(k for k, (kind, _) in registry.items() if kind == "categorical")
        start = day_start(day)
        window = self.read_window(model, start, start + timedelta(days=1), labelled_only=labelled)
        return [build_day_profile(rows, model=spec.name, model_version=str(version), day=day,
                                  task_kind=spec.task_kind, labelled=labelled, numeric_features=numeric,
                                  categorical_features=categorical)
                for version, rows in sorted(window.groupby("model_version", observed=True), key=lambda g: str(g[0]))]

    def save_day_profiles(self, profiles: Iterable[DayProfile]) -> int:
        """Upsert day profiles (each covering one model version and day) in one transaction;
        returns how many were written."""
        rows = []
        for profile in profiles:
            if len(profile.covers) != 1:
                raise ValueError(f"profile: covers {len(profile.covers)} (version, day) pairs; the store keeps "
                                 "one day of one version per row (save the days before merging them)")
            ((version, day),) = profile.covers
            rows.append({"model": model_name(profile.model), "model_version": version, "day": day_start(day),
                         "labelled": profile.labelled, "format": PROFILE_FORMAT, "row_count": profile.rows,
                         "payload": profile.to_bytes()})
        if not rows:
            return 0
        statement = self.dialect.insert(day_profiles)
        keys = ("model", "model_version", "day", "labelled")
        statement = statement.on_conflict_do_update(
            index_elements=list(keys), set_={k: statement.excluded[k] for k in ("format", "row_count", "payload")}
            | {"built_at": sa.func.current_timestamp()})
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

    def _profile_days(self, model, since, until, labelled, version):
        d = day_profiles.c
        conditions = [d.model == model_name(model), d.day >= day_start(since), d.day < day_start(until)]
        if labelled is not None:
            conditions.append(d.labelled == labelled)
        if version is not None:
            conditions.append(d.model_version == version)
        return conditions
