"""The store's dialect objects: every PostgreSQL/SQLite difference lives in one module, and each
dialect does what the areas rely on, on its real database."""

from __future__ import annotations

import ast
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from self_learning.store import FeedbackStore, codec
from self_learning.store.dialects import DIALECTS, PostgresDialect, SqliteDialect, dialect_class
from self_learning.store.rows import _unpack
from self_learning.store.tables import outcome_inbox, predictions

PACKAGE = Path(__file__).resolve().parents[2] / "plugins" / "self_learning"
DATABASE_BRANCH = re.compile(r"is_postgres|dialect\.name\s*[!=]=|postgresql\.insert|sqlite\.insert|"
                             r"get_backend_name\(\)\s*[!=]=")


def test_no_module_but_the_dialects_asks_which_database_it_is_on():
    branching = [f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
                 for path in sorted(PACKAGE.rglob("*.py"))
                 if "migrations" not in path.parts and path.name != "dialects.py"
                 for number, line in enumerate(path.read_text().splitlines(), start=1) if DATABASE_BRANCH.search(line)]
    assert branching == []


def test_store_modules_and_classes_stay_small():
    too_big = []
    for path in sorted((PACKAGE / "store").glob("*.py")):
        source = path.read_text()
        if len(source.splitlines()) > 700:
            too_big.append(f"{path.name}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 400:
                too_big.append(f"{path.name}:{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert too_big == []


def test_old_paths_are_the_moved_objects():
    import self_learning.pgcopy
    from self_learning.core.alerts import alert_key
    from self_learning.store import alert_key as store_alert_key

    assert self_learning.pgcopy is codec  # patching pgcopy.encode_rows patches what the store calls
    assert store_alert_key is alert_key


def test_an_unsupported_database_is_named():
    with pytest.raises(ValueError, match=r"^url: the feedback store runs on postgresql or sqlite, got 'mysql'"):
        dialect_class("mysql")
    assert dialect_class("postgres") is PostgresDialect and set(DIALECTS) == {"postgresql", "sqlite"}
    assert PostgresDialect.engine_url(sa.make_url("postgres://u@h/db")).drivername == "postgresql+psycopg"
    assert PostgresDialect.engine_url(sa.make_url("postgresql+psycopg2://u@h/db")).drivername == "postgresql+psycopg2"


def test_each_store_gets_its_database_dialect(store):
    expected = PostgresDialect if store.engine.dialect.name == "postgresql" else SqliteDialect
    assert type(store.dialect) is expected
    assert store.is_postgres == (expected is PostgresDialect)  # the old property, answered by the dialect


def test_insert_on_conflict_is_the_dialects(store):
    from self_learning.store.inbox import outcome_source_watermarks as table

    row = {"source": "warehouse", "pulled_until": datetime(2026, 11, 1, tzinfo=UTC)}

    with store.engine.begin() as conn:
        for _ in range(2):
            conn.execute(store.dialect.insert(table).values(**row).on_conflict_do_nothing())
        assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 1


def test_a_vector_is_stored_as_the_dialect_encodes_it(store):
    vector = np.array([1.5, np.nan, -2.0])
    encoded = store.dialect.encode_vector(vector)
    assert isinstance(encoded, bytes if store.is_postgres else list)
    np.testing.assert_array_equal(_unpack(encoded), vector)
    store.register_prediction("roas_predictor", 1.0, {"a": 1.5, "b": None, "c": -2.0}, prediction_id="p-vector")
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(predictions.c.num_features)
                              .where(predictions.c.prediction_id == "p-vector")).scalar_one()
    np.testing.assert_array_equal(_unpack(stored)[[0, 1]], [1.5, -2.0])  # b had no value: not registered


def test_update_by_ids_marks_exactly_the_given_rows(store):
    store.enqueue_outcomes([{"prediction_id": f"p{i}", "actual_value": float(i)} for i in range(5)])
    with store.engine.begin() as conn:
        ids = sorted(conn.execute(sa.select(outcome_inbox.c.id)).scalars())
        store.dialect.update_by_ids(conn, outcome_inbox.c.id, ids[1:3], processed_at=sa.func.current_timestamp())
    assert store.count_unprocessed_outcomes() == 3


def test_only_postgres_reports_deadlocks():
    from psycopg.errors import DeadlockDetected

    error = sa.exc.OperationalError("UPDATE ...", {}, DeadlockDetected())
    assert PostgresDialect(None).is_deadlock(error) and not SqliteDialect(None).is_deadlock(error)
    assert not PostgresDialect(None).is_deadlock(ValueError("x"))


def test_the_postgres_lock_makes_a_second_transaction_wait(pg_url):
    """Promotions, A/B test starts, feature positions and migrations rely on it."""
    store = FeedbackStore.from_url(pg_url)
    held = threading.Event()

    def first():
        with store.engine.begin() as conn:
            store.dialect.lock(conn, "self_learning.test")
            held.set()
            time.sleep(0.5)

    thread = threading.Thread(target=first)
    thread.start()
    assert held.wait(10)
    started = time.perf_counter()
    with store.engine.begin() as conn:
        store.dialect.lock(conn, "self_learning.test")
        waited = time.perf_counter() - started
    thread.join()
    assert waited >= 0.3
