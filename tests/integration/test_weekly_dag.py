"""The weekly DAG end to end on the session's PostgreSQL: matured performance, A/B conclusions and
the stored learning report."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from self_learning.reporting import SECTIONS
from self_learning.store import ALL_VERSIONS
from self_learning.synthetic import MODEL_FEATURES, Scenario
from support.browser import render
from support.scenarios import load, run

pytestmark = pytest.mark.usefixtures("fresh_runs")
WEEK_END = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
WEEK_START = WEEK_END - timedelta(days=7)


def test_weekly_run_stores_the_learning_report_of_the_week(dag_bag, feedback_db, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_SELF_LEARNING_REPORT_ROOT", f"file://{tmp_path / 'reports'}")
    daily, weekly = dag_bag.get_dag("self_learning_daily"), dag_bag.get_dag("self_learning_weekly")
    load(feedback_db, Scenario(days=45, rows_per_day=200, seed=31, end=WEEK_END, feature_drift_day=40),
         interval_end=WEEK_END - timedelta(days=1))
    daily_ends = [WEEK_END - timedelta(days=1), WEEK_END]
    for end in daily_ends:
        run(daily, end=end, models=["roas_predictor", "ctr_predictor"])
    # a running A/B test that serving ignored (every prediction still from v5): the weekly look
    # finds the sample ratio mismatch, alerts and promotes nothing
    feedback_db.register_version("ctr_predictor", "v5", status="archived")
    feedback_db.promote("ctr_predictor", "v5")
    feedback_db.register_version("ctr_predictor", "v6")
    feedback_db.start_ab_test(test_id="t1", model="ctr_predictor", champion_version="v5", challenger_version="v6",
                              config={"n_star": 1000.0, "seed": "t1"}, started_at=WEEK_END - timedelta(days=3))

    run(weekly, end=WEEK_END, models=["roas_predictor", "ctr_predictor"])
    (stored,) = feedback_db.learning_reports(kind="weekly")
    assert (stored["period_start"], stored["period_end"]) == (WEEK_START, WEEK_END)
    report = stored["report"]
    assert set(SECTIONS) <= set(report) and report["models"] == ["roas_predictor", "ctr_predictor"]

    performance = report["performance"]["roas_predictor"]
    assert set(performance["current"]) == {ALL_VERSIONS, "v3"}
    assert performance["current"][ALL_VERSIONS]["sample_count"] > 0
    assert [t["window_end"] for t in performance["trend"]] == [WEEK_END.isoformat()]  # no daily windows
    drift = report["drift_results"]["ctr_predictor"]
    assert drift["days"][-2:] == [d.isoformat() for d in daily_ends]
    assert drift["missing_days"] == [(WEEK_START + timedelta(days=d)).isoformat() for d in range(1, 6)]
    assert set(drift["features"]) == set(MODEL_FEATURES["ctr_predictor"])
    assert drift["features"]["audience_size"][-1] not in (None, "none")  # drifted from day 40
    assert drift["features"]["platform"][-1] == "none"
    assert report["error_distribution"]["ctr_predictor"]["sample_count"] > 0
    importance = report["feature_importance"]["ctr_predictor"]
    assert set(importance["current"]) == set(MODEL_FEATURES["ctr_predictor"])
    assert sum(f["weight"] for f in importance["current"].values()) == pytest.approx(1.0)
    top = max(importance["current"], key=lambda f: importance["current"][f]["weight"])
    assert top in ("creative_type", "hook_type")  # what drives the synthetic CTR
    assert {r["request_id"] for r in report["retraining_recommendations"]["ctr_predictor"]} == {
        f"ctr_predictor@{daily_ends[0]:%Y-%m-%dT%H:%M}Z"}  # the next day's request is covered by it
    assert any(a["type"] == "feature_drift" for a in report["alerts"]["ctr_predictor"])
    (conclusion,) = report["ab_test_conclusions"]
    assert (conclusion["test_id"], conclusion["status"], conclusion["decision"]) == ("t1", "running", "unhealthy")
    assert "sample ratio mismatch" in conclusion["reasons"][0] and len(conclusion["looks"]) == 1
    assert feedback_db.get_champion("ctr_predictor")["version"] == "v5"
    assert any(a["type"] == "ab_test" and a["severity"] == "high" for a in report["alerts"]["ctr_predictor"])

    # the same report as a self-contained page with its charts, as Chromium renders it
    page = stored["artifact_uri"]
    assert page.startswith("file://") and page.endswith("weekly/learning_report_2026-11-02.html")
    html = Path(page.removeprefix("file://")).read_text()
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html
    dom = render(page, screenshot="weekly_learning_report.png")
    charts = re.findall(r"data-chart=\"([a-z-]+)\"", dom)
    assert {c: charts.count(c) for c in set(charts)} == {"trend": 2, "errors": 2, "alerts": 2, "drift-heatmap": 2,
                                                         "ab-test": 1}
    assert "ctr_predictor: v5 (champion) vs v6 (challenger)" in dom and "audience_size" in dom
    assert "Feature importance" in dom

    run(weekly, end=WEEK_END, models=["roas_predictor", "ctr_predictor"])  # a re-run replaces, not adds
    (again,) = feedback_db.learning_reports(kind="weekly")
    assert again["report"] == report
    weekly_rows = feedback_db.read_results("performance_snapshots", model="roas_predictor", window_end=WEEK_END)
    assert len(weekly_rows) == 2


def test_report_trend_holds_whole_weeks_back_and_html_escapes_text(feedback_db):
    from self_learning.performance import compute_performance
    from self_learning.report_html import render_learning_report
    from self_learning.reporting import learning_report

    for days_back in range(0, 30):  # a 7-day snapshot ending every day, as the daily runs store them
        end = WEEK_END - timedelta(days=days_back)
        performance = compute_performance("regression", [1.0, 2.0, 3.0], [1.1, 2.0, 3.0 + days_back / 10],
                                          n_predicted=3)
        feedback_db.save_result("performance_snapshots", model="roas_predictor", model_version=ALL_VERSIONS,
                                window_start=end - timedelta(days=7), window_end=end, kind="performance",
                                result=performance, sample_count=3, label_coverage=1.0, provisional=False,
                                mae=performance.mae, mape=performance.mape)
    report = learning_report(feedback_db, period_start=WEEK_START, period_end=WEEK_END, models=["roas_predictor"],
                             trend_periods=3)
    trend = report["performance"]["roas_predictor"]["trend"]
    assert [t["window_end"] for t in trend] == [(WEEK_END - timedelta(days=7 * k)).isoformat() for k in (3, 2, 1, 0)]
    assert trend[0]["mae"] > trend[-1]["mae"]
    feedback_db.create_alert("manual", "roas_predictor", {"summary": "<script>alert(1)</script>"},
                             window_end=WEEK_END)
    html = render_learning_report(learning_report(feedback_db, period_start=WEEK_START, period_end=WEEK_END,
                                                  models=["roas_predictor"]))
    assert "<script>" not in html and "&lt;script&gt;" in html
    with pytest.raises(ValueError, match="period_end"):
        learning_report(feedback_db, period_start=WEEK_END, period_end=WEEK_END, models=[])


def test_cleanup_applies_the_retention_variable_even_after_a_failed_report(dag_bag, feedback_db, monkeypatch):
    weekly = dag_bag.get_dag("self_learning_weekly")
    for task in weekly.tasks:
        monkeypatch.setattr(task, "retries", 0)
    monkeypatch.setenv("AIRFLOW_VAR_SELF_LEARNING_REPORT_ROOT", "nosuchscheme://nowhere")  # the report fails
    monkeypatch.setenv("AIRFLOW_VAR_SELF_LEARNING_RETENTION_DAYS", '{"alerts": 90}')
    load(feedback_db, Scenario(days=10, rows_per_day=40, seed=5, end=WEEK_END, models=("roas_predictor",)),
         interval_end=WEEK_END)
    old = WEEK_END - timedelta(days=120)  # kept by the default 180 days, not by the Variable's 90
    resolved = feedback_db.create_alert("manual", "roas_predictor", {"summary": "old"}, cause="a", window_end=old)
    feedback_db.set_alert_status(resolved, "resolved")
    still_open = feedback_db.create_alert("manual", "roas_predictor", {"summary": "open"}, cause="b", window_end=old)

    result = run(weekly, end=WEEK_END, state="failed", models=["roas_predictor"])  # the report's failure shows
    states = {ti.task_id: ti.state for ti in result.get_task_instances()}
    assert (states["learning_report"], states["cleanup"]) == ("failed", "success")
    assert [a["id"] for a in feedback_db.open_alerts(model="roas_predictor")] == [still_open]
    with feedback_db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM alerts WHERE id = :id"), {"id": resolved}).scalar() == 0
