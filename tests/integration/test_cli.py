"""``self-learning`` / ``python -m self_learning``: status, report, migrate, demo and plain help.

Issue 20: ``python -m self_learning`` did nothing and ``python -m self_learning.demo --help``
showed raw RST. The subcommands run against an SQLite store holding one day of results of the
kinds the daily DAG stores (performance, a drift report with its findings, alerts, a retrain
request, a pinned baseline), written through the store's own API.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import timedelta

import pytest
from self_learning.cli import database_url, main
from self_learning.store import ALL_VERSIONS, FeedbackStore
from support import ROOT
from support.stores import DAY, NEXT_DAY, prediction_frame

WINDOW_END = NEXT_DAY + timedelta(days=6)


@pytest.fixture
def filled_store(tmp_path, migrated_sqlite_file) -> tuple[FeedbackStore, str]:
    """An SQLite store with a week of roas_predictor results as the daily DAG leaves them."""
    path = tmp_path / "feedback.db"
    shutil.copyfile(migrated_sqlite_file, path)
    url = f"sqlite:///{path}"
    store = FeedbackStore.from_url(url)
    store.register_predictions(prediction_frame(40))
    store.set_baseline("roas_predictor", DAY, NEXT_DAY)
    window = {"model": "roas_predictor", "model_version": ALL_VERSIONS, "window_start": WINDOW_END - timedelta(days=7),
              "window_end": WINDOW_END}
    store.save_result("performance_snapshots", **window, kind="performance", result={}, sample_count=1234,
                      label_coverage=0.81, provisional=False, mape=24.1, wape=0.241, mae=0.52)
    store.save_result("drift_reports", **window, kind="feature_drift", severity="high", status="ok",
                      affected_features=["spend"],
                      result={"statistical_tests": {"features": {
                          "spend": {"drifted": True, "severity": "high", "since": "2026-11-04"},
                          "ctr": {"drifted": False, "severity": "none"}}}})
    store.save_result("drift_reports", **window, kind="concept_drift", severity="none", status="insufficient_data",
                      affected_features=[], result={})
    for version in ("v1", "v2"):  # the same cause alerted for two versions: one line, counted
        store.raise_alert(model="roas_predictor", alert_type="feature_drift", severity="high", cause=f"spend|{version}",
                          details={"summary": "feature 'spend' drifted (numeric)"}, window_end=WINDOW_END)
    store.request_retrain(request_id="roas_predictor@test", model="roas_predictor", window_end=WINDOW_END,
                          reasons=["feature drift severity high in spend (threshold high)"])
    return store, url


def test_status_prints_the_models_health(filled_store, capsys):
    _, url = filled_store
    assert main(["status", "roas_predictor", "--db", url]) == 0
    out = capsys.readouterr().out
    assert out.startswith("roas_predictor (regression), champion: none registered")
    assert "MAPE 24.1 %, WAPE 0.241, MAE 0.520 on 1,234 labelled rows, label coverage 81%" in out
    assert "baseline: 2026-11-01..2026-11-02 (explicit, pinned)" in out
    assert "feature_drift: high since 2026-11-04 in spend (high, since 2026-11-04)" in out
    assert "concept_drift: not judged (insufficient_data)" in out
    assert "prediction_drift: not checked" in out
    assert "open alerts: 2" in out and "[high] feature_drift (window ending 2026-11-08)" in out and "(x2)" in out
    assert "roas_predictor@test (window ending 2026-11-08): requested; feature drift severity high in spend" in out
    assert "A/B tests: none running" in out


def test_status_of_an_unknown_model_names_the_known_ones(filled_store, capsys):
    _, url = filled_store
    assert main(["status", "roas_predictr", "--db", url]) == 1
    error = capsys.readouterr().err
    assert "model: 'roas_predictr' is not an active model" in error and "roas_predictor" in error


def test_migrate_creates_the_schema_and_refuses_other_databases(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    assert main(["migrate", "--db", url]) == 0
    assert "schema at revision" in capsys.readouterr().out
    assert FeedbackStore.from_url(url).list_models()  # the default models are seeded
    assert main(["migrate", "--db", "mysql://svc:secret@db/feedback"]) == 1
    error = capsys.readouterr().err
    assert "--db: the feedback store runs on PostgreSQL or SQLite only" in error and "'mysql'" in error
    assert "secret" not in error


def test_report_writes_the_stored_report_or_says_where_it_is(filled_store, tmp_path, capsys):
    from self_learning.loop.reporting import learning_report

    store, url = filled_store
    assert main(["report", "--db", url]) == 1
    assert "no daily report is stored yet" in capsys.readouterr().err
    report = learning_report(store, period_start=WINDOW_END - timedelta(days=1), period_end=WINDOW_END,
                             models=["roas_predictor"])
    store.save_learning_report(period_start=WINDOW_END - timedelta(days=1), period_end=WINDOW_END, kind="daily",
                               report=report, artifact_uri="file:///reports/daily/learning_report_2026-11-08.html")
    assert main(["report", "--db", url]) == 0
    assert capsys.readouterr().out.strip() == (
        "daily report of 2026-11-07..2026-11-08: file:///reports/daily/learning_report_2026-11-08.html")
    page = tmp_path / "out" / "daily.html"
    assert main(["report", "--db", url, "-o", str(page)]) == 0
    assert "<h1>Daily summary: " in page.read_text() and "roas_predictor" in page.read_text()
    health = tmp_path / "health.html"
    assert main(["report", "--kind", "health", "--db", url, "--output", str(health)]) == 0
    assert "<h1>Model health</h1>" in health.read_text()


def test_the_database_comes_from_the_flag_the_environment_or_the_demo(tmp_path):
    environ = {"FEEDBACK_DB_URL": "sqlite:////a.db", "AIRFLOW_CONN_FEEDBACK_DB": "sqlite:////b.db"}
    assert database_url("sqlite:////c.db", environ, tmp_path) == ("sqlite:////c.db", "--db")
    assert database_url(None, environ, tmp_path) == ("sqlite:////a.db", "FEEDBACK_DB_URL")
    assert database_url(None, {"AIRFLOW_CONN_FEEDBACK_DB": "sqlite:////b.db"}, tmp_path)[1] == \
        "AIRFLOW_CONN_FEEDBACK_DB"
    with pytest.raises(LookupError, match="pass --db URL or set FEEDBACK_DB_URL"):
        database_url(None, {"AIRFLOW_CONN_FEEDBACK_DB": '{"conn_type": "postgres"}'}, tmp_path)
    (tmp_path / ".demo").mkdir()
    (tmp_path / ".demo" / "feedback.db").touch()
    assert database_url(None, {}, tmp_path) == (f"sqlite:///{tmp_path / '.demo' / 'feedback.db'}", ".demo/feedback.db")


def _help(*module_and_args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    result = subprocess.run([sys.executable, "-m", *module_and_args, "--help"], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_python_m_self_learning_lists_the_commands_in_plain_text():
    text = _help("self_learning")
    assert text.startswith("usage: self-learning")
    for command in ("status", "report", "migrate", "demo"):
        assert f"\n    {command} " in text, command
    assert "``" not in text and "PostgreSQL or SQLite only" in text


def test_demo_help_is_plain_text_through_either_entry():
    for entry in (("self_learning.demo",), ("self_learning", "demo")):
        text = _help(*entry)
        assert text.startswith("usage: python -m self_learning.demo")
        assert "``" not in text and "--days-to-run" in text
