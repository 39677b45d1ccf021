"""Outcomes: the real values of predictions, recorded directly or queued in the inbox.

An outcome may arrive before its prediction (an orphan, see ``orphan_outcomes``) or days later;
it is joined whenever both exist. A corrected outcome replaces the value and the old one is
kept in ``outcome_history``. An outcome observed more than OBSERVED_BEFORE_SERVED_TOLERANCE
before its stored prediction was served is refused naming ``observed_at``. How new outcomes go
in (and that check) is the dialect's ``insert_new_outcomes``; corrections are the same SQL on
every database.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from .ingest import OBSERVED_BEFORE_SERVED_TOLERANCE, first_row, log, stored_rows
from .rows import (
    IngestReport,
    RowError,
    _check_window,
    _chunks,
    _database_now,
    _plain,
    _utc,
    _validate_outcomes,
)
from .tables import outcome_history, outcome_inbox, outcomes, predictions


class OutcomesMixin:
    """Outcome writes and the reads of how outcomes joined (with the write plumbing)."""

    def record_outcome(self, prediction_id: str, actual_value: float | None = None, *,
                       observed_at: datetime | None = None, business_value: float | None = None,
                       actual_label: str | None = None) -> str:
        """Store a real outcome (with what it was worth, ``business_value``, if known): returns
        ``recorded``, ``unchanged`` or ``corrected``. A multiclass model's outcome is its actual
        class, ``actual_label`` (no actual_value needed); a class outside the model's list is
        stored as sent, and reported by the metrics."""
        report = self.record_outcomes([{"prediction_id": prediction_id, "actual_value": actual_value,
                                        "observed_at": observed_at, "business_value": business_value,
                                        "actual_label": actual_label}])
        if report.rejected:
            raise ValueError(f"{report.rejected[0].field}: {report.rejected[0].reason}")
        return "recorded" if report.inserted else "corrected" if report.corrected else "unchanged"

    def record_outcomes(self, rows, *, batch_size: int = 100_000, quarantine: bool = False) -> IngestReport:
        """Bulk outcomes from a DataFrame or an iterable of mappings (prediction_id, actual_value,
        optional observed_at, business_value: what the outcome was worth, e.g. the unit's
        revenue, a finite number or missing, and actual_label: a multiclass outcome's actual class,
        which may stand in for actual_value). Unknown prediction ids are kept as orphans. Each
        batch is one transaction, re-run whole if PostgreSQL picks it as a deadlock victim."""
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame.from_records(list(rows))
        totals = dict.fromkeys(("received", "inserted", "unchanged", "corrected"), 0)
        rejected: list[RowError] = []
        for start in range(0, len(frame), batch_size):
            batch = frame.iloc[start:start + batch_size].reset_index(drop=True)
            clean, validation_errors = _validate_outcomes(batch, start)

            def attempt(batch=batch, clean=clean, validation_errors=validation_errors, start=start):
                write_errors: list[RowError] = []
                with self.engine.begin() as conn:
                    counts = self._write_outcomes(conn, clean.copy(), write_errors)
                    errors = sorted([*validation_errors, *(  # named by the first input row with that id
                        dataclasses.replace(e, row=start + first_row(batch["prediction_id"], e.prediction_id))
                        for e in write_errors)], key=lambda e: e.row)
                    if quarantine and errors:
                        self._quarantine(conn, "outcome", errors, batch, start)
                return counts, errors

            counts, errors = self._retrying(attempt)
            totals["received"] += len(batch)
            for key, value in counts.items():
                totals[key] += value
            rejected.extend(errors)
        self._refresh_statistics("outcomes", totals["inserted"])
        return IngestReport(**totals, rejected=rejected)

    def _write_outcomes(self, conn, clean: pd.DataFrame, errors: list[RowError] | None = None,
                        offset: int = 0) -> dict[str, int]:
        """Write validated outcomes on the caller's transaction (never commits); returns counts
        ``inserted`` / ``corrected`` / ``unchanged``.

        A new id is inserted; a stored one with another value or business value (a row without
        one clears it: the outcome is as last sent) is a correction (the old values go to
        ``outcome_history``, revision + 1), its row locked first so concurrent corrections
        serialize. An outcome observed more than OBSERVED_BEFORE_SERVED_TOLERANCE before its
        prediction was served is written nowhere and reported in ``errors`` (field ``observed_at``,
        row ``offset`` + its index in ``clean``). Only a stored prediction can be checked: an
        orphan's prediction may arrive later and is not checked then (outcomes are not re-read).
        """
        if clean.empty:
            return {}
        for column, missing in (("business_value", np.nan), ("actual_label", None)):
            if column not in clean.columns:  # a frame validated before the column existed carries none
                clean[column] = missing
        if clean["observed_at"].isna().any():
            clean["observed_at"] = clean["observed_at"].fillna(_database_now(conn))
        ids = clean["prediction_id"]
        served, inserted = self.dialect.insert_new_outcomes(conn, clean, OBSERVED_BEFORE_SERVED_TOLERANCE)
        if served and errors is None:
            log.warning("outcomes: %d observed more than %s before their prediction was served, not written",
                        len(served), OBSERVED_BEFORE_SERVED_TOLERANCE)
        elif served:
            for index, row in clean[ids.isin(served.keys())].iterrows():
                served_at = _utc(served[row["prediction_id"]]).isoformat()
                errors.append(RowError(offset + int(index), row["prediction_id"], "observed_at",
                                       f"{row['observed_at'].isoformat()} is more than a day before the prediction "
                                       f"was served ({served_at}); an outcome cannot precede its prediction"))
        stored_before = clean[~ids.isin(inserted) & ~ids.isin(served.keys())]
        existing = stored_rows(conn, outcomes, stored_before["prediction_id"].tolist(), lock=True)
        changed = [r for r in stored_before.to_dict("records")
                   if any(existing[r["prediction_id"]][field] != _plain(r[field])
                          for field in ("actual_value", "business_value", "actual_label"))]
        if changed:
            conn.execute(outcome_history.insert(), [
                {k: existing[r["prediction_id"]][k] for k in ("prediction_id", "actual_value", "observed_at",
                                                              "recorded_at", "revision", "business_value",
                                                              "actual_label")}
                for r in changed
            ])
            conn.execute(
                outcomes.update().where(outcomes.c.prediction_id == sa.bindparam("pid")).values(
                    actual_value=sa.bindparam("value"), observed_at=sa.bindparam("observed"),
                    business_value=sa.bindparam("business"), actual_label=sa.bindparam("label"),
                    recorded_at=sa.func.current_timestamp(), revision=outcomes.c.revision + 1),
                [{"pid": r["prediction_id"], "value": _plain(r["actual_value"]), "observed": _plain(r["observed_at"]),
                  "business": _plain(r["business_value"]), "label": _plain(r["actual_label"])} for r in changed],
            )
        return {"inserted": len(inserted), "corrected": len(changed), "unchanged": len(stored_before) - len(changed)}

    def enqueue_outcomes(self, rows) -> IngestReport:
        """Put outcomes in ``outcome_inbox``, the daily DAG's default outcome source (columns
        prediction_id, actual_value and/or actual_label, optional observed_at, received_at and
        business_value). Bad rows are reported."""
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame.from_records(list(rows))
        frame = frame.reset_index(drop=True)
        clean, errors = _validate_outcomes(frame, 0, keep_repeats=True)
        raw = frame["received_at"] if "received_at" in frame.columns else pd.Series([None] * len(frame))
        received = pd.to_datetime(raw, utc=True, errors="coerce", format="mixed")
        bad = clean.index[(received.isna() & raw.notna()).loc[clean.index].to_numpy()]
        errors.extend(RowError(int(i), clean.at[i, "prediction_id"], "received_at", f"not a timestamp: {raw.iat[i]!r}")
                      for i in bad)
        clean = clean.drop(index=bad)
        errors.sort(key=lambda e: e.row)
        with self.engine.begin() as conn:
            now = _database_now(conn)
            clean["observed_at"] = clean["observed_at"].fillna(now)
            clean["received_at"] = received.loc[clean.index].fillna(now)
            if len(clean):
                conn.execute(outcome_inbox.insert(), [
                    {k: _plain(v) for k, v in r.items()}
                    for r in clean[["prediction_id", "actual_value", "observed_at", "received_at", "business_value",
                                    "actual_label"]].to_dict("records")])
        return IngestReport(len(frame), len(clean), 0, 0, errors)

    def read_outcome_inbox(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Outcomes received in [start, end), in arrival order (a later row for the same prediction
        is a correction of an earlier one)."""
        _check_window(start, end)
        columns = ["prediction_id", "actual_value", "observed_at", "business_value", "actual_label"]
        query = (sa.select(*(outcome_inbox.c[c] for c in columns))
                 .where(outcome_inbox.c.received_at >= _utc(start).to_pydatetime(),
                        outcome_inbox.c.received_at < _utc(end).to_pydatetime())
                 .order_by(outcome_inbox.c.received_at, outcome_inbox.c.id))
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).all(), columns=columns)
        frame["observed_at"] = pd.to_datetime(frame["observed_at"], utc=True)
        frame = frame.astype({"actual_value": np.float64, "business_value": np.float64})
        return frame

    def outcome_join_counts(self, prediction_ids: Iterable[str], served_before: datetime) -> dict[str, int]:
        """How outcomes join: ``matched`` (their prediction is stored), ``orphan`` (not yet) and
        ``late`` (matched to a prediction served before ``served_before``)."""
        ids = list(dict.fromkeys(prediction_ids))
        matched = late = 0
        cutoff = _utc(served_before).to_pydatetime()
        with self.engine.connect() as conn:
            for chunk in _chunks(ids, 10_000):
                row = conn.execute(sa.select(
                    sa.func.count(), sa.func.count().filter(predictions.c.served_at < cutoff),
                ).where(predictions.c.prediction_id.in_(chunk))).one()
                matched += row[0]
                late += row[1] or 0
        return {"matched": matched, "orphan": len(ids) - matched, "late": late}

    def outcome_history_of(self, prediction_id: str) -> list[dict[str, Any]]:
        """Earlier values of a corrected outcome, oldest first."""
        query = (sa.select(outcome_history).where(outcome_history.c.prediction_id == prediction_id)
                 .order_by(outcome_history.c.revision))
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def count_orphan_outcomes(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM orphan_outcomes")).scalar_one()
