"""Retention: what the store deletes, and what it never deletes.

Without it every table grows for ever (issue 13: nothing was ever deleted from ``outcome_inbox``,
``ingest_rejects``, ``outcome_history``, alerts or results). The weekly DAG's ``cleanup`` task
applies a per-table policy; the cutoff is the run's window end minus the table's days, never the
clock, so a re-run of a week deletes exactly what the first run deleted (and then nothing).

Defaults (days; ``None`` keeps everything), and why:

- ``outcome_inbox`` 30: only processed rows; once recorded in ``outcomes`` an inbox row is a
  receipt, kept a month for tracing a delivery;
- ``ingest_rejects`` 30: rejected input is looked at in the days after a bad delivery;
- ``outcome_history`` 365: corrected labels stay auditable for a year;
- ``alerts`` 180: only resolved or suppressed alerts (an open or acknowledged alert is never
  deleted); half a year is far beyond the cooldowns that look back at earlier alerts (3 and 7
  days by default; keep alerts longer than any cooldown you configure);
- ``retrain_requests`` 400: only closed requests (done, failed, delegated);
- ``performance_snapshots``, ``drift_reports``, ``error_analyses``, ``feature_importance``,
  ``learning_reports`` 400: a year back and a margin, for year-over-year trends (the reports'
  trends look back 14 days to 90 days);
- ``day_statistics`` 400: the sequential monitor reads ``lookback_days`` (28, at most 90) back; a
  year and a margin for the same trends as the other results;
- ``day_profiles`` 400: a model's day profiles (``store/profiles.py``); like ``day_statistics``,
  a year and a margin. A profile of a day inside its model's pinned baseline (``model_baselines``)
  is kept whatever its age: once the raw rows of a baseline day are purged (``predictions`` set)
  its profile cannot be rebuilt, and the monitor compares every window against it;
- ``predictions`` None: the training and drift windows read them; when set, a prediction goes
  with its outcome; a model's predictions served since its running A/B test started (the
  test's looks read both arms) and those in its pinned baseline (``model_baselines``: the daily
  run compares every window against them, however old) are kept whatever their age;
- ``outcomes`` None: when set, deletes orphan outcomes (no stored prediction) observed before the
  cutoff; an outcome of a stored prediction lives and dies with its prediction.

Floors: predictions, outcomes, day_profiles 60 days (the daily run reads 37 days back by default,
retraining 30) and results 90 days (the 90-day feature-importance trend; the day statistics' longest lookback);
below them is an error naming the table.
Deletes run in batches (``batch_size`` rows per transaction), so the weekly clean-up never holds
long locks against the ingest path.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import sqlalchemy as sa

from .inbox import outcome_inbox  # with its processed mark
from .rows import _utc
from .tables import (
    RESULT_TABLES,
    ab_tests,
    alerts,
    day_profiles,
    day_statistics,
    ingest_rejects,
    learning_reports,
    model_baselines,
    outcome_history,
    outcomes,
    predictions,
    retrain_requests,
)

RETENTION_DEFAULTS: dict[str, int | None] = {
    "outcome_inbox": 30, "ingest_rejects": 30, "outcome_history": 365, "alerts": 180, "retrain_requests": 400,
    **dict.fromkeys(RESULT_TABLES, 400), "learning_reports": 400, "day_statistics": 400, "day_profiles": 400,
    "predictions": None,
    "outcomes": None,
}
MIN_RETENTION_DAYS = {"predictions": 60, "outcomes": 60, "day_profiles": 60,
                      **dict.fromkeys((*RESULT_TABLES, "learning_reports", "day_statistics"), 90)}
MAX_RETENTION_DAYS = 36_600


def retention_policy(keep_days: Mapping[str, int | None] | None = None) -> dict[str, int | None]:
    """The defaults with ``keep_days`` applied, checked: a ``ValueError`` names the table for an
    unknown table, a value that is not a whole number of days (or null) or one below its floor."""
    if keep_days is None:
        keep_days = {}
    if not isinstance(keep_days, Mapping):
        raise ValueError(f"keep_days: must map table names to days or null, got {keep_days!r}")
    unknown = sorted(str(k) for k in keep_days if k not in RETENTION_DEFAULTS)
    if unknown:
        raise ValueError(f"keep_days.{unknown[0]}: not a table with retention; one of "
                         f"{', '.join(RETENTION_DEFAULTS)}")
    policy = {**RETENTION_DEFAULTS, **keep_days}
    for table, days in policy.items():
        if days is None:
            continue
        floor = MIN_RETENTION_DAYS.get(table, 1)
        if not isinstance(days, int) or isinstance(days, bool) or not floor <= days <= MAX_RETENTION_DAYS:
            raise ValueError(f"keep_days.{table}: must be null (keep everything) or a whole number of days in "
                             f"{floor}..{MAX_RETENTION_DAYS}, got {days!r}")
    return policy


class RetentionMixin:
    """Deleting what the retention policy lets go (see the module docstring)."""

    def apply_retention(self, *, now: datetime, keep_days: Mapping[str, int | None] | None = None,
                        batch_size: int = 10_000) -> dict[str, int]:
        """Delete what is older than ``now`` minus each table's days under the policy (defaults
        with ``keep_days`` applied); returns the rows deleted per table with a retention."""
        if not isinstance(now, datetime) or now.tzinfo is None:
            raise ValueError(f"now: must be a timezone-aware datetime, got {now!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size: must be a positive integer, got {batch_size!r}")
        policy = retention_policy(keep_days)
        end = _utc(now).to_pydatetime()
        deleted: dict[str, int] = {}
        for table, days in policy.items():
            if days is None:
                continue
            cutoff = end - timedelta(days=days)
            if table == "predictions":
                removed, labels = self._delete_predictions(cutoff, batch_size)
                deleted["predictions"] = removed
                deleted["outcomes"] = deleted.get("outcomes", 0) + labels
                continue
            target, condition = _expired(table, cutoff, self.dialect)
            deleted[table] = deleted.get(table, 0) + self._delete_in_batches(target, condition, batch_size)
        return deleted

    def _delete_in_batches(self, target: sa.Table, condition, batch_size: int) -> int:
        key = list(target.primary_key.columns)
        chosen = sa.select(*key).where(condition).limit(batch_size)
        match = key[0].in_(chosen) if len(key) == 1 else sa.tuple_(*key).in_(chosen)
        total = 0
        while True:
            with self.engine.begin() as conn:
                count = conn.execute(target.delete().where(match)).rowcount
            total += count
            if count < batch_size:
                return total

    def _delete_predictions(self, cutoff: datetime, batch_size: int) -> tuple[int, int]:
        """Predictions served before ``cutoff`` with their outcomes, except a running A/B test's
        and those in their model's baseline."""
        p, b = predictions.c, model_baselines.c
        tested = sa.select(1).where(ab_tests.c.status == "running", ab_tests.c.model == p.model,
                                    ab_tests.c.started_at <= p.served_at).exists()
        pinned = sa.select(1).where(b.model == p.model, b.start <= p.served_at, b.end > p.served_at).exists()
        chosen = sa.select(p.prediction_id).where(p.served_at < cutoff, ~tested, ~pinned).limit(batch_size)
        removed = labels = 0
        while True:
            with self.engine.begin() as conn:
                ids = list(conn.execute(chosen).scalars())
                if ids:
                    labels += conn.execute(outcomes.delete().where(outcomes.c.prediction_id.in_(ids))).rowcount
                    removed += conn.execute(predictions.delete().where(p.prediction_id.in_(ids))).rowcount
            if len(ids) < batch_size:
                return removed, labels


def _expired(table: str, cutoff: datetime, dialect) -> tuple[sa.Table, sa.ColumnElement[bool]]:
    """The table and the condition of its rows that may go (see the module docstring)."""
    if table in RESULT_TABLES:
        return RESULT_TABLES[table], RESULT_TABLES[table].c.window_end < cutoff
    rules = {
        "outcome_inbox": (outcome_inbox, sa.and_(outcome_inbox.c.processed_at.is_not(None),
                                                 outcome_inbox.c.received_at < cutoff)),
        "ingest_rejects": (ingest_rejects, ingest_rejects.c.rejected_at < cutoff),
        "outcome_history": (outcome_history, outcome_history.c.replaced_at < cutoff),
        "alerts": (alerts, sa.and_(alerts.c.status.in_(("resolved", "suppressed")), alerts.c.window_end < cutoff)),
        "retrain_requests": (retrain_requests, sa.and_(retrain_requests.c.status.in_(("done", "failed", "delegated")),
                                                       retrain_requests.c.window_end < cutoff)),
        "learning_reports": (learning_reports, learning_reports.c.period_end < cutoff),
        "day_statistics": (day_statistics, day_statistics.c.day < cutoff),
        "day_profiles": (day_profiles, sa.and_(day_profiles.c.day < cutoff, ~_in_pinned_baseline(dialect))),
        "outcomes": (outcomes, sa.and_(outcomes.c.observed_at < cutoff, ~sa.select(1).where(
            predictions.c.prediction_id == outcomes.c.prediction_id).exists())),
    }
    return rules[table]


def _in_pinned_baseline(dialect) -> sa.ColumnElement[bool]:
    """A day profile whose UTC day overlaps its model's pinned baseline [start, end) (the day of
    the baseline's start, and every day starting before its end)."""
    d, b = day_profiles.c, model_baselines.c
    return sa.select(1).where(b.model == d.model, dialect.utc_day(b.start) <= dialect.utc_day(d.day),
                              b.end > d.day).exists()
