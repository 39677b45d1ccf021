"""The test harness itself: the throwaway PostgreSQL is real, the migrated template copies are at the
latest revision and independent, and the Airflow metadata DB is this process's own."""

from __future__ import annotations

import psycopg
import sqlalchemy as sa
from self_learning.store import FeedbackStore


def test_throwaway_postgres_is_real(postgres, pg_url):
    with psycopg.connect(pg_url) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()[0]
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1), (2)")
        assert conn.execute("SELECT sum(x) FROM t").fetchone()[0] == 3
    assert int(version) >= 150000
    assert pg_url.startswith(f"postgresql://postgres@127.0.0.1:{postgres.port}/")


def test_template_copies_are_migrated_and_independent(postgres, migrated_template, feedback_url, pg_url):
    """A copy is at the revision a fresh migration reaches, and writing to it leaves the template alone."""
    fresh = FeedbackStore.from_url(pg_url)
    head = fresh.ensure_schema()
    copy = FeedbackStore.from_url(feedback_url)
    assert copy.ensure_schema() == head
    tables = set(sa.inspect(copy.engine).get_table_names())
    assert tables == set(sa.inspect(fresh.engine).get_table_names())
    with copy.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE scratch (x int)")
    with psycopg.connect(postgres.url(migrated_template)) as conn:
        names = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert "scratch" not in names and names == tables
    for store in (copy, fresh):
        store.engine.dispose()  # the template must stay free of connections for the next copy


def test_sqlite_store_copies_start_at_the_latest_revision(store, pg_url):
    assert store.ensure_schema() == FeedbackStore.from_url(pg_url).ensure_schema()


def test_airflow_metadata_db_is_isolated(airflow_db):
    from airflow import settings

    assert settings.engine.url.database.startswith(str(airflow_db))
    assert "dag_run" in sa.inspect(settings.engine).get_table_names()
