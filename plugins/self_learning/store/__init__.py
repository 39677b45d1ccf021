"""The feedback store: every SQL statement of the package lives here.

Predictions, their real outcomes and every result the DAGs produce, in PostgreSQL (production)
or an embedded SQLite file (demo, zero set-up) through one SQLAlchemy Core code path. Only two
places are PostgreSQL-specific because speed demands it: bulk prediction/outcome ingest uses
binary COPY, and window reads use ``COPY (SELECT ...) TO STDOUT``.

Storage of features: numeric features are packed float8 bytes (``bytea`` on PostgreSQL, a JSON
list on SQLite) in the order of the model's feature registry (``model_features``), categorical
ones a JSON object. Formatting floats as JSON text and parsing them again costs more than
everything else in ingest, and sending a ``float8[]`` costs the server a call per element
(bench/ingest_bench.py, bench/daily_bench.py).

Guarantees:
- registering the same prediction twice is a no-op; a different payload under a known id is
  rejected with the differing fields named, and the stored row is untouched;
- an outcome may arrive before its prediction (an orphan, see ``orphan_outcomes``) or days
  later; it is joined whenever both exist;
- a corrected outcome replaces the value and the old one is kept in ``outcome_history``;
- result writes are upserts on their natural key, so re-running a DAG interval leaves one row;
- every value is a bound parameter; identifiers from user data (feature keys) are quoted with
  ``psycopg.sql`` where they reach SQL text.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from .. import pgcopy
from ..domain import DEFAULT_MODELS, ModelSpec, Result, Severity, TaskKind, model_name, to_jsonable
from .inbox import InboxPull, OutcomeInboxMixin
from .ingest import IngestMixin
from .retention import RETENTION_DEFAULTS, RetentionMixin, retention_policy
from .rows import (
    ConflictError,
    IngestReport,
    RowError,
    _check_window,
    _chunks,
    _database_now,
    _equal_to,
    _text_problem,
    _utc,
)
from .tables import (
    AB_TEST_STATUSES,
    ALERT_TRANSITIONS,
    ALL_VERSIONS,
    DEFAULT_VERSION,
    MAX_FEATURES,
    MIGRATIONS,
    RESULT_TABLES,
    RETRAIN_STATUSES,
    VERSION_STATUSES,
    VERSION_TABLE,
    WINDOW_COLUMNS,
    ab_tests,
    alerts,
    learning_reports,
    model_versions,
    models,
    outcome_history,
    outcome_inbox,
    outcomes,
    predictions,
    retrain_requests,
)

__all__ = ["ALL_VERSIONS", "DEFAULT_VERSION", "MAX_FEATURES", "MIGRATIONS", "RETENTION_DEFAULTS", "VERSION_TABLE",
           "ConflictError", "FeedbackStore", "InboxPull", "IngestReport", "RowError", "alert_key", "retention_policy"]


class FeedbackStore(IngestMixin, OutcomeInboxMixin, RetentionMixin):
    """The store API, usable from serving code (no Airflow needed) and from the operators."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self._registry_cache: dict[str, dict[str, tuple[str, int]]] = {}  # append-only, so safe to cache
        self._known_models: set[str] = set()
        # Built once: the statement (and its compiled form) is reused by every single registration.
        self._insert_prediction = self._insert(predictions).on_conflict_do_nothing().returning(
            predictions.c.prediction_id)

    @classmethod
    def from_url(cls, url: str | sa.URL, **engine_options: Any) -> FeedbackStore:
        """``postgresql://user@host/db`` (psycopg 3 is used) or ``sqlite:////abs/path.db``."""
        parsed = sa.make_url(url)
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        if parsed.get_backend_name() == "sqlite":
            engine_options.setdefault("connect_args", {"timeout": 30})
        engine = sa.create_engine(parsed, **engine_options)
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_connect)
            sa.event.listen(engine, "begin", _sqlite_begin)
        return cls(engine)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    # -- schema --------------------------------------------------------------------------------

    def ensure_schema(self, revision: str = "head") -> str:
        """Apply pending migrations up to ``revision`` (idempotent, safe to run concurrently);
        seed the default models. Returns the schema revision."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            if self.is_postgres:  # one migrator at a time across workers
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('self_learning.migrations'))"))
            config.attributes.update(connection=conn, version_table=VERSION_TABLE)
            command.upgrade(config, revision)
            for spec in DEFAULT_MODELS:
                conn.execute(self._insert(models).values(**_model_row(spec)).on_conflict_do_nothing())
            return conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one()

    def _insert(self, table: sa.Table):
        return (postgresql.insert if self.is_postgres else sqlite.insert)(table)

    # -- models --------------------------------------------------------------------------------

    def register_model(self, spec: ModelSpec, *, active: bool = True) -> None:
        """Create or update a model; its declared features join the feature registry."""
        row = _model_row(spec) | {"active": active}
        with self.engine.begin() as conn:
            statement = self._insert(models).values(**row)
            conn.execute(statement.on_conflict_do_update(
                index_elements=["name"],
                set_={k: statement.excluded[k] for k in ("task_kind", "feature_schema", "thresholds", "active")}
                | {"updated_at": sa.func.current_timestamp()},
            ))
            self._register_features(conn, spec.name, dict(spec.feature_schema))

    def get_model(self, name: str) -> ModelSpec:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(models).where(models.c.name == model_name(name))).mappings().first()
        if row is None:
            raise KeyError(f"model: {name!r} is not registered")
        return _spec(row)

    def list_models(self, *, active_only: bool = True) -> list[ModelSpec]:
        query = sa.select(models).order_by(models.c.name)
        if active_only:
            query = query.where(models.c.active)
        with self.engine.connect() as conn:
            return [_spec(row) for row in conn.execute(query).mappings()]

    def _models_known(self, conn) -> set[str]:
        """Registered model names, re-read only when asked about one not seen yet."""
        self._known_models = {name for (name,) in conn.execute(sa.select(models.c.name))}
        return self._known_models

    def read_outcome_inbox(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Outcomes received in [start, end), in arrival order (a later row for the same prediction
        is a correction of an earlier one)."""
        _check_window(start, end)
        query = (sa.select(outcome_inbox.c.prediction_id, outcome_inbox.c.actual_value, outcome_inbox.c.observed_at)
                 .where(outcome_inbox.c.received_at >= _utc(start).to_pydatetime(),
                        outcome_inbox.c.received_at < _utc(end).to_pydatetime())
                 .order_by(outcome_inbox.c.received_at, outcome_inbox.c.id))
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).all(), columns=["prediction_id", "actual_value", "observed_at"])
        frame["observed_at"] = pd.to_datetime(frame["observed_at"], utc=True)
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

    # -- window reads --------------------------------------------------------------------------

    def count_predictions(self, model: str, start: datetime, end: datetime, *, version: str | None = None) -> int:
        """Predictions served in [start, end) - the denominator of label coverage."""
        query = sa.select(sa.func.count()).select_from(predictions).where(*self._window(model, start, end, version))
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def count_predictions_by_version(self, model: str, start: datetime, end: datetime) -> dict[str, int]:
        """Predictions served in [start, end) per model version, in one scan."""
        query = (sa.select(predictions.c.model_version, sa.func.count()).where(*self._window(model, start, end, None))
                 .group_by(predictions.c.model_version))
        with self.engine.connect() as conn:
            return {version: count for version, count in conn.execute(query)}

    def _window(self, model, start, end, version):
        _check_window(start, end)
        start, end = _utc(start).to_pydatetime(), _utc(end).to_pydatetime()  # SQLite compares UTC text
        conditions = [predictions.c.model == model_name(model), predictions.c.served_at >= start,
                      predictions.c.served_at < end]
        if version is not None:
            conditions.append(predictions.c.model_version == version)
        return conditions

    def read_window(self, model: str, start: datetime, end: datetime, *, version: str | None = None,
                    labelled_only: bool = True, with_ids: bool = False, features: bool = True) -> pd.DataFrame:
        """Predictions served in [start, end), oldest first: model_version, served_at, predicted_value,
        predicted_label, actual_value, observed_at, error (predicted - actual) and one typed column per
        feature (float64 numeric; ``category`` of text for categorical features and the version).
        ``with_ids`` adds prediction_id and unit_id (costly at a million rows: every id becomes a
        Python string); ``features=False``
        leaves the feature columns out (metrics need none)."""
        registry = self.feature_registry(model) if features else {}
        numeric = sorted((p, k) for k, (kind, p) in registry.items() if kind == "numeric")
        categorical = sorted(k for k, (kind, _) in registry.items() if kind == "categorical")
        names = [c for c in WINDOW_COLUMNS if with_ids or c not in ("prediction_id", "unit_id")]
        conditions = self._window(model, start, end, version)
        if self.is_postgres:
            frame = self._read_postgres(conditions, labelled_only, [k for _, k in numeric], categorical,
                                        [c for c in names if c in TEXT_COLUMNS])
        else:
            p, o = predictions.c, outcomes.c
            join = predictions.join(outcomes, p.prediction_id == o.prediction_id, isouter=not labelled_only)
            columns = [(o if c in ("actual_value", "observed_at") else p)[c] for c in names]
            query = sa.select(*columns, p.num_features, p.cat_features).select_from(join).where(*conditions)
            with self.engine.connect() as conn:
                frame = _decode_sqlite_window(conn.execute(query).all(), names, numeric, categorical)
        frame = frame[[*names, *(k for _, k in numeric), *categorical]]
        frame.insert(names.index("observed_at") + 1, "error", frame["predicted_value"] - frame["actual_value"])
        return frame

    def _read_postgres(self, conditions, labelled_only: bool, numeric: list[str], categorical: list[str],
                       text_columns: list[str]) -> pd.DataFrame:
        """Two COPYs of the same rows in one snapshot, matched on ``row_id``.

        Numbers travel as fixed-width binary rows (timestamps, values, the feature vector padded
        to the registry's width) that numpy reads without parsing; only the text columns
        (version, categories, ids) go through the CSV parser. psycopg 3 hands COPY output to
        Python one row at a time (~8 us a row), psycopg2's ``copy_expert`` drains it in C, so
        reads use short-lived psycopg2 connections, one per stream, running concurrently.
        Values are bound client-side by psycopg2 (``mogrify``), never pasted as text.
        """
        dialect = postgresql.psycopg2.dialect()
        where = sa.and_(*conditions).compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        source = "predictions JOIN outcomes" if labelled_only else "predictions LEFT JOIN outcomes"
        source += " ON outcomes.prediction_id = predictions.prediction_id"
        width = len(numeric)
        # Pad older, shorter vectors with NaN; cut a vector that grew after the registry was read.
        vector = ("CASE WHEN length(num_features) = 8 * %(width)s THEN num_features "
                  "WHEN length(num_features) > 8 * %(width)s THEN substring(num_features FROM 1 FOR 8 * %(width)s) "
                  "ELSE num_features || decode(repeat('7ff8000000000000', %(width)s - length(num_features) / 8), "
                  "'hex') END")
        # timestamptz travels as its own binary form (microseconds since 2000-01-01); a missing
        # observed_at as -infinity, whose binary form is numpy's NaT.
        fixed = ["predictions.row_id", "predictions.served_at", "COALESCE(outcomes.observed_at, '-infinity')",
                 "predicted_value",
                 "COALESCE(actual_value, 'NaN')", f"COALESCE(predicted_label, {_NO_LABEL})",
                 *([vector] if width else [])]
        # Every present text value gets a "=" prefix, so a NULL (an empty field) cannot be confused
        # with any value, "\\N" and "" included.
        texts = ["predictions.row_id", *(f"'=' || predictions.{c}" for c in text_columns),
                 *(f"'=' || (cat_features ->> %(cat_{i})s)" for i in range(len(categorical)))]
        params = dict(where.params, width=width, **{f"cat_{i}": key for i, key in enumerate(categorical)})
        # The text stream skips the join (its filter is on predictions alone): it may carry
        # unlabelled rows too, which the matching below drops; the join costs more than they do.
        statements = [
            (f"SELECT {', '.join(columns)} FROM {table} WHERE {where.string}", fmt, io.BytesIO())
            for columns, table, fmt in ((fixed, source, "binary"), (texts, "predictions", "csv"))
        ]
        _parallel_copy_out(self.engine.url, statements, params)
        (_, _, binary), (_, _, csv) = statements
        numbers = _decode_fixed_rows(binary.getbuffer(), width)
        csv.seek(0)
        names = [*text_columns, *categorical]
        # Text is parsed straight into categoricals (a window repeats few distinct values), and
        # the "=" prefix is cut from the categories, not from every row.
        kinds = {position: str if name in ID_COLUMNS else "category" for position, name in enumerate(names, start=1)}
        raw = pd.read_csv(csv, header=None, na_filter=False, dtype={0: np.int64, **kinds}) \
            if csv.getbuffer().nbytes else None
        text_keys = raw[0].to_numpy() if raw is not None else np.empty(0, dtype=np.int64)
        number_keys = numbers["key"].astype(np.int64)
        if np.array_equal(text_keys, number_keys):  # both streams with the same rows in one order
            text_index = np.arange(len(number_keys))
        else:  # row_id is unique: find each numbers row in the text stream
            sorter = np.argsort(text_keys)
            text_index = sorter[np.minimum(np.searchsorted(text_keys, number_keys, sorter=sorter),
                                           max(len(text_keys) - 1, 0))] if len(text_keys) else sorter
            if not np.array_equal(text_keys[text_index], number_keys):
                raise RuntimeError("window read: the two COPY streams returned different rows")
        take_numbers = np.argsort(numbers["served"].astype(np.int64), kind="stable")  # oldest first
        take_text = text_index[take_numbers]
        frame = pd.DataFrame({name: _strip_marker(raw[position].take(take_text)) if raw is not None
                              else pd.Series(dtype=kinds[position]) for position, name in enumerate(names, start=1)})
        for column, field in (("served_at", "served"), ("observed_at", "observed")):
            micros = numbers[field][take_numbers].astype(np.int64)
            stamps = np.where(micros == _NO_TIME, micros, micros + _POSTGRES_EPOCH_US).view("datetime64[us]")
            frame[column] = pd.Series(stamps).dt.tz_localize("UTC")
        for column in ("predicted_value", "actual_value"):
            frame[column] = numbers[column][take_numbers].astype(np.float64)
        labels = pd.Series(numbers["label"][take_numbers].astype(np.int64))
        frame["predicted_label"] = labels.where(labels != _NO_LABEL).astype("Int64")
        if not width:
            return frame
        # Gather whole rows of the big-endian block (a copy in the final order), then swap the
        # bytes in place: 15x faster than converting a strided view. The raw stream is released
        # before the frame is built (peak memory of big windows).
        values = numbers["vector"][take_numbers]
        del numbers
        statements.clear()
        binary.close()
        if not values.dtype.isnative:
            values = values.byteswap(inplace=True).view(values.dtype.newbyteorder("="))
        return pd.concat([frame, pd.DataFrame(values, columns=numeric, copy=False)], axis=1)

    # -- results -------------------------------------------------------------------------------

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
        :meth:`save_result`. Returns how many were written."""
        statements = []
        for given in results:  # validated and built before the transaction opens
            entry = dict(given)
            target = RESULT_TABLES[entry.pop("table")]
            _check_window(entry["window_start"], entry["window_end"])
            row = {**entry, "model": model_name(entry["model"]),
                   "window_start": _utc(entry["window_start"]).to_pydatetime(),
                   "window_end": _utc(entry["window_end"]).to_pydatetime(), "result": to_jsonable(entry["result"])}
            statement = self._insert(target).values(**row)
            keys = [c.name for c in target.primary_key.columns]
            updates = {k: statement.excluded[k] for k in row if k not in keys}
            statements.append(statement.on_conflict_do_update(
                index_elements=keys, set_=updates | {"computed_at": sa.func.current_timestamp()}))
        with self.engine.begin() as conn:
            for statement in statements:
                conn.execute(statement)
        return len(statements)

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
        statement = self._insert(learning_reports).values(**row)
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

    # -- alerts and retrain requests ---------------------------------------------------------

    def raise_alert(self, *, model: str, alert_type: str, severity: Severity | str, cause: str,
                    details: Mapping[str, Any], window_end: datetime,
                    cooldown: timedelta = timedelta(0)) -> dict[str, Any]:
        """Store one finding as an alert, once per (cause, window end): re-running a window
        updates the same row. The alert is ``suppressed`` when the same cause already alerted at
        the same or a higher severity within ``cooldown`` before ``window_end``; an acknowledged
        or resolved alert keeps its status. Returns id, dedupe_key and status."""
        severity = Severity(severity)
        if severity is Severity.NONE:
            raise ValueError("severity: an alert needs a severity above 'none'")
        if cooldown < timedelta(0):
            raise ValueError(f"cooldown: must not be negative, got {cooldown}")
        end = _utc(window_end).to_pydatetime()
        key = alert_key(model, alert_type, cause)
        with self.engine.begin() as conn:
            earlier = conn.execute(sa.select(alerts.c.severity).where(
                alerts.c.dedupe_key == key, alerts.c.status != "suppressed",
                alerts.c.window_end >= end - cooldown, alerts.c.window_end < end)).scalars().all()
            status = "suppressed" if any(Severity(s).rank >= severity.rank for s in earlier) else "open"
            statement = self._insert(alerts).values(
                dedupe_key=key, model=model_name(model), alert_type=alert_type, severity=severity.value,
                status=status, details=to_jsonable(dict(details)), window_end=end)
            kept = sa.case((alerts.c.status.in_(("open", "suppressed")), statement.excluded.status),
                           else_=alerts.c.status)
            row = conn.execute(statement.on_conflict_do_update(
                index_elements=["dedupe_key", "window_end"],
                set_={"severity": statement.excluded.severity, "details": statement.excluded.details,
                      "status": kept, "updated_at": sa.func.current_timestamp()},
            ).returning(alerts.c.id, alerts.c.status)).one()
        return {"id": row.id, "dedupe_key": key, "status": row.status, "severity": severity.value}

    def create_alert(self, alert_type: str, model: str, details: Mapping[str, Any], *,
                     severity: Severity | str = Severity.MEDIUM, cause: str = "manual",
                     window_end: datetime | None = None) -> int:
        """An alert raised by hand or by other code (no cooldown); returns its id."""
        if window_end is None:
            with self.engine.connect() as conn:
                window_end = _database_now(conn)
        return self.raise_alert(model=model, alert_type=alert_type, severity=severity, cause=cause,
                                details=details, window_end=window_end)["id"]

    def check_alerts(self, *, hours: float = 24, until: datetime | None = None, model: str | None = None,
                     include_suppressed: bool = False) -> list[dict[str, Any]]:
        """Alerts whose window ended within ``hours`` before ``until`` (default: the database
        clock), most severe first."""
        with self.engine.connect() as conn:
            end = _utc(until) if until is not None else _database_now(conn)
            query = sa.select(alerts).where(alerts.c.window_end > (end - pd.Timedelta(hours=hours)).to_pydatetime(),
                                            alerts.c.window_end <= end.to_pydatetime())
            if model is not None:
                query = query.where(alerts.c.model == model)
            if not include_suppressed:
                query = query.where(alerts.c.status != "suppressed")
            rows = [dict(row) for row in conn.execute(query.order_by(alerts.c.window_end, alerts.c.id)).mappings()]
        return sorted(rows, key=lambda r: -Severity(r["severity"]).rank)

    def open_alerts(self, *, model: str | None = None) -> list[dict[str, Any]]:
        """Alerts nobody has acknowledged or resolved yet, whatever their window, most severe and
        then newest first."""
        query = sa.select(alerts).where(alerts.c.status == "open").order_by(alerts.c.window_end.desc(),
                                                                             alerts.c.id.desc())
        if model is not None:
            query = query.where(alerts.c.model == model)
        with self.engine.connect() as conn:
            rows = [dict(row) for row in conn.execute(query).mappings()]
        return sorted(rows, key=lambda r: -Severity(r["severity"]).rank)

    def set_alert_status(self, alert_id: int, status: str) -> dict[str, Any]:
        """Move an alert along its lifecycle (open -> acknowledged -> resolved); returns the row."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).mappings().first()
            if row is None:
                raise KeyError(f"alert_id: no alert {alert_id}")
            if status != row["status"] and status not in ALERT_TRANSITIONS.get(row["status"], ()):
                allowed = ", ".join(ALERT_TRANSITIONS.get(row["status"], ())) or "nothing"
                raise ValueError(f"status: an alert that is {row['status']} can become {allowed}, not {status!r}")
            conn.execute(alerts.update().where(alerts.c.id == alert_id).values(
                status=status, updated_at=sa.func.current_timestamp()))
            return dict(conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).mappings().one())

    def alerts_to_notify(self, *, until: datetime, hours: float = 24, cooldown: timedelta = timedelta(days=7)
                         ) -> list[dict[str, Any]]:
        """Open alerts of the windows ending within ``hours`` before ``until`` that were not notified,
        and whose cause (model, type, cause) was not notified for a window within ``cooldown`` before
        theirs: at most one notification per cause per cooldown. Most severe first."""
        end = _utc(until).to_pydatetime()
        query = sa.select(alerts).where(alerts.c.status == "open", alerts.c.notified_at.is_(None),
                                        alerts.c.window_end > end - timedelta(hours=hours), alerts.c.window_end <= end)
        with self.engine.connect() as conn:
            rows = [dict(row) for row in conn.execute(query.order_by(alerts.c.window_end, alerts.c.id)).mappings()]
            keys = sorted({r["dedupe_key"] for r in rows})
            notified = conn.execute(sa.select(alerts.c.dedupe_key, alerts.c.window_end).where(
                alerts.c.dedupe_key.in_(keys), alerts.c.notified_at.is_not(None),
                alerts.c.window_end > end - timedelta(hours=hours) - cooldown)).all() if keys else []
        sent: dict[str, list[pd.Timestamp]] = {}
        for key, window_end in notified:
            sent.setdefault(key, []).append(_utc(window_end))
        due = []
        for row in rows:  # oldest first, so a repeat inside this batch waits for the first one too
            at = _utc(row["window_end"])
            if any(at - cooldown <= t < at for t in sent.get(row["dedupe_key"], [])):
                continue
            due.append(row)
            sent.setdefault(row["dedupe_key"], []).append(at)
        return sorted(due, key=lambda r: -Severity(r["severity"]).rank)

    def mark_notified(self, alert_ids: Iterable[int]) -> None:
        ids = list(alert_ids)
        if ids:
            with self.engine.begin() as conn:
                conn.execute(alerts.update().where(alerts.c.id.in_(ids)).values(
                    notified_at=sa.func.current_timestamp()))

    def request_retrain(self, *, request_id: str, model: str, reasons: list[str], window_end: datetime,
                        causes: Iterable[str] = ()) -> str:
        """Record a retrain request once per id (re-runs refresh the reasons and causes, keep the
        status); returns its status."""
        statement = self._insert(retrain_requests).values(
            request_id=request_id, model=model_name(model), reasons=list(reasons), causes=sorted(set(causes)),
            status="requested", window_end=_utc(window_end).to_pydatetime())
        with self.engine.begin() as conn:
            return conn.execute(statement.on_conflict_do_update(
                index_elements=["request_id"],
                set_={"reasons": statement.excluded.reasons, "causes": statement.excluded.causes,
                      "updated_at": sa.func.current_timestamp()},
            ).returning(retrain_requests.c.status)).scalar_one()

    def claim_retrain_request(self, request_id: str, *, model: str, reasons: list[str], window_end: datetime
                              ) -> dict[str, Any]:
        """Mark a request ``running`` for the retrain run that handles it, recording it first when
        the run was started by hand. Returns the row."""
        name = model_name(model)
        statement = self._insert(retrain_requests).values(
            request_id=request_id, model=name, reasons=list(reasons), causes=["manual"], status="running",
            window_end=_utc(window_end).to_pydatetime())
        with self.engine.begin() as conn:
            stored = conn.execute(sa.select(retrain_requests.c.model).where(
                retrain_requests.c.request_id == request_id)).scalar()
            if stored is not None and stored != name:
                raise ValueError(f"request_id: {request_id!r} is a request for {stored!r}, not {name!r}")
            conn.execute(statement.on_conflict_do_update(
                index_elements=["request_id"],
                set_={"status": "running", "updated_at": sa.func.current_timestamp()}))
            return dict(conn.execute(sa.select(retrain_requests).where(
                retrain_requests.c.request_id == request_id)).mappings().one())

    def finish_retrain_request(self, request_id: str, *, status: str, result_version: str | None = None,
                               detail: Mapping[str, Any] | None = None) -> None:
        """Close a request: ``done`` (with the version it produced), ``failed`` or ``delegated``
        (handed to the model's own training DAG)."""
        if status not in RETRAIN_STATUSES[2:]:
            raise ValueError(f"status: one of {', '.join(RETRAIN_STATUSES[2:])}, got {status!r}")
        with self.engine.begin() as conn:
            updated = conn.execute(retrain_requests.update().where(retrain_requests.c.request_id == request_id).values(
                status=status, result_version=result_version, detail=to_jsonable(dict(detail or {})),
                updated_at=sa.func.current_timestamp())).rowcount
        if not updated:
            raise KeyError(f"request_id: no retrain request {request_id!r}")

    def covering_retrain_request(self, model: str, causes: Iterable[str], *, window_end: datetime,
                                 cooldown: timedelta, exclude: str | None = None) -> dict[str, Any] | None:
        """An earlier request of ``model`` within ``cooldown`` before ``window_end`` that already
        answers ``causes``: one still requested or running (it trains on the latest data), or one
        done or delegated for the same causes. Failed requests answer nothing."""
        end = _utc(window_end).to_pydatetime()
        wanted = set(causes)
        query = (sa.select(retrain_requests).where(
            retrain_requests.c.model == model_name(model), retrain_requests.c.window_end >= end - cooldown,
            retrain_requests.c.window_end <= end, retrain_requests.c.status != "failed")
            .order_by(retrain_requests.c.window_end.desc()))
        if exclude is not None:
            query = query.where(retrain_requests.c.request_id != exclude)
        with self.engine.connect() as conn:
            for row in conn.execute(query).mappings():
                if row["status"] in ("requested", "running") or wanted <= set(row["causes"] or ()):
                    return dict(row)
        return None

    def retrain_request_list(self, *, model: str | None = None, window_end: datetime | None = None,
                             request_id: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(retrain_requests).order_by(retrain_requests.c.window_end, retrain_requests.c.model)
        query = query.where(*_equal_to(retrain_requests, model=model, request_id=request_id))
        if window_end is not None:
            query = query.where(retrain_requests.c.window_end == _utc(window_end).to_pydatetime())
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    # -- model registry ------------------------------------------------------------------------

    def register_version(self, model: str, version: str, *, status: str = "challenger",
                         artifact_uri: str | None = None, training_window: tuple[datetime, datetime] | None = None,
                         metrics: Mapping[str, Any] | None = None, created_by: str | None = None) -> dict[str, Any]:
        """Record a trained version (idempotent: re-registering refreshes window and metrics and
        keeps the status it has reached). Returns the stored row.

        The artifact is written once: the retrain and weekly steps load the champion's artifact,
        so re-pointing a stored version (issue 13: ``register_version(model, <champion>,
        artifact_uri="file:///anywhere/x.pkl")`` made the next run unpickle that file) is a
        ``ValueError`` naming ``artifact_uri`` and the stored row is untouched. Re-registering
        with the same URI or none keeps it; a version without one may get one, unless it is
        already the champion (register a new version and promote it)."""
        name = model_name(model)
        for field, value, limit in (("version", version, 128), ("created_by", created_by, 256),
                                    ("artifact_uri", artifact_uri, 2048)):
            if value is not None and (problem := _text_problem(value, limit)):
                raise ValueError(f"{field}: {problem}")
        if status not in VERSION_STATUSES or status == "champion":
            raise ValueError(f"status: a new version is one of {[s for s in VERSION_STATUSES if s != 'champion']}; "
                             f"make it champion with promote(), got {status!r}")
        start, end = training_window or (None, None)
        if training_window is not None:
            _check_window(start, end)
        row = {"model": name, "version": version, "status": status, "artifact_uri": artifact_uri,
               "training_window_start": None if start is None else _utc(start).to_pydatetime(),
               "training_window_end": None if end is None else _utc(end).to_pydatetime(),
               "metrics": to_jsonable(dict(metrics or {})), "created_by": created_by}
        statement = self._insert(model_versions).values(**row)
        this_version = (model_versions.c.model == name, model_versions.c.version == version)
        with self.engine.begin() as conn:
            if name not in self._models_known(conn):
                raise ValueError(f"model: {name!r} is not registered (register_model first)")
            stored = conn.execute(sa.select(model_versions.c.artifact_uri, model_versions.c.status)
                                  .where(*this_version)).first()
            if stored is not None and artifact_uri is not None:
                _check_artifact_unchanged(name, version, stored.artifact_uri, artifact_uri, stored.status)
            conn.execute(statement.on_conflict_do_update(
                index_elements=["model", "version"],
                set_={k: statement.excluded[k] for k in ("training_window_start", "training_window_end", "metrics",
                                                          "created_by")}
                | {"artifact_uri": sa.func.coalesce(model_versions.c.artifact_uri, statement.excluded.artifact_uri)}))
            result = dict(conn.execute(sa.select(model_versions).where(*this_version)).mappings().one())
            if artifact_uri is not None:  # a concurrent registration wrote another artifact first: roll back
                _check_artifact_unchanged(name, version, result["artifact_uri"], artifact_uri, result["status"])
            return result

    def get_champion(self, model: str) -> dict[str, Any] | None:
        """The version serving as champion, or None before any promotion."""
        query = sa.select(model_versions).where(model_versions.c.model == model_name(model),
                                                model_versions.c.status == "champion")
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return dict(row) if row else None

    def version_history(self, model: str) -> list[dict[str, Any]]:
        """Every registered version of a model, oldest first."""
        query = (sa.select(model_versions).where(model_versions.c.model == model_name(model))
                 .order_by(model_versions.c.created_at, model_versions.c.version))
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def set_version_status(self, model: str, version: str, status: str) -> None:
        """Mark a version challenger, archived or rejected (champions change only by promote())."""
        if status not in VERSION_STATUSES or status == "champion":
            raise ValueError(f"status: one of challenger, archived, rejected (champion via promote()), got {status!r}")
        with self.engine.begin() as conn:
            self._version_exists(conn, model, version)
            conn.execute(model_versions.update().where(model_versions.c.model == model,
                                                       model_versions.c.version == version).values(status=status))

    def promote(self, model: str, version: str) -> str | None:
        """Make ``version`` the champion and archive the previous one, in one transaction; returns
        the previous champion's version (None if there was none). Promoting the champion is a no-op."""
        name = model_name(model)
        with self.engine.begin() as conn:
            self._version_exists(conn, name, version)
            if self.is_postgres:  # one promotion per model at a time
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                             {"key": f"self_learning.champion.{name}"})
            previous = conn.execute(sa.select(model_versions.c.version).where(
                model_versions.c.model == name, model_versions.c.status == "champion")).scalar()
            if previous == version:
                return previous
            conn.execute(model_versions.update().where(model_versions.c.model == name,
                                                       model_versions.c.status == "champion").values(status="archived"))
            conn.execute(model_versions.update().where(model_versions.c.model == name,
                                                       model_versions.c.version == version).values(status="champion"))
        return previous

    @staticmethod
    def _version_exists(conn, model: str, version: str) -> None:
        found = conn.execute(sa.select(sa.func.count()).select_from(model_versions).where(
            model_versions.c.model == model, model_versions.c.version == version)).scalar_one()
        if not found:
            raise KeyError(f"version: {model!r} has no registered version {version!r}")

    # -- A/B tests ---------------------------------------------------------------------------

    def start_ab_test(self, *, test_id: str, model: str, champion_version: str, challenger_version: str,
                      config: Mapping[str, Any], started_at: datetime) -> dict[str, Any]:
        """Record a running champion-vs-challenger test. Both versions must be registered and
        differ; a model runs one test at a time (starting the same test again returns it)."""
        name = model_name(model)
        if (problem := _text_problem(test_id, 128)) is not None:
            raise ValueError(f"test_id: {problem}")
        if champion_version == challenger_version:
            raise ValueError(f"challenger_version: the arms need two different versions, got {champion_version!r} "
                             "twice")
        with self.engine.begin() as conn:
            if name not in self._models_known(conn):
                raise ValueError(f"model: {name!r} is not registered")
            if self.is_postgres:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                             {"key": f"self_learning.ab_test.{name}"})
            for field, version in (("champion_version", champion_version), ("challenger_version", challenger_version)):
                try:
                    self._version_exists(conn, name, version)
                except KeyError:
                    raise ValueError(f"{field}: {name!r} has no registered version {version!r}") from None
            running = conn.execute(sa.select(ab_tests).where(ab_tests.c.model == name,
                                                             ab_tests.c.status == "running")).mappings().first()
            if running is not None:
                if running["test_id"] == test_id:
                    return dict(running)
                raise ValueError(f"model: {name!r} already runs A/B test {running['test_id']!r} "
                                 f"({running['champion_version']} vs {running['challenger_version']})")
            existing = conn.execute(sa.select(ab_tests).where(ab_tests.c.test_id == test_id)).mappings().first()
            if existing is not None:  # the same test, already concluded: a re-run does not restart it
                return dict(existing)
            conn.execute(ab_tests.insert().values(
                test_id=test_id, model=name, champion_version=champion_version,
                challenger_version=challenger_version, config=to_jsonable(dict(config)), status="running",
                result=None, started_at=_utc(started_at).to_pydatetime()))
            return dict(conn.execute(sa.select(ab_tests).where(ab_tests.c.test_id == test_id)).mappings().one())

    def get_ab_test(self, test_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(ab_tests).where(ab_tests.c.test_id == test_id)).mappings().first()
        if row is None:
            raise KeyError(f"test_id: no A/B test {test_id!r}")
        return dict(row)

    def list_ab_tests(self, *, model: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """A/B tests, oldest first, optionally of one model and in one status."""
        query = sa.select(ab_tests).order_by(ab_tests.c.started_at, ab_tests.c.test_id)
        if model is not None:
            query = query.where(ab_tests.c.model == model_name(model))
        if status is not None:
            query = query.where(ab_tests.c.status == status)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def running_ab_test(self, model: str) -> dict[str, Any] | None:
        """The model's running test (serving code reads its seed, split and versions from here)."""
        tests = self.list_ab_tests(model=model, status="running")
        return tests[0] if tests else None

    def update_ab_test(self, test_id: str, *, result: Mapping[str, Any], status: str = "running",
                       ended_at: datetime | None = None) -> None:
        """Store a look's result; a status other than ``running`` closes the test."""
        if status not in AB_TEST_STATUSES:
            raise ValueError(f"status: one of {', '.join(AB_TEST_STATUSES)}, got {status!r}")
        with self.engine.begin() as conn:
            updated = conn.execute(ab_tests.update().where(ab_tests.c.test_id == test_id).values(
                result=to_jsonable(dict(result)), status=status,
                ended_at=None if ended_at is None else _utc(ended_at).to_pydatetime())).rowcount
        if not updated:
            raise KeyError(f"test_id: no A/B test {test_id!r}")

    def arm_counts(self, model: str, start: datetime, end: datetime) -> dict[str, dict[str, int]]:
        """Predictions and distinct randomisation units served in [start, end) per version (the
        sample ratio check counts what was assigned, labelled or not)."""
        p = predictions.c
        query = (sa.select(p.model_version, sa.func.count(), sa.func.count(sa.distinct(p.unit_id)))
                 .where(*self._window(model, start, end, None)).group_by(p.model_version))
        with self.engine.connect() as conn:
            return {version: {"predictions": rows, "units": units} for version, rows, units in conn.execute(query)}



# -- read and dialect helpers --------------------------------------------------------------------

_POSTGRES_EPOCH_US = int(pgcopy.POSTGRES_EPOCH.astype(np.int64))  # 2000-01-01 in microseconds since 1970
_NO_TIME = -(2**63)  # -infinity's binary form, and numpy's NaT; sentinels keep binary rows fixed-width
_NO_LABEL = -(2**31)
TEXT_COLUMNS = ("prediction_id", "model_version", "unit_id")
ID_COLUMNS = ("prediction_id", "unit_id")  # unique per row: plain text, not categorical


def _parallel_copy_out(url: sa.URL, statements: list[tuple[str, str, io.BytesIO]], params: dict) -> None:
    """Run each ``COPY (select) TO STDOUT`` on its own psycopg2 connection, concurrently, all in
    one exported REPEATABLE READ snapshot, so they see exactly the same rows."""
    import psycopg2  # PostgreSQL only

    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    connections = [psycopg2.connect(dsn) for _ in statements]
    errors: list[BaseException] = []
    try:
        cursors = []
        snapshot = None
        for connection in connections:
            connection.set_session(isolation_level="REPEATABLE READ", readonly=True)
            cursor = connection.cursor()
            if snapshot is None:
                cursor.execute("SELECT pg_export_snapshot()")
                snapshot = cursor.fetchone()[0]
            else:
                cursor.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
            # A million-row hash join spills to disk at the default 4 MB (measured: 2.4 s -> 1.2 s).
            cursor.execute("SET LOCAL work_mem = '256MB'")
            cursors.append(cursor)

        def run(cursor, select, fmt, buffer):
            try:
                cursor.copy_expert(f"COPY ({cursor.mogrify(select, params).decode()}) TO STDOUT (FORMAT {fmt})",
                                   buffer)
            except BaseException as error:  # re-raised in the caller's thread
                errors.append(error)

        threads = [threading.Thread(target=run, args=(c, *s)) for c, s in zip(cursors, statements, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for connection in connections:
            connection.close()
    if errors:
        raise errors[0]


def _strip_marker(column: pd.Series) -> pd.Series:
    """Undo the read's "=" prefix of present values; an empty field was NULL."""
    column = column.reset_index(drop=True)
    if not isinstance(column.dtype, pd.CategoricalDtype):
        return column.str.slice(1).where(column != "")
    present = [c for c in column.cat.categories if c != ""]
    column = column.cat.remove_categories([""]) if len(present) < len(column.cat.categories) else column
    return column.cat.rename_categories([c[1:] for c in present])


def _decode_fixed_rows(data: memoryview, width: int) -> np.ndarray:
    """Rows of a binary COPY whose fields all have a fixed width, as a numpy record array."""
    fields = [("key", ">i8"), ("served", ">i8"), ("observed", ">i8"), ("predicted_value", ">f8"),
              ("actual_value", ">f8"), ("label", ">i4")]
    layout = [("count", ">i2")]
    for name, dtype in fields:
        layout += [(f"{name}_length", ">i4"), (name, dtype)]
    if width:
        layout += [("vector_length", ">i4"), ("vector", ">f8", (width,))]
    row = np.dtype(layout)
    header = len(pgcopy.HEADER)
    body = len(data) - header - len(pgcopy.TRAILER)
    if body % row.itemsize or bytes(data[:header]) != pgcopy.HEADER:
        raise RuntimeError("window read: unexpected binary COPY layout")
    rows = np.frombuffer(data, dtype=row, count=body // row.itemsize, offset=header)
    if len(rows) and ((rows["count"] != len(fields) + bool(width)).any()
                      or (width and (rows["vector_length"] != 8 * width).any())):
        raise RuntimeError("window read: a binary COPY row has NULLs or another width")
    return rows


def _decode_sqlite_window(rows, columns: list[str], numeric, categorical) -> pd.DataFrame:
    width = len(columns)
    frame = pd.DataFrame([r[:width] for r in rows], columns=columns)
    frame = frame.astype({"predicted_value": np.float64, "actual_value": np.float64, "model_version": "category"})
    for column in ("served_at", "observed_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    vectors = [r[width] or [] for r in rows]
    for position, key in numeric:
        frame[key] = np.array([v[position - 1] if position <= len(v) and v[position - 1] is not None else np.nan
                               for v in vectors], dtype=np.float64)
    for key in categorical:
        frame[key] = pd.Series([(r[width + 1] or {}).get(key) for r in rows], dtype="category")
    frame["predicted_label"] = frame["predicted_label"].astype("Int64")
    return frame.sort_values("served_at", kind="stable", ignore_index=True)


def _sqlite_connect(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # transactions are begun by _sqlite_begin
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(conn) -> None:
    """Take SQLite's write lock at BEGIN: a deferred transaction that read first cannot upgrade
    once another writer committed, so concurrent writers would fail instead of waiting."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")



def _check_artifact_unchanged(model: str, version: str, stored: str | None, given: str, status: str) -> None:
    """A version's artifact is written once, and a champion's is never attached afterwards."""
    if stored is not None and stored != given:
        raise ValueError(f"artifact_uri: {model} {version} is stored with artifact {stored!r}; an artifact is "
                         f"written once (register a new version for a new artifact), got {given!r}")
    if stored is None and status == "champion":
        raise ValueError(f"artifact_uri: {model} {version} is the champion; an artifact can't be attached to it "
                         f"after promotion (register a new version and promote it), got {given!r}")


def _model_row(spec: ModelSpec) -> dict[str, Any]:
    return {"name": spec.name, "task_kind": spec.task_kind.value, "feature_schema": dict(spec.feature_schema),
            "thresholds": to_jsonable(dict(spec.thresholds))}


def _spec(row) -> ModelSpec:
    return ModelSpec(row["name"], TaskKind(row["task_kind"]), row["feature_schema"] or {}, row["thresholds"] or {})


def alert_key(model: str, alert_type: str, cause: str) -> str:
    """The dedupe key of an alert: the same model, type and cause are the same alert."""
    key = f"{model_name(model)}|{alert_type}|{cause}"
    if len(key) > 512:  # keep it readable where possible, unique always
        key = f"{key[:440]}|sha256:{hashlib.sha256(key.encode()).hexdigest()}"
    return key

