"""Run settings: where a run's window comes from, and params validation (no DAG runs here)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pytest
from self_learning.domain import DriftReport
from self_learning.drift import detect_feature_drift
from self_learning.operators import RunSettings, run_settings
from self_learning.performance import ModelPerformance, classification_performance

END = datetime(2026, 11, 1, tzinfo=UTC)


def context(params=None, start=None, end=None, run_after=END + timedelta(hours=5)):
    return {"params": params or {}, "data_interval_start": start, "data_interval_end": end,
            "dag_run": SimpleNamespace(run_after=run_after)}


def test_window_comes_from_the_data_interval():
    settings = run_settings(context(start=END - timedelta(days=1), end=END))
    assert (settings.interval_start, settings.window_end) == (END - timedelta(days=1), END)
    assert settings.current_start == END - timedelta(days=7)


def test_explicit_window_end_wins_and_naive_times_are_utc():
    settings = run_settings(context({"window_end": "2026-10-15T00:00:00", "current_window_days": 3},
                                    start=END - timedelta(days=1), end=END))
    assert settings.window_end == datetime(2026, 10, 15, tzinfo=UTC)
    assert settings.current_start == datetime(2026, 10, 12, tzinfo=UTC)


def test_manual_run_without_logical_date_uses_the_last_complete_day():
    settings = run_settings(context(run_after=datetime(2026, 11, 3, 14, 30, tzinfo=UTC)))
    assert settings.window_end == datetime(2026, 11, 3, tzinfo=UTC)
    # a cron-trigger style empty interval is not a window either
    settings = run_settings(context(start=END, end=END, run_after=END + timedelta(hours=1)))
    assert settings.window_end == END


@pytest.mark.parametrize(("params", "field"), [
    ({"window_end": "yesterday"}, "window_end"),
    ({"alpha": 0.7}, "alpha"),
    ({"alpha": True}, "alpha"),
    ({"current_window_days": 0}, "current_window_days"),
    ({"baseline_days": 2.5}, "baseline_days"),
    ({"feature_drift_severity": "huge"}, "feature_drift_severity"),
    ({"min_roc_auc": 1.5}, "min_roc_auc"),
    ({"min_labelled_outcomes": 0}, "min_labelled_outcomes"),
    ({"models": "roas_predictor"}, "models"),
])
def test_invalid_params_name_the_field(params, field):
    with pytest.raises(ValueError, match=rf"params\.{field}"):
        run_settings(context(params, start=END - timedelta(days=1), end=END))


def test_model_thresholds_override_run_params():
    settings = RunSettings(window_end=END, interval_start=END - timedelta(days=1))
    assert settings.for_model({"max_mape": 15.0, "alpha": 0.01}).max_mape == 15.0
    assert settings.for_model({"max_features": 800}) == settings  # the store's setting, not a run param
    with pytest.raises(ValueError, match="unknown keys"):
        settings.for_model({"max_mapee": 15.0})
    with pytest.raises(ValueError, match=r"params\.alpha"):
        settings.for_model({"alpha": 2})


def test_stored_results_round_trip():
    rng = np.random.default_rng(0)
    report = detect_feature_drift({"x": rng.normal(size=200)}, {"x": rng.normal(1, 1, size=200)}, detected_at=END)
    assert DriftReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report
    performance = classification_performance(rng.integers(0, 2, 300), rng.random(300), n_predicted=400)
    assert ModelPerformance.from_dict(json.loads(json.dumps(performance.to_dict()))) == performance


def test_retrain_settings_come_from_the_conf_or_the_form_and_are_validated():
    from self_learning.operators import retrain_settings

    run = SimpleNamespace(run_after=END + timedelta(hours=5), run_id="manual__1")
    triggered = retrain_settings({"params": {"model": "ctr_predictor", "request_id": "ctr@x", "reason": "drift",
                                             "window_end": END.isoformat()}, "dag_run": run})
    assert (triggered.model, triggered.request_id, triggered.window_end) == ("ctr_predictor", "ctr@x", END)
    manual = retrain_settings({"params": {"model": "roas_predictor", "ab_traffic_split": 0.3}, "dag_run": run})
    assert manual.request_id == "roas_predictor@manual:manual__1" and manual.window_end == END
    assert manual.ab_test == {"traffic_split": 0.3}
    for params, match in (({}, "params.model"), ({"model": "m", "training_window_days": 0}, "training_window_days"),
                          ({"model": "m", "holdout_share": 1.0}, "holdout_share"),
                          ({"model": "m", "ab_traffic_split": 1.5}, "params.ab_traffic_split"),
                          ({"model": "m", "ab_unit": "user"}, "params.ab_unit")):
        with pytest.raises(ValueError, match=match):
            retrain_settings({"params": params, "dag_run": run})


@pytest.mark.parametrize(("params", "field"), [
    ({"alpha": 2}, "alpha"),
    ({"window_end": "0001-01-02"}, "params.window_end"),
    ({"window_end": "9999-12-31T00:00:00"}, "params.window_end"),
    ({"window_end": "yesterday"}, "params.window_end"),
])
def test_invalid_params_fail_at_once_naming_the_field(params, field):
    """A bad param is no transient failure: AirflowFailException skips the retries with backoff."""
    from airflow.sdk.exceptions import AirflowFailException
    from self_learning.operators import retrain_settings

    for settings_of in (run_settings, retrain_settings):
        if settings_of is retrain_settings and "window_end" not in params:
            continue
        with pytest.raises(AirflowFailException, match=field):
            settings_of(context({"model": "ctr_predictor", **params}, start=END - timedelta(days=1), end=END))
