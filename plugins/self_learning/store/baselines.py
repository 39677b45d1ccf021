"""Baselines: each model's pinned comparison period (``core/baselines.py`` says why it is pinned).

Two ways to set one, both ending in :meth:`BaselinesMixin.set_baseline`:

- the daily DAG's trigger form: a manual run with ``baseline_start`` and ``baseline_end`` ("Pin
  the baseline") pins the analysed models' baselines to those dates before analysing;
- the serving client: ``FeedbackStore.from_url(url).set_baseline("ctr_predictor", start, end,
  note="after the Q3 relaunch")``, or ``baseline_from_champion("ctr_predictor")`` for the
  champion version's training window.

A model without a stored baseline gets the default one from :meth:`resolve_baseline` (the first
``baseline_days`` of its served data), stored as soon as it is complete; a change of
``baseline_days`` afterwards does not move a pinned default (set one explicitly). A promotion
moves the baseline to the new champion's training window unless the stored baseline says
``on_promotion="keep"`` (:meth:`baseline_after_promotion`, called by the lifecycle).

Bad input is a ``ValueError`` naming the field: an unregistered model (``model:``), an end not
after the start (``end:``), a period without a served prediction of the model (``baseline:``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..core.baselines import (
    BASELINE_SOURCES,
    MAX_NOTE_LENGTH,
    MAX_SET_BY_LENGTH,
    ON_PROMOTION,
    Baseline,
    default_baseline,
)
from ..core.types import as_utc, model_name, shown, to_jsonable
from .rows import _text_problem
from .tables import model_baselines, model_versions, models, predictions


class BaselinesMixin:
    """Reading, resolving and setting a model's baseline (with the models and registry areas)."""

    def set_baseline(self, model: str, start: datetime, end: datetime, *, source: str = "explicit",
                     on_promotion: str = "move", set_by: str = "user", note: str | None = None) -> Baseline:
        """Pin ``model``'s baseline to [start, end) (timezone-aware; stored in UTC), replacing the
        stored one. ``on_promotion``: ``move`` (a promoted challenger's training window becomes
        the baseline) or ``keep``. Returns the stored baseline."""
        name = model_name(model)
        baseline = _checked(name, start, end, source=source, on_promotion=on_promotion, set_by=set_by, note=note)
        with self.engine.begin() as conn:
            _check_registered(conn, name)
            served = conn.execute(sa.select(sa.func.count()).select_from(
                sa.select(predictions.c.prediction_id).where(
                    predictions.c.model == name, predictions.c.served_at >= baseline.start,
                    predictions.c.served_at < baseline.end).limit(1).subquery())).scalar_one()
            if not served:
                raise ValueError(f"baseline: no predictions of {name} served in {baseline.start:%Y-%m-%d %H:%M}.."
                                 f"{baseline.end:%Y-%m-%d %H:%M} (UTC); a baseline needs the model's served data")
            return self._write_baseline(conn, baseline, replace=True)

    def get_baseline(self, model: str) -> Baseline | None:
        """The stored baseline of ``model`` (None if none is stored yet)."""
        query = sa.select(model_baselines).where(model_baselines.c.model == model_name(model))
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return _baseline_of(row) if row else None

    def resolve_baseline(self, model: str, *, baseline_days: int, until: datetime,
                         on_promotion: str = "move") -> Baseline:
        """The stored baseline, else the default: ``baseline_days`` from the UTC midnight of the
        model's first served prediction. ``until`` is where the data a run may compare against
        ends (the daily run passes its current window's start): a default ending at or before it
        is pinned (stored with source ``default``) and returned; one ending after it is returned
        unstored, ``provisional`` (``core.baselines.check_baseline_before`` clips it)."""
        name = model_name(model)
        if not isinstance(until, datetime) or until.tzinfo is None:
            raise ValueError(f"until: must be a timezone-aware datetime, got {shown(until)}")
        with self.engine.connect() as conn:
            _check_registered(conn, name)
            row = conn.execute(sa.select(model_baselines).where(model_baselines.c.model == name)).mappings().first()
            if row:
                return _baseline_of(row)
            first = conn.execute(sa.select(sa.func.min(predictions.c.served_at))
                                 .where(predictions.c.model == name)).scalar()
        if first is None:
            raise ValueError(f"baseline: no predictions of {name} served yet; the default baseline is its first "
                             f"{baseline_days} days of served data")
        baseline = default_baseline(name, first, baseline_days=baseline_days, until=until, on_promotion=on_promotion)
        if baseline.provisional:
            return baseline
        with self.engine.begin() as conn:  # a concurrent run may pin first: both return the stored row
            return self._write_baseline(conn, baseline, replace=False)

    def baseline_from_champion(self, model: str, *, on_promotion: str = "move", set_by: str = "user",
                               note: str | None = None) -> Baseline:
        """Pin the baseline to the champion version's training window (source ``champion_training``)."""
        name = model_name(model)
        with self.engine.connect() as conn:
            _check_registered(conn, name)
            champion = conn.execute(sa.select(model_versions).where(
                model_versions.c.model == name, model_versions.c.status == "champion")).mappings().first()
        if champion is None:
            raise ValueError(f"model: {name} has no champion version; promote one, or set the baseline by dates")
        window = training_window(champion)
        if window is None:
            raise ValueError(f"baseline: the champion {champion['version']} of {name} has no training window stored "
                             "(it was not trained by the loop); set the baseline by dates")
        return self.set_baseline(name, *window, source="champion_training", on_promotion=on_promotion,
                                 set_by=set_by, note=note or f"training window of champion {champion['version']}")

    def baseline_after_promotion(self, model: str, version: str) -> Baseline | None:
        """After ``version`` was promoted: move the baseline to its training window (source
        ``promotion``) unless the stored baseline says ``on_promotion="keep"``. A model without a
        stored baseline moves (``move`` is the default). Returns the new baseline, or None when it
        stays (``keep``, or a version without a training window: a bootstrap champion).

        Unlike :meth:`set_baseline` this does not count the window's predictions: the promotion
        has happened, and a candidate is trained only on a window with at least 100 labelled
        predictions (``lifecycle.MIN_TRAINING_ROWS``)."""
        name = model_name(model)
        with self.engine.begin() as conn:
            self.dialect.lock(conn, f"self_learning.baseline.{name}")
            stored = conn.execute(sa.select(model_baselines).where(model_baselines.c.model == name)).mappings().first()
            if stored is not None and stored["on_promotion"] == "keep":
                return None
            row = conn.execute(sa.select(model_versions).where(
                model_versions.c.model == name, model_versions.c.version == version)).mappings().first()
            if row is None:
                raise KeyError(f"version: {name!r} has no registered version {version!r}")
            window = training_window(row)
            if window is None:
                return None
            baseline = _checked(name, *window, source="promotion", on_promotion="move",
                                set_by=f"promotion of {version}"[:MAX_SET_BY_LENGTH],
                                note=f"training window of {version}, promoted")
            return self._write_baseline(conn, baseline, replace=True)

    def baseline_calibration(self, model: str, key: str) -> dict[str, Any] | None:
        """The calibration cached with the stored baseline of ``model`` under ``key`` (what it was
        computed for: ``loop.analysis.calibration_key``), None when there is none for that key."""
        query = sa.select(model_baselines.c.calibration).where(
            model_baselines.c.model == model_name(model), model_baselines.c.calibration_key == key)
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one_or_none()

    def save_baseline_calibration(self, model: str, key: str, calibration: Mapping[str, Any]) -> bool:
        """Cache ``calibration`` with the stored baseline of ``model`` under ``key``; False when the
        model has no stored baseline (a provisional default is not cached)."""
        if not isinstance(key, str) or not 0 < len(key) <= 128:
            raise ValueError(f"key: must be text of 1..128 characters, got {key!r}")
        statement = sa.update(model_baselines).where(model_baselines.c.model == model_name(model)).values(
            calibration_key=key, calibration=to_jsonable(dict(calibration)))
        with self.engine.begin() as conn:
            return conn.execute(statement).rowcount > 0

    def _write_baseline(self, conn, baseline: Baseline, *, replace: bool) -> Baseline:
        """Insert (or with ``replace`` upsert) one baseline row; returns the stored row."""
        row = {"model": baseline.model, "start": baseline.start, "end": baseline.end, "source": baseline.source,
               "on_promotion": baseline.on_promotion, "set_by": baseline.set_by, "note": baseline.note}
        statement = self.dialect.insert(model_baselines).values(**row)
        if replace:
            statement = statement.on_conflict_do_update(  # a baseline set anew drops its cached calibration
                index_elements=["model"], set_={k: statement.excluded[k] for k in row if k != "model"}
                | {"set_at": sa.func.current_timestamp(), "calibration_key": None, "calibration": None})
        else:
            statement = statement.on_conflict_do_nothing()
        conn.execute(statement)
        stored = conn.execute(sa.select(model_baselines).where(model_baselines.c.model == baseline.model))
        return _baseline_of(stored.mappings().one())


def training_window(version_row: Mapping[str, Any]) -> tuple[datetime, datetime] | None:
    """A registry row's training window: its metrics' ``training_start`` / ``training_end``
    (``lifecycle.Candidate.metrics``), else the row's ``training_window_*`` columns."""
    metrics = version_row.get("metrics") or {}
    if metrics.get("training_start") and metrics.get("training_end"):
        return (as_utc(datetime.fromisoformat(metrics["training_start"])),
                as_utc(datetime.fromisoformat(metrics["training_end"])))
    if version_row.get("training_window_start") is not None and version_row.get("training_window_end") is not None:
        return as_utc(version_row["training_window_start"]), as_utc(version_row["training_window_end"])
    return None


def _checked(model: str, start, end, *, source: str, on_promotion: str, set_by: str, note: str | None) -> Baseline:
    """A ``Baseline`` from caller input, each problem a ``ValueError`` naming the field."""
    for field, value in (("start", start), ("end", end)):
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"{field}: must be a timezone-aware datetime, got {shown(value)}")
    if end <= start:
        raise ValueError(f"end: {as_utc(end).isoformat()} is not after start {as_utc(start).isoformat()}")
    if source not in BASELINE_SOURCES:
        raise ValueError(f"source: one of {', '.join(BASELINE_SOURCES)}, got {shown(source)}")
    if on_promotion not in ON_PROMOTION:
        raise ValueError(f"on_promotion: one of {', '.join(ON_PROMOTION)}, got {shown(on_promotion)}")
    if problem := _text_problem(set_by, MAX_SET_BY_LENGTH):
        raise ValueError(f"set_by: {problem}")
    if note is not None and (problem := _text_problem(note, MAX_NOTE_LENGTH)):
        raise ValueError(f"note: {problem}")
    return Baseline(model, start, end, source, on_promotion=on_promotion, set_by=set_by, note=note)


def _check_registered(conn, name: str) -> None:
    if conn.execute(sa.select(models.c.name).where(models.c.name == name)).first() is None:
        raise ValueError(f"model: {name!r} is not registered (register_model first)")


def _baseline_of(row: Mapping[str, Any]) -> Baseline:
    return Baseline(row["model"], row["start"], row["end"], row["source"], on_promotion=row["on_promotion"],
                    set_at=row["set_at"], set_by=row["set_by"], note=row["note"])
