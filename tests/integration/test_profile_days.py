"""The daily DAG's ``profile`` step (operators/profiles.py) on PostgreSQL and SQLite: every day the
monitor reads is profiled once, a re-run rebuilds nothing, a late outcome rebuilds exactly its
day's labelled profile, the backfill is bounded per run, and retention keeps the profiles of a
pinned baseline's days after their raw rows are gone."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from self_learning.operators import ProfileDaysOperator
from support.stores import DAY, prediction_frame, row_count

MODEL = "roas_predictor"
FIRST = DAY.date()


def load_days(store, days: list[int], *, rows: int = 120, labelled_share: float = 0.5) -> pd.DataFrame:
    """``rows`` predictions on each of ``days`` (offsets from DAY), the first ``labelled_share`` of
    each day labelled, recorded long ago (as if when observed): no run sees them as late."""
    frames = []
    for number, offset in enumerate(days):
        frame = prediction_frame(rows, seed=number, start=number * rows)
        frame["served_at"] += pd.Timedelta(days=offset)
        frames.append(frame)
    served = pd.concat(frames, ignore_index=True)
    store.register_predictions(served)
    labelled = pd.concat([f.iloc[:int(len(f) * labelled_share)] for f in frames], ignore_index=True)
    store.record_outcomes(pd.DataFrame({"prediction_id": labelled["prediction_id"],
                                        "actual_value": labelled["predicted_value"] * 0.9,
                                        "observed_at": labelled["served_at"] + pd.Timedelta(hours=3)}))
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE outcomes SET recorded_at = observed_at"))
    return served


def run_step(store, window_end: datetime, **kwargs) -> dict:
    operator = ProfileDaysOperator(task_id="profile", model=MODEL, **kwargs)
    operator.store = lambda: store
    return operator.execute({"params": {"window_end": window_end.isoformat()}})


def index(store, since: date = FIRST, until: date = FIRST + timedelta(days=40)) -> dict[tuple, dict]:
    return {(r["model_version"], r["day"], r["labelled"]): r for r in store.day_profile_index(MODEL, since, until)}


def day(offset: int) -> date:
    return FIRST + timedelta(days=offset)


def test_every_day_is_profiled_once_and_a_rerun_rebuilds_nothing(store):
    load_days(store, [0, 1, 2, 3])
    end = DAY + timedelta(days=4)
    summary = run_step(store, end)
    assert summary["status"] == "built" and summary["built"] == [day(i).isoformat() for i in range(4)]
    built = index(store)
    assert set(built) == {("v1", day(i), labelled) for i in range(4) for labelled in (False, True)}
    assert {k: r["row_count"] for k, r in built.items()} == {
        ("v1", day(i), labelled): 60 if labelled else 120 for i in range(4) for labelled in (False, True)}
    assert store.read_day_profiles(MODEL, day(0), day(4), labelled=True)[0].performance.count == 60

    time.sleep(1.1)  # SQLite's clock has whole seconds: a rebuild would show as a later built_at
    again = run_step(store, end)
    assert again["status"] == "up_to_date" and again["built"] == again["labelled_rebuilt"] == []
    assert {k: r["built_at"] for k, r in index(store).items()} == {k: r["built_at"] for k, r in built.items()}


def test_only_complete_days_of_the_window_are_profiled(store):
    load_days(store, [0, 1, 2])
    summary = run_step(store, DAY + timedelta(days=2, hours=12))  # day 2 has not ended at the window end
    assert summary["built"] == [day(0).isoformat(), day(1).isoformat()]
    assert {d for _, d, _ in index(store)} == {day(0), day(1)}


def test_a_late_outcome_rebuilds_exactly_its_days_labelled_profile(store):
    served = load_days(store, [0, 1, 2])
    end = DAY + timedelta(days=3)
    run_step(store, end)
    before = index(store)
    unlabelled = served[(served["served_at"].dt.date == day(1))].iloc[-1]  # the last half has no outcome
    store.record_outcomes([{"prediction_id": unlabelled["prediction_id"], "actual_value": 7.5}])
    time.sleep(1.1)  # the rebuild's built_at must be after the outcome's recorded_at on SQLite too
    summary = run_step(store, end)
    assert summary["labelled_rebuilt"] == [day(1).isoformat()] and summary["built"] == []
    after = index(store)
    changed = {k for k in after if after[k]["built_at"] != before[k]["built_at"]}
    assert changed == {("v1", day(1), True)}
    assert after["v1", day(1), True]["row_count"] == before["v1", day(1), True]["row_count"] + 1
    assert after["v1", day(1), False]["row_count"] == 120
    rebuilt = store.read_day_profiles(MODEL, day(1), day(2), labelled=True)[0]
    assert rebuilt.performance.count == 61

    time.sleep(1.1)
    assert run_step(store, end)["labelled_rebuilt"] == []  # the correction is in the profile now
    assert {k: r["built_at"] for k, r in index(store).items()} == {k: r["built_at"] for k, r in after.items()}


def test_the_first_labels_of_a_profiled_day_build_its_labelled_profile(store):
    served = load_days(store, [0, 1], labelled_share=0.0)
    end = DAY + timedelta(days=2)
    run_step(store, end)
    assert {k[2] for k in index(store)} == {False}  # no outcome yet: no labelled profile
    first_day = served[served["served_at"].dt.date == day(0)]
    store.record_outcomes(pd.DataFrame({"prediction_id": first_day["prediction_id"][:10], "actual_value": 1.0}))
    time.sleep(1.1)
    summary = run_step(store, end)
    assert summary["labelled_rebuilt"] == [day(0).isoformat()]
    assert index(store)["v1", day(0), True]["row_count"] == 10


def test_the_backfill_is_bounded_per_run_newest_days_first(store):
    load_days(store, [0, 1, 2, 3, 4], rows=40)
    end = DAY + timedelta(days=5)
    first = run_step(store, end, max_days_per_run=2)
    assert first["built"] == [day(3).isoformat(), day(4).isoformat()]
    assert first["postponed"] == [day(i).isoformat() for i in range(3)]
    second = run_step(store, end, max_days_per_run=2)
    assert second["built"] == [day(1).isoformat(), day(2).isoformat()] and second["postponed"] == [day(0).isoformat()]
    third = run_step(store, end, max_days_per_run=2)
    assert third["built"] == [day(0).isoformat()] and third["postponed"] == []
    assert run_step(store, end, max_days_per_run=2)["status"] == "up_to_date"
    with pytest.raises(ValueError, match=r"^max_days_per_run: must be a positive integer, got 0"):
        ProfileDaysOperator(task_id="profile", model=MODEL, max_days_per_run=0)


def test_the_pinned_baselines_days_are_profiled_not_the_days_between(store):
    load_days(store, [0, 1, 2, 10, 17, 18, 19], rows=40)
    store.set_baseline(MODEL, DAY, DAY + timedelta(days=3), note="test")
    summary = run_step(store, DAY + timedelta(days=20))  # recent days read: 6..19 (the 14-day label window)
    assert summary["built"] == [day(i).isoformat() for i in (0, 1, 2, 10, 17, 18, 19)]
    assert summary["days"] == [day(0).isoformat(), day(19).isoformat()]
    store.set_baseline(MODEL, DAY + timedelta(days=1), DAY + timedelta(days=2), note="moved")
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM day_profiles"))
    summary = run_step(store, DAY + timedelta(days=20))
    assert summary["built"] == [day(i).isoformat() for i in (1, 10, 17, 18, 19)]  # day 0, 2: outside both


def test_retention_keeps_the_profiles_of_baseline_days_after_their_neighbours_raw_rows_go(store):
    served = load_days(store, [0, 1, 2, 17, 18, 19], rows=40)
    start, end = DAY + timedelta(hours=12), DAY + timedelta(days=2)
    store.set_baseline(MODEL, start, end, note="test")  # overlaps days 0 and 1
    run_step(store, DAY + timedelta(days=20))
    assert {d for _, d, _ in index(store)} == {day(i) for i in (0, 1, 17, 18, 19)}  # day 2: neither window
    now = DAY + timedelta(days=90)
    # raw rows older than 60 days go (except the baseline's); every profile stays for 400 days
    deleted = store.apply_retention(now=now, keep_days={"predictions": 60})
    in_baseline = ((served["served_at"] >= start) & (served["served_at"] < end)).sum()
    assert deleted["predictions"] == len(served) - in_baseline and deleted["day_profiles"] == 0
    assert len(index(store)) == 10
    # profiles older than 60 days go, except those of the baseline's days
    deleted = store.apply_retention(now=now, keep_days={"predictions": 60, "day_profiles": 60})
    assert deleted["day_profiles"] == 6
    assert {d for _, d, _ in index(store)} == {day(0), day(1)}
    assert row_count(store, "day_profiles") == 4
    assert store.apply_retention(now=now, keep_days={"day_profiles": 60})["day_profiles"] == 0  # a re-run
    with pytest.raises(ValueError, match=r"^keep_days.day_profiles: .* in 60\.\.36600, got 30"):
        store.apply_retention(now=now, keep_days={"day_profiles": 30})


def test_a_multiclass_model_is_skipped_with_a_status_not_an_error():
    from types import SimpleNamespace

    from self_learning.core.types import TaskKind

    operator = ProfileDaysOperator(task_id="profile", model="hook_classifier")
    spec = SimpleNamespace(name="hook_classifier", task_kind=TaskKind.MULTICLASS_CLASSIFICATION)
    settings = SimpleNamespace(window_end=datetime(2026, 11, 1, tzinfo=UTC))
    summary = operator.run(None, spec, settings)  # returns before touching the store
    assert summary["status"] == "unsupported_task_kind" and summary["task_kind"] == "multiclass_classification"


def test_a_fully_labelled_day_is_sketched_once_and_gives_the_same_profiles(store):
    load_days(store, [0], labelled_share=1.0)
    unlabelled, labelled = store.build_all_day_profiles(MODEL, day(0))
    # 120 values per column: below KLL's k, the sketches hold every value, so their bytes compare
    assert unlabelled == store.build_day_profiles(MODEL, day(0), labelled=False)[0]
    assert labelled == store.build_day_profiles(MODEL, day(0), labelled=True)[0]
    assert not unlabelled.labelled and unlabelled.performance is None and labelled.performance.count == 120
