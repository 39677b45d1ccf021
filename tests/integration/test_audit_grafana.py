"""Grafana's view of the store, with Grafana's own privileges: the read-only role that
``include/feedback-db/create-grafana-reader.sh`` creates runs every dashboard query, gets the rows
the owner gets, and cannot write. The deployment is rebuilt as docker compose builds it: the script
runs on the empty ``feedback`` database as its owner ``feedback`` (the image's superuser), then the
package's migrations create the tables as ``feedback``, then the loop's data arrives."""

from __future__ import annotations

import json
import os
import subprocess

import psycopg
import pytest
from conftest import ROOT
from integration.test_deployment import GRAFANA, _grafana_sql
from psycopg import errors
from self_learning.store import FeedbackStore

SCRIPT = ROOT / "include" / "feedback-db" / "create-grafana-reader.sh"


@pytest.fixture(scope="module")
def deployed_feedback_db(postgres, monitored_store, monitored_store_url) -> dict[str, str]:
    """URLs of the ``feedback`` database as its owner and as ``grafana_reader``, holding the data of
    the store the loop filled (``monitored_store``)."""
    with psycopg.connect(postgres.url(), autocommit=True) as conn:
        conn.execute("CREATE ROLE feedback LOGIN SUPERUSER")
        conn.execute("CREATE DATABASE feedback OWNER feedback")
    env = {**os.environ, "PATH": f"{postgres.bin}:{os.environ['PATH']}", "PGHOST": "127.0.0.1",
           "PGPORT": str(postgres.port), "POSTGRES_USER": "feedback", "POSTGRES_DB": "feedback",
           "FEEDBACK_DB_READER_PASSWORD": "reader-password"}
    subprocess.run(["bash", str(SCRIPT)], env=env, check=True, capture_output=True, timeout=60)
    owner = postgres.url("feedback").replace("postgres@", "feedback@")
    store = FeedbackStore.from_url(owner)
    store.ensure_schema()  # the tables are created by feedback, after the script ran
    store.engine.dispose()
    with psycopg.connect(owner, autocommit=True) as conn:  # the loop's rows instead of the seeded ones
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                             "AND tablename <> 'self_learning_alembic_version'")]
        conn.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
    dump = subprocess.run([str(postgres.bin / "pg_dump"), "--data-only", "--disable-triggers",
                           "--exclude-table-data=self_learning_alembic_version", monitored_store_url],
                          env=env, check=True, capture_output=True, timeout=120).stdout
    subprocess.run([str(postgres.bin / "psql"), "-v", "ON_ERROR_STOP=1", "-q", owner], input=dump, env=env,
                   check=True, capture_output=True, timeout=120)
    return {"owner": owner, "reader": postgres.url("feedback").replace("postgres@", "grafana_reader@")}


def test_the_reader_runs_every_dashboard_query_and_sees_what_the_owner_sees(deployed_feedback_db):
    dashboard = json.loads((GRAFANA / "dashboards/self_learning.json").read_text())
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "model")
    with psycopg.connect(deployed_feedback_db["reader"]) as reader, \
            psycopg.connect(deployed_feedback_db["owner"]) as owner:
        assert reader.execute("SELECT current_user").fetchone()[0] == "grafana_reader"
        models = [row[0] for row in reader.execute(variable["query"]).fetchall()]
        assert models and models == [row[0] for row in owner.execute(variable["query"]).fetchall()]
        with_rows = set()
        for panel in dashboard["panels"]:
            (target,) = panel["targets"]
            sql = _grafana_sql(target["rawSql"], models)
            rows = reader.execute(sql).fetchall()
            if "(classifiers)" not in panel["title"]:  # monitored: regressors and a multiclass model, no binary one
                assert rows, panel["title"]
            assert rows == owner.execute(sql).fetchall(), panel["title"]
            with_rows |= {panel["title"]} if rows else set()
    # the per-class panels read the JSON result (jsonb functions): granted to the reader as the columns are
    assert {"Recall per class (multiclass)", "Per-class figures, latest window (multiclass)",
            "Confusion matrix, latest window (multiclass)"} <= with_rows


@pytest.mark.parametrize("statement", [
    "INSERT INTO alerts (dedupe_key, model, alert_type, severity, status) VALUES ('k', 'm', 't', 'low', 'open')",
    "UPDATE model_versions SET status = 'champion'",
    "DELETE FROM predictions",
    "CREATE TABLE grafana_scratch (x int)",
], ids=["insert", "update", "delete", "create"])
def test_the_reader_cannot_write(deployed_feedback_db, statement):
    with psycopg.connect(deployed_feedback_db["reader"]) as reader, pytest.raises(errors.InsufficientPrivilege):
        reader.execute(statement)
