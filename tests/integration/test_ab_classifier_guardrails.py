"""A classifier's A/B look with the default guardrails (accuracy, ROC AUC, calibration error) through
the store, on PostgreSQL and SQLite: a hard-label classifier's calibration guardrail is skipped
saying why (not an error, and it blocks nothing); with campaign units ROC AUC is compared per unit."""

from __future__ import annotations

import numpy as np
import pandas as pd
from self_learning import lifecycle
from self_learning.ab_testing import ABTestConfig
from self_learning.core.ab_metrics import NO_CALIBRATION
from support.stores import DAY, NEXT_DAY

MODEL = "hook_classifier"


def serve(store, *, hard: bool, unit: str = "prediction", seed: int = 5):
    """v2 (challenger) predicts the outcome better than v1; 800 outcomes an arm in 40 campaigns."""
    rng = np.random.default_rng(seed)
    for version in ("v1", "v2"):
        store.register_version(MODEL, version, status="archived")
    store.promote(MODEL, "v1")
    test = lifecycle.ab_test_model_versions(store, MODEL, "v1", "v2", started_at=DAY, config=ABTestConfig(
        unit=unit, min_days=0.5, min_outcomes_per_arm=100))
    n = 1_600
    arm = np.repeat(["v1", "v2"], n // 2)
    signal = rng.normal(size=n)
    actual = (rng.random(n) < 1 / (1 + np.exp(-2 * signal))).astype(float)
    noise = np.where(arm == "v1", 1.5, 0.3) * rng.normal(size=n)
    score = 1 / (1 + np.exp(-2 * (signal + noise)))
    rows = pd.DataFrame({"prediction_id": [f"h{i}" for i in range(n)], "model": MODEL, "model_version": arm,
                         "predicted_value": (score >= 0.5).astype(float) if hard else score,
                         "unit_id": [f"{a}-c{i % 40}" for a, i in zip(arm, range(n), strict=True)],
                         "served_at": pd.Timestamp(DAY) + pd.to_timedelta(np.tile(np.arange(n // 2), 2) * 100,
                                                                          unit="s"),
                         "hook_score": rng.random(n)})
    assert not store.register_predictions(rows).rejected
    store.record_outcomes(pd.DataFrame({"prediction_id": rows["prediction_id"], "actual_value": actual}))
    return lifecycle.get_ab_test_results(store, test["test_id"], as_of=NEXT_DAY)


def test_a_hard_label_classifier_skips_the_calibration_guardrail(store):
    result = serve(store, hard=True)
    assert result.metric == "log_loss"  # its 0/1 loss
    checks = {g.metric: g for g in result.guardrails}
    assert set(checks) == {"accuracy", "roc_auc", "calibration_error"}
    assert checks["calibration_error"].skipped == NO_CALIBRATION and checks["calibration_error"].holds
    assert result.decision.action == "promote", result.decision.reasons
    assert f"guardrail calibration_error: skipped, {NO_CALIBRATION}" in result.decision.reasons
    look = lifecycle.select_winning_model(store, result.test_id, as_of=NEXT_DAY)
    assert (look.action, look.champion_version) == ("promote", "v2")
    stored = store.get_ab_test(result.test_id).result["looks"][-1]["guardrails"]
    assert stored["calibration_error"]["skipped"] == NO_CALIBRATION and stored["accuracy"]["skipped"] is None


def test_campaign_units_compare_roc_auc_and_calibration_per_unit(store):
    result = serve(store, hard=False, unit="campaign")
    checks = {g.metric: g for g in result.guardrails}
    assert checks["roc_auc"].comparison.champion.n == 40 and checks["roc_auc"].comparison.champion.rows == 800
    assert checks["calibration_error"].skipped is None and checks["calibration_error"].comparison.champion.n == 40
    assert checks["calibration_error"].allowed > 0
