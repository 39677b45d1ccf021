"""Day profiles in the store (store/profiles.py, migration 0012), on PostgreSQL and SQLite: a
day's profile is built from its window read, stored as bytes, upserted on (model, version, day,
labelled) so a rebuild replaces it, and late labels name the days to rebuild."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from self_learning.core.profiles import build_day_profile, merge_profiles
from support.stores import DAY, NEXT_DAY, downgrade, prediction_frame, row_count

MODEL = "roas_predictor"
FIRST = DAY.date()


def day_profile(store, day: date, *, labelled: bool = True):
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    window = store.read_window(MODEL, start, start + timedelta(days=1), labelled_only=labelled)
    return build_day_profile(window, model=MODEL, model_version="v1", day=day, task_kind="regression",
                             labelled=labelled, numeric_features=["spend", "ctr"], categorical_features=["platform"])


@pytest.fixture
def two_labelled_days(store):
    frames = [prediction_frame(300, seed=0), prediction_frame(200, seed=1, start=300)]
    frames[1]["served_at"] += pd.Timedelta(days=1)
    rows = pd.concat(frames, ignore_index=True)
    store.register_predictions(rows)
    store.record_outcomes(pd.DataFrame({"prediction_id": rows["prediction_id"],
                                        "actual_value": rows["predicted_value"] * 0.9,
                                        "observed_at": rows["served_at"] + pd.Timedelta(hours=3)}))
    return store


def test_a_days_profile_is_stored_read_back_and_rebuilt_in_place(two_labelled_days):
    store = two_labelled_days
    first, second = day_profile(store, FIRST), day_profile(store, FIRST + timedelta(days=1))
    unlabelled = day_profile(store, FIRST, labelled=False)
    assert store.save_day_profiles([first, second, unlabelled]) == 3
    assert store.read_day_profiles(MODEL, FIRST, FIRST + timedelta(days=2), labelled=True) == [first, second]
    assert store.read_day_profiles(MODEL, FIRST, FIRST + timedelta(days=1), labelled=False) == [unlabelled]
    index = store.day_profile_index(MODEL, FIRST, FIRST + timedelta(days=2))
    assert [(r["model_version"], r["day"], r["labelled"], r["row_count"]) for r in index] == [
        ("v1", FIRST, False, 300), ("v1", FIRST, True, 300), ("v1", FIRST + timedelta(days=1), True, 200)]
    built = index[1]["built_at"]
    # a re-run (or a rebuild after late labels) replaces the row: idempotent
    store.save_day_profile(first)
    store.save_day_profile(day_profile(store, FIRST))
    assert row_count(store, "day_profiles") == 3
    again = store.day_profile_index(MODEL, FIRST, FIRST + timedelta(days=1), labelled=True)
    assert len(again) == 1 and again[0]["built_at"] >= built
    window = merge_profiles(store.read_day_profiles(MODEL, FIRST, FIRST + timedelta(days=2), labelled=True))
    assert window.rows == 500 and window.days == (FIRST, FIRST + timedelta(days=1))
    assert window.performance.count == 500
    assert store.read_day_profiles(MODEL, FIRST, FIRST + timedelta(days=2), labelled=True, version="v2") == []


def test_only_one_day_of_one_version_goes_in_a_row_and_days_are_dates(two_labelled_days):
    store = two_labelled_days
    merged = merge_profiles([day_profile(store, FIRST), day_profile(store, FIRST + timedelta(days=1))])
    with pytest.raises(ValueError, match=r"^profile: covers 2 \(version, day\) pairs"):
        store.save_day_profiles([merged])
    with pytest.raises(ValueError, match=r"^since: must be a datetime.date"):
        store.read_day_profiles(MODEL, DAY, FIRST, labelled=True)
    with pytest.raises(ValueError, match=r"^until: 2026-11-01 is not after since 2026-11-01"):
        store.day_profile_index(MODEL, FIRST, FIRST)


def test_late_and_corrected_labels_name_the_days_to_rebuild(two_labelled_days):
    store = two_labelled_days
    assert store.days_with_new_outcomes(MODEL, DAY - timedelta(days=30)) == [("v1", FIRST),
                                                                              ("v1", FIRST + timedelta(days=1))]
    with store.engine.begin() as conn:  # as if recorded when observed: long before the profiles' build
        conn.execute(sa.text("UPDATE outcomes SET recorded_at = observed_at"))
    built = NEXT_DAY + timedelta(days=2)  # after every outcome was observed
    assert store.days_with_new_outcomes(MODEL, built) == []
    store.record_outcomes([{"prediction_id": "p301", "actual_value": 123.0}])  # a correction on day 2
    assert store.days_with_new_outcomes(MODEL, built) == [("v1", FIRST + timedelta(days=1))]
    store.register_predictions(prediction_frame(5, seed=3, start=900))  # a late label of day 1
    store.record_outcomes([{"prediction_id": "p900", "actual_value": 1.0}])
    assert store.days_with_new_outcomes(MODEL, built) == [("v1", FIRST), ("v1", FIRST + timedelta(days=1))]
    assert store.days_with_new_outcomes("ctr_classifier", DAY - timedelta(days=30)) == []
    with pytest.raises(ValueError, match=r"^recorded_since: must be a timezone-aware datetime"):
        store.days_with_new_outcomes(MODEL, datetime(2026, 11, 1))


def test_migration_0012_goes_down_and_up(two_labelled_days):
    store = two_labelled_days
    store.save_day_profile(day_profile(store, FIRST))
    downgrade(store, "0011")
    inspector = sa.inspect(store.engine)
    assert "day_profiles" not in inspector.get_table_names()
    assert "ix_outcomes_recorded_at" not in {i["name"] for i in inspector.get_indexes("outcomes")}
    assert store.ensure_schema() == "0012"
    assert "ix_outcomes_recorded_at" in {i["name"] for i in sa.inspect(store.engine).get_indexes("outcomes")}
    assert row_count(store, "day_profiles") == 0 and len(store.read_window(MODEL, DAY, NEXT_DAY)) == 300


def test_the_store_builds_each_versions_profile_from_one_read_of_the_day(two_labelled_days):
    store = two_labelled_days
    extra = prediction_frame(50, seed=5, start=2_000).assign(model_version="v2")
    store.register_predictions(extra)  # unlabelled rows of another version on the first day
    labelled = store.build_day_profiles(MODEL, FIRST, labelled=True)
    assert [p.covers for p in labelled] == [(("v1", FIRST),)]
    # the registry's features, the model's task kind (300 rows < KLL_K: the sketches hold every value, so equal)
    assert labelled[0] == day_profile(store, FIRST)
    served = store.build_day_profiles(MODEL, FIRST, labelled=False)
    assert [(p.model_versions, p.rows, p.labelled) for p in served] == [(("v1",), 300, False), (("v2",), 50, False)]
    assert set(served[1].numeric) == {"spend", "ctr"} and set(served[1].categorical) == {"platform"}
    assert store.build_day_profiles(MODEL, FIRST - timedelta(days=5), labelled=True) == []
    store.save_day_profiles(served)
    assert len(store.day_profile_index(MODEL, FIRST, FIRST + timedelta(days=1), labelled=False)) == 2
