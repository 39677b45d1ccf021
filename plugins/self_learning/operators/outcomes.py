"""Outcome sources: where the real outcomes come from before they are joined to their predictions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from airflow.sdk import BaseHook

from .common import FeedbackStoreOperator, run_settings


class PullOutcomesOperator(FeedbackStoreOperator):
    """Pull the outcomes that arrived during the run's interval and join them to predictions.

    Default source: the store's ``outcome_inbox`` (rows received in the interval). Any other
    source: ``source_sql`` on the Airflow connection ``source_conn_id``, returning
    ``prediction_id, actual_value[, observed_at]`` with ``:start`` and ``:end`` bound to the
    interval. Logs and returns matched / orphan / late counts.
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
                raise ValueError("source_conn_id: required when source_sql is set")
            frame = self._query_source(start, end)
            source = f"connection {self.source_conn_id!r}"
        else:
            frame = store.read_outcome_inbox(start, end)
            source = "outcome_inbox"
        frame = frame.drop_duplicates("prediction_id", keep="last")  # the latest value of a corrected outcome
        report = store.record_outcomes(frame)
        counts = store.outcome_join_counts(frame["prediction_id"], served_before=start)
        summary = {"source": source, "interval_start": start.isoformat(), "interval_end": end.isoformat(),
                   "received": report.received, "recorded": report.inserted, "corrected": report.corrected,
                   "unchanged": report.unchanged, "rejected": len(report.rejected), **counts,
                   "orphans_waiting": store.count_orphan_outcomes()}
        self.log.info("outcomes %s..%s from %s: %d received, %d matched (%d late), %d orphan, %d corrected, "
                      "%d rejected", start, end, source, report.received, counts["matched"], counts["late"],
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
