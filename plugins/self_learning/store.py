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

import dataclasses
import hashlib
import io
import json
import math
import threading
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from . import pgcopy
from .domain import DEFAULT_MODELS, ModelSpec, Result, Severity, TaskKind, model_name, to_jsonable
from .validation import label_text

DEFAULT_VERSION = "unversioned"
ALL_VERSIONS = "*"  # model_version of results computed over every version of a model
MAX_FEATURES = 500
ANALYZE_AFTER_ROWS = 50_000
MAX_KEY_LENGTH = 256
MAX_TEXT_LENGTH = 1024
MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "self_learning_alembic_version"
RESERVED = ("prediction_id", "model", "model_version", "predicted_value", "predicted_label", "unit_id", "served_at")
WINDOW_COLUMNS = (*RESERVED[:1], "model_version", "served_at", "predicted_value", "predicted_label", "unit_id",
                  "actual_value", "observed_at")

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# Numeric features: packed big-endian float8 bytes on PostgreSQL (migration 0002), a JSON list on SQLite.
_VECTOR = sa.JSON().with_variant(postgresql.BYTEA(), "postgresql")
_TS = sa.DateTime(timezone=True)

metadata = sa.MetaData()
models = sa.Table(
    "models", metadata,
    sa.Column("name", sa.String(128), primary_key=True), sa.Column("task_kind", sa.String(32)),
    sa.Column("feature_schema", _JSON), sa.Column("thresholds", _JSON), sa.Column("active", sa.Boolean),
    sa.Column("created_at", _TS), sa.Column("updated_at", _TS),
)
model_features = sa.Table(
    "model_features", metadata,
    sa.Column("model", sa.String(128), primary_key=True), sa.Column("feature", sa.String(256), primary_key=True),
    sa.Column("kind", sa.String(16)), sa.Column("position", sa.Integer),
)
predictions = sa.Table(
    "predictions", metadata,
    sa.Column("prediction_id", sa.String(128), primary_key=True), sa.Column("row_id", sa.BigInteger),
    sa.Column("model", sa.String(128)), sa.Column("model_version", sa.String(128)),
    sa.Column("predicted_value", sa.Float(53)),
    sa.Column("predicted_label", sa.Integer), sa.Column("num_features", _VECTOR),
    sa.Column("cat_features", _JSON), sa.Column("unit_id", sa.String(256)), sa.Column("served_at", _TS),
    sa.Column("ingested_at", _TS),
)
outcomes = sa.Table(
    "outcomes", metadata,
    sa.Column("prediction_id", sa.String(128), primary_key=True), sa.Column("actual_value", sa.Float(53)),
    sa.Column("observed_at", _TS), sa.Column("recorded_at", _TS), sa.Column("revision", sa.Integer),
)
outcome_history = sa.Table(
    "outcome_history", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True), sa.Column("prediction_id", sa.String(128)),
    sa.Column("actual_value", sa.Float(53)), sa.Column("observed_at", _TS), sa.Column("recorded_at", _TS),
    sa.Column("revision", sa.Integer), sa.Column("replaced_at", _TS),
)
outcome_inbox = sa.Table(
    "outcome_inbox", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True), sa.Column("prediction_id", sa.String(128)),
    sa.Column("actual_value", sa.Float(53)), sa.Column("observed_at", _TS), sa.Column("received_at", _TS),
)
alerts = sa.Table(
    "alerts", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True), sa.Column("dedupe_key", sa.String(512)),
    sa.Column("model", sa.String(128)), sa.Column("alert_type", sa.String(64)), sa.Column("severity", sa.String(16)),
    sa.Column("status", sa.String(16)), sa.Column("details", _JSON), sa.Column("window_end", _TS),
    sa.Column("created_at", _TS), sa.Column("updated_at", _TS), sa.Column("notified_at", _TS),
)
# open -> acknowledged -> resolved (or open -> resolved); suppressed: a repeat within the cooldown
ALERT_TRANSITIONS = {"open": ("acknowledged", "resolved"), "acknowledged": ("resolved",),
                     "suppressed": ("acknowledged", "resolved"), "resolved": ()}
retrain_requests = sa.Table(
    "retrain_requests", metadata,
    sa.Column("request_id", sa.String(256), primary_key=True), sa.Column("model", sa.String(128)),
    sa.Column("reasons", _JSON), sa.Column("status", sa.String(16)), sa.Column("window_end", _TS),
    sa.Column("result_version", sa.String(128)), sa.Column("requested_at", _TS), sa.Column("updated_at", _TS),
    sa.Column("causes", _JSON), sa.Column("detail", _JSON),
)
RETRAIN_STATUSES = ("requested", "running", "done", "failed", "delegated")
model_versions = sa.Table(
    "model_versions", metadata,
    sa.Column("model", sa.String(128), primary_key=True), sa.Column("version", sa.String(128), primary_key=True),
    sa.Column("status", sa.String(16)), sa.Column("artifact_uri", sa.Text),
    sa.Column("training_window_start", _TS), sa.Column("training_window_end", _TS), sa.Column("metrics", _JSON),
    sa.Column("created_by", sa.String(256)), sa.Column("created_at", _TS),
)
VERSION_STATUSES = ("champion", "challenger", "archived", "rejected")
ab_tests = sa.Table(
    "ab_tests", metadata,
    sa.Column("test_id", sa.String(128), primary_key=True), sa.Column("model", sa.String(128)),
    sa.Column("champion_version", sa.String(128)), sa.Column("challenger_version", sa.String(128)),
    sa.Column("config", _JSON), sa.Column("status", sa.String(16)), sa.Column("result", _JSON),
    sa.Column("started_at", _TS), sa.Column("ended_at", _TS),
)
AB_TEST_STATUSES = ("running", "promoted", "inconclusive", "stopped")
learning_reports = sa.Table(
    "learning_reports", metadata,
    sa.Column("period_start", _TS, primary_key=True), sa.Column("period_end", _TS, primary_key=True),
    sa.Column("kind", sa.String(64), primary_key=True), sa.Column("report", _JSON), sa.Column("artifact_uri", sa.Text),
    sa.Column("computed_at", _TS),
)
ingest_rejects = sa.Table(
    "ingest_rejects", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True), sa.Column("record_kind", sa.String(32)),
    sa.Column("row_number", sa.Integer), sa.Column("prediction_id", sa.String(128)),
    sa.Column("field", sa.String(256)), sa.Column("reason", sa.Text), sa.Column("payload", _JSON),
    sa.Column("rejected_at", _TS),
)


def _window_table(name: str, *extra: sa.Column) -> sa.Table:
    return sa.Table(
        name, metadata,
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("model_version", sa.String(128), primary_key=True),
        sa.Column("window_start", _TS, primary_key=True), sa.Column("window_end", _TS, primary_key=True),
        sa.Column("kind", sa.String(64), primary_key=True), *extra,
        sa.Column("result", _JSON), sa.Column("computed_at", _TS),
    )


performance_snapshots = _window_table(
    "performance_snapshots", sa.Column("sample_count", sa.Integer), sa.Column("label_coverage", sa.Float(53)),
    sa.Column("provisional", sa.Boolean),
    *(sa.Column(m, sa.Float(53)) for m in ("mae", "rmse", "r2", "mape", "wape", "roc_auc", "log_loss")),
)
drift_reports = _window_table(
    "drift_reports", sa.Column("severity", sa.String(16)), sa.Column("status", sa.String(32)),
    sa.Column("affected_features", _JSON),
)
error_analyses = _window_table("error_analyses")
feature_importance = _window_table("feature_importance", sa.Column("feature", sa.String(256), primary_key=True))
RESULT_TABLES = {t.name: t for t in (performance_snapshots, drift_reports, error_analyses, feature_importance)}


@dataclasses.dataclass(frozen=True)
class RowError(Result):
    """One rejected input row: its position in the input, its id if known, the field and why."""

    row: int
    prediction_id: str | None
    field: str
    reason: str


@dataclasses.dataclass(frozen=True)
class IngestReport(Result):
    received: int
    inserted: int
    unchanged: int  # already stored with the same payload (idempotent re-send)
    corrected: int  # outcomes only: an existing value replaced (old value kept in outcome_history)
    rejected: list[RowError]


class ConflictError(ValueError):
    """A known prediction id arrived with a different payload; nothing was overwritten."""


class FeedbackStore:
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

    def feature_registry(self, model: str) -> dict[str, tuple[str, int]]:
        """Feature key -> (kind, position) for a model."""
        with self.engine.connect() as conn:
            return self._feature_registry(conn, model)

    def _feature_registry(self, conn, model: str) -> dict[str, tuple[str, int]]:
        rows = conn.execute(sa.select(model_features.c.feature, model_features.c.kind, model_features.c.position)
                            .where(model_features.c.model == model))
        return {feature: (kind, position) for feature, kind, position in rows}

    def _register_features(self, conn, model: str, kinds: Mapping[str, str]) -> dict[str, tuple[str, int]]:
        """Add unknown feature keys at the next free position of their kind; return the registry."""
        registry = self._registry_cache.get(model, {})
        if all(key in registry for key in kinds):
            return registry
        registry = self._feature_registry(conn, model)
        if all(key in registry for key in kinds):
            self._registry_cache[model] = registry
            return registry
        if self.is_postgres:  # positions are allocated under a per-model lock
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                         {"key": f"self_learning.features.{model}"})
            registry = self._feature_registry(conn, model)
        for key, kind in kinds.items():
            if key in registry:
                continue
            position = 1 + max((p for k, p in registry.values() if k == kind), default=0)
            conn.execute(model_features.insert().values(model=model, feature=key, kind=kind, position=position))
            registry[key] = (kind, position)
        self._registry_cache.pop(model, None)  # cached only once committed (next lookup re-reads)
        return registry

    # -- predictions ---------------------------------------------------------------------------

    def register_prediction(
        self,
        model: str,
        predicted_value: float,
        features: Mapping[str, Any],
        *,
        prediction_id: str | None = None,
        model_version: str = DEFAULT_VERSION,
        predicted_label: int | None = None,
        unit_id: str | None = None,
        served_at: datetime | None = None,
    ) -> str:
        """Store one prediction; return its id (a new UUID unless given).

        Raises ``ValueError`` naming the field for bad input and ``ConflictError`` when the id
        is already stored with a different payload.
        """
        prediction_id = prediction_id if prediction_id is not None else uuid.uuid4().hex
        for field, problem in (
            ("prediction_id", _text_problem(prediction_id, 128)),
            ("model", None if _valid_model(model) else f"{model!r} is not a valid model name"),
            ("model_version", _text_problem(model_version, 128)),
            ("predicted_value", _number_problem(predicted_value)),
            ("predicted_label", None if predicted_label is None else _label_problem(predicted_label)),
            ("unit_id", None if unit_id is None else _text_problem(str(unit_id), 256)),
            ("features", None if isinstance(features, Mapping) else "must be a mapping of feature name to value"),
            ("features", f"more than {MAX_FEATURES} features" if len(features) > MAX_FEATURES else None),
            *(("features", _key_problem(key)) for key in features),
        ):
            if problem:
                raise ValueError(f"{field}: {problem}")
        row = {"prediction_id": prediction_id, "model": model, "model_version": model_version,
               "predicted_value": float(predicted_value), "unit_id": None if unit_id is None else str(unit_id),
               "predicted_label": None if predicted_label is None else int(predicted_label)}
        if served_at is not None:
            try:
                row["served_at"] = _utc(served_at).to_pydatetime()
            except (ValueError, TypeError) as error:
                raise ValueError(f"served_at: not a timestamp: {served_at!r}") from error
        present = {key: value for key, value in features.items() if not _is_missing(value)}
        cached = self._registry_cache.get(model)
        # The usual call (known model, known feature keys) is one INSERT: on PostgreSQL it runs in
        # autocommit, one round trip instead of BEGIN / INSERT / COMMIT.
        fast = self.is_postgres and model in self._known_models and cached is not None and all(
            key in cached for key in present)
        connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") if fast \
            else self.engine.begin()
        with connection as conn:
            if fast:
                registry = cached
            else:
                if model not in self._known_models and model not in self._models_known(conn):
                    raise ValueError(f"model: {model!r} is not registered (register_model first)")
                known = cached or self._feature_registry(conn, model)
                registry = self._register_features(conn, model, {
                    key: known[key][0] if key in known else _scalar_kind(value) for key, value in present.items()})
            kinds = {key: registry[key][0] for key in present}  # a key's registered kind wins
            vector = np.full(max((p for k, p in registry.values() if k == "numeric"), default=0), np.nan)
            categories = {}
            for key, kind in kinds.items():
                value = features[key]
                if kind == "numeric":
                    problem = _number_problem(value)
                    if problem:
                        raise ValueError(f"features.{key}: {problem}")
                    vector[registry[key][1] - 1] = float(value)
                else:
                    try:
                        categories[key] = _category_text(value)
                    except ValueError as error:
                        raise ValueError(f"features.{key}: {error}") from None
            stored_vector = _pack(vector) if self.is_postgres else [None if math.isnan(v) else v for v in vector]
            inserted = conn.execute(self._insert_prediction,
                                    {**row, "num_features": stored_vector, "cat_features": categories}).first()
            if inserted is None:
                stored = self._stored_rows(conn, predictions, [prediction_id])[prediction_id]
                row.setdefault("served_at", _utc(stored["served_at"]))  # the server chose it before
                differing = _differing_fields(row | {"cat_json": json.dumps(categories)}, vector, stored)
                if differing:
                    raise ConflictError(f"prediction_id: {prediction_id!r} already registered with a different "
                                        f"payload ({', '.join(differing)} differ)")
        return prediction_id

    def register_predictions(self, rows, *, batch_size: int = 100_000, quarantine: bool = False,
                             writers: int | None = None) -> IngestReport:
        """Bulk registration from a DataFrame or an iterable of mappings.

        A DataFrame carries either a ``features`` column of mappings or one column per feature
        (every column that is not one of ``RESERVED``). Bad rows are reported (and with
        ``quarantine`` also stored in ``ingest_rejects``); the good rows of each batch land in
        one transaction. On PostgreSQL two batches are validated, encoded and copied at once on
        two connections (``writers``; measured 61k -> 91k rows/s on 2 cores), unless an id
        repeats across batches: then batches go one by one, so the first one always wins.
        """
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame.from_records(list(rows))
        batches = [(frame.iloc[start:start + batch_size].reset_index(drop=True), start)
                   for start in range(0, len(frame), batch_size)]
        if writers is None:
            writers = 2 if self.is_postgres else 1  # SQLite has one writer at a time anyway
        if writers > 1 and len(batches) > 1 and "prediction_id" in frame.columns:
            batch_of = np.arange(len(frame)) // batch_size
            ids = frame["prediction_id"]
            repeated = ids.duplicated(keep=False).to_numpy()
            if repeated.any() and pd.Series(batch_of[repeated]).groupby(ids[repeated].to_numpy()).nunique().max() > 1:
                writers = 1

        def register(batch) -> IngestReport:
            return self._register_batch(*batch, quarantine, _validate_predictions(*batch))

        # One batch ahead is validated while another is written (the GIL is free during COPY waits).
        with ThreadPoolExecutor(max_workers=max(writers, 2)) as pool:
            if writers > 1:
                reports = list(pool.map(register, batches))
            else:
                reports, upcoming = [], [pool.submit(_validate_predictions, *b) for b in batches[:1]]
                for number, batch in enumerate(batches):
                    validated = upcoming.pop().result()
                    if number + 1 < len(batches):
                        upcoming.append(pool.submit(_validate_predictions, *batches[number + 1]))
                    reports.append(self._register_batch(*batch, quarantine, validated))
        totals = {key: sum(getattr(r, key) for r in reports) for key in ("received", "inserted", "unchanged",
                                                                           "corrected")}
        self._refresh_statistics("predictions", totals["inserted"])
        return IngestReport(**totals, rejected=[e for r in reports for e in r.rejected])

    def _refresh_statistics(self, table: str, inserted: int) -> None:
        """After a large bulk load, refresh planner statistics now rather than when autovacuum
        gets to it: with stale counts the next window read plans a nested loop over a million rows."""
        if self.is_postgres and inserted >= ANALYZE_AFTER_ROWS:
            with self.engine.begin() as conn:
                conn.exec_driver_sql(f"ANALYZE {table}")

    def _register_batch(self, frame: pd.DataFrame, offset: int, quarantine: bool, validated):
        meta, features, errors = validated
        with self.engine.begin() as conn:
            known = {name for (name,) in conn.execute(sa.select(models.c.name))}
            unknown = ~meta["model"].isin(known) & meta["_ok"]
            for i in np.flatnonzero(unknown.to_numpy()):
                errors.append(RowError(offset + int(i), meta.at[i, "prediction_id"], "model",
                                       f"{meta.at[i, 'model']!r} is not registered (register_model first)"))
            meta.loc[unknown, "_ok"] = False
            if pd.isna(meta["served_at"]).any():
                meta["served_at"] = meta["served_at"].fillna(_database_now(conn))  # _served_given keeps which
            inserted, unchanged = 0, int(meta["_repeat"].sum())
            for model, group in meta[meta["_ok"]].groupby("model", sort=False):
                rows, row_errors = self._encode_group(conn, model, group, features.loc[group.index], offset)
                errors.extend(row_errors)
                new, same, conflicts = self._write_predictions(conn, rows)
                inserted += new
                unchanged += same
                errors.extend(RowError(offset + int(i), pid, "prediction_id", reason) for i, pid, reason in conflicts)
            errors.sort(key=lambda e: e.row)
            if quarantine and errors:
                self._quarantine(conn, "prediction", errors, frame, offset)
        return IngestReport(len(frame), inserted, unchanged, 0, errors)

    def _encode_group(self, conn, model: str, meta: pd.DataFrame, features: pd.DataFrame, offset: int):
        """Rows of one model as stored columns; feature values checked against the registry."""
        errors: list[RowError] = []
        features = features.dropna(axis=1, how="all")
        registry = self._feature_registry(conn, model)
        kinds = {key: registry[key][0] if key in registry else _infer_feature_kind(features[key])
                 for key in features.columns}
        bad = pd.Series(False, index=meta.index)
        converted = {}
        for key, kind in kinds.items():
            values, problems = (_numeric_feature if kind == "numeric" else _category_feature)(features[key])
            for i, reason in problems.items():
                errors.append(RowError(offset + int(i), meta.at[i, "prediction_id"], f"features.{key}", reason))
                bad[i] = True
            converted[key] = values
        registry = self._register_features(conn, model, kinds)
        keep = meta.index[~bad]
        width = max((p for k, p in registry.values() if k == "numeric"), default=0)
        matrix = np.full((len(keep), width), np.nan)
        categorical = {}
        for key, values in converted.items():
            if kinds[key] == "numeric":
                matrix[:, registry[key][1] - 1] = values.loc[keep].to_numpy()
            else:
                categorical[key] = values.loc[keep].reset_index(drop=True)
        rows = meta.loc[keep, [*RESERVED, "_served_given"]].reset_index()
        rows["cat_json"] = pgcopy.json_objects(pd.DataFrame(categorical, index=rows.index))
        return (rows, matrix), errors

    def _write_predictions(self, conn, encoded) -> tuple[int, int, list[tuple[int, str, str]]]:
        """Insert new rows; compare rows whose id exists. Returns (inserted, unchanged, conflicts)."""
        rows, matrix = encoded
        if rows.empty:
            return 0, 0, []
        if self.is_postgres:
            from psycopg.errors import UniqueViolation

            savepoint = conn.begin_nested()
            try:
                self._copy_predictions(conn, rows, matrix)
                savepoint.commit()
                return len(rows), 0, []
            except UniqueViolation:
                savepoint.rollback()  # some ids exist already: compare first, then insert the rest
        existing = self._stored_rows(conn, predictions, rows["prediction_id"].tolist())
        is_new = ~rows["prediction_id"].isin(existing.keys()).to_numpy()
        conflicts = []
        for i in np.flatnonzero(~is_new):
            differing = _differing_fields(rows.iloc[i], matrix[i], existing[rows.at[i, "prediction_id"]])
            if differing:
                conflicts.append((rows.at[i, "index"], rows.at[i, "prediction_id"],
                                  f"already registered with a different payload ({', '.join(differing)} differ)"))
        new_rows, new_matrix = rows[is_new].reset_index(drop=True), matrix[is_new]
        if self.is_postgres:
            self._copy_predictions(conn, new_rows, new_matrix)
        elif len(new_rows):
            conn.execute(predictions.insert(), [
                {**{k: _plain(r[k]) for k in RESERVED}, "num_features": [None if math.isnan(v) else v for v in m],
                 "cat_features": json.loads(r["cat_json"])}
                for r, m in zip(new_rows.to_dict("records"), new_matrix, strict=True)
            ])
        return len(new_rows), int((~is_new).sum()) - len(conflicts), conflicts

    def _copy_predictions(self, conn, rows: pd.DataFrame, matrix: np.ndarray) -> None:
        fixed = [
            pgcopy.float8_column(rows["predicted_value"].to_numpy(dtype=np.float64)),
            pgcopy.timestamptz_column(rows["served_at"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()),
            pgcopy.float8_vector_column(matrix),
        ]
        variable = [
            pgcopy.text_pieces(rows["prediction_id"]), pgcopy.text_pieces(rows["model"]),
            pgcopy.text_pieces(rows["model_version"]), pgcopy.int4_pieces(rows["predicted_label"]),
            pgcopy.text_pieces(rows["unit_id"]), pgcopy.jsonb_pieces(rows["cat_json"]),
        ]
        _copy(conn, "COPY predictions (predicted_value, served_at, num_features, prediction_id, model, "
              "model_version, predicted_label, unit_id, cat_features) FROM STDIN (FORMAT binary)",
              pgcopy.encode_rows(fixed, variable))

    @staticmethod
    def _stored_rows(conn, table: sa.Table, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Stored rows of ``table`` by prediction_id, for the ids that exist."""
        found = {}
        for chunk in _chunks(ids, 10_000):
            query = sa.select(table).where(table.c.prediction_id.in_(chunk))
            found.update({row["prediction_id"]: dict(row) for row in conn.execute(query).mappings()})
        return found

    def _quarantine(self, conn, kind: str, errors: list[RowError], frame: pd.DataFrame, offset: int) -> None:
        conn.execute(ingest_rejects.insert(), [
            {"record_kind": kind, "row_number": e.row, "prediction_id": e.prediction_id, "field": e.field,
             "reason": e.reason, "payload": _json_row(frame, e.row - offset)}
            for e in errors
        ])

    # -- outcomes ------------------------------------------------------------------------------

    def record_outcome(self, prediction_id: str, actual_value: float, *, observed_at: datetime | None = None) -> str:
        """Store a real outcome: returns ``recorded``, ``unchanged`` or ``corrected``."""
        report = self.record_outcomes([{"prediction_id": prediction_id, "actual_value": actual_value,
                                        "observed_at": observed_at}])
        if report.rejected:
            raise ValueError(f"{report.rejected[0].field}: {report.rejected[0].reason}")
        return "recorded" if report.inserted else "corrected" if report.corrected else "unchanged"

    def record_outcomes(self, rows, *, batch_size: int = 100_000, quarantine: bool = False) -> IngestReport:
        """Bulk outcomes from a DataFrame or an iterable of mappings (prediction_id, actual_value,
        optional observed_at). Unknown prediction ids are kept as orphans."""
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame.from_records(list(rows))
        totals = dict.fromkeys(("received", "inserted", "unchanged", "corrected"), 0)
        rejected: list[RowError] = []
        for start in range(0, len(frame), batch_size):
            batch = frame.iloc[start:start + batch_size].reset_index(drop=True)
            clean, errors = _validate_outcomes(batch, start)
            with self.engine.begin() as conn:
                counts = self._write_outcomes(conn, clean)
                if quarantine and errors:
                    self._quarantine(conn, "outcome", errors, batch, start)
            totals["received"] += len(batch)
            for key, value in counts.items():
                totals[key] += value
            rejected.extend(errors)
        self._refresh_statistics("outcomes", totals["inserted"])
        return IngestReport(**totals, rejected=rejected)

    def _write_outcomes(self, conn, clean: pd.DataFrame) -> dict[str, int]:
        if clean.empty:
            return {}
        if clean["observed_at"].isna().any():
            clean["observed_at"] = clean["observed_at"].fillna(_database_now(conn))
        existing = self._stored_rows(conn, outcomes, clean["prediction_id"].tolist())
        known = clean["prediction_id"].isin(existing.keys())
        new = clean[~known]
        changed = [r for r in clean[known].to_dict("records")
                   if existing[r["prediction_id"]]["actual_value"] != r["actual_value"]]
        if len(new):
            if self.is_postgres:
                fixed = [pgcopy.float8_column(new["actual_value"].to_numpy(dtype=np.float64)),
                         pgcopy.timestamptz_column(
                             new["observed_at"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy())]
                _copy(conn, "COPY outcomes (actual_value, observed_at, prediction_id) FROM STDIN (FORMAT binary)",
                      pgcopy.encode_rows(fixed, [pgcopy.text_pieces(new["prediction_id"])]))
            else:
                conn.execute(outcomes.insert(), [{k: _plain(v) for k, v in r.items()}
                                                 for r in new.to_dict("records")])
        if changed:
            conn.execute(outcome_history.insert(), [
                {k: existing[r["prediction_id"]][k]
                 for k in ("prediction_id", "actual_value", "observed_at", "recorded_at", "revision")}
                for r in changed
            ])
            conn.execute(
                outcomes.update().where(outcomes.c.prediction_id == sa.bindparam("pid")).values(
                    actual_value=sa.bindparam("value"), observed_at=sa.bindparam("observed"),
                    recorded_at=sa.func.current_timestamp(), revision=outcomes.c.revision + 1),
                [{"pid": r["prediction_id"], "value": r["actual_value"], "observed": _plain(r["observed_at"])}
                 for r in changed],
            )
        return {"inserted": len(new), "corrected": len(changed), "unchanged": int(known.sum()) - len(changed)}

    def enqueue_outcomes(self, rows) -> IngestReport:
        """Put outcomes in ``outcome_inbox``, the daily DAG's default outcome source (columns
        prediction_id, actual_value, optional observed_at and received_at). Bad rows are reported."""
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
                    for r in clean[["prediction_id", "actual_value", "observed_at", "received_at"]].to_dict("records")])
        return IngestReport(len(frame), len(clean), 0, 0, errors)

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
        target = RESULT_TABLES[table]
        _check_window(window_start, window_end)
        row = {"model": model_name(model), "model_version": model_version,
               "window_start": _utc(window_start).to_pydatetime(), "window_end": _utc(window_end).to_pydatetime(),
               "kind": kind, "result": to_jsonable(result), **columns}
        statement = self._insert(target).values(**row)
        keys = [c.name for c in target.primary_key.columns]
        updates = {k: statement.excluded[k] for k in row if k not in keys}
        with self.engine.begin() as conn:
            conn.execute(statement.on_conflict_do_update(
                index_elements=keys, set_=updates | {"computed_at": sa.func.current_timestamp()}))

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
        """Record a trained version (idempotent: re-registering refreshes artifact, window and
        metrics and keeps the status it has reached). Returns the stored row."""
        name = model_name(model)
        for field, value in (("version", version), ("created_by", created_by)):
            if value is not None and (problem := _text_problem(value, 128 if field == "version" else 256)):
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
        with self.engine.begin() as conn:
            if name not in self._models_known(conn):
                raise ValueError(f"model: {name!r} is not registered (register_model first)")
            conn.execute(statement.on_conflict_do_update(
                index_elements=["model", "version"],
                set_={k: statement.excluded[k] for k in ("artifact_uri", "training_window_start",
                                                          "training_window_end", "metrics", "created_by")}))
            return dict(conn.execute(sa.select(model_versions).where(
                model_versions.c.model == name, model_versions.c.version == version)).mappings().one())

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

# -- validation and encoding helpers ----------------------------------------------------------------

def _copy(conn, statement: str, chunks: Iterable[bytes]) -> None:
    """Stream a binary COPY into PostgreSQL on the connection's own transaction. A worker thread
    sends the queued chunks, so encoding the next chunk overlaps with the server's work."""
    from psycopg.copy import QueuedLibpqWriter

    with conn.connection.driver_connection.cursor() as cursor, \
            cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
        for chunk in chunks:
            copy.write(chunk)


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


def _check_window(start: datetime, end: datetime) -> None:
    for name, value in (("window_start", start), ("window_end", end)):
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"{name}: must be a timezone-aware datetime, got {value!r}")
    if end <= start:
        raise ValueError(f"window_end: {end.isoformat()} is not after window_start {start.isoformat()}")


def _equal_to(table: sa.Table, **values: Any) -> list:
    """``column == value`` for every value given (None: no filter on that column)."""
    return [table.c[column] == value for column, value in values.items() if value is not None]


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _plain(value):
    """pandas/numpy scalars to what a DB-API driver binds (NaN/NaT -> None)."""
    if value is None or (not isinstance(value, (str, bytes, list, dict)) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value.item() if isinstance(value, np.generic) else value


def _database_now(conn) -> pd.Timestamp:
    """The database's clock: default served_at / observed_at of rows sent without one."""
    return _utc(conn.execute(sa.select(sa.func.current_timestamp())).scalar_one())


def _utc(value) -> pd.Timestamp:
    """A timestamp from either dialect as UTC (SQLite hands back naive UTC datetimes)."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _json_row(frame: pd.DataFrame, position: int) -> dict[str, Any] | None:
    if not 0 <= position < len(frame):
        return None
    return json.loads(json.dumps(to_jsonable(frame.iloc[position].to_dict()), default=str))


def _validate_predictions(frame: pd.DataFrame, offset: int) -> tuple[pd.DataFrame, pd.DataFrame, list[RowError]]:
    """Split a batch into validated reserved columns (``meta``, with an ``_ok`` mask) and features."""
    errors: list[RowError] = []
    n = len(frame)
    if "features" in frame.columns:
        raw = frame["features"]
        not_mapping = ~raw.map(lambda v: isinstance(v, Mapping))
        features = pd.DataFrame.from_records([dict(v) if isinstance(v, Mapping) else {} for v in raw],
                                             index=frame.index)
    else:
        not_mapping = pd.Series(False, index=frame.index)
        features = frame[[c for c in frame.columns if c not in RESERVED]]
    meta = pd.DataFrame(index=frame.index)
    ok = pd.Series(True, index=frame.index)

    def reject(mask: pd.Series, field: str, reason) -> None:
        for i in np.flatnonzero((mask & ok).to_numpy()):
            pid = meta["prediction_id"].iat[i] if "prediction_id" in meta else None
            errors.append(RowError(offset + int(i), pid if isinstance(pid, str) else None, field,
                                   reason(i) if callable(reason) else reason))
        ok[mask] = False

    ids = frame["prediction_id"] if "prediction_id" in frame.columns else pd.Series([None] * n, index=frame.index)
    missing_id = ids.isna()
    meta["prediction_id"] = ids.astype(object)
    meta.loc[missing_id, "prediction_id"] = [uuid.uuid4().hex for _ in range(int(missing_id.sum()))]
    reject(~_is_short_text(meta["prediction_id"], 128), "prediction_id",
           "must be a non-empty string of at most 128 characters")
    reject(not_mapping, "features", "must be a mapping of feature name to value")
    if "model" not in frame.columns:
        reject(pd.Series(True, index=frame.index), "model", "is required")
        meta["model"] = None
    else:
        meta["model"] = frame["model"]
        valid = {m: _valid_model(m) for m in frame["model"].dropna().unique()}
        reject(~frame["model"].map(lambda m: valid.get(m, False)), "model",
               lambda i: f"{frame['model'].iat[i]!r} is not a valid model name")
    version = frame.get("model_version", pd.Series(DEFAULT_VERSION, index=frame.index))
    meta["model_version"] = version.fillna(DEFAULT_VERSION)
    reject(~_is_short_text(meta["model_version"], 128), "model_version",
           "must be a non-empty string of at most 128 characters")
    if "predicted_value" not in frame.columns:
        reject(pd.Series(True, index=frame.index), "predicted_value", "is required")
        meta["predicted_value"] = np.nan
    else:
        values = _to_float(frame["predicted_value"])
        meta["predicted_value"] = values
        reject(values.isna() & frame["predicted_value"].notna(), "predicted_value",
               lambda i: f"must be a number, got {frame['predicted_value'].iat[i]!r}")
        reject(~np.isfinite(values), "predicted_value", lambda i: f"must be finite, got {values.iat[i]}")
    label = frame["predicted_label"] if "predicted_label" in frame.columns else pd.Series([None] * n, index=frame.index)
    label_numbers = _to_float(label)
    integral = (np.isfinite(label_numbers) & (label_numbers == np.floor(label_numbers))
                & label_numbers.between(*LABEL_RANGE))
    reject(label.notna() & ~integral, "predicted_label",
           lambda i: f"must be an integer class label within {LABEL_RANGE}, got {label.iat[i]!r}")
    meta["predicted_label"] = label_numbers.where(integral).astype("Int64")
    unit = frame["unit_id"] if "unit_id" in frame.columns else pd.Series([None] * n, index=frame.index)
    meta["unit_id"] = unit.astype(object).map(label_text, na_action="ignore").where(unit.notna(), None)
    present_units = meta["unit_id"].dropna()
    reject((~_is_short_text(present_units, 256)).reindex(frame.index, fill_value=False), "unit_id",
           "longer than 256 characters")
    served = frame["served_at"] if "served_at" in frame.columns else pd.Series([None] * n, index=frame.index)
    parsed = pd.to_datetime(served, utc=True, errors="coerce", format="mixed").astype("datetime64[us, UTC]")
    meta["served_at"] = parsed
    meta["_served_given"] = served.notna()  # a re-send without served_at matches whatever was stored
    reject(parsed.isna() & served.notna(), "served_at", lambda i: f"not a timestamp: {served.iat[i]!r}")
    if features.shape[1] > MAX_FEATURES:
        reject(pd.Series(True, index=frame.index), "features", f"more than {MAX_FEATURES} features")
    for key in features.columns:
        problem = _key_problem(key)
        if problem:
            reject(features[key].notna(), "features", problem)
    # A row repeated within the batch is a re-send (unchanged); the same id with another payload is rejected.
    repeated = meta["prediction_id"].duplicated(keep=False)
    meta["_repeat"] = False
    if repeated.any():
        rows = frame[repeated].astype(str).assign(_id=meta.loc[repeated, "prediction_id"])
        payload = pd.util.hash_pandas_object(rows.drop(columns="_id"), index=False)
        first = payload.groupby(rows["_id"]).transform("first")
        later = meta["prediction_id"].duplicated(keep="first") & ok
        identical = later & (payload == first).reindex(frame.index, fill_value=False)
        meta.loc[identical, "_repeat"] = True
        ok[identical] = False
        reject(later & ~identical, "prediction_id", "appears more than once in the batch with different payloads")
    meta["_ok"] = ok
    return meta, features, errors


def _valid_model(name) -> bool:
    try:
        model_name(name)
    except ValueError:
        return False
    return True


def _is_short_text(values: pd.Series, limit: int) -> pd.Series:
    """Row mask: a non-empty string of at most ``limit`` characters (vectorised when all are text)."""
    if pd.api.types.is_string_dtype(values.dtype) and pd.api.types.infer_dtype(values, skipna=False) == "string":
        lengths = values.str.len()
        ok = (lengths > 0) & (lengths <= limit) & ~values.str.contains("\x00", regex=False)
        try:
            "".join(values.dropna()).encode("utf-8")
            return ok
        except UnicodeEncodeError:
            pass  # some value holds a lone surrogate: check one by one
    return values.map(lambda v: _text_problem(v, limit) is None).astype(bool)


def _storable_problem(text: str) -> str | None:
    """PostgreSQL text holds no NUL character and only valid UTF-8 (no lone surrogates)."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (lone surrogate)"
    return None


def _text_problem(value, limit: int) -> str | None:
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        return f"must be a non-empty string of at most {limit} characters, got {value!r}"
    return _storable_problem(value)


def _number_problem(value) -> str | None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return f"must be a number, got {value!r}"
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int beyond the float range
        finite = False
    return None if finite else f"must be finite, got {value}"


LABEL_RANGE = (-(2**31) + 1, 2**31 - 1)  # int4, minus the value the window read uses for "no label"


def _label_problem(value) -> str | None:
    if _number_problem(value) or not float(value).is_integer() or not LABEL_RANGE[0] <= value <= LABEL_RANGE[1]:
        return f"must be an integer class label within {LABEL_RANGE}, got {value!r}"
    return None


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


def _scalar_kind(value) -> str:
    is_number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    return "numeric" if is_number else "categorical"


def _key_problem(key) -> str | None:
    if not isinstance(key, str) or not key:
        return f"feature names must be non-empty strings, got {key!r}"
    if len(key) > MAX_KEY_LENGTH:
        return f"feature name longer than {MAX_KEY_LENGTH} characters: {key[:40]!r}..."
    if key in RESERVED or key in ("actual_value", "observed_at", "error"):
        return f"feature name {key!r} is reserved"
    problem = _storable_problem(key)
    return f"feature name {key[:40]!r} {problem}" if problem else None


def _infer_feature_kind(column: pd.Series) -> str:
    """Kind of a feature key seen for the first time: numeric when most of its values are numbers
    (the others are then rejected as bad values), categorical otherwise."""
    if pd.api.types.is_bool_dtype(column.dtype) or isinstance(column.dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(column.dtype):
        return "numeric"
    present = column.dropna()
    if pd.api.types.infer_dtype(present, skipna=True) in ("string", "empty"):
        return "categorical"
    numbers = present.map(lambda v: _scalar_kind(v) == "numeric").sum()
    return "numeric" if numbers * 2 > len(present) else "categorical"


def _to_float(values: pd.Series) -> pd.Series:
    """pd.to_numeric(errors="coerce") as float64; ints beyond the float range become inf."""
    try:
        return pd.to_numeric(values, errors="coerce").astype(np.float64)
    except OverflowError:
        return values.map(lambda v: np.nan if _is_missing(v) else _float_or_nan(v)).astype(np.float64)


def _float_or_nan(value) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf
    except (TypeError, ValueError):
        return math.nan


def _numeric_feature(column: pd.Series) -> tuple[pd.Series, dict[int, str]]:
    """Float values (missing -> NaN) and, by row, why a value is not a finite number."""
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        values = column.astype(np.float64)
        problems = {}
    else:
        is_number = column.map(lambda v: isinstance(v, (int, float, np.integer, np.floating))
                               and not isinstance(v, (bool, np.bool_)))
        not_number = ~is_number & column.notna()
        problems = {i: f"expected a number, got {column.at[i]!r}" for i in column.index[not_number]}
        values = _to_float(column.where(is_number))
    problems |= {i: f"must be finite, got {values.at[i]}" for i in values.index[np.isinf(values.to_numpy())]}
    return values.where(np.isfinite(values)), problems


def _category_feature(column: pd.Series) -> tuple[pd.Series, dict[int, str]]:
    """Category labels as text (missing stays missing) and, by row, why a value is refused.

    Each distinct value is checked once; rows holding unhashable values (dicts, lists) are
    checked one by one.
    """
    try:
        codes, uniques = pd.factorize(column.astype(object), use_na_sentinel=True)
    except TypeError:
        codes, uniques = np.arange(len(column)), column.to_numpy(dtype=object)
    texts = np.empty(len(uniques) + 1, dtype=object)
    reasons = np.full(len(uniques) + 1, None, dtype=object)
    for position, value in enumerate(uniques):
        if value is None or (not isinstance(value, (str, Mapping, list, tuple, set)) and pd.isna(value)):
            continue
        try:
            texts[position] = _category_text(value)
        except ValueError as error:
            reasons[position] = str(error)
    problems = {column.index[i]: reasons[c] for i, c in enumerate(codes) if c >= 0 and reasons[c] is not None} \
        if any(r is not None for r in reasons) else {}
    return pd.Series(texts[codes], index=column.index, dtype=object), problems


def _category_text(value) -> str:
    if isinstance(value, (Mapping, list, tuple, set)):
        raise ValueError(f"nested values are not supported: {value!r}")
    text = label_text(value)
    if len(text) > MAX_TEXT_LENGTH:
        raise ValueError(f"text longer than {MAX_TEXT_LENGTH} characters")
    problem = _storable_problem(text)
    if problem:
        raise ValueError(problem)
    return text


def _pack(vector: np.ndarray) -> bytes:
    """A numeric feature vector as stored on PostgreSQL: big-endian float8 bytes, NaN = missing."""
    return np.asarray(vector, dtype=">f8").tobytes()


def _unpack(stored) -> np.ndarray:
    """A stored feature vector (PostgreSQL bytes or SQLite JSON list) as float64, NaN = missing."""
    if isinstance(stored, (bytes, bytearray, memoryview)):
        return np.frombuffer(bytes(stored), dtype=">f8").astype(np.float64)
    return np.array([np.nan if v is None else v for v in (stored or [])], dtype=np.float64)


def _differing_fields(new: pd.Series, new_vector: np.ndarray, stored: Mapping[str, Any]) -> list[str]:
    differing = [f for f in ("model", "model_version", "unit_id") if (new[f] or None) != (stored[f] or None)]
    served_given = new.get("_served_given", True) if hasattr(new, "get") else True
    if float(new["predicted_value"]) != float(stored["predicted_value"]):
        differing.append("predicted_value")
    if _plain(new["predicted_label"]) != stored["predicted_label"]:
        differing.append("predicted_label")
    if served_given and pd.Timestamp(new["served_at"]) != _utc(stored["served_at"]):
        differing.append("served_at")
    old_vector = _unpack(stored["num_features"])
    width = max(old_vector.size, new_vector.size)
    padded_old = np.pad(old_vector, (0, width - old_vector.size), constant_values=np.nan)
    padded_new = np.pad(new_vector, (0, width - new_vector.size), constant_values=np.nan)
    if not np.array_equal(padded_old, padded_new, equal_nan=True) or json.loads(new["cat_json"]) != (
            stored["cat_features"] or {}):
        differing.append("features")
    return differing


def _validate_outcomes(frame: pd.DataFrame, offset: int, *, keep_repeats: bool = False
                       ) -> tuple[pd.DataFrame, list[RowError]]:
    """Valid rows (prediction_id, actual_value, observed_at) and the errors of the others.
    Repeated ids are collapsed (different values are an error) unless ``keep_repeats``, which
    also keeps the frame's index on the valid rows."""
    errors: list[RowError] = []
    n = len(frame)
    ids = frame["prediction_id"] if "prediction_id" in frame.columns else pd.Series([None] * n)
    ok = _is_short_text(ids, 128)
    for i in np.flatnonzero(~ok.to_numpy()):
        errors.append(RowError(offset + int(i), None, "prediction_id",
                               "must be a non-empty string of at most 128 characters"))
    raw = frame["actual_value"] if "actual_value" in frame.columns else pd.Series([None] * n)
    values = _to_float(raw)
    for i in np.flatnonzero((ok & ~np.isfinite(values)).to_numpy()):
        reason = "is required" if raw.iat[i] is None else f"must be a finite number, got {raw.iat[i]!r}"
        errors.append(RowError(offset + int(i), ids.iat[i], "actual_value", reason))
    ok &= np.isfinite(values)
    observed_raw = frame["observed_at"] if "observed_at" in frame.columns else pd.Series([None] * n)
    observed = pd.to_datetime(observed_raw, utc=True, errors="coerce", format="mixed").astype("datetime64[us, UTC]")
    for i in np.flatnonzero((ok & observed.isna() & observed_raw.notna()).to_numpy()):
        errors.append(RowError(offset + int(i), ids.iat[i], "observed_at", f"not a timestamp: {observed_raw.iat[i]!r}"))
    ok &= ~(observed.isna() & observed_raw.notna())
    clean = pd.DataFrame({"prediction_id": ids, "actual_value": values, "observed_at": observed})[ok]
    if keep_repeats:
        errors.sort(key=lambda e: e.row)
        return clean, errors
    conflicting = clean.groupby("prediction_id")["actual_value"].transform("nunique") > 1
    for i in clean.index[conflicting & clean["prediction_id"].duplicated(keep="first")]:
        errors.append(RowError(offset + int(i), ids.iat[i], "actual_value",
                               "the batch holds different values for this prediction_id"))
    clean = clean[~(conflicting & clean["prediction_id"].duplicated(keep="first"))]
    clean = clean.drop_duplicates("prediction_id", keep="first").reset_index(drop=True)
    errors.sort(key=lambda e: e.row)
    return clean, errors
