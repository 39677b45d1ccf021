"""What a model owner reads on the report and the Model health page (issue 20): charts whose axis
starts at zero (or spans the metric's range) with the retrain limit and the baseline drawn, human
metric names with units, an empty state instead of a one-point chart, alert details as text, the
incident per model (first and last seen, severity by day, checks involved, retrain request ->
candidate -> A/B test -> outcome), open alerts once per cause, and per drifted feature its
baseline-vs-current distribution. Views are built from record objects as the store returns them;
pages are parsed back with the standard library's parser where cells matter."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from self_learning.core.records import ABTestRecord, AlertRecord, RetrainRequestRecord
from self_learning.core.types import DriftReport, DriftType, Severity
from self_learning.loop import charts
from self_learning.loop.analysis import feature_distribution, with_distributions
from self_learning.loop.figures import METRIC_FIGURES
from self_learning.loop.incidents import build_incident
from self_learning.loop.report_html import render_learning_report, render_model_health
from self_learning.loop.reporting import feature_distributions, metric_references, open_alerts_by_cause
from support.html import Cells

END = datetime(2026, 11, 2, tzinfo=UTC)


def day(n: int) -> str:
    return (END - timedelta(days=n)).isoformat()


def svg_texts(svg: str) -> list[str]:
    """The text elements of a matplotlib SVG (svg.fonttype 'none' keeps text as text)."""
    return [re.sub(r"\s+", " ", t).strip() for t in re.findall(r"<text[^>]*>(.*?)</text>", svg, flags=re.S)]


# -- charts ------------------------------------------------------------------------------------

def test_a_metric_chart_starts_at_zero_and_draws_the_limit_and_the_baseline():
    mape = METRIC_FIGURES["mape"]
    svg = charts.line_chart("trend", "MAPE by day", {"mape": [(day(2), 21.0), (day(1), 21.4), (day(0), 21.7)]},
                            y_label=mape.label, axis=mape.axis, shown=mape.shown,
                            references=[charts.Reference("retrain above", 30.0),
                                        charts.Reference("on the baseline", 21.5, "baseline")])
    texts = svg_texts(svg)
    assert svg.startswith('<svg class="chart" data-chart="trend"') and "<?xml" not in svg and "<metadata" not in svg
    assert "0" in texts and "MAPE (%)" in texts  # a 0.7-point change on an axis from zero, with its unit
    assert "retrain above: 30.0%" in texts and "on the baseline: 21.5%" in texts
    assert "window end (UTC), 2026" in texts
    assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")  # no font, no image, no xlink


def test_a_bounded_metric_spans_its_range_and_a_share_is_shown_in_percent():
    auc = METRIC_FIGURES["roc_auc"]
    svg = charts.line_chart("trend", "ROC AUC by day", {"roc_auc": [(day(1), 0.74), (day(0), 0.73)]},
                            y_label=auc.label, axis=auc.axis, shown=auc.shown)
    texts = svg_texts(svg)
    assert "0.5" in texts and "1.0" in texts and "ROC AUC (0.5 chance, 1 perfect)" in texts
    recall = charts.line_chart("recall", "Recall", {"a": [(day(1), 0.5), (day(0), 0.6)]}, y_label="recall (%)",
                               axis=(0.0, 1.0), share=True)
    assert "100" in svg_texts(recall) and "0" in svg_texts(recall)


@pytest.mark.parametrize(("points", "expected"), [
    ([], "nothing stored yet"), ([(day(0), 0.25)], "one stored window, no trend yet: 0.25 (2026-11-02)")])
def test_fewer_than_two_windows_give_an_empty_state_not_a_chart(points, expected):
    html = charts.line_chart("trend", "MAE by day", {"mae": points}, y_label="MAE (target units)")
    assert "<svg" not in html and "data-chart='trend-empty'" in html and expected in html


def test_the_timeline_names_suppressed_dots_in_its_legend():
    svg = charts.timeline_chart("incident-severity", "Alert severity by day", [day(1), day(0)],
                                ["low", "medium", "high", "critical"],
                                [(day(1), "high", False), (day(0), "high", True)],
                                colours={"low": "#fff", "medium": "#ffc", "high": "#f70", "critical": "#b00"})
    texts = svg_texts(svg)
    assert "suppressed repeat (hollow)" in texts and "alert raised (filled)" in texts and "critical" in texts


# -- names and units ---------------------------------------------------------------------------

def health(model: dict) -> dict:
    base = {"name": "roas", "task_kind": "regression", "champion": "v1", "window_end": day(0), "current": {},
            "trend": [], "baseline": None, "drift": {}, "open_alerts": [], "ab_tests": []}
    return {"latest_reports": {}, "models": [{**base, **model}]}


def test_metrics_have_human_names_and_units_and_mape_and_wape_are_both_percent():
    row = {"sample_count": 500, "label_coverage": 0.97, "provisional": False, "mae": 0.56, "r2": 0.41, "mape": 21.56,
           "wape": 0.2434}
    page = render_model_health(health({"current": {"*": row}}))
    table = Cells(page).tables["metrics"]
    assert table[0] == ["version", "labelled rows", "label coverage (%)", "MAE (target units)", "R²", "MAPE (%)",
                        "WAPE (%)"]
    assert table[1][3:] == ["0.56", "0.41", "21.6%", "24.3%"]
    assert "ROC_AUC" not in page and ">R2<" not in page and "Mean absolute percentage error" in page
    finding = {"kind": "performance_degradation", "name": "roc_auc", "severity": "medium", "since": "2026-10-28"}
    degraded = {"performance_degradation": {"window_end": day(0), "severity": "medium", "status": "ok",
                                            "affected_features": ["roc_auc"], "findings": [finding]}}
    assert "ROC AUC since 2026-10-28" in render_model_health(health({"drift": degraded}))


def test_metric_references_take_the_models_limit_and_the_baseline_value():
    degradation = {"statistical_tests": {"metrics": {"mape": {"segment": {"reference_value": 21.5}}}}}
    references = metric_references({"max_mape": 25.0}, degradation)
    assert references["mape"] == [{"kind": "limit", "label": "retrain above", "value": 25.0},
                                  {"kind": "baseline", "label": "on the baseline", "value": 21.5}]
    assert metric_references({}, None) == {"mape": [{"kind": "limit", "label": "retrain above", "value": 30.0}]}


# -- incidents ---------------------------------------------------------------------------------

def alert(id_: int, n: int, alert_type: str, cause: str, severity: str, status: str, details=None) -> AlertRecord:
    return AlertRecord(id=id_, dedupe_key=f"roas|{alert_type}|{cause}", model="roas", alert_type=alert_type,
                       severity=severity, status=status, details=details or {"summary": f"{cause} {severity}"},
                       window_end=END - timedelta(days=n))


CHECKS = {"mean_up": {"flagged": True, "cusum": 12.5, "threshold": 2.4, "effect_name": "mean_shift_std",
                      "effect": 1.1, "change_start": day(6)},
          "distribution": {"flagged": False, "cusum": 0.3, "threshold": 2.4}}
ALERTS = [alert(1, 4, "feature_drift", "spend", "high", "open",
                {"summary": "feature 'spend' drifted", "feature": "spend", "checks": CHECKS}),
          alert(2, 3, "feature_drift", "spend", "high", "suppressed",
                {"summary": "feature 'spend' drifted", "feature": "spend", "checks": CHECKS}),
          alert(3, 2, "prediction_drift", "prediction_drift", "low", "open"),
          alert(4, 1, "prediction_drift", "prediction_drift", "medium", "open")]
REQUEST = RetrainRequestRecord(request_id="roas@1", model="roas", reasons=["feature drift"], status="done",
                               window_end=END - timedelta(days=4), result_version="r2",
                               causes={"feature_drift": "high"})
TEST = ABTestRecord(test_id="roas-r2", model="roas", champion_version="v1", challenger_version="r2", config={},
                    status="running", result={"looks": [{}, {}], "latest": {"decision": {"action": "continue"}}},
                    started_at=END - timedelta(days=3))


def test_an_incident_has_one_line_per_cause_with_first_and_last_seen_and_its_checks():
    incident = build_incident("roas", ALERTS, [REQUEST], [TEST], {"r2": "challenger"})
    assert (incident["first_seen"], incident["last_seen"], incident["worst"], incident["open"]) == (
        day(4), day(1), "high", True)
    spend, prediction = incident["causes"]
    assert (spend["title"], spend["first_seen"], spend["last_seen"], spend["days"]) == (
        "feature drift of spend", day(4), day(3), 2)
    assert spend["timeline"] == [(day(4), "high", "open"), (day(3), "high", "suppressed")]
    assert spend["involved"] == [f"spend · mean_up: CUSUM 12.5 over its threshold 2.4, mean_shift_std 1.1, "
                                 f"since {day(6)[:10]}"]  # the unflagged check is not named
    assert (prediction["severity"], prediction["worst"], prediction["days"]) == ("medium", "medium", 2)
    (action,) = incident["actions"]
    assert action["candidate"] == {"version": "r2", "status": "challenger"}
    assert action["ab_test"]["status"] == "running" and action["ab_test"]["looks"] == 2
    assert action["outcome"] == "A/B test roas-r2 running since 2026-10-30 (2 looks, latest decision: continue)"
    assert incident["timeline"][1] == (day(3), "high", True)


def test_degraded_metrics_are_named_with_their_units_in_the_incident():
    details = {"summary": "worse", "metrics": {"mape": {"severity": "high", "change_start": day(5), "segment": {
        "reference_value": 21.56, "current_value": 30.2}}, "wape": {"severity": "medium", "segment": {
        "reference_value": 0.2, "current_value": 0.25}}}}
    degraded = alert(9, 1, "performance_degradation", "performance", "high", "open", details)
    (cause,) = build_incident("roas", [degraded], [], [], {})["causes"]
    assert cause["title"] == "performance degradation"
    assert cause["involved"] == [f"MAPE (high): 21.6% on the baseline → 30.2% now, since {day(5)[:10]}",
                                 "WAPE (medium): 20.0% on the baseline → 25.0% now"]


def test_a_promoted_candidate_ends_the_chain_with_its_promotion():
    promoted = ABTestRecord(test_id="roas-r2", model="roas", champion_version="v1", challenger_version="r2", config={},
                            status="promoted", started_at=END - timedelta(days=3), ended_at=END)
    (action,) = build_incident("roas", ALERTS, [REQUEST], [promoted], {"r2": "champion"})["actions"]
    assert action["outcome"] == "r2 promoted to champion on 2026-11-02 after A/B test roas-r2"
    waiting = RetrainRequestRecord(request_id="roas@2", model="roas", reasons=[], status="requested",
                                   window_end=END - timedelta(days=1))
    before = RetrainRequestRecord(request_id="roas@0", model="roas", reasons=[], status="done",
                                  window_end=END - timedelta(days=20))
    actions = build_incident("roas", ALERTS, [before, waiting], [], {})["actions"]
    assert [(a["request_id"], a["outcome"]) for a in actions] == [("roas@2", "waiting for a retrain run")]


def test_open_alerts_show_a_cause_once_at_its_newest_severity():
    shown = open_alerts_by_cause([a for a in ALERTS if a.status == "open"])
    assert [(a["type"], a["severity"], a["open_days"]) for a in shown] == [
        ("feature_drift", "high", 1), ("prediction_drift", "medium", 2)]
    assert shown[1]["first_open"] == day(2) and shown[1]["earlier_severities"] == ["low"]
    page = render_model_health(health({"open_alerts": shown}))
    assert "Open alerts (2 causes)" in page and "(open since 2026-10-31, 2 days; earlier at low)" in page


def test_the_incident_section_says_since_when_why_and_what_was_done_as_text():
    incident = build_incident("roas", ALERTS, [REQUEST], [TEST], {"r2": "challenger"})
    page = render_model_health(health({"incident": incident}))
    section = page.split("data-incident='roas'")[1].split("</section>")[0]
    assert "Incident: open · first seen 2026-10-29 · last seen 2026-11-01 · worst" in section
    causes = Cells(page).tables["incident-causes"]
    assert causes[0][:4] == ["cause", "first seen", "last seen", "days alerted"]
    assert causes[1][:5] == ["feature drift of spend", "2026-10-29", "2026-10-30", "2",
                             "10-29 high, 10-30 high (suppressed)"]
    assert "mean_up: CUSUM 12.5 over its threshold 2.4" in causes[1][6]
    actions = re.sub(r"<[^>]+>", "", section.split("<ol class='actions'>")[1].split("</ol>")[0])
    assert ("2026-10-29: retrain request done for feature_drift (high) → candidate r2 (challenger) → A/B test "
            "roas-r2 running (2 looks, continue) → outcome: A/B test roas-r2 running since 2026-10-30") in actions
    assert 'data-chart="incident-severity"' in section and "suppressed repeat (hollow)" in section


def test_a_report_lists_every_alert_as_text_with_suppressed_repeats_marked():
    report = {"period": {"start": day(7), "end": day(0)}, "models": ["roas"], "performance": {}, "drift_results": {},
              "error_distribution": {}, "systematic_error_patterns": {}, "retraining_recommendations": {},
              "baselines": {}, "ab_test_conclusions": [], "alerts": {"roas": [
                  {"window_end": a.window_end.isoformat(), "type": a.alert_type, "severity": a.severity,
                   "status": a.status, "summary": a.summary} for a in ALERTS]}}
    page = render_learning_report(report)
    rows = Cells(page).tables["alerts"]
    assert rows[2] == ["2026-10-30", "high", "feature drift", "suppressed (repeat of an alerted cause)",
                       "feature 'spend' drifted"]
    assert "No A/B test was running for these models at any time in this period" in page


# -- distributions -----------------------------------------------------------------------------

def test_a_numeric_distribution_cuts_bins_at_the_baselines_quantiles():
    rng = np.random.default_rng(3)
    reference, current = pd.Series(rng.lognormal(size=2000)), pd.Series(rng.lognormal(1.0, size=500))
    dist = feature_distribution(reference, current, "numeric")
    assert dist["kind"] == "numeric" and len(dist["labels"]) == 20 and len(dist["edges"]) == 21
    assert sum(dist["reference"]) == 2000 and sum(dist["current"]) == 500
    assert max(dist["reference"]) - min(dist["reference"]) <= 2  # 5 % of the baseline's rows per bin
    assert dist["current"][-1] > 5 * dist["reference"][-1] / 4  # the shifted window piles into the top bins
    assert dist["beyond"] == int((current > reference.max()).sum() + (current < reference.min()).sum())


def test_a_categorical_distribution_keeps_the_top_categories_and_other():
    reference = pd.Series(list("abcdefghijkl") * 10 + [None])
    current = pd.Series(["a"] * 50 + ["z"] * 10)
    dist = feature_distribution(reference, current, "categorical")
    assert dist["labels"][0] == "a" and dist["labels"][-1] == "(other)" and len(dist["labels"]) == 11
    assert dist["current"][0] == 50 and dist["missing"] == {"reference": 1, "current": 0}
    assert sum(dist["reference"]) == 120 and sum(dist["current"]) == 60
    few = feature_distribution(pd.Series([0, 1, 2, 1]), pd.Series([1, 1, 5]), "numeric")
    assert (few["kind"], few["labels"], few["current"], few["beyond"]) == ("values", ["0", "1", "2"], [0, 2, 0], 1)


def test_only_drifted_features_get_a_distribution_stored():
    from self_learning.core.monitoring import MonitoringResult
    from self_learning.core.monitoring.results import BaselineCalibration

    entries = {"spend": {"drifted": True, "severity": "high", "since": "2026-10-28", "checks": {}},
               "platform": {"drifted": False, "severity": "none", "checks": {}}}
    report = DriftReport(drift_type=DriftType.DATA_DRIFT, severity=Severity.HIGH, affected_features=["spend"],
                         statistical_tests={"features": entries}, recommendation="")
    result = MonitoringResult(day_statistics=[], reports={"feature_drift": report},
                              calibration=BaselineCalibration(checks={}, baseline_days=30, baseline_rows=10),
                              details={"feature_window_start": day(7), "window_end": day(0)})
    served = pd.to_datetime([day(10), day(5), day(3), day(1)])
    current = pd.DataFrame({"served_at": served, "spend": [100.0, 1.0, 2.0, 3.0], "platform": list("abab")})
    reference = pd.DataFrame({"spend": np.arange(40.0), "platform": list("ab") * 20})
    stored = with_distributions(result, reference, current, {"spend": "numeric", "platform": "categorical"})
    features = stored.reports["feature_drift"].to_dict()["statistical_tests"]["features"]
    assert "distribution" not in features["platform"] and "distribution" not in entries["spend"]  # not mutated
    assert features["spend"]["distribution"]["rows"] == {"reference": 40, "current": 3}  # the feature window only
    shown = feature_distributions(stored.reports["feature_drift"].to_dict())
    assert list(shown) == ["spend"] and shown["spend"]["since"] == "2026-10-28"
    page = render_model_health(health({"distributions": shown}))
    figure = page.split("data-feature='spend'")[1]
    assert 'data-chart="distribution"' in figure and "share of rows (%)" in figure
    assert "<b>spend</b>: 40 baseline rows, 3 current rows; the largest change is in" in page
