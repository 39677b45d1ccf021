"""The daily analysis against the pinned baseline (``loop.analysis``) on a real store: the
baseline's calibration is computed once and cached with it, and a run with the cached one gives
exactly the verdict of a run that computes it; moving the baseline recomputes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from self_learning.loop.analysis import analyse_recent, calibration_key, monitor_settings
from self_learning.settings import RunSettings
from self_learning.store import FeedbackStore
from self_learning.synthetic import Scenario, generate

END = datetime(2026, 11, 1, tzinfo=UTC)
MODEL = "roas_predictor"


def test_the_cached_calibration_gives_the_same_verdict_and_moves_with_the_baseline(feedback_url):
    store = FeedbackStore.from_url(feedback_url)
    data = generate(Scenario(days=45, rows_per_day=200, seed=21, end=END, models=(MODEL,), feature_drift_day=41))
    for spec in data.models:
        store.register_model(spec)
    store.register_predictions(data.predictions)
    store.record_outcomes(data.outcomes_received(end=END))
    spec = store.get_model(MODEL)
    settings = RunSettings(window_end=END, interval_start=END - timedelta(days=1)).for_model(spec.thresholds)
    kinds = {key: kind for key, (kind, _) in store.feature_registry(MODEL).items()}

    def verdict():
        _, result, baseline, _ = analyse_recent(store, spec, settings, kinds, set_by="test")
        return result, baseline

    computed, baseline = verdict()  # pins the default baseline (its 30 days are complete) and caches
    key = calibration_key(baseline, monitor_settings(settings))
    assert store.baseline_calibration(MODEL, key) == computed.calibration.to_dict()
    cached, _ = verdict()
    assert [s.to_dict() for s in cached.day_statistics] == [s.to_dict() for s in computed.day_statistics]
    assert {k: r.to_dict() for k, r in cached.reports.items()} == {k: r.to_dict() for k, r in computed.reports.items()}
    assert computed.reports["feature_drift"].affected_features  # the drift of day 41 is found either way

    store.set_baseline(MODEL, baseline.start + timedelta(days=2), baseline.end)
    moved, moved_baseline = verdict()
    assert moved_baseline.start == baseline.start + timedelta(days=2)
    assert store.baseline_calibration(MODEL, key) is None  # the old dates' calibration went
    assert store.baseline_calibration(MODEL, calibration_key(moved_baseline, monitor_settings(settings))) \
        == moved.calibration.to_dict()
