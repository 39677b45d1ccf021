"""Results: what the DAGs compute per model and window, and the learning reports of a period
(the day statistics are written here too, in the same transaction; ``day_statistics.py``).

Every write is an upsert on the natural key, so re-running a DAG interval leaves one row; a
model's day of results is written in one transaction, so readers see all of it or none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..core.types import Result, model_name, to_jsonable
from .day_statistics import day_statistic_row
from .rows import _check_window, _equal_to, _utc
from .tables import RESULT_TABLES, learning_reports


class ResultsMixin:
    """The result tables (performance, drift, error analysis, importance) and learning reports."""

    def save_result(self, table: str, *, model: str, model_version: str, window_start: datetime,
                    window_end: datetime, kind: str, result: Result | Mapping[str, Any], **columns: Any) -> None:
        """Upsert one result on its natural key (model, model_version, window, kind[, feature])."""
        self.save_results([{"table": table, "model": model, "model_version": model_version,
                            "window_start": window_start, "window_end": window_end, "kind": kind, "result": result,
                            **columns}])

    def save_results(self, results: Iterable[Mapping[str, Any]]) -> int:
        """Upsert several results in one transaction, so readers see all of them or none (a model's
        day of performance, drift and error analysis becomes visible at once; a step killed
        half-way leaves the previous state). Each mapping holds ``table`` and the keywords of
        :meth:`save_result`, or ``"table": "day_statistics"`` and the fields of one day statistic
        (``day_statistics.py``). Returns how many were written."""
        statements, day_rows, day_entries = [], {}, 0
        for given in results:  # validated and built before the transaction opens
            entry = dict(given)
            table = entry.pop("table")
            if table == "day_statistics":
                row = day_statistic_row(entry)
                day_rows[row["model"], row["check"], row["day"]] = row  # a repeated key: the last one, as before
                day_entries += 1
                continue
            if table not in RESULT_TABLES:
                raise ValueError(f"table: one of {', '.join((*RESULT_TABLES, 'day_statistics'))}, got {table!r}")
            target = RESULT_TABLES[table]
            _check_window(entry["window_start"], entry["window_end"])
            row = {**entry, "model": model_name(entry["model"]),
                   "window_start": _utc(entry["window_start"]).to_pydatetime(),
                   "window_end": _utc(entry["window_end"]).to_pydatetime(), "result": to_jsonable(entry["result"])}
            statement = self.dialect.insert(target).values(**row)
            keys = [c.name for c in target.primary_key.columns]
            updates = {k: statement.excluded[k] for k in row if k not in keys}
            statements.append(statement.on_conflict_do_update(
                index_elements=keys, set_=updates | {"computed_at": sa.func.current_timestamp()}))
        with self.engine.begin() as conn:
            for statement in statements:
                conn.execute(statement)
            if day_rows:
                conn.execute(self._day_statistics_upsert(), list(day_rows.values()))
        return len(statements) + day_entries

    def read_results(self, table: str, *, model: str | None = None, kind: str | None = None,
                     model_version: str | None = None, window_end: datetime | None = None,
                     window_ends: tuple[datetime, datetime] | None = None) -> list[dict[str, Any]]:
        """Stored results, oldest window first, optionally filtered on parts of the natural key;
        ``window_ends=(after, until)`` keeps windows ending in (after, until]."""
        target = RESULT_TABLES[table]
        query = sa.select(target).order_by(target.c.window_end, target.c.model, target.c.model_version,
                                           target.c.kind)
        if window_end is not None:
            query = query.where(target.c.window_end == _utc(window_end).to_pydatetime())
        if window_ends is not None:
            after, until = (_utc(t).to_pydatetime() for t in window_ends)
            query = query.where(target.c.window_end > after, target.c.window_end <= until)
        query = query.where(*_equal_to(target, model=model, kind=kind, model_version=model_version))
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def latest_results(self, table: str, *, model: str, model_version: str | None = None,
                       kind: str | None = None) -> list[dict[str, Any]]:
        """The results of ``model`` in the window that ended last, per kind and version: what a
        dashboard shows as 'now'."""
        target = RESULT_TABLES[table]
        keys = [target.c.model_version, target.c.kind]
        last = sa.select(*keys, sa.func.max(target.c.window_end).label("window_end")).where(
            *_equal_to(target, model=model, kind=kind, model_version=model_version)).group_by(*keys).subquery()
        query = sa.select(target).join(last, sa.and_(
            target.c.model_version == last.c.model_version, target.c.kind == last.c.kind,
            target.c.window_end == last.c.window_end)).where(target.c.model == model).order_by(
            target.c.kind, target.c.model_version, target.c.computed_at)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def save_learning_report(self, *, period_start: datetime, period_end: datetime, kind: str,
                             report: Mapping[str, Any], artifact_uri: str | None = None) -> None:
        """Upsert the learning report of a period (``kind``: weekly, daily...)."""
        _check_window(period_start, period_end)
        row = {"period_start": _utc(period_start).to_pydatetime(), "period_end": _utc(period_end).to_pydatetime(),
               "kind": kind, "report": to_jsonable(dict(report)), "artifact_uri": artifact_uri}
        statement = self.dialect.insert(learning_reports).values(**row)
        with self.engine.begin() as conn:
            conn.execute(statement.on_conflict_do_update(
                index_elements=["period_start", "period_end", "kind"],
                set_={"report": statement.excluded.report, "artifact_uri": statement.excluded.artifact_uri,
                      "computed_at": sa.func.current_timestamp()}))

    def learning_reports(self, *, kind: str | None = None, period_end: datetime | None = None
                         ) -> list[dict[str, Any]]:
        """Stored learning reports, oldest period first."""
        query = sa.select(learning_reports).order_by(learning_reports.c.period_end, learning_reports.c.kind)
        if kind is not None:
            query = query.where(learning_reports.c.kind == kind)
        if period_end is not None:
            query = query.where(learning_reports.c.period_end == _utc(period_end).to_pydatetime())
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def latest_learning_report(self, kind: str) -> dict[str, Any] | None:
        """The stored report of ``kind`` whose period ended last (None before the first)."""
        query = sa.select(learning_reports).where(learning_reports.c.kind == kind).order_by(
            learning_reports.c.period_end.desc()).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return dict(row) if row else None
