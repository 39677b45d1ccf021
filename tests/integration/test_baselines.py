"""Pinned baselines and day statistics in the store (issue 15, items 1 and 2), on PostgreSQL and
SQLite: the default baseline pinned once complete, explicit and champion baselines, bad input
named, a promotion moving (or keeping) the baseline, day statistics upserted on their natural key,
retention, and migration 0008 down and up again."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from self_learning.core.ab import ABTestConfig
from self_learning.core.baselines import Baseline, check_baseline_before
from self_learning.loop import lifecycle
from self_learning.store import FeedbackStore
from support.stores import downgrade, row_count

MODEL = "roas_predictor"
BASE = datetime(2025, 1, 1, tzinfo=UTC)  # the model's first day of served data


def day(n: float) -> datetime:
    return BASE + timedelta(days=n)


def serve(store: FeedbackStore, first_day: int, days: int, *, per_day: int = 10, version: str = "v1",
          error_sd: float = 1.0, seed: int = 0) -> int:
    """``per_day`` labelled predictions of ``version`` on each of ``days`` days from ``day(first_day)``
    (served between 01:00 and 23:00 UTC); their error has standard deviation ``error_sd``."""
    rng = np.random.default_rng(seed)
    n = days * per_day
    offsets = np.repeat(np.arange(first_day, first_day + days), per_day)
    served_at = (pd.Timestamp(BASE) + pd.to_timedelta(offsets, unit="D")
                 + pd.to_timedelta(rng.integers(3_600, 82_800, n), unit="s"))
    spend = rng.lognormal(3, 1, n)
    actual = 1 + spend / 20 + rng.normal(0, 0.5, n)
    ids = [f"{version}-{seed}-{i}" for i in range(n)]
    frame = pd.DataFrame({"prediction_id": ids, "model": MODEL, "model_version": version,
                          "predicted_value": actual + rng.normal(0, error_sd, n), "served_at": served_at,
                          "spend": spend, "ctr": rng.uniform(0, 0.1, n), "platform": rng.choice(["meta", "tiktok"], n)})
    assert not store.register_predictions(frame).rejected
    assert not store.record_outcomes(pd.DataFrame({"prediction_id": ids, "actual_value": actual,
                                                   "observed_at": served_at + pd.Timedelta(hours=1)})).rejected
    return n


def test_the_default_baseline_is_provisional_until_complete_then_pinned(store):
    serve(store, 0, 40)
    young = store.resolve_baseline(MODEL, baseline_days=30, until=day(10))
    assert (young.start, young.end, young.source, young.provisional, young.set_at) == (BASE, day(30), "default",
                                                                                        True, None)
    assert store.get_baseline(MODEL) is None  # not stored before it is complete
    # a young model compares against the days it has before the current window, none on its first day
    assert check_baseline_before(young, day(10)) == dataclasses.replace(young, end=day(10))
    assert check_baseline_before(young, BASE) is None
    pinned = store.resolve_baseline(MODEL, baseline_days=30, until=day(30))
    assert (pinned.start, pinned.end, pinned.source, pinned.provisional) == (BASE, day(30), "default", False)
    assert pinned.set_at is not None and store.get_baseline(MODEL) == pinned
    # pinned: a later run, another baseline_days, more data do not move it
    serve(store, 40, 30, seed=1)
    assert store.resolve_baseline(MODEL, baseline_days=60, until=day(90)) == pinned
    assert check_baseline_before(pinned, day(37)) is pinned
    # a replay of a window inside the default baseline compares against the days before it
    replayed = check_baseline_before(pinned, day(20))
    assert (replayed.end, replayed.provisional) == (day(20), True)
    assert json.loads(json.dumps(pinned.to_dict()))["start"] == BASE.isoformat()


def test_an_explicit_baseline_replaces_the_stored_one_and_bad_input_is_named(store):
    serve(store, 0, 40)
    store.resolve_baseline(MODEL, baseline_days=30, until=day(35))  # the default, pinned
    explicit = store.set_baseline(MODEL, day(5), day(20), on_promotion="keep", set_by="ops@example.com",
                                  note="after the relaunch")
    assert (explicit.start, explicit.end, explicit.source, explicit.on_promotion, explicit.set_by, explicit.note) \
        == (day(5), day(20), "explicit", "keep", "ops@example.com", "after the relaunch")
    assert store.get_baseline(MODEL) == explicit == store.resolve_baseline(MODEL, baseline_days=30, until=day(40))
    assert row_count(store, "model_baselines") == 1
    # an explicit baseline is never clipped: it must end before the analysed window
    with pytest.raises(ValueError, match=r"^baseline: ends 2025-01-21 00:00, after the current window starts "
                                         r"2025-01-11 00:00"):
        check_baseline_before(explicit, day(10))
    naive = datetime(2025, 1, 5)
    for call, match in (
            (lambda: store.set_baseline("nobody", day(1), day(2)), r"^model: 'nobody' is not registered"),
            (lambda: store.set_baseline("bad name", day(1), day(2)), r"^model: 'bad name' is not a valid model name"),
            (lambda: store.set_baseline(MODEL, day(2), day(2)), r"^end: 2025-01-03T00:00:00\+00:00 is not after start"),
            (lambda: store.set_baseline(MODEL, naive, day(2)), r"^start: must be a timezone-aware datetime"),
            (lambda: store.set_baseline(MODEL, day(100), day(120)),
             r"^baseline: no predictions of roas_predictor served in 2025-04-11 00:00\.\.2025-05-01 00:00"),
            (lambda: store.set_baseline(MODEL, day(1), day(2), on_promotion="drop"),
             r"^on_promotion: one of move, keep, got 'drop'"),
            (lambda: store.set_baseline(MODEL, day(1), day(2), source="whenever"), r"^source: one of default"),
            (lambda: store.set_baseline(MODEL, day(1), day(2), set_by=""), r"^set_by: must be a non-empty string"),
            (lambda: store.set_baseline(MODEL, day(1), day(2), note="x" * 1025), r"^note: must be a non-empty"),
            (lambda: store.resolve_baseline("ctr_predictor", baseline_days=30, until=day(40)),
             r"^baseline: no predictions of ctr_predictor served yet"),
            (lambda: store.resolve_baseline("nobody", baseline_days=30, until=day(40)), r"^model: 'nobody' is not"),
            (lambda: store.resolve_baseline(MODEL, baseline_days=30, until=naive), r"^until: must be"),
    ):
        with pytest.raises(ValueError, match=match):
            call()
    assert store.get_baseline(MODEL) == explicit  # untouched by the refused calls


def test_the_baseline_can_be_the_champions_training_window(store):
    serve(store, 0, 40)
    with pytest.raises(ValueError, match=r"^model: roas_predictor has no champion version"):
        store.baseline_from_champion(MODEL)
    store.register_version(MODEL, "v0", status="archived")  # a bootstrap champion: no training window
    store.promote(MODEL, "v0")
    with pytest.raises(ValueError, match=r"^baseline: the champion v0 of roas_predictor has no training window"):
        store.baseline_from_champion(MODEL)
    store.register_version(MODEL, "v1", training_window=(day(2), day(32)))  # the registry's columns
    store.promote(MODEL, "v1")
    from_columns = store.baseline_from_champion(MODEL, on_promotion="keep")
    assert (from_columns.start, from_columns.end, from_columns.source, from_columns.on_promotion) \
        == (day(2), day(32), "champion_training", "keep")
    assert from_columns.note == "training window of champion v1"
    store.register_version(MODEL, "v2", metrics={"training_start": day(3).isoformat(),
                                                 "training_end": day(33).isoformat()})  # Candidate.metrics()
    store.promote(MODEL, "v2")
    assert (store.baseline_from_champion(MODEL).start, store.get_baseline(MODEL).end) == (day(3), day(33))


@pytest.mark.parametrize("on_promotion", ["move", "keep"])
def test_a_promotion_moves_the_baseline_to_the_new_champions_window_unless_it_keeps(store, tmp_path, on_promotion):
    serve(store, 0, 30, per_day=40)
    store.register_version(MODEL, "v1", status="archived")
    store.promote(MODEL, "v1")
    candidate = lifecycle.train_candidate(store, MODEL, window_end=day(30), artifact_root=str(tmp_path),
                                          version="v2")
    metrics = candidate.metrics()
    assert (metrics["training_start"], metrics["training_end"]) == (BASE.isoformat(), day(30).isoformat())
    store.register_version(MODEL, "v2", training_window=candidate.training_window, metrics=metrics)
    kept = store.set_baseline(MODEL, day(1), day(8), on_promotion="keep") if on_promotion == "keep" else None
    test = lifecycle.ab_test_model_versions(store, MODEL, "v1", "v2", started_at=day(30), config=ABTestConfig())
    serve(store, 30, 8, per_day=60, version="v1", seed=1)
    serve(store, 30, 8, per_day=60, version="v2", error_sd=0.3, seed=2)  # the challenger errs far less
    conclusion = lifecycle.select_winning_model(store, test["test_id"], as_of=day(38))
    assert (conclusion.action, conclusion.champion_version) == ("promote", "v2")
    baseline = store.get_baseline(MODEL)
    promoted = [a for a in store.check_alerts(until=day(38))
                if a["alert_type"] == "ab_test" and a["details"]["test_id"] == test["test_id"]]
    if on_promotion == "keep":
        assert baseline == kept and promoted[0]["details"]["baseline"] == "kept"
    else:  # no stored baseline: the default moves
        assert (baseline.start, baseline.end, baseline.source, baseline.on_promotion, baseline.set_by) \
            == (BASE, day(30), "promotion", "move", "promotion of v2")
        assert promoted[0]["details"]["baseline"]["source"] == "promotion"
    # the bootstrap champion has no window: a promotion of it leaves the baseline where it is
    assert store.baseline_after_promotion(MODEL, "v1") is None and store.get_baseline(MODEL) == baseline


def statistic(check: str, n_day: int, **changes) -> dict:
    return {"table": "day_statistics", "model": MODEL, "check": check, "day": day(n_day), "family": "feature_drift",
            "z": 0.5, "raw_z": 0.4, "effect": 0.01, "n": 250, "status": "ok", "details": {"p": 0.3},
            "window_end": day(n_day + 1), **changes}


def test_day_statistics_are_upserted_on_model_check_and_day_and_read_in_order(store):
    error_result = {"table": "error_analyses", "model": MODEL, "model_version": "v1", "window_start": day(0),
                    "window_end": day(2), "kind": "errors", "result": {"n": 1}}
    written = store.save_results([statistic("feature:spend", 1), statistic("concept", 1), error_result,
                                  statistic("feature:spend", 0, z=float("nan")), statistic("concept", 0)])
    assert written == 5 and len(store.read_results("error_analyses")) == 1  # one transaction with the results
    rows = store.read_day_statistics(MODEL, day(0), day(2))
    assert [(r["day"], r["check"]) for r in rows] == [(day(0), "concept"), (day(0), "feature:spend"),
                                                      (day(1), "concept"), (day(1), "feature:spend")]
    assert rows[1]["z"] is None and rows[0]["details"] == {"p": 0.3} and rows[0]["window_end"] == day(1)
    # a later run that saw more of day 1's labels replaces its row
    store.save_results([statistic("concept", 1, z=3.2, n=400, status="alarm", window_end=day(3))])
    again = store.read_day_statistics(MODEL, day(1), day(2))  # half-open: day 1 only
    assert [(r["check"], r["z"], r["n"], r["status"], r["window_end"]) for r in again] == [
        ("concept", 3.2, 400, "alarm", day(3)), ("feature:spend", 0.5, 250, "ok", day(2))]
    assert row_count(store, "day_statistics") == 4
    # one batch (one statement) naming a day twice: the later entry is the one stored
    store.save_results([statistic("concept", 1, z=1.0), statistic("concept", 1, z=2.0, n=9)])
    (concept_day_1,) = store.read_day_statistics(MODEL, day(1), day(2), checks=["concept"])
    assert (concept_day_1["z"], concept_day_1["n"]) == (2.0, 9) and row_count(store, "day_statistics") == 4
    assert [r["check"] for r in store.read_day_statistics(MODEL, day(0), day(5), checks=["concept"])] == ["concept"] * 2
    assert store.read_day_statistics("ctr_predictor", day(0), day(5)) == []


@pytest.mark.parametrize(("changes", "match"), [
    ({"day": BASE + timedelta(hours=6)}, r"^day_statistics\.day: must be a UTC midnight"),
    ({"day": datetime(2025, 1, 1)}, r"^day_statistics\.day: must be a timezone-aware datetime"),
    ({"window_end": "soon"}, r"^day_statistics\.window_end: not an ISO 8601 timestamp"),
    ({"z": float("inf")}, r"^day_statistics\.z: must be finite or null"),
    ({"effect": "big"}, r"^day_statistics\.effect: must be a number or null"),
    ({"n": -1}, r"^day_statistics\.n: must be a whole number >= 0"),
    ({"check": "c" * 301}, r"^day_statistics\.check: must be a non-empty string of at most 300"),
    ({"colour": "red"}, r"^day_statistics\.colour: not a column"),
    ({"details": [1]}, r"^day_statistics\.details: must be a mapping"),
    ({"model": "bad name"}, r"^model: 'bad name' is not a valid model name"),
])
def test_bad_day_statistics_are_named_and_nothing_of_the_batch_is_written(store, changes, match):
    with pytest.raises(ValueError, match=match):
        store.save_results([statistic("concept", 0), {**statistic("feature:spend", 0), **changes}])
    assert row_count(store, "day_statistics") == 0


def test_retention_deletes_old_day_statistics_and_keeps_the_baselines_predictions(store):
    served = serve(store, 0, 40)
    store.set_baseline(MODEL, day(5), day(10))
    store.save_results([statistic("concept", 0), statistic("concept", 30)])
    deleted = store.apply_retention(now=day(401), keep_days={"predictions": 380}, batch_size=7)
    assert deleted["day_statistics"] == 1  # day 0 is older than 400 days; day 30 is not
    assert [r["day"] for r in store.read_day_statistics(MODEL, day(0), day(60))] == [day(30)]
    # predictions before day 21 went, except the baseline's days 5..9 (the daily run still reads them)
    assert deleted["predictions"] == served // 40 * 16
    assert store.count_predictions(MODEL, day(0), day(21)) == 50 == store.count_predictions(MODEL, day(5), day(10))


def test_migration_0008_goes_down_and_up(store):
    serve(store, 0, 3)
    store.set_baseline(MODEL, day(0), day(2))
    store.save_results([statistic("concept", 0)])
    downgrade(store, "0007")
    tables = set(sa.inspect(store.engine).get_table_names())
    assert not {"model_baselines", "day_statistics"} & tables and "predictions" in tables
    assert store.ensure_schema() == "0012"
    assert row_count(store, "model_baselines") == row_count(store, "day_statistics") == 0
    assert store.set_baseline(MODEL, day(0), day(2)).source == "explicit"
    assert isinstance(store.get_baseline(MODEL), Baseline)


def test_a_calibration_is_cached_with_its_baseline_and_dropped_when_the_baseline_moves(store):
    serve(store, 0, 3)
    store.set_baseline(MODEL, day(0), day(2))
    assert store.baseline_calibration(MODEL, "k1") is None
    calibration = {"checks": {"feature:x:distribution": {"location": 0.5, "scale": 1.25, "days": 30,
                                                         "source": "empirical"}},
                   "baseline_days": 30, "baseline_rows": 1234}
    assert store.save_baseline_calibration(MODEL, "k1", calibration)
    assert store.baseline_calibration(MODEL, "k1") == calibration
    assert store.baseline_calibration(MODEL, "k2") is None  # computed for something else
    store.set_baseline(MODEL, day(1), day(3))  # moved: the cached calibration goes with the old dates
    assert store.baseline_calibration(MODEL, "k1") is None
    assert not store.save_baseline_calibration("ctr_predictor", "k1", calibration)  # no stored baseline
    with pytest.raises(ValueError, match=r"^key: "):
        store.save_baseline_calibration(MODEL, "", calibration)


def test_migration_0009_goes_down_and_up(store):
    serve(store, 0, 3)
    store.set_baseline(MODEL, day(0), day(2))
    store.save_baseline_calibration(MODEL, "k", {"checks": {}, "baseline_days": 2, "baseline_rows": 3})
    downgrade(store, "0008")
    assert "calibration" not in {c["name"] for c in sa.inspect(store.engine).get_columns("model_baselines")}
    assert row_count(store, "model_baselines") == 1  # the baseline itself survives
    assert store.ensure_schema() == "0012"
    assert store.get_baseline(MODEL).start == day(0)
    assert store.baseline_calibration(MODEL, "k") is None
