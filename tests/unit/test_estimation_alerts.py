"""The ``estimated_performance`` rule (``core.estimation_alerts``) and its finding (``core.alerts``):
worse is positive for every metric, the CUSUM's threshold comes from the false-alarm budget, it
stays quiet on in-control days and alarms on a sustained drop, and an unreliable estimator's alarm
is no finding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from self_learning.core.alerts import estimated_finding
from self_learning.core.estimation_alerts import (
    ESTIMATED_BUDGET_SHARE,
    alert_metric,
    day_z,
    estimated_cusum,
    estimated_severity,
)
from self_learning.core.monitoring.cusum import threshold

DAYS = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=i) for i in range(60)]


def test_worse_is_positive_whichever_way_the_metric_points():
    assert day_z("roc_auc", 0.70, 0.75, 0.01) == pytest.approx(5.0)
    assert day_z("mae", 0.60, 0.50, 0.02) == pytest.approx(5.0)
    assert day_z("accuracy", 0.80, 0.75, 0.01) == pytest.approx(-5.0)
    assert day_z("mae", 0.5, 0.5, 0.0) is None and day_z("mae", None, 0.5, 0.1) is None
    assert alert_metric("binary_classification") == "roc_auc" and alert_metric("regression") == "mae"


def test_the_threshold_is_the_budget_share_of_the_false_alarm_days():
    verdict = estimated_cusum(DAYS[:3], [0.0, None, 0.5], k=1.0, false_alarm_days=365)
    assert verdict["h"] == pytest.approx(threshold(1.0, 365 / ESTIMATED_BUDGET_SHARE))
    assert verdict["days"] == 2 and verdict["alarm"] is False
    with pytest.raises(ValueError, match="zs"):
        estimated_cusum(DAYS[:2], [0.1], k=1.0, false_alarm_days=365)


def test_quiet_on_in_control_days_and_alarms_on_a_sustained_drop():
    rng = np.random.default_rng(0)
    alarms = 0
    for _ in range(40):  # 40 x 60 in-control days, N(0, 1) (the real z is narrower: conservative)
        alarms += estimated_cusum(DAYS, list(rng.normal(size=60)), k=1.0, false_alarm_days=365)["alarm"]
    assert alarms == 0
    drop = [0.0] * 57 + [3.0, 3.0, 3.0]  # three days 3 sd worse
    verdict = estimated_cusum(DAYS, drop, k=1.0, false_alarm_days=365)
    assert verdict["alarm"] is True and verdict["change_start"] == DAYS[57].isoformat()


def test_severity_is_high_only_when_the_whole_band_is_worse():
    assert estimated_severity("roc_auc", 0.70, 0.72, 0.68, 0.75) == "high"
    assert estimated_severity("roc_auc", 0.70, 0.76, 0.64, 0.75) == "medium"
    assert estimated_severity("mae", 0.70, 0.75, 0.65, 0.60) == "high"


def _row(*, alarm=True, suppressed=False, status="ok"):
    return {"result": {"status": status, "estimate": {"metrics": {"roc_auc": {"value": 0.7, "lower": 0.68,
                                                                                "upper": 0.72}}},
                       "reliability": {"reason": "reliable"},
                       "alert": {"alarm": alarm, "suppressed": suppressed, "metric": "roc_auc", "severity": "high",
                                 "summary": "estimated roc_auc 0.7", "cusum": 5.0, "h": 3.3, "k": 1.0}}}


def test_an_alarm_is_a_finding_marked_estimated_unless_the_estimator_is_unreliable():
    found = estimated_finding(_row())
    assert found["alert_type"] == "estimated_performance" and found["cause"] == "estimated:roc_auc"
    assert found["severity"] == "high" and found["details"]["estimated"] is True
    assert found["details"]["estimate"]["upper"] == 0.72
    assert estimated_finding(_row(suppressed=True)) is None
    assert estimated_finding(_row(alarm=False)) is None
    assert estimated_finding(_row(status="insufficient_data")) is None
