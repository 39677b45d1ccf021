"""An outcome's business value (migration 0010) through the store on PostgreSQL and SQLite: written
by every outcome path (single, bulk, inbox), validated naming the field, kept in the history of a
correction, returned by window reads; and an A/B test judged on it."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from self_learning import lifecycle
from self_learning.ab_testing import ABTestConfig
from self_learning.core.types import Status
from support.stores import DAY, NEXT_DAY, downgrade, prediction_frame, row_count

MODEL = "roas_predictor"


def test_outcomes_carry_a_business_value_into_the_window(store):
    frame = prediction_frame(1_500)  # > THREADED_COPY_ROWS: PostgreSQL's threaded COPY path too
    assert not store.register_predictions(frame).rejected
    values = np.where(np.arange(1_500) % 3 == 0, np.nan, np.arange(1_500) * 0.25)
    report = store.record_outcomes(pd.DataFrame({"prediction_id": frame["prediction_id"], "actual_value": 1.0,
                                                 "business_value": values}))
    assert (report.inserted, report.rejected) == (1_500, [])
    # an outcome sent without the column carries none
    pid = store.register_prediction(MODEL, 2.0, {"spend": 1.0}, served_at=DAY + timedelta(hours=1))
    assert store.record_outcome(pid, 2.5) == "recorded"
    single = store.register_prediction(MODEL, 2.0, {"spend": 1.0}, served_at=DAY + timedelta(hours=2))
    assert store.record_outcome(single, 2.5, business_value=-3.75) == "recorded"  # a loss is a value too
    window = store.read_window(MODEL, DAY, NEXT_DAY, with_ids=True).set_index("prediction_id")
    assert window["business_value"].dtype == np.float64
    expected = pd.Series(values, index=frame["prediction_id"])
    np.testing.assert_array_equal(window.loc[expected.index, "business_value"].to_numpy(), expected.to_numpy())
    assert np.isnan(window.at[pid, "business_value"]) and window.at[single, "business_value"] == -3.75
    # unlabelled rows read with NaN, labelled ones keep their column order (error after observed_at)
    everything = store.read_window(MODEL, DAY, NEXT_DAY, labelled_only=False)
    assert list(everything.columns[4:8]) == ["actual_value", "observed_at", "error", "business_value"]


def test_a_changed_business_value_is_a_correction_kept_in_the_history(store):
    pid = store.register_prediction(MODEL, 2.0, {"spend": 1.0}, served_at=DAY + timedelta(hours=1))
    assert store.record_outcome(pid, 2.5, business_value=10.0) == "recorded"
    assert store.record_outcome(pid, 2.5, business_value=10.0) == "unchanged"
    assert store.record_outcome(pid, 2.5, business_value=12.5) == "corrected"
    (old,) = store.outcome_history_of(pid)
    assert (old["actual_value"], old["business_value"], old["revision"]) == (2.5, 10.0, 1)
    assert store.read_window(MODEL, DAY, NEXT_DAY)["business_value"].tolist() == [12.5]


@pytest.mark.parametrize(("value", "reason"), [("3.5", "must be a number"), (float("inf"), "must be finite"),
                                               (True, "must be a number")])
def test_a_bad_business_value_is_refused_naming_the_field(store, value, reason):
    pid = store.register_prediction(MODEL, 2.0, {"spend": 1.0}, served_at=DAY + timedelta(hours=1))
    with pytest.raises(ValueError, match=f"^business_value: {reason}"):
        store.record_outcome(pid, 2.5, business_value=value)
    report = store.record_outcomes([{"prediction_id": pid, "actual_value": 2.5, "business_value": value},
                                    {"prediction_id": "other", "actual_value": 1.0, "business_value": 4.0}])
    assert report.inserted == 1 and [(e.row, e.field) for e in report.rejected] == [(0, "business_value")]
    repeated = store.record_outcomes([{"prediction_id": pid, "actual_value": 2.5, "business_value": 1.0},
                                      {"prediction_id": pid, "actual_value": 2.5, "business_value": 2.0}])
    assert [(e.row, e.field) for e in repeated.rejected] == [(1, "business_value")]
    assert row_count(store, "outcomes") == 2


def test_the_inbox_carries_the_business_value(store):
    frame = prediction_frame(20)
    store.register_predictions(frame)
    inbox = pd.DataFrame({"prediction_id": frame["prediction_id"], "actual_value": 1.0,
                          "business_value": [float(i) if i % 2 else None for i in range(20)],
                          "received_at": DAY + timedelta(hours=23)})
    assert store.enqueue_outcomes(inbox).rejected == []
    bad = store.enqueue_outcomes([{"prediction_id": "p0", "actual_value": 1.0, "business_value": "x"}])
    assert [e.field for e in bad.rejected] == ["business_value"]
    assert store.read_outcome_inbox(DAY, NEXT_DAY)["business_value"].isna().sum() == 10
    assert store.pull_outcome_inbox(NEXT_DAY).inserted == 20
    window = store.read_window(MODEL, DAY, NEXT_DAY, with_ids=True).set_index("prediction_id")
    assert window.loc["p3", "business_value"] == 3.0 and np.isnan(window.loc["p4", "business_value"])


def test_migration_0010_goes_down_and_up(store):
    frame = prediction_frame(5)
    store.register_predictions(frame)
    store.record_outcomes(pd.DataFrame({"prediction_id": frame["prediction_id"], "actual_value": 2.0,
                                        "business_value": 7.0}))
    downgrade(store, "0009")
    for table in ("outcomes", "outcome_history", "outcome_inbox"):
        assert "business_value" not in {c["name"] for c in sa.inspect(store.engine).get_columns(table)}
    assert row_count(store, "outcomes") == 5 and store.count_orphan_outcomes() == 0  # the view still works
    assert store.ensure_schema() == "0012"
    window = store.read_window(MODEL, DAY, NEXT_DAY)
    assert window["actual_value"].tolist() == [2.0] * 5 and window["business_value"].isna().all()
    assert store.record_outcome("p0", 2.0, business_value=8.0) == "corrected"


def serve_arms(store, *, challenger_value: float, values: bool = True, seed: int = 3):
    """A regression test of v1 vs v2 (same predictions) with 30 campaigns an arm, 20 outcomes each:
    revenue per outcome about 10 for v1 and ``challenger_value`` for v2."""
    rng = np.random.default_rng(seed)
    for version in ("v1", "v2"):
        store.register_version(MODEL, version, status="archived")
    store.promote(MODEL, "v1")
    before = prediction_frame(300, seed=seed, start=10_000)  # the champion's day before: what the plan uses
    before["served_at"] -= pd.Timedelta(days=1)
    store.register_predictions(before)
    store.record_outcomes(pd.DataFrame({"prediction_id": before["prediction_id"], "actual_value": 1.0,
                                        "business_value": rng.normal(10, 3, 300) if values else np.nan}))
    test = lifecycle.ab_test_model_versions(store, MODEL, "v1", "v2", started_at=DAY, config=ABTestConfig(
        unit="campaign", primary_metric="business_value", guardrails=[], min_days=0.5, min_outcomes_per_arm=100))
    rows = prediction_frame(1_200, seed=seed)
    arm = np.repeat(["v1", "v2"], 600)
    rows["model_version"] = arm
    rows["unit_id"] = [f"{a}-c{i // 20}" for a, i in zip(arm, range(1_200), strict=True)]
    rows["served_at"] = pd.Timestamp(DAY) + pd.to_timedelta(np.tile(np.arange(600) * 120 + 60, 2), unit="s")
    store.register_predictions(rows)
    campaign = np.repeat(rng.normal(0, 2, 60), 20)  # revenue correlated within a campaign
    revenue = np.where(arm == "v1", 10.0, challenger_value) + campaign + rng.normal(0, 3, 1_200)
    store.record_outcomes(pd.DataFrame({"prediction_id": rows["prediction_id"], "actual_value": rows["predicted_value"],
                                        "business_value": revenue if values else np.nan}))
    return test


def test_an_ab_test_judged_on_business_value_compares_revenue_per_campaign(store):
    test = serve_arms(store, challenger_value=14.0)
    result = lifecycle.get_ab_test_results(store, test["test_id"], as_of=NEXT_DAY)
    assert result.metric == "business_value" and result.comparison.status is Status.OK
    assert result.comparison.champion.n == 30 and result.comparison.champion.rows == 600  # per campaign
    assert result.comparison.difference == pytest.approx(-4.0, abs=1.5)  # loss = -revenue: 4 more per outcome
    assert result.decision.action == "promote", result.decision.reasons
    assert "units (champion + challenger) for a 5% higher business value" in test["config"]["plan_summary"]


def test_business_value_without_values_says_so_naming_the_field(store):
    test = serve_arms(store, challenger_value=14.0, values=False)
    result = lifecycle.get_ab_test_results(store, test["test_id"], as_of=NEXT_DAY)
    assert test["config"]["plan"] is None  # nothing to plan on
    assert result.comparison.status is Status.INVALID and result.decision.action == "continue"
    assert any(r.startswith("business_value: no outcome of the champion and challenger arms carries one")
               for r in result.decision.reasons), result.decision.reasons
