"""Window reads cost O(window), not O(history) (issue 18): the join of a window's predictions to
their outcomes looks each outcome up by its key instead of scanning every stored outcome, and on
PostgreSQL runs without JIT (0.8-0.9 s of compilation per query for nothing at these sizes)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from support.stores import DAY, NEXT_DAY, prediction_frame

WINDOW_ROWS = 1_000
HISTORY_DAYS = 15  # the store holds 16x the window: a hash join would scan all of it


@pytest.fixture
def store_with_history(store):
    """One labelled day (the window) after HISTORY_DAYS labelled days of the same size."""
    frames = []
    for back in range(HISTORY_DAYS + 1):
        frame = prediction_frame(WINDOW_ROWS, seed=back, start=back * WINDOW_ROWS)
        frame["served_at"] -= pd.Timedelta(days=back)
        frames.append(frame)
    rows = pd.concat(frames, ignore_index=True)
    assert store.register_predictions(rows).inserted == len(rows)
    outcomes = pd.DataFrame({"prediction_id": rows["prediction_id"], "actual_value": rows["predicted_value"] + 1.0,
                             "observed_at": rows["served_at"] + pd.Timedelta(hours=2)})
    assert store.record_outcomes(outcomes).inserted == len(rows)
    with store.engine.begin() as conn:  # planner statistics as after autovacuum / a big load
        conn.exec_driver_sql("ANALYZE")
    return store


def test_a_days_read_looks_outcomes_up_by_key_instead_of_scanning_them(store_with_history):
    plan = store_with_history.window_read_plan("roas_predictor", DAY, NEXT_DAY, analyze=True)
    if store_with_history.is_postgres:
        assert "Seq Scan on outcomes" not in plan, plan
        assert "Index Scan using outcomes_pkey on outcomes" in plan or "Index Only Scan" in plan, plan
        assert "jit = 'off'" in plan and "JIT:" not in plan, plan  # EXPLAIN (SETTINGS) lists the read's settings
    else:
        assert "SCAN outcomes" not in plan, plan
        assert any(line.startswith("SEARCH outcomes USING") for line in plan.splitlines()), plan
        assert any(line.startswith("SEARCH predictions USING INDEX ix_predictions_model_served_at")
                   for line in plan.splitlines()), plan


def test_the_read_returns_the_window_alone_labelled_and_unlabelled(store_with_history):
    window = store_with_history.read_window("roas_predictor", DAY, NEXT_DAY)
    assert len(window) == WINDOW_ROWS
    assert window["served_at"].min() >= pd.Timestamp(DAY) and window["served_at"].max() < pd.Timestamp(NEXT_DAY)
    np.testing.assert_allclose(window["actual_value"] - window["predicted_value"], 1.0)
    store_with_history.register_predictions(prediction_frame(10, seed=99, start=10**6))  # unlabelled, same day
    everything = store_with_history.read_window("roas_predictor", DAY, NEXT_DAY, labelled_only=False)
    assert len(everything) == WINDOW_ROWS + 10 and everything["actual_value"].isna().sum() == 10
    plan = store_with_history.window_read_plan("roas_predictor", DAY - timedelta(days=1), DAY, labelled_only=False)
    assert "Seq Scan on outcomes" not in plan and "SCAN outcomes" not in plan, plan
