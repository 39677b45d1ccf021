"""Outcome sources: where the real outcomes come from before they are joined to their predictions.

Outcomes are pulled by what has not been processed, not by the run's interval: the daily DAG runs
with catchup off, so after scheduler downtime the missed days are never scheduled, and an
interval pull lost every outcome that arrived on them (issue 13: two days down, 1,564 outcomes
never recorded). The inbox marks what a run recorded; a source queried by interval keeps a
watermark in the store.

Every source is an ``OutcomeSource``: ``pull(store, interval_start, interval_end)`` records what
it has for the run into the store and returns a ``PulledOutcomes``. A new kind of source (files
under an object-storage prefix, a message queue) is one more subclass; ``select_source`` picks one
from the operator's configuration. Airflow (for a connection's hook) is imported when a source
pulls, so this module is light enough for the DAG files.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

log = logging.getLogger(__name__)

# How far back a run catches up on a source queried by interval: three months of downtime. Beyond
# that the query would scan a source's whole history in one task; the gap is logged instead.
MAX_CATCH_UP = timedelta(days=90)


@dataclasses.dataclass(frozen=True)
class PulledOutcomes:
    """What one pull recorded: ``source`` says where from (for the log), ``pulled_from`` where its
    window started (earlier than the interval after missed days), ``report`` is the store's
    ``OutcomeReport`` and ``prediction_ids`` the ids it carried (to count matched / late / orphan)."""

    source: str
    pulled_from: datetime
    report: Any
    prediction_ids: Sequence[str]


class OutcomeSource(abc.ABC):
    """A place the outcomes of a run come from."""

    @abc.abstractmethod
    def describe(self) -> str:
        """The source as the run's log and summary name it."""

    @abc.abstractmethod
    def pull(self, store, interval_start: datetime, interval_end: datetime) -> PulledOutcomes:
        """Record the outcomes this source has for the run ending at ``interval_end`` (and any it
        missed before) into ``store``; idempotent for a re-run of the same interval."""


class InboxSource(OutcomeSource):
    """The store's ``outcome_inbox``: every row not processed yet that was received before the
    window end (a missed day is picked up by the next run; a re-run finds nothing new)."""

    def describe(self) -> str:
        return "outcome_inbox"

    def pull(self, store, interval_start: datetime, interval_end: datetime) -> PulledOutcomes:
        report = store.pull_outcome_inbox(interval_end)
        since = min(interval_start, report.oldest_received_at or interval_start)
        return PulledOutcomes(self.describe(), since, report, report.prediction_ids)


class WatermarkedSource(OutcomeSource):
    """A source read by time: each run reads from the end of the last interval pulled from it (the
    store's watermark under ``key()``) when that is earlier than its interval start, at most
    ``MAX_CATCH_UP`` back; the latest value of a corrected outcome wins."""

    @abc.abstractmethod
    def key(self) -> str:
        """The watermark's name: changes when what the source reads changes."""

    @abc.abstractmethod
    def read(self, start: datetime, end: datetime):
        """The outcomes that arrived in ``start``..``end`` as a frame (``prediction_id``,
        ``actual_value`` and/or ``actual_label`` (a multiclass model's actual class), optional
        ``observed_at`` and ``business_value``)."""

    def pull(self, store, interval_start: datetime, interval_end: datetime) -> PulledOutcomes:
        key = self.key()
        watermark = store.outcome_source_watermark(key)
        since = catch_up_start(interval_start, interval_end, watermark)
        if watermark is not None and watermark < since:
            log.warning("outcomes %s..%s from %s are not pulled: a run catches up at most %s", watermark, since,
                        self.describe(), MAX_CATCH_UP)
        frame = _checked(self.read(since, interval_end), self.describe()).drop_duplicates("prediction_id", keep="last")
        report = store.record_outcomes(frame)
        store.advance_outcome_source_watermark(key, interval_end)
        return PulledOutcomes(self.describe(), since, report, frame["prediction_id"])


class SqlQuerySource(WatermarkedSource):
    """``sql`` on the Airflow connection ``conn_id``, returning ``prediction_id, actual_value[,
    observed_at, business_value]`` (or ``actual_label`` instead of or beside actual_value) with
    ``:start`` and ``:end`` bound to the window (see ``WatermarkedSource``)."""

    def __init__(self, conn_id: str, sql: str):
        if not conn_id:
            raise ValueError("source_conn_id: required when source_sql is set")
        self.conn_id, self.sql = conn_id, sql

    def describe(self) -> str:
        return f"connection {self.conn_id!r}"

    def key(self) -> str:
        return source_key(self.conn_id, self.sql)

    def read(self, start: datetime, end: datetime):
        import pandas as pd
        import sqlalchemy as sa
        from airflow.sdk import BaseHook

        hook = BaseHook.get_connection(self.conn_id).get_hook()
        with hook.get_sqlalchemy_engine().connect() as conn:
            return pd.read_sql(sa.text(self.sql), conn, params={"start": start, "end": end})


class FileSource(WatermarkedSource):
    """CSV (or, with pyarrow installed, Parquet) files under an ``ObjectStoragePath`` prefix
    (``uri``, any fsspec URI; ``conn_id`` names the storage's credentials), each read by the run
    whose window holds its modification time: a file dropped after a run is taken by the next one,
    a file changed later is read again (its outcomes count as corrections or unchanged)."""

    READERS: ClassVar[dict[str, str]] = {".csv": "read_csv", ".parquet": "read_parquet"}

    def __init__(self, uri: str, conn_id: str | None = None):
        if not uri:
            raise ValueError("source_uri: the prefix of the outcome files is required")
        self.uri, self.conn_id = uri.rstrip("/"), conn_id or None

    def describe(self) -> str:
        return f"files under {self.uri!r}"

    def key(self) -> str:
        return f"files:{self.uri}"

    def read(self, start: datetime, end: datetime):
        import pandas as pd
        from airflow.sdk import ObjectStoragePath

        frames = []
        for path in sorted(ObjectStoragePath(self.uri, conn_id=self.conn_id).rglob("*"), key=str):
            reader = self.READERS.get(path.suffix.lower())
            if reader is None or not path.is_file():
                continue
            if start.timestamp() < path.stat().st_mtime <= end.timestamp():
                with path.open("rb") as handle:
                    frames.append(getattr(pd, reader)(handle))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            {"prediction_id": pd.Series(dtype=str), "actual_value": pd.Series(dtype=float)})


def _checked(frame, source: str):
    """A source's frame needs prediction_id and an outcome: actual_value, or actual_label (the
    actual class of a multiclass model)."""
    missing = {"prediction_id"} - set(frame.columns)
    if not {"actual_value", "actual_label"} & set(frame.columns):
        missing.add("actual_value")
    if missing:
        raise ValueError(f"{source}: the outcomes must have the columns {sorted(missing)} "
                         f"(got {list(frame.columns)})")
    return frame


def select_source(source_conn_id: str | None = None, source_sql: str | None = None,
                  source_uri: str | None = None) -> OutcomeSource:
    """The source the operator's configuration names: a query on a connection (``source_sql``),
    files under a prefix (``source_uri``, credentials from ``source_conn_id``), else the inbox."""
    if source_sql and source_uri:
        raise ValueError("source_uri: set either source_sql or source_uri, not both")
    if source_sql:
        return SqlQuerySource(source_conn_id or "", source_sql)
    if source_uri:
        return FileSource(source_uri, source_conn_id)
    return InboxSource()


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
