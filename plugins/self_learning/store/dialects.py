"""Every difference between PostgreSQL and SQLite, in one object per database.

The store runs on PostgreSQL (production: many writers, millions of rows) and on an embedded
SQLite file (demo, zero set-up) through one SQLAlchemy Core code path. Where the two need other
SQL, or PostgreSQL a faster path, the difference is a method of the store's ``dialect`` (as
Airflow's common.sql dialects do, ADR 0005), so no other module asks which database it is on:

======================  ===================================  ===================================
                        PostgreSQL                           SQLite
======================  ===================================  ===================================
insert-or-update        ``postgresql.insert`` ON CONFLICT    ``sqlite.insert`` ON CONFLICT
serialising writers     advisory transaction locks           BEGIN IMMEDIATE (one writer)
new predictions         binary COPY (staging on conflict)    look-up, then executemany
new outcomes            staging COPY + one checking DELETE   look-ups, then executemany
window read             two COPY TO STDOUT streams           one SELECT, decoded in Python
its plan (O(window))    EXPLAIN: nested loop, outcomes_pkey  EXPLAIN QUERY PLAN
UTC day of a timestamp  ``timezone('UTC', ts)::date``        ``date(ts)`` (ISO text)
numeric feature vector  packed float8 ``bytea``              JSON list (null = missing)
mark many rows          one UPDATE with an id array          IN lists of 10,000
deadlock                the victim's transaction re-run      (cannot happen: one writer)
after a big load        ANALYZE                              (nothing)
======================  ===================================  ===================================

Adding a database is one more subclass of :class:`Dialect` registered in ``DIALECTS``.
"""

from __future__ import annotations

import abc
import json
import math
from datetime import timedelta
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ..core.multiclass import probability_rows
from . import ingest
from .copy_out import TEXT_COLUMNS, explain_window_read, read_window_by_copy, window_statements
from .rows import PROBABILITY_PREFIX, _chunks, _pack, _plain, _utc
from .tables import ANALYZE_AFTER_ROWS, OUTCOME_WINDOW_COLUMNS, RESERVED, outcomes, predictions


class Dialect(abc.ABC):
    """What the store does differently per database; one instance per store (it holds the engine)."""

    name: ClassVar[str]
    # register_predictions' concurrent batch writers unless the caller says otherwise
    bulk_writers: ClassVar[int] = 1
    # a single registration of a known model and known keys is one INSERT outside a transaction
    autocommit_single_inserts: ClassVar[bool] = False

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    @classmethod
    def engine_url(cls, url: sa.URL) -> sa.URL:
        """The URL the engine is created with (the driver the store's fast paths need)."""
        return url

    @classmethod
    def engine_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """``create_engine`` options with this database's defaults added."""
        return options

    @classmethod
    def configure(cls, engine: sa.Engine) -> None:
        """Connection set-up the store relies on (nothing by default)."""
        return

    @abc.abstractmethod
    def insert(self, table: sa.Table):
        """An INSERT that supports ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""

    @abc.abstractmethod
    def lock(self, conn, key: str) -> None:
        """Serialise the transactions that take the same ``key`` until their end."""

    @abc.abstractmethod
    def encode_vector(self, vector: np.ndarray) -> Any:
        """A numeric feature vector (NaN = missing) as ``predictions.num_features`` stores it."""

    def is_deadlock(self, error: BaseException) -> bool:
        """The database aborted the transaction to resolve a deadlock: re-run it whole."""
        return False

    def refresh_statistics(self, table: str, inserted: int) -> None:
        """Planner statistics after ``inserted`` new rows of ``table`` (nothing by default)."""
        return

    @abc.abstractmethod
    def insert_new_predictions(self, conn, rows: pd.DataFrame, matrix: np.ndarray
                               ) -> tuple[np.ndarray, dict[str, dict[str, Any]]]:
        """Insert the encoded rows whose id is not stored. Returns the mask of the rows inserted
        and the stored rows of (at least) the ids that were not, for the caller's comparison."""

    @abc.abstractmethod
    def insert_new_outcomes(self, conn, clean: pd.DataFrame, tolerance: timedelta
                            ) -> tuple[dict[str, Any], set[str]]:
        """Insert validated outcomes whose id has none stored, except those observed more than
        ``tolerance`` before their stored prediction was served. Returns (those refused ids ->
        their prediction's served_at, the ids inserted)."""

    @abc.abstractmethod
    def read_window(self, conditions: list, labelled_only: bool, names: list[str],
                    numeric: list[tuple[int, str]], categorical: list[str],
                    classes: tuple[str, ...] | None = None) -> pd.DataFrame:
        """The window's rows, oldest first: the ``names`` columns typed as ``read_window``
        documents, then one column per numeric key (by registry position) and categorical key,
        and with ``classes`` one float64 ``proba_<class>`` column per class (0 for a class the
        row's stored vector predates)."""

    @abc.abstractmethod
    def utc_day(self, column: sa.ColumnElement) -> sa.ColumnElement:
        """The UTC calendar day of a timestamp column (a date, or its ISO text on SQLite)."""

    @abc.abstractmethod
    def window_read_plan(self, conditions: list, labelled_only: bool, names: list[str],
                         numeric: list[tuple[int, str]], categorical: list[str],
                         classes: tuple[str, ...] | None = None, *, analyze: bool = False) -> str:
        """The database's plan of ``read_window``'s join as text (what runs, not a copy of it)."""

    def update_by_ids(self, conn, column: sa.Column, ids: list[int], **values: Any) -> None:
        """Set ``values`` on the rows of ``column``'s table whose ``column`` is in ``ids``."""
        for chunk in _chunks(ids, 10_000):
            conn.execute(column.table.update().where(column.in_(chunk)).values(**values))


class PostgresDialect(Dialect):
    name = "postgresql"
    bulk_writers = 2  # two batches validated, encoded and copied at once (61k -> 91k rows/s on 2 cores)
    autocommit_single_inserts = True  # one round trip instead of BEGIN / INSERT / COMMIT

    @classmethod
    def engine_url(cls, url: sa.URL) -> sa.URL:
        """psycopg 3 (its COPY API) unless another PostgreSQL driver is named."""
        return url.set(drivername="postgresql+psycopg") if url.drivername in ("postgresql", "postgres") else url

    def insert(self, table: sa.Table):
        return postgresql.insert(table)

    def lock(self, conn, key: str) -> None:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})

    def encode_vector(self, vector: np.ndarray) -> bytes:
        return _pack(vector)

    def is_deadlock(self, error: BaseException) -> bool:
        from psycopg.errors import DeadlockDetected, SerializationFailure  # a serialization failure too

        return isinstance(getattr(error, "orig", error), (DeadlockDetected, SerializationFailure))

    def refresh_statistics(self, table: str, inserted: int) -> None:
        """After a large bulk load, refresh planner statistics now rather than when autovacuum
        gets to it: with stale counts the next window read plans a nested loop over a million rows."""
        if inserted >= ANALYZE_AFTER_ROWS:
            with self.engine.begin() as conn:
                conn.exec_driver_sql(f"ANALYZE {table}")

    def insert_new_predictions(self, conn, rows, matrix):
        """A plain COPY first (no id stored yet: the fast path); when another writer holds one
        of the ids (UniqueViolation, or a deadlock while waiting for it) the savepoint is rolled
        back and the staging path inserts what is new, leaving the rest to the comparison."""
        from psycopg.errors import DeadlockDetected, UniqueViolation

        savepoint = conn.begin_nested()
        try:
            ingest.copy_predictions(conn, rows, matrix)
            savepoint.commit()
            return np.ones(len(rows), dtype=bool), {}
        except (UniqueViolation, DeadlockDetected):
            savepoint.rollback()
        ids = rows["prediction_id"]
        with ingest.staging_table(conn, "predictions", ingest.PREDICTION_COLUMNS, len(rows)) as staging:
            ingest.copy_predictions(conn, rows, matrix, table=staging)
            is_new = ids.isin(ingest.insert_staged(conn, "predictions", ingest.PREDICTION_COLUMNS, staging)).to_numpy()
        return is_new, ingest.stored_rows(conn, predictions, ids[~is_new].tolist())

    def insert_new_outcomes(self, conn, clean, tolerance):
        """One staging COPY; a DELETE drops (and returns) the rows observed too early."""
        with ingest.staging_table(conn, "outcomes", ingest.OUTCOME_COLUMNS, len(clean)) as staging:
            ingest.copy_outcomes(conn, clean, staging)
            served = dict(conn.execute(sa.text(
                f"DELETE FROM {staging} s USING predictions p WHERE p.prediction_id = s.prediction_id "
                "AND s.observed_at < p.served_at - :tolerance RETURNING s.prediction_id, p.served_at"),
                {"tolerance": tolerance}).all())
            inserted = ingest.insert_staged(conn, "outcomes", ingest.OUTCOME_COLUMNS, staging)
        return served, inserted

    def read_window(self, conditions, labelled_only, names, numeric, categorical, classes=None):
        return read_window_by_copy(self.engine.url, conditions, labelled_only, [k for _, k in numeric], categorical,
                                   [c for c in names if c in TEXT_COLUMNS], classes)

    def utc_day(self, column):
        return sa.cast(sa.func.timezone("UTC", column), sa.Date)

    def window_read_plan(self, conditions, labelled_only, names, numeric, categorical, classes=None, *,
                         analyze=False):
        statements, params = window_statements(conditions, labelled_only, [k for _, k in numeric], categorical,
                                               [c for c in names if c in TEXT_COLUMNS], classes)
        return explain_window_read(self.engine.url, statements, params, analyze=analyze)

    def update_by_ids(self, conn, column, ids, **values):
        """One UPDATE with an array (binding 200k ids as IN lists cost 1.6 s of query text)."""
        conn.execute(column.table.update().where(column == sa.any_(
            sa.bindparam("ids", type_=postgresql.ARRAY(column.type)))).values(**values), {"ids": ids})


class SqliteDialect(Dialect):
    """One writer at a time: the write lock is taken at BEGIN (``_sqlite_begin``), so looking ids
    up before inserting is safe and no transaction waits on another's rows."""

    name = "sqlite"

    @classmethod
    def engine_options(cls, options):
        options.setdefault("connect_args", {"timeout": 30})
        return options

    @classmethod
    def configure(cls, engine):
        sa.event.listen(engine, "connect", _sqlite_connect)
        sa.event.listen(engine, "begin", _sqlite_begin)

    def insert(self, table: sa.Table):
        return sqlite.insert(table)

    def lock(self, conn, key: str) -> None:
        """Nothing to take: the transaction holds the database's write lock since BEGIN IMMEDIATE."""

    def encode_vector(self, vector: np.ndarray) -> list[float | None]:
        return [None if math.isnan(v) else v for v in vector]

    def insert_new_predictions(self, conn, rows, matrix):
        existing = ingest.stored_rows(conn, predictions, rows["prediction_id"].tolist())
        is_new = ~rows["prediction_id"].isin(existing.keys()).to_numpy()
        if is_new.any():
            conn.execute(predictions.insert(), [
                {**{k: _plain(r[k]) for k in RESERVED}, "num_features": self.encode_vector(m),
                 "cat_features": json.loads(r["cat_json"]), "predicted_class": _plain(r["predicted_class"]),
                 "class_probabilities": None if r["class_probabilities"] is None
                 else self.encode_vector(r["class_probabilities"])}
                for r, m in zip(rows[is_new].to_dict("records"), matrix[is_new], strict=True)
            ])
        return is_new, existing

    def insert_new_outcomes(self, conn, clean, tolerance):
        ids = clean["prediction_id"]
        stored = ingest.stored_rows(conn, predictions, ids.tolist(), columns=("prediction_id", "served_at"))
        served_at = pd.to_datetime(ids.map({pid: _utc(row["served_at"]) for pid, row in stored.items()}), utc=True)
        early = (clean["observed_at"] < served_at - tolerance).to_numpy()
        served = dict(zip(ids[early], served_at[early], strict=True))
        candidates = clean[~early]
        known = ingest.stored_rows(conn, outcomes, candidates["prediction_id"].tolist(), columns=("prediction_id",))
        new = candidates[~candidates["prediction_id"].isin(known.keys())]
        if len(new):
            conn.execute(outcomes.insert(), [{k: _plain(v) for k, v in r.items()} for r in new.to_dict("records")])
        return served, set(new["prediction_id"])

    def read_window(self, conditions, labelled_only, names, numeric, categorical, classes=None):
        with self.engine.connect() as conn:
            return _decode_sqlite_window(conn.execute(self._window_query(conditions, labelled_only, names)).all(),
                                         names, numeric, categorical, classes)

    def utc_day(self, column):
        """Timestamps are stored as UTC text: the day is its first ten characters."""
        return sa.func.date(column)

    def window_read_plan(self, conditions, labelled_only, names, numeric, categorical, classes=None, *,
                         analyze=False):
        """SQLite's EXPLAIN QUERY PLAN (it has no ANALYZE form): one line per step."""
        query = self._window_query(conditions, labelled_only, names).compile(
            self.engine, compile_kwargs={"literal_binds": True})
        with self.engine.connect() as conn:
            return "\n".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}"))

    def _window_query(self, conditions, labelled_only, names):
        p, o = predictions.c, outcomes.c
        join = predictions.join(outcomes, p.prediction_id == o.prediction_id, isouter=not labelled_only)
        columns = [(o if c in OUTCOME_WINDOW_COLUMNS else p)[c] for c in names]
        # the JSON columns as their text, decoded in one parse per column (``_decode_sqlite_window``)
        query = sa.select(*columns, sa.type_coerce(p.num_features, sa.Text), sa.type_coerce(p.cat_features, sa.Text),
                          sa.type_coerce(p.class_probabilities, sa.Text)).select_from(join).where(*conditions)
        return query


DIALECTS: dict[str, type[Dialect]] = {"postgresql": PostgresDialect, "sqlite": SqliteDialect}
_BACKEND_ALIASES = {"postgres": "postgresql"}


def dialect_class(backend: str) -> type[Dialect]:
    """The dialect of a SQLAlchemy backend name; a ``ValueError`` names the supported ones."""
    try:
        return DIALECTS[_BACKEND_ALIASES.get(backend, backend)]
    except KeyError:
        raise ValueError(f"url: the feedback store runs on {' or '.join(DIALECTS)}, got {backend!r}") from None


def create_engine(url: str | sa.URL, **engine_options: Any) -> sa.Engine:
    """An engine for ``postgresql://user@host/db`` (psycopg 3 is used) or ``sqlite:////abs/path.db``,
    set up as its dialect needs."""
    parsed = sa.make_url(url)
    kind = dialect_class(parsed.get_backend_name())
    engine = sa.create_engine(kind.engine_url(parsed), **kind.engine_options(engine_options))
    kind.configure(engine)
    return engine


def dialect_for(engine: sa.Engine) -> Dialect:
    return dialect_class(engine.dialect.name)(engine)


class UsesDialect:
    """For stores: ``is_postgres``, kept for callers of the old API (the store itself asks its dialect)."""

    dialect: Dialect

    @property
    def is_postgres(self) -> bool:
        return isinstance(self.dialect, PostgresDialect)


def _decode_sqlite_window(rows, columns: list[str], numeric, categorical, classes=None) -> pd.DataFrame:
    width = len(columns)
    frame = pd.DataFrame([r[:width] for r in rows], columns=columns)
    frame = frame.astype({"predicted_value": np.float64, "actual_value": np.float64, "business_value": np.float64,
                          "model_version": "category"})
    for column in ("served_at", "observed_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    # one json.loads of all rows' texts, not one per row: per-row decoding was 0.7 of the 0.9 s a
    # window of 36,000 rows with 20 features took to read
    vectors = json.loads("[" + ",".join(r[width] or "null" for r in rows) + "]")
    matrix = pd.DataFrame([v or [] for v in vectors], dtype=np.float64).to_numpy() if numeric else None
    for position, key in numeric:
        frame[key] = matrix[:, position - 1] if position <= matrix.shape[1] else np.full(len(rows), np.nan)
    if categorical:
        dicts = json.loads("[" + ",".join(r[width + 1] or "null" for r in rows) + "]")
        for key in categorical:
            frame[key] = pd.Series([(d or {}).get(key) for d in dicts], dtype="category")
    if classes:  # stored vectors in the class order of their day, shorter ones read with 0 appended
        vectors = json.loads("[" + ",".join(r[width + 2] or "null" for r in rows) + "]")
        matrix = probability_rows(classes, [v or () for v in vectors])
        for j, label in enumerate(classes):
            frame[PROBABILITY_PREFIX + label] = matrix[:, j]
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
