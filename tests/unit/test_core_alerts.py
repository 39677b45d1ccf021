"""The alert policy without a database: dedupe key, cooldown rule, findings of a window."""

from __future__ import annotations

import pytest
from self_learning.core.alerts import alert_key, alert_status, window_findings
from self_learning.core.retraining import RetrainThresholds


def test_alert_key_is_readable_and_unique_when_long():
    assert alert_key("m", "feature_drift", "x") == "m|feature_drift|x"
    long_a, long_b = alert_key("m", "t", "c" * 600), alert_key("m", "t", "c" * 599 + "d")
    assert len(long_a) <= 512 and long_a != long_b and long_a.startswith("m|t|ccc")
    with pytest.raises(ValueError, match=r"^model: "):
        alert_key("bad name", "t", "c")


@pytest.mark.parametrize(("severity", "earlier", "status"), [
    ("high", [], "open"), ("high", ["low", "medium"], "open"), ("high", ["high"], "suppressed"),
    ("medium", ["critical"], "suppressed"), ("low", ["low"], "suppressed")])
def test_a_repeat_is_suppressed_and_an_escalation_is_open(severity, earlier, status):
    assert alert_status(severity, earlier) == status


def test_an_alert_needs_a_severity():
    with pytest.raises(ValueError, match=r"^severity: "):
        alert_status("none", [])


def test_window_findings_turn_stored_results_into_alerts():
    drift = [
        {"kind": "feature_drift", "status": "ok", "severity": "high", "affected_features": ["x"],
         "result": {"statistical_tests": {"features": {"x": {"severity": "high", "kind": "numeric", "checks": {}}}},
                    "recommendation": "r"}},
        {"kind": "concept_drift", "status": "ok", "severity": "none", "affected_features": [], "result": {}},
        {"kind": "prediction_drift", "status": "insufficient_data", "severity": "high", "affected_features": [],
         "result": {}},
    ]
    patterns = [{"result": {"patterns": [
        {"feature": "c", "bucket": "a", "relative_effect": 0.3, "deviation": 1.5, "sample_count": 40},
        {"feature": "c", "bucket": "b", "relative_effect": 0.05, "deviation": -0.1, "sample_count": 40}]}}]
    findings = window_findings(drift, None, RetrainThresholds(), patterns)
    assert [(f["alert_type"], f["cause"], f["severity"]) for f in findings] == [
        ("feature_drift", "x", "high"), ("systematic_error", "c=a", "medium")]
    assert findings[1]["details"]["summary"].startswith("over-predicts where c=a")


def test_a_model_getting_worse_is_one_finding_naming_every_signal():
    """Degraded metrics are one finding at the worst metric's severity; concept drift of the same
    window is folded into it; concept drift alone stays its own finding."""
    row = {"kind": "performance_degradation", "status": "ok", "severity": "high",
           "affected_features": ["accuracy", "log_loss"],
           "result": {"recommendation": "High performance degradation since 2026-03-01: accuracy 0.8 -> 0.77",
                      "statistical_tests": {"metrics": {"accuracy": {"severity": "medium", "z": 3.1},
                                                        "log_loss": {"severity": "high", "z": 4.2},
                                                        "roc_auc": {"severity": "none", "z": 0.2}}}}}
    concept = {"kind": "concept_drift", "status": "ok", "severity": "critical", "affected_features": [],
               "result": {"recommendation": "Critical concept drift since 2026-03-01: mean loss 0.3 -> 0.5.",
                          "statistical_tests": {"pct_change": 66.0}}}
    findings = window_findings([row], None, RetrainThresholds(), [])
    assert [(f["alert_type"], f["cause"], f["severity"]) for f in findings] == [
        ("performance_degradation", "performance", "high")]
    assert set(findings[0]["details"]["metrics"]) == {"accuracy", "log_loss"}
    assert findings[0]["details"]["metrics"]["accuracy"]["z"] == 3.1
    both = window_findings([concept, row], None, RetrainThresholds(), [])
    assert [(f["alert_type"], f["cause"], f["severity"]) for f in both] == [
        ("performance_degradation", "performance", "critical")]
    assert both[0]["details"]["concept_drift"] == {"pct_change": 66.0}
    assert "concept drift" in both[0]["details"]["summary"]
    alone = window_findings([concept], None, RetrainThresholds(), [])
    assert [(f["alert_type"], f["cause"]) for f in alone] == [("concept_drift", "concept_drift")]


def test_systematic_errors_alert_only_below_the_alpha_spread_over_time():
    from self_learning.core.alerts import systematic_alpha

    alpha = systematic_alpha(365, 7)
    assert alpha == pytest.approx(0.2 * 7 / 365)
    patterns = [{"result": {"patterns": [
        {"feature": "c", "bucket": "a", "relative_effect": 0.3, "deviation": 1.5, "sample_count": 40,
         "p_adjusted": 0.01},
        {"feature": "c", "bucket": "b", "relative_effect": 0.3, "deviation": 1.5, "sample_count": 40,
         "p_adjusted": 0.001}]}}]
    findings = window_findings([], None, RetrainThresholds(), patterns, pattern_alpha=alpha)
    assert [f["cause"] for f in findings] == ["c=b"]
    with pytest.raises(ValueError, match=r"^false_alarm_days: "):
        systematic_alpha(0, 7)


def test_a_finding_reported_every_day_alerts_once_per_episode_and_again_when_worse_or_back():
    from datetime import UTC, datetime, timedelta

    from self_learning.core.alerts import repeat_status

    day0, cooldown = datetime(2026, 3, 1, tzinfo=UTC), timedelta(days=3)
    history: list[tuple[datetime, str, str]] = []

    def raise_(day: int, severity: str) -> str:
        end = day0 + timedelta(days=day)
        status = repeat_status(severity, history, window_end=end, cooldown=cooldown)
        history.append((end, severity, status))
        return status

    assert [raise_(day, "medium") for day in range(10)] == ["open"] + ["suppressed"] * 9  # one episode
    assert raise_(10, "high") == "open"  # worse: news
    assert raise_(11, "medium") == "suppressed"
    assert raise_(16, "medium") == "open"  # a gap of days without it: a new episode, past the cooldown
    assert raise_(18, "medium") == "suppressed"  # within the cooldown of day 16
    assert repeat_status("low", [], window_end=day0, cooldown=timedelta(0)) == "open"


def test_systematic_errors_of_classifiers_on_the_zero_one_loss_are_worded_in_error_rate_points():
    from self_learning.core.performance import ModelPerformance, MulticlassPerformance
    from self_learning.core.types import TaskKind

    common = dict(sample_count=500, label_coverage=1.0, provisional=False, model_type=None, model_version=None)
    # multiclass: the pattern is on the 0/1 loss centred on the window's error rate (1 - 0.78 = 0.22)
    multiclass = MulticlassPerformance(task_kind=TaskKind.MULTICLASS_CLASSIFICATION, accuracy=0.78, **common)
    pattern = {"feature": "platform", "bucket": "tiktok", "mean_error": 0.12, "deviation": 0.16,
               "relative_effect": 0.16 / 0.34, "sample_count": 120}  # 0.34 = mean |centred loss|
    (found,) = window_findings([], multiclass, RetrainThresholds(), [{"result": {"patterns": [pattern]}}])
    assert found["details"]["summary"] == ("errs more often where platform=tiktok (error rate 34% vs 18% "
                                           "elsewhere, n=120)")
    assert found["severity"] == "high"  # 0.16 / 0.22 = 73 % of the error rate (the ladder's 0.5 .. 1.0)
    without_mean = {k: v for k, v in pattern.items() if k != "mean_error"}
    (found,) = window_findings([], multiclass, RetrainThresholds(), [{"result": {"patterns": [without_mean]}}])
    assert "(error rate +16 points vs elsewhere, n=120)" in found["details"]["summary"]

    # a hard-label binary classifier: its signed error's deviation in points of the rows
    hard = ModelPerformance(task_kind=TaskKind.BINARY_CLASSIFICATION, accuracy=0.8, log_loss=None, **common)
    signed = {"feature": "platform", "bucket": "meta", "mean_error": 0.1, "deviation": 0.12, "relative_effect": 0.6,
              "sample_count": 90}
    (found,) = window_findings([], hard, RetrainThresholds(), [{"result": {"patterns": [signed]}}])
    assert found["details"]["summary"] == ("over-predicts where platform=meta (wrong 1s net of wrong 0s: 12 points "
                                           "of the rows above elsewhere; error rate 20% overall, n=90)")
    assert found["severity"] == "high"
    # a scored classifier (it has a log loss) keeps the MAE wording
    scored = ModelPerformance(task_kind=TaskKind.BINARY_CLASSIFICATION, accuracy=0.8, log_loss=0.4, **common)
    (found,) = window_findings([], scored, RetrainThresholds(), [{"result": {"patterns": [signed]}}])
    assert found["details"]["summary"] == "over-predicts where platform=meta (deviation 0.12, 60% of MAE, n=90)"
