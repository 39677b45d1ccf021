"""The daily run's first step: pull the outcomes not recorded yet (see ``self_learning.outcome_sources``)
and join them to their predictions."""

from __future__ import annotations

from collections.abc import Sequence

from ..outcome_sources import MAX_CATCH_UP, catch_up_start, select_source, source_key
from .common import FeedbackStoreOperator, InvalidParams, run_settings

__all__ = ["MAX_CATCH_UP", "PullOutcomesOperator", "catch_up_start", "source_key"]


class PullOutcomesOperator(FeedbackStoreOperator):
    """Pull the outcomes not recorded yet and join them to predictions.

    Default source: the store's ``outcome_inbox`` (``InboxSource``). With ``source_sql``: that
    query on the Airflow connection ``source_conn_id`` from its watermark (``SqlQuerySource``).
    With ``source_uri``: the CSV / Parquet files under that prefix by modification time
    (``FileSource``; ``source_conn_id`` holds the storage's credentials).
    Logs and returns received / recorded / corrected / rejected and matched / orphan / late counts.
    """

    template_fields: Sequence[str] = ("source_conn_id", "source_sql", "source_uri")

    def __init__(self, *, source_conn_id: str | None = None, source_sql: str | None = None,
                 source_uri: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.source_conn_id = source_conn_id
        self.source_sql = source_sql
        self.source_uri = source_uri

    def execute(self, context):
        settings = run_settings(context)
        start, end = settings.interval_start, settings.window_end
        try:
            source = select_source(self.source_conn_id, self.source_sql, self.source_uri)
        except ValueError as error:
            raise InvalidParams(str(error)) from error
        store = self.store()
        pulled = source.pull(store, start, end)
        report, since = pulled.report, pulled.pulled_from
        counts = store.outcome_join_counts(pulled.prediction_ids, served_before=start)
        summary = {"source": pulled.source, "interval_start": start.isoformat(), "interval_end": end.isoformat(),
                   "pulled_from": since.isoformat(), "received": report.received, "recorded": report.inserted,
                   "corrected": report.corrected, "unchanged": report.unchanged, "rejected": len(report.rejected),
                   **counts, "orphans_waiting": store.count_orphan_outcomes()}
        self.log.info("outcomes %s..%s from %s: %d received, %d matched (%d late), %d orphan, %d corrected, "
                      "%d rejected", since, end, pulled.source, report.received, counts["matched"], counts["late"],
                      counts["orphan"], report.corrected, len(report.rejected))
        for error in report.rejected[:20]:
            self.log.warning("rejected outcome row %d (%s): %s %s", error.row, error.prediction_id, error.field,
                             error.reason)
        return summary
