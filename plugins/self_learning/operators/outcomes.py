"""Outcome sources: where the real outcomes come from before they are joined to their predictions.

Outcomes are pulled by what has not been processed, not by the run's interval: the daily DAG runs
with catchup off, so after scheduler downtime the missed days are never scheduled, and an
interval pull lost every outcome that arrived on them (issue 13: two days down, 1,564 outcomes
never recorded). The inbox marks what a run recorded; another source keeps a watermark.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta

from airflow.sdk import BaseHook

from .common import FeedbackStoreOperator, InvalidParams, run_settings

# How far back a run catches up on a source queried by interval: three months of downtime. Beyond
# that the query would scan a source's whole history in one task; the gap is logged instead.
MAX_CATCH_UP = timedelta(days=90)


class PullOutcomesOperator(FeedbackStoreOperator):
    """Pull the outcomes not recorded yet and join them to predictions.

    Default source: the store's ``outcome_inbox``, every row not yet processed that was received
    before the run's window end (a missed day is picked up by the next run; a re-run finds
    nothing new). Any other source: ``source_sql`` on the Airflow connection ``source_conn_id``,
    returning ``prediction_id, actual_value[, observed_at]`` with ``:start`` and ``:end`` bound;
    ``:start`` is the end of the last interval pulled from it (the store's watermark for this
    connection and query) when that is earlier than the run's interval start, at most
    ``MAX_CATCH_UP`` back. Logs and returns matched / orphan / late counts.
    """

    template_fields: Sequence[str] = ("source_conn_id", "source_sql")

    def __init__(self, *, source_conn_id: str | None = None, source_sql: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.source_conn_id = source_conn_id
        self.source_sql = source_sql

    def execute(self, context):
        settings = run_settings(context)
        start, end = settings.interval_start, settings.window_end
        store = self.store()
        if self.source_sql:
            if not self.source_conn_id:
                raise InvalidParams("source_conn_id: required when source_sql is set")
            source = f"connection {self.source_conn_id!r}"
            key = source_key(self.source_conn_id, self.source_sql)
            watermark = store.outcome_source_watermark(key)
            since = catch_up_start(start, end, watermark)
            if watermark is not None and watermark < since:
                self.log.warning("outcomes %s..%s from %s are not pulled: a run catches up at most %s", watermark,
                                 since, source, MAX_CATCH_UP)
            frame = self._query_source(since, end)
            frame = frame.drop_duplicates("prediction_id", keep="last")  # the latest value of a corrected outcome
            report = store.record_outcomes(frame)
            store.advance_outcome_source_watermark(key, end)
            prediction_ids = frame["prediction_id"]
        else:
            source = "outcome_inbox"
            report = store.pull_outcome_inbox(end)
            since = min(start, report.oldest_received_at or start)
            prediction_ids = report.prediction_ids
        counts = store.outcome_join_counts(prediction_ids, served_before=start)
        summary = {"source": source, "interval_start": start.isoformat(), "interval_end": end.isoformat(),
                   "pulled_from": since.isoformat(), "received": report.received, "recorded": report.inserted,
                   "corrected": report.corrected, "unchanged": report.unchanged, "rejected": len(report.rejected),
                   **counts, "orphans_waiting": store.count_orphan_outcomes()}
        self.log.info("outcomes %s..%s from %s: %d received, %d matched (%d late), %d orphan, %d corrected, "
                      "%d rejected", since, end, source, report.received, counts["matched"], counts["late"],
                      counts["orphan"], report.corrected, len(report.rejected))
        for error in report.rejected[:20]:
            self.log.warning("rejected outcome row %d (%s): %s %s", error.row, error.prediction_id, error.field,
                             error.reason)
        return summary

    def _query_source(self, start: datetime, end: datetime):
        import pandas as pd
        import sqlalchemy as sa

        hook = BaseHook.get_connection(self.source_conn_id).get_hook()
        with hook.get_sqlalchemy_engine().connect() as conn:
            frame = pd.read_sql(sa.text(self.source_sql), conn, params={"start": start, "end": end})
        missing = {"prediction_id", "actual_value"} - set(frame.columns)
        if missing:
            raise ValueError(f"source_sql: the query must return {sorted(missing)} (got {list(frame.columns)})")
        return frame


def source_key(conn_id: str, sql: str) -> str:
    """The watermark's name of a source: its connection and its query (a changed query is a new
    source and starts at the run's interval)."""
    return f"{conn_id}:{hashlib.sha256(sql.strip().encode()).hexdigest()[:16]}"


def catch_up_start(interval_start: datetime, interval_end: datetime, watermark: datetime | None) -> datetime:
    """Where a run's query of an interval-based source starts: the watermark when the source was
    last pulled before this interval (missed days), capped at ``MAX_CATCH_UP`` before the
    interval end; else the interval start (on time, or a re-run of an old interval)."""
    if watermark is None or watermark >= interval_start:
        return interval_start
    return max(watermark, interval_end - MAX_CATCH_UP)
