"""The weekly DAG end to end on the session's PostgreSQL: matured performance, A/B conclusions and
the stored learning report."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from self_learning.loop.report_html import render_model_health
from self_learning.loop.reporting import model_health
from self_learning.reporting import SECTIONS
from self_learning.store import ALL_VERSIONS
from self_learning.synthetic import MODEL_FEATURES, Scenario
from self_learning.web.metrics import exposition
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
    # ctr_predictor's baseline pinned by hand (as the serving client does); roas_predictor keeps its
    # default, the first 30 days of its served data, pinned by the first daily run
    scenario_start = WEEK_END - timedelta(days=45)
    pinned = feedback_db.set_baseline("ctr_predictor", scenario_start + timedelta(days=2),
                                      scenario_start + timedelta(days=32), note="after the relaunch")
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
    # what the findings are measured against, and since when: both shifted features from day 40
    shift_day = (scenario_start + timedelta(days=40)).date().isoformat()
    assert report["baselines"]["ctr_predictor"] == {**pinned.to_dict(), "stored": True,
                                                    "measured_against": None}  # the daily runs compared against it
    assert report["baselines"]["roas_predictor"]["source"] == "default"
    assert (report["baselines"]["roas_predictor"]["start"], report["baselines"]["roas_predictor"]["end"]) == (
        scenario_start.isoformat(), (scenario_start + timedelta(days=30)).isoformat())
    assert drift["findings_window_end"] == WEEK_END.isoformat()
    assert {f["name"]: f["since"] for f in drift["findings"] if f["kind"] == "feature_drift"} == {
        "audience_size": shift_day, "hook_type": shift_day}
    assert drift["performance_degradation"][-2:] == ["none", "none"] and drift["performance_degradation"][0] is None
    # the drifted features' baseline-vs-current distributions, stored by the daily run
    distributions = drift["distributions"]
    assert set(distributions) == {"audience_size", "hook_type"}
    assert distributions["audience_size"]["kind"] == "numeric" and len(distributions["audience_size"]["edges"]) == 21
    assert distributions["hook_type"]["kind"] == "categorical" and distributions["hook_type"]["since"] == shift_day
    assert sum(distributions["hook_type"]["current"]) == distributions["hook_type"]["rows"]["current"] > 0
    # the incident: since when, why, what was done
    incident = report["incidents"]["ctr_predictor"]
    causes = {c["key"]: c for c in incident["causes"]}
    drifted = causes["ctr_predictor|feature_drift|audience_size"]
    assert (drifted["first_seen"], drifted["last_seen"]) == (daily_ends[0].isoformat(), daily_ends[1].isoformat())
    assert [status for _, _, status in drifted["timeline"]] == ["open", "suppressed"]
    assert any("CUSUM" in line for line in drifted["involved"])
    (action,) = incident["actions"]
    assert (action["request_id"], action["outcome"]) == (f"ctr_predictor@{daily_ends[0]:%Y-%m-%dT%H:%M}Z",
                                                         "waiting for a retrain run")
    assert drift["metrics"]["mae"][-2:] == ["none", "none"]  # the degradation kind's metrics x days
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
    namespaces = re.sub(r"http://www\.w3\.org/(2000/svg|1999/xlink)\b", "", html)  # SVG's names, nothing fetched
    assert "http://" not in namespaces and "https://" not in html
    dom = render(page, screenshot="weekly_learning_report.png")
    charts = re.findall(r"data-chart=\"([a-z-]+)\"", dom)
    counts = {c: charts.count(c) for c in set(charts)}
    # one weekly window stored per model: its value as text, not a one-point trend chart
    assert {c: counts.get(c) for c in ("trend-empty", "trend", "errors", "drift-heatmap", "ab-test-empty")} == {
        "trend-empty": 2, "trend": None, "errors": 2, "drift-heatmap": 2, "ab-test-empty": 1}  # SRM: no interval
    assert counts["incident-severity"] == len([m for m in report["incidents"].values() if m["causes"]]) >= 1
    assert counts["distribution"] == sum(len(d["distributions"]) for d in report["drift_results"].values()) >= 2
    assert "one stored window, no trend yet" in dom and "MAPE (%)" in dom and "ROC_AUC" not in dom
    assert "suppressed repeat (hollow)" in dom and "<table class=\"alerts\">" in dom  # alert details as text
    assert "ctr_predictor: v5 (champion) vs v6 (challenger)" in dom and "audience_size" in dom
    assert "Feature importance" in dom
    assert "2026-09-20 → 2026-10-20" in dom and "explicit, pinned" in dom and "after the relaunch" in dom
    assert "Pin the baseline: start" in dom and "store.set_baseline(model, start, end)" in dom
    assert f"<b>audience_size</b> since {shift_day}" in dom and "performance degradation" in dom

    run(weekly, end=WEEK_END, models=["roas_predictor", "ctr_predictor"])  # a re-run replaces, not adds
    (again,) = feedback_db.learning_reports(kind="weekly")
    assert again["report"] == report
    weekly_rows = feedback_db.read_results("performance_snapshots", model="roas_predictor", window_end=WEEK_END)
    assert len(weekly_rows) == 2

    # the "Model health" page and /metrics on the same store: baseline, kinds and "since"
    health = {m["name"]: m for m in model_health(feedback_db)["models"]}
    ctr = health["ctr_predictor"]
    assert ctr["baseline"] == report["baselines"]["ctr_predictor"]
    assert set(ctr["drift"]) == {"feature_drift", "prediction_drift", "concept_drift", "performance_degradation"}
    assert {(f["name"], f["since"]) for f in ctr["drift"]["feature_drift"]["findings"]} == {
        ("audience_size", shift_day), ("hook_type", shift_day)}
    assert ctr["drift"]["performance_degradation"]["findings"] == []
    page = render_model_health(model_health(feedback_db))
    assert "2026-09-20 → 2026-10-20" in page and "<b>Provisional</b>" not in page
    assert f"audience_size since {shift_day}" in page and "data-kind='performance_degradation'" in page
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(exposition(model_health(feedback_db)).decode())
               for s in family.samples}
    assert samples["self_learning_baseline_start_timestamp_seconds", (("model", "ctr_predictor"), (
        "source", "explicit"))] == pinned.start.timestamp()
    assert samples["self_learning_baseline_provisional", (("model", "roas_predictor"),)] == 0
    assert samples["self_learning_drift_severity", (("kind", "performance_degradation"), (
        "model", "ctr_predictor"))] == 0
    assert samples["self_learning_degraded_metrics", (("model", "ctr_predictor"),)] == 0

    # a baseline pinned after the checks: shown, with the one the latest checks were measured against
    moved = feedback_db.set_baseline("ctr_predictor", scenario_start + timedelta(days=5),
                                     scenario_start + timedelta(days=35))
    ctr = {m["name"]: m for m in model_health(feedback_db)["models"]}["ctr_predictor"]
    assert (ctr["baseline"]["start"], ctr["baseline"]["end"]) == (moved.start.isoformat(), moved.end.isoformat())
    assert ctr["baseline"]["measured_against"]["start"] == pinned.start.isoformat()
    assert "The latest checks shown were measured against" in render_model_health(model_health(feedback_db))


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
    assert "No A/B test was running for these models" in html

    # a test started on the period's last instant ran in it: the summary must not say none ran
    feedback_db.register_version("roas_predictor", "v1", status="archived")
    feedback_db.promote("roas_predictor", "v1")
    feedback_db.register_version("roas_predictor", "v2")
    feedback_db.start_ab_test(test_id="from-the-end", model="roas_predictor", champion_version="v1",
                              challenger_version="v2", config={"n_star": 1000.0, "seed": "e"}, started_at=WEEK_END)
    report = learning_report(feedback_db, period_start=WEEK_START, period_end=WEEK_END, models=["roas_predictor"])
    assert [t["test_id"] for t in report["ab_test_conclusions"]] == ["from-the-end"]
    assert "No A/B test was running" not in render_learning_report(report)
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


def test_a_young_model_shows_its_provisional_baseline(dag_bag, feedback_db):
    """Before a model has served its default baseline's 30 days nothing is pinned: the page and the
    report show the default its checks used, clipped to the days before the window, as provisional."""
    from self_learning.reporting import learning_report

    first_day = WEEK_END - timedelta(days=12)
    load(feedback_db, Scenario(days=12, rows_per_day=150, seed=8, end=WEEK_END, models=("roas_predictor",)),
         interval_end=WEEK_END)
    run(dag_bag.get_dag("self_learning_daily"), end=WEEK_END, models=["roas_predictor"])
    assert feedback_db.get_baseline("roas_predictor") is None  # pinned once its 30 days are complete
    # 5 baseline days cannot tell a weekday from a change: insufficient data, no drift alert
    drift = feedback_db.read_results("drift_reports", model="roas_predictor", window_end=WEEK_END)
    assert {r["status"] for r in drift} == {"insufficient_data"}
    assert not [a for a in feedback_db.check_alerts(until=WEEK_END, model="roas_predictor", include_suppressed=True)
                if a.alert_type.endswith("drift")]

    baseline = {m["name"]: m for m in model_health(feedback_db)["models"]}["roas_predictor"]["baseline"]
    assert (baseline["source"], baseline["provisional"], baseline["stored"]) == ("default", True, False)
    assert (baseline["start"], baseline["end"]) == (first_day.isoformat(), WEEK_START.isoformat())
    page = render_model_health(model_health(feedback_db))
    assert "2026-10-21 → 2026-10-26" in page and "default, provisional" in page and "<b>Provisional</b>" in page
    report = learning_report(feedback_db, period_start=WEEK_START, period_end=WEEK_END, models=["roas_predictor"])
    assert report["baselines"]["roas_predictor"] == baseline
