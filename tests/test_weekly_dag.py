"""The weekly DAG end to end on the session's PostgreSQL: matured performance, A/B conclusions and
the stored learning report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from scenarios import load, run
from self_learning.reporting import SECTIONS
from self_learning.store import ALL_VERSIONS
from self_learning.synthetic import MODEL_FEATURES, Scenario

pytestmark = pytest.mark.usefixtures("fresh_runs")
WEEK_END = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
WEEK_START = WEEK_END - timedelta(days=7)


def test_weekly_run_stores_the_learning_report_of_the_week(dag_bag, feedback_db):
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
    assert [t["window_end"] for t in performance["trend"]][-1] == WEEK_END.isoformat()
    drift = report["drift_results"]["ctr_predictor"]
    assert drift["days"][-2:] == [d.isoformat() for d in daily_ends]
    assert drift["missing_days"] == [(WEEK_START + timedelta(days=d)).isoformat() for d in range(1, 6)]
    assert set(drift["features"]) == set(MODEL_FEATURES["ctr_predictor"])
    assert drift["features"]["audience_size"][-1] not in (None, "none")  # drifted from day 40
    assert drift["features"]["platform"][-1] == "none"
    assert report["error_distribution"]["ctr_predictor"]["sample_count"] > 0
    assert {r["request_id"] for r in report["retraining_recommendations"]["ctr_predictor"]} == {
        f"ctr_predictor@{daily_ends[0]:%Y-%m-%dT%H:%M}Z"}  # the next day's request is covered by it
    assert any(a["type"] == "feature_drift" for a in report["alerts"]["ctr_predictor"])
    (conclusion,) = report["ab_test_conclusions"]
    assert (conclusion["test_id"], conclusion["status"], conclusion["decision"]) == ("t1", "running", "unhealthy")
    assert "sample ratio mismatch" in conclusion["reasons"][0] and len(conclusion["looks"]) == 1
    assert feedback_db.get_champion("ctr_predictor")["version"] == "v5"
    assert any(a["type"] == "ab_test" and a["severity"] == "high" for a in report["alerts"]["ctr_predictor"])

    run(weekly, end=WEEK_END, models=["roas_predictor", "ctr_predictor"])  # a re-run replaces, not adds
    (again,) = feedback_db.learning_reports(kind="weekly")
    assert again["report"] == report
    weekly_rows = feedback_db.read_results("performance_snapshots", model="roas_predictor", window_end=WEEK_END)
    assert len(weekly_rows) == 2
