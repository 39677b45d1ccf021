"""The feedback store on a real PostgreSQL server and on an embedded SQLite file."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from self_learning.domain import ModelSpec, TaskKind
from self_learning.store import ALL_VERSIONS, DEFAULT_VERSION, MAX_FEATURES, ConflictError, FeedbackStore
from support.stores import DAY, NEXT_DAY, downgrade, prediction_frame, row_count

HEAD = "0012"  # the latest migration


def test_migrations_from_empty_and_again(store):
    assert store.ensure_schema() == HEAD  # re-running is a no-op
    assert [m.name for m in store.list_models()] == ["ctr_predictor", "hook_classifier", "roas_predictor",
                                                     "visual_pattern"]
    store.register_model(ModelSpec("cpa_model", "regression", {"spend": "numeric"}))
    store.register_model(ModelSpec("roas_predictor", "regression"), active=False)
    store.ensure_schema()  # seeding never overwrites what users changed
    assert "roas_predictor" not in [m.name for m in store.list_models()]
    assert store.get_model("cpa_model").task_kind is TaskKind.REGRESSION
    assert store.feature_registry("cpa_model") == {"spend": ("numeric", 1)}


def test_single_round_trip(store):
    pid = store.register_prediction("roas_predictor", 2.5, {"spend": 120.0, "platform": "meta", "is_video": True},
                                    model_version="v3", unit_id="campaign-7", served_at=DAY + timedelta(hours=5))
    assert store.record_outcome(pid, 2.75, observed_at=DAY + timedelta(days=3)) == "recorded"
    window = store.read_window("roas_predictor", DAY, NEXT_DAY, with_ids=True)
    assert len(window) == 1
    row = window.iloc[0]
    assert row["prediction_id"] == pid and row["model_version"] == "v3" and row["unit_id"] == "campaign-7"
    assert row["served_at"] == pd.Timestamp(DAY + timedelta(hours=5))
    assert row["predicted_value"] == 2.5 and row["actual_value"] == 2.75
    assert row["error"] == pytest.approx(-0.25)
    assert row["spend"] == 120.0 and row["platform"] == "meta" and row["is_video"] == "True"
    assert window["spend"].dtype == np.float64
    assert isinstance(window["platform"].dtype, pd.CategoricalDtype)
    assert pd.api.types.is_string_dtype(window["platform"].cat.categories.dtype)
    default = store.read_window("roas_predictor", DAY, NEXT_DAY)
    assert list(default.columns[:7]) == ["model_version", "served_at", "predicted_value", "predicted_label",
                                        "actual_value", "observed_at", "error"]
    assert store.count_predictions("roas_predictor", DAY, NEXT_DAY) == 1


def test_bulk_ingest_is_idempotent_and_rejects_changed_payloads(store):
    frame = prediction_frame(500)
    first = store.register_predictions(frame)
    assert (first.received, first.inserted, first.unchanged, first.rejected) == (500, 500, 0, [])
    again = store.register_predictions(frame)
    assert (again.inserted, again.unchanged, again.rejected) == (0, 500, [])
    assert row_count(store, "predictions") == 500

    changed = frame.copy()
    changed.loc[7, "spend"] = 1.0
    changed.loc[9, "predicted_value"] = 99.0
    report = store.register_predictions(changed)
    assert [(e.row, e.prediction_id, e.field) for e in report.rejected] == [
        (7, "p7", "prediction_id"), (9, "p9", "prediction_id")]
    assert "features differ" in report.rejected[0].reason and "predicted_value" in report.rejected[1].reason
    stored = store.read_window(
        "roas_predictor", DAY, NEXT_DAY, labelled_only=False, with_ids=True).set_index("prediction_id")
    assert stored.at["p7", "spend"] == frame.at[7, "spend"]  # nothing overwritten
    with pytest.raises(ConflictError, match="prediction_id: 'p9' already registered with a different payload"):
        store.register_prediction("roas_predictor", 99.0, {}, prediction_id="p9", model_version="v1")
    store.register_prediction("roas_predictor", frame.at[3, "predicted_value"],
                              {k: frame.at[3, k] for k in ("spend", "ctr", "platform")}, prediction_id="p3",
                              model_version="v1", served_at=frame.at[3, "served_at"])  # identical: a no-op


def test_orphan_late_and_corrected_outcomes(store):
    assert store.record_outcome("early-bird", 1.5) == "recorded"  # the prediction is not there yet
    assert store.count_orphan_outcomes() == 1
    assert store.read_window("roas_predictor", DAY, NEXT_DAY, with_ids=True).empty
    store.register_prediction("roas_predictor", 1.0, {"spend": 3.0}, prediction_id="early-bird", served_at=DAY)
    assert store.count_orphan_outcomes() == 0
    assert store.read_window("roas_predictor", DAY, NEXT_DAY, with_ids=True)["actual_value"].tolist() == [1.5]

    store.register_prediction("roas_predictor", 2.0, {"spend": 4.0}, prediction_id="late", served_at=DAY)
    labelled = store.read_window("roas_predictor", DAY, NEXT_DAY, with_ids=True)
    assert labelled["prediction_id"].tolist() == ["early-bird"]
    assert store.record_outcome("late", 2.2, observed_at=DAY + timedelta(days=9)) == "recorded"
    assert set(store.read_window(
        "roas_predictor", DAY, NEXT_DAY, with_ids=True)["prediction_id"]) == {"early-bird", "late"}

    assert store.record_outcome("late", 2.2) == "unchanged"
    assert store.record_outcome("late", 2.6) == "corrected"
    history = store.outcome_history_of("late")
    assert [(h["actual_value"], h["revision"]) for h in history] == [(2.2, 1)]
    assert store.read_window(
        "roas_predictor", DAY, NEXT_DAY, with_ids=True).set_index("prediction_id").at["late", "actual_value"] \
        == 2.6


def test_bulk_outcomes(store):
    store.register_predictions(prediction_frame(100))
    outcomes = pd.DataFrame({"prediction_id": [f"p{i}" for i in range(100)] + ["ghost", "p1", None],
                             "actual_value": [float(i) for i in range(100)] + [1.0, 5.0, 1.0]})
    report = store.record_outcomes(outcomes)
    assert report.inserted == 101  # 100 joined + the orphan 'ghost'
    assert [(e.row, e.field) for e in report.rejected] == [(101, "actual_value"), (102, "prediction_id")]
    assert store.count_orphan_outcomes() == 1
    again = store.record_outcomes(outcomes.iloc[:100].assign(actual_value=lambda f: f["actual_value"] + 1))
    assert (again.inserted, again.corrected, again.unchanged) == (0, 100, 0)
    assert row_count(store, "outcome_history") == 100


def test_window_reads_are_half_open_and_filter_versions(store):
    store.register_prediction("roas_predictor", 1.0, {"x": 1.0}, prediction_id="at-start", served_at=DAY)
    store.register_prediction("roas_predictor", 1.0, {"x": 1.0}, prediction_id="at-end", served_at=NEXT_DAY,
                              model_version="v2")
    store.register_prediction("ctr_predictor", 1.0, {"x": 1.0}, prediction_id="other-model", served_at=DAY)
    for pid in ("at-start", "at-end", "other-model"):
        store.record_outcome(pid, 1.0)
    assert store.read_window("roas_predictor", DAY, NEXT_DAY, with_ids=True)["prediction_id"].tolist() == ["at-start"]
    assert store.read_window("roas_predictor", DAY, NEXT_DAY + timedelta(seconds=1), version="v2", with_ids=True)[
        "prediction_id"].tolist() == ["at-end"]
    assert store.count_predictions("roas_predictor", DAY, NEXT_DAY, version=DEFAULT_VERSION) == 1
    with pytest.raises(ValueError, match=r"window_end: .* is not after window_start"):
        store.read_window("roas_predictor", NEXT_DAY, DAY, with_ids=True)
    with pytest.raises(ValueError, match="window_start: must be a timezone-aware datetime"):
        store.read_window("roas_predictor", datetime(2026, 11, 1), NEXT_DAY, with_ids=True)


def test_added_feature_keys_extend_the_registry(store):
    store.register_prediction("roas_predictor", 1.0, {"spend": 1.0}, prediction_id="old", served_at=DAY)
    store.add_features("roas_predictor", {"cpm": "numeric", "hook": "categorical"})  # a closed key set grows on purpose
    store.register_predictions(pd.DataFrame({"prediction_id": ["new"], "model": "roas_predictor",
                                             "predicted_value": [2.0], "served_at": [DAY], "spend": [2.0],
                                             "cpm": [7.5], "hook": ["question"]}))
    window = store.read_window(
        "roas_predictor", DAY, NEXT_DAY, labelled_only=False, with_ids=True).set_index("prediction_id")
    assert window.at["new", "cpm"] == 7.5 and np.isnan(window.at["old", "cpm"])
    assert window.at["new", "hook"] == "question" and pd.isna(window.at["old", "hook"])


def test_results_are_upserted_on_their_natural_key(store):
    key = {"model": "roas_predictor", "model_version": ALL_VERSIONS, "window_start": DAY, "window_end": NEXT_DAY,
           "kind": "daily"}
    store.save_result("performance_snapshots", **key, result={"mae": 0.5}, sample_count=10, provisional=True,
                      mae=0.5)
    store.save_result("performance_snapshots", **key, result={"mae": 0.4}, sample_count=12, provisional=False,
                      mae=0.4)
    rows = store.read_results("performance_snapshots", model="roas_predictor")
    assert len(rows) == 1
    assert (rows[0]["mae"], rows[0]["sample_count"], rows[0]["provisional"], rows[0]["result"]) == (
        0.4, 12, False, {"mae": 0.4})
    store.save_result("drift_reports", **key | {"kind": "data_drift"}, result={"severity": "low"}, severity="low",
                      status="ok", affected_features=["spend"])
    assert store.read_results("drift_reports")[0]["affected_features"] == ["spend"]


def test_hostile_feature_key_is_data(store):
    hostile = 'x"; DROP TABLE predictions; --'
    store.register_prediction("roas_predictor", 1.0, {hostile: 3.0, "label'--": "a'b"}, prediction_id="h1",
                              served_at=DAY)
    store.register_predictions(pd.DataFrame({"prediction_id": ["h2"], "model": ["roas_predictor"],
                                             "predicted_value": [2.0], "served_at": [DAY], hostile: [4.0]}))
    store.record_outcomes([{"prediction_id": "h1", "actual_value": 1.0}, {"prediction_id": "h2", "actual_value": 2.0}])
    window = store.read_window("roas_predictor", DAY, NEXT_DAY, with_ids=True)
    assert window[hostile].tolist() == [3.0, 4.0]
    assert window["label'--"].tolist()[0] == "a'b"
    assert row_count(store, "predictions") == 2
    with pytest.raises(ValueError, match=r"model: .* is not a valid model name"):
        store.register_prediction("x'; DROP TABLE models; --", 1.0, {})


def test_bad_input_is_named_and_good_rows_still_land(store):
    with pytest.raises(ValueError, match="predicted_value: must be finite, got nan"):
        store.register_prediction("roas_predictor", float("nan"), {})
    with pytest.raises(ValueError, match="model: 'nobody' is not registered"):
        store.register_prediction("nobody", 1.0, {})
    with pytest.raises(ValueError, match=r"features\.spend: must be finite, got inf"):
        store.register_prediction("roas_predictor", 1.0, {"spend": float("inf")})
    with pytest.raises(ValueError, match=r"features\.meta: nested values are not supported"):
        store.register_prediction("roas_predictor", 1.0, {"meta": {"a": 1}})
    with pytest.raises(ValueError, match=f"features: more than {MAX_FEATURES} features"):
        store.register_prediction("roas_predictor", 1.0, {f"f{i}": 1.0 for i in range(MAX_FEATURES + 1)})
    with pytest.raises(ValueError, match="served_at: not a timestamp"):
        store.register_prediction("roas_predictor", 1.0, {}, served_at="yesterday-ish")
    with pytest.raises(ValueError, match="actual_value: must be finite, got inf"):
        store.record_outcome("p1", float("inf"))

    rows = [
        {"prediction_id": "ok-1", "model": "roas_predictor", "predicted_value": 1.0, "features": {"spend": 1.0}},
        {"prediction_id": "bad-value", "model": "roas_predictor", "predicted_value": "high", "features": {}},
        {"prediction_id": "bad-model", "model": "nobody", "predicted_value": 1.0, "features": {}},
        {"prediction_id": "bad-feature", "model": "roas_predictor", "predicted_value": 1.0,
         "features": {"spend": "lots"}},
        {"prediction_id": "no-value", "model": "roas_predictor", "features": {}},
        {"prediction_id": "ok-2", "model": "roas_predictor", "predicted_value": 2.0, "features": {"spend": 2.0}},
    ]
    report = store.register_predictions(rows, quarantine=True)
    assert report.inserted == 2
    assert [(e.row, e.prediction_id, e.field) for e in report.rejected] == [
        (1, "bad-value", "predicted_value"), (2, "bad-model", "model"), (3, "bad-feature", "features.spend"),
        (4, "no-value", "predicted_value")]
    assert "must be a number, got 'lots'" in report.rejected[2].reason
    assert row_count(store, "ingest_rejects") == 4
    with store.engine.connect() as conn:
        payload = conn.execute(sa.text("SELECT payload FROM ingest_rejects WHERE prediction_id = 'bad-value'")).scalar()
    assert (payload if isinstance(payload, dict) else __import__("json").loads(payload))["predicted_value"] == "high"


def test_concurrent_writers_lose_nothing(store):
    batches = [prediction_frame(300, seed=s, start=s * 1000) for s in range(2)]
    errors = []

    def ingest(frame):
        try:
            assert store.register_predictions(frame, batch_size=50).inserted == len(frame)
        except Exception as error:  # reported to the main thread
            errors.append(error)

    threads = [threading.Thread(target=ingest, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert row_count(store, "predictions") == 600


def test_hook_builds_stores_from_airflow_connections(monkeypatch, pg_url, tmp_path):
    from self_learning.hooks import FeedbackStoreHook

    monkeypatch.setenv("AIRFLOW_CONN_FEEDBACK_DB", pg_url)
    store = FeedbackStoreHook().get_store()
    assert store.is_postgres
    assert store.ensure_schema() == HEAD
    monkeypatch.setenv("AIRFLOW_CONN_EMBEDDED", f"sqlite:///{tmp_path / 'embedded.db'}")
    embedded = FeedbackStoreHook("embedded").get_store()
    assert not embedded.is_postgres and embedded.ensure_schema() == HEAD


def test_registered_kinds_decide_how_values_are_stored(store):
    store.register_model(ModelSpec("m1", "regression", {"a": "numeric", "color": "categorical"}))
    fresh = FeedbackStore(store.engine)  # an empty registry cache, as in a new serving process
    fresh.register_prediction("m1", 1.0, {"a": 1.0, "color": 7}, prediction_id="k1", served_at=DAY)
    with pytest.raises(ValueError, match=r"features\.a: must be a number, got 'oops'"):
        fresh.register_prediction("m1", 1.0, {"a": "oops"}, prediction_id="k2", served_at=DAY)
    fresh.record_outcome("k1", 1.0)
    row = fresh.read_window("m1", DAY, NEXT_DAY).iloc[0]
    assert row["a"] == 1.0 and row["color"] == "7"


def test_resending_without_served_at_is_unchanged(store):
    rows = [{"prediction_id": "p1", "model": "roas_predictor", "predicted_value": 1.0, "spend": 2.0}]
    assert store.register_predictions(rows).inserted == 1
    again = store.register_predictions(rows)
    assert (again.unchanged, again.rejected) == (1, [])


def test_repeats_inside_one_batch(store):
    row = {"prediction_id": "r1", "model": "roas_predictor", "predicted_value": 1.0, "served_at": DAY, "x": 1.0}
    report = store.register_predictions([row, dict(row), dict(row, predicted_value=2.0)])
    assert (report.inserted, report.unchanged) == (1, 1)
    assert [(e.row, e.field) for e in report.rejected] == [(2, "prediction_id")]


def test_text_and_numbers_postgres_cannot_hold_are_named(store):
    for features, field in (({"c": "a\x00b"}, r"features\.c: contains a NUL"),
                            ({"c": "a\ud800"}, r"features\.c: is not valid Unicode"),
                            ({"x\x00": 1.0}, "features: feature name .* contains a NUL"),
                            ({"big": 10**400}, r"features\.big: must be finite")):
        with pytest.raises(ValueError, match=field):
            store.register_prediction("roas_predictor", 1.0, features)
    with pytest.raises(ValueError, match="predicted_label: must be an integer class label within"):
        store.register_prediction("roas_predictor", 1.0, {}, predicted_label=2**31)
    with pytest.raises(ValueError, match="predicted_value: must be finite"):
        store.register_prediction("roas_predictor", 10**400, {})
    report = store.register_predictions([
        {"prediction_id": "n1\x00", "model": "roas_predictor", "predicted_value": 1.0},
        {"prediction_id": "n2", "model": "roas_predictor", "predicted_value": 10**400},
        {"prediction_id": "n3", "model": "roas_predictor", "predicted_value": 1.0, "predicted_label": -(2**31)},
        {"prediction_id": "n4", "model": "roas_predictor", "predicted_value": 1.0},
    ])
    assert report.inserted == 1
    assert [(e.row, e.field) for e in report.rejected] == [
        (0, "prediction_id"), (1, "predicted_value"), (2, "predicted_label")]


def test_read_back_is_exact_for_awkward_values(store):
    late = datetime(2150, 6, 1, 12, 0, 0, 123457, tzinfo=UTC)
    store.register_prediction("roas_predictor", 1.0, {"c": "\\N", "row_id": "r", "n": 1.5}, prediction_id="a1",
                              served_at=late, unit_id="\\N", predicted_label=-(2**31) + 1)
    store.register_prediction("roas_predictor", 2.0, {"c": "", "n": float("nan")}, prediction_id="a2",
                              served_at=late, unit_id=12)
    window = store.read_window("roas_predictor", late, late + timedelta(seconds=1), labelled_only=False,
                               with_ids=True).set_index("prediction_id")
    assert window.at["a1", "c"] == "\\N" and window.at["a1", "unit_id"] == "\\N" and window.at["a1", "row_id"] == "r"
    assert window.at["a2", "c"] == "" and pd.isna(window.at["a2", "row_id"]) and window.at["a2", "unit_id"] == "12"
    assert window.at["a1", "predicted_label"] == -(2**31) + 1
    assert (window["served_at"] == pd.Timestamp(late)).all()
    assert window.at["a1", "n"] == 1.5 and np.isnan(window.at["a2", "n"])


def test_bulk_integer_unit_ids_keep_their_text(store):
    frame = pd.DataFrame({"prediction_id": ["u1", "u2"], "model": "roas_predictor", "predicted_value": [1.0, 2.0],
                          "served_at": [DAY, DAY], "unit_id": [123, None]})
    store.register_predictions(frame)
    store.register_prediction("roas_predictor", 1.0, {}, prediction_id="u1", unit_id=123, served_at=DAY)  # same
    window = store.read_window("roas_predictor", DAY, NEXT_DAY, labelled_only=False, with_ids=True)
    assert window.set_index("prediction_id").at["u1", "unit_id"] == "123"


def test_result_windows_are_instants_not_wall_clocks(store):
    plus_one = timezone(timedelta(hours=1))
    key = {"model": "roas_predictor", "model_version": ALL_VERSIONS, "kind": "daily"}
    store.save_result("error_analyses", **key, window_start=DAY, window_end=NEXT_DAY, result={"v": 1})
    store.save_result("error_analyses", **key, window_start=DAY.astimezone(plus_one),
                      window_end=NEXT_DAY.astimezone(plus_one), result={"v": 2})
    rows = store.read_results("error_analyses")
    assert [r["result"] for r in rows] == [{"v": 2}]


def test_hook_keeps_libpq_options(monkeypatch, pg_url):
    from self_learning.hooks import FeedbackStoreHook

    monkeypatch.setenv("AIRFLOW_CONN_FEEDBACK_DB", pg_url + "?sslmode=disable&application_name=self-learning")
    store = FeedbackStoreHook().get_store()
    assert store.engine.url.query == {"sslmode": "disable", "application_name": "self-learning"}
    assert store.ensure_schema() == HEAD


def test_outcome_inbox_keeps_arrival_order_and_join_counts(store):
    store.register_predictions(prediction_frame(3))
    report = store.enqueue_outcomes([
        {"prediction_id": "p0", "actual_value": 1.0, "received_at": DAY + timedelta(hours=1)},
        {"prediction_id": "p0", "actual_value": 1.5, "received_at": DAY + timedelta(hours=2)},  # a correction
        {"prediction_id": "ghost", "actual_value": 2.0, "received_at": DAY + timedelta(hours=3)},
        {"prediction_id": "p1", "actual_value": 3.0, "received_at": NEXT_DAY},  # the next interval
        {"prediction_id": "p2", "actual_value": 4.0, "received_at": "not a time"},
    ])
    assert report.inserted == 4
    assert [(e.row, e.field) for e in report.rejected] == [(4, "received_at")]
    pulled = store.read_outcome_inbox(DAY, NEXT_DAY)
    assert pulled[["prediction_id", "actual_value"]].values.tolist() == [["p0", 1.0], ["p0", 1.5], ["ghost", 2.0]]
    counts = store.outcome_join_counts(pulled["prediction_id"], served_before=NEXT_DAY)
    assert counts == {"matched": 1, "orphan": 1, "late": 1}
    assert store.outcome_join_counts(["p0"], served_before=DAY) == {"matched": 1, "orphan": 0, "late": 0}


def test_alerts_are_deduplicated_per_window_and_cooled_down(store):
    def raise_(day, severity, cause="spend"):
        return store.raise_alert(model="roas_predictor", alert_type="feature_drift", severity=severity, cause=cause,
                                 details={"summary": "x"}, window_end=DAY + timedelta(days=day),
                                 cooldown=timedelta(days=3))

    first = raise_(0, "medium")
    assert first["status"] == "open"
    assert raise_(0, "medium") == first  # a re-run of the same window updates the same alert
    assert raise_(1, "medium")["status"] == "suppressed"  # same cause, no worse, within the cooldown
    assert raise_(2, "high")["status"] == "open"  # worse: alerts again
    assert raise_(2, "low", cause="ctr")["status"] == "open"  # another cause
    assert raise_(6, "high")["status"] == "open"  # the cooldown has passed
    assert [raise_(day, "high")["status"] for day in range(7, 12)] == ["suppressed"] * 5  # one daily episode
    assert len(store.check_alerts(until=DAY + timedelta(days=2))) == 2
    assert len(store.check_alerts(until=DAY + timedelta(days=1), include_suppressed=True)) == 1
    with store.engine.begin() as conn:  # a person acknowledged it; re-runs keep that
        conn.execute(sa.text("UPDATE alerts SET status = 'acknowledged' WHERE id = :id"), {"id": first["id"]})
    assert raise_(0, "medium")["status"] == "acknowledged"
    with pytest.raises(ValueError, match="severity"):
        raise_(0, "none")
    alert_id = store.create_alert("custom", "ctr_predictor", {"note": "by hand"}, severity="high", window_end=DAY)
    assert [a["id"] for a in store.check_alerts(until=DAY, model="ctr_predictor")] == [alert_id]
    long = store.raise_alert(model="roas_predictor", alert_type="systematic_error", severity="low", cause="x" * 600,
                             details={}, window_end=DAY)
    assert len(long["dedupe_key"]) <= 512


def test_retrain_requests_are_recorded_once(store):
    assert store.request_retrain(request_id="r1", model="roas_predictor", reasons=["a"], window_end=DAY) == "requested"
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE retrain_requests SET status = 'running'"))
    assert store.request_retrain(request_id="r1", model="roas_predictor", reasons=["a", "b"], window_end=DAY) \
        == "running"
    [request] = store.retrain_request_list(model="roas_predictor")
    assert request["reasons"] == ["a", "b"]


def test_window_reads_without_features(store):
    store.register_predictions(prediction_frame(20))
    store.record_outcomes([{"prediction_id": f"p{i}", "actual_value": 1.0} for i in range(20)])
    frame = store.read_window("roas_predictor", DAY, NEXT_DAY, features=False)
    assert len(frame) == 20
    assert not {"spend", "ctr", "platform"} & set(frame.columns)


def test_predictions_are_counted_per_version(store):
    frame = prediction_frame(30)
    frame.loc[:9, "model_version"] = "v2"
    store.register_predictions(frame)
    assert store.count_predictions_by_version("roas_predictor", DAY, NEXT_DAY) == {"v1": 20, "v2": 10}
    assert store.count_predictions_by_version("roas_predictor", NEXT_DAY, NEXT_DAY + timedelta(days=1)) == {}


def test_feature_vectors_stored_as_arrays_are_packed_by_the_upgrade(pg_url):
    store = FeedbackStore.from_url(pg_url)
    assert store.ensure_schema("0001") == "0001"
    with store.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO model_features VALUES ('roas_predictor', 'spend', 'numeric', 1), "
                             "('roas_predictor', 'ctr', 'numeric', 2), ('roas_predictor', 'cpm', 'numeric', 3)"))
        conn.execute(sa.text(
            "INSERT INTO predictions (prediction_id, model, model_version, predicted_value, num_features, "
            "cat_features, served_at) VALUES ('old-1', 'roas_predictor', 'v1', 2.0, ARRAY[1.5, NULL, -0.25], '{}', "
            ":day), ('old-2', 'roas_predictor', 'v1', 3.0, ARRAY[7.0], '{}', :day)"), {"day": DAY})
    assert store.ensure_schema() == HEAD
    store.record_outcomes([{"prediction_id": "old-1", "actual_value": 1.0}, {"prediction_id": "old-2",
                                                                               "actual_value": 1.0}])
    window = store.read_window("roas_predictor", DAY, NEXT_DAY, with_ids=True).set_index("prediction_id")
    assert window.loc["old-1", ["spend", "ctr", "cpm"]].tolist() == pytest.approx([1.5, np.nan, -0.25], nan_ok=True)
    assert window.loc["old-2", ["spend", "ctr", "cpm"]].tolist() == pytest.approx([7.0, np.nan, np.nan], nan_ok=True)
    store.register_prediction("roas_predictor", 2.0, {"spend": 1.5, "cpm": -0.25}, prediction_id="old-1",
                              model_version="v1", served_at=DAY)  # identical to the upgraded row: a no-op


def test_batches_written_in_parallel_lose_nothing_and_repeats_across_batches_keep_the_first(store):
    frame = prediction_frame(1000)
    report = store.register_predictions(frame, batch_size=100, writers=3)
    assert (report.received, report.inserted, report.rejected) == (1000, 1000, [])
    assert row_count(store, "predictions") == 1000
    again = pd.concat([prediction_frame(300, start=1000), prediction_frame(300, start=1000)], ignore_index=True)
    again.loc[450, "predicted_value"] = -1.0  # row 150 again, in a later batch, with another payload
    report = store.register_predictions(again, batch_size=100, writers=3)
    assert (report.inserted, report.unchanged) == (300, 299)
    assert [(e.row, e.prediction_id) for e in report.rejected] == [(450, "p1150")]
    window = store.read_window("roas_predictor", DAY, NEXT_DAY, labelled_only=False, with_ids=True)
    assert window.set_index("prediction_id").at["p1150", "predicted_value"] == again.at[150, "predicted_value"]


def test_packed_vectors_downgrade_to_arrays_exactly(feedback_url):
    store = FeedbackStore.from_url(feedback_url)
    store.ensure_schema()
    values = [1.5, np.nan, -0.0, 5e-324, -2.5e-310, 1.7976931348623157e308, -3.0e-300, 0.1, 7.0]
    with store.engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO predictions (prediction_id, model, model_version, predicted_value, num_features, "
            "cat_features, served_at) VALUES ('v', 'roas_predictor', 'v1', 1.0, :packed, '{}', :day)"),
            {"packed": np.array(values, dtype=">f8").tobytes(), "day": DAY})
    downgrade(store, "0001")
    with store.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT num_features FROM predictions")).scalar_one()
    assert np.array_equal(np.array(stored, dtype=float), np.array(values), equal_nan=True)
    assert np.signbit(stored[2])  # -0.0 keeps its sign
    assert store.ensure_schema() == HEAD  # and up again, to the same bytes
    with store.engine.connect() as conn:
        packed = conn.execute(sa.text("SELECT num_features FROM predictions")).scalar_one()
    assert bytes(packed) == np.array(values, dtype=">f8").tobytes()


def test_model_registry_versions_and_promotion(store):
    assert store.get_champion("roas_predictor") is None
    window = (DAY - timedelta(days=30), DAY)
    v1 = store.register_version("roas_predictor", "v1", artifact_uri="file:///models/roas/v1", training_window=window,
                                metrics={"mae": 0.4}, created_by="self_learning_retrain")
    assert v1["status"] == "challenger" and v1["metrics"] == {"mae": 0.4}
    assert store.promote("roas_predictor", "v1") is None
    store.register_version("roas_predictor", "v2", metrics={"mae": 0.3})
    assert store.promote("roas_predictor", "v2") == "v1"
    assert store.promote("roas_predictor", "v2") == "v2"  # already champion: a no-op
    assert store.get_champion("roas_predictor")["version"] == "v2"
    assert {v["version"]: v["status"] for v in store.version_history("roas_predictor")} == {
        "v1": "archived", "v2": "champion"}
    again = store.register_version("roas_predictor", "v2", metrics={"mae": 0.29})  # a re-run keeps the status
    assert again["status"] == "champion" and again["metrics"] == {"mae": 0.29}
    store.register_version("roas_predictor", "v3", status="rejected", metrics={"mae": 0.5})
    store.set_version_status("roas_predictor", "v3", "archived")
    with store.engine.begin() as conn, pytest.raises(sa.exc.IntegrityError):  # one champion per model
        conn.execute(sa.text("UPDATE model_versions SET status = 'champion' WHERE version = 'v1'"))
    for call, match in ((lambda: store.promote("roas_predictor", "v9"), "no registered version"),
                        (lambda: store.register_version("unknown_model", "v1"), "not registered"),
                        (lambda: store.register_version("roas_predictor", "v4", status="champion"), "promote"),
                        (lambda: store.set_version_status("roas_predictor", "v1", "gold"), "status")):
        with pytest.raises((KeyError, ValueError), match=match):
            call()


def test_a_stored_artifact_uri_is_written_once_and_a_champion_is_never_re_pointed(store):
    v1 = store.register_version("roas_predictor", "v1", artifact_uri="file:///artifacts/roas/v1/model.skops")
    store.promote("roas_predictor", "v1")
    again = store.register_version("roas_predictor", "v1", artifact_uri=v1["artifact_uri"], metrics={"mae": 0.2})
    assert again["artifact_uri"] == v1["artifact_uri"] and again["metrics"] == {"mae": 0.2}  # idempotent
    kept = store.register_version("roas_predictor", "v1", metrics={"mae": 0.2})
    assert kept["artifact_uri"] == v1["artifact_uri"]  # None keeps it
    with pytest.raises(ValueError, match=r"^artifact_uri: .*written once"):
        store.register_version("roas_predictor", "v1", artifact_uri="file:///anywhere/x.pkl", metrics={"mae": 9.0})
    assert store.get_champion("roas_predictor") == kept  # the row untouched
    store.register_version("roas_predictor", "v2")  # no artifact yet: one may be attached once
    assert store.register_version("roas_predictor", "v2", artifact_uri="file:///a/v2")["artifact_uri"] == "file:///a/v2"
    store.register_version("roas_predictor", "v3", status="archived")
    store.promote("roas_predictor", "v3")  # a champion without an artifact (bootstrap) can't get one later
    with pytest.raises(ValueError, match=r"^artifact_uri: .*champion"):
        store.register_version("roas_predictor", "v3", artifact_uri="file:///anywhere/x.pkl")
    assert store.get_champion("roas_predictor")["artifact_uri"] is None


def test_retrain_requests_are_claimed_closed_and_cover_their_causes(store):
    week = timedelta(days=7)
    store.request_retrain(request_id="r1", model="roas_predictor", reasons=["concept drift"], window_end=DAY,
                          causes=["mape", "concept_drift"])
    # pending or not, a request covers only its own causes: a new one (feature drift) is asked for
    assert store.covering_retrain_request("roas_predictor", ["feature_drift"], window_end=NEXT_DAY,
                                          cooldown=week) is None
    assert store.covering_retrain_request("roas_predictor", ["mape"], window_end=NEXT_DAY,
                                          cooldown=week)["request_id"] == "r1"
    assert store.claim_retrain_request("r1", model="roas_predictor", reasons=["x"], window_end=DAY)["status"] == \
        "running"
    store.finish_retrain_request("r1", status="done", result_version="r20261101", detail={"accept": False})
    [row] = store.retrain_request_list(request_id="r1")
    assert (row["status"], row["result_version"], row["causes"], row["detail"]) == (
        "done", "r20261101", {"concept_drift": "high", "mape": "high"}, {"accept": False})
    assert store.covering_retrain_request("roas_predictor", ["concept_drift"], window_end=NEXT_DAY,
                                          cooldown=week)["request_id"] == "r1"
    assert store.covering_retrain_request("roas_predictor", ["feature_drift"], window_end=NEXT_DAY,
                                          cooldown=week) is None  # a new cause
    assert store.covering_retrain_request("roas_predictor", ["mape"], window_end=DAY + 2 * week,
                                          cooldown=week) is None  # past the cooldown
    assert store.covering_retrain_request("roas_predictor", ["mape"], window_end=DAY, cooldown=week,
                                          exclude="r1") is None
    store.finish_retrain_request("r1", status="failed", detail={"error": "boom"})
    assert store.covering_retrain_request("roas_predictor", ["mape"], window_end=NEXT_DAY, cooldown=week) is None
    manual = store.claim_retrain_request("m1", model="ctr_predictor", reasons=["by hand"], window_end=DAY)
    assert (manual["status"], manual["causes"]) == ("running", {"manual": "high"})
    for call, error, match in (
            (lambda: store.finish_retrain_request("nope", status="done"), KeyError, "no retrain request"),
            (lambda: store.finish_retrain_request("r1", status="requested"), ValueError, "status"),
            (lambda: store.claim_retrain_request("r1", model="ctr_predictor", reasons=[], window_end=DAY),
             ValueError, "a request for 'roas_predictor'")):
        with pytest.raises(error, match=match):
            call()


def test_ab_tests_one_running_per_model_with_arm_counts(store):
    for version in ("v1", "v2", "v3"):
        store.register_version("roas_predictor", version)
    store.promote("roas_predictor", "v1")
    config = {"traffic_split": 0.5, "unit": "campaign"}
    test = store.start_ab_test(test_id="t1", model="roas_predictor", champion_version="v1", challenger_version="v2",
                               config=config, started_at=DAY)
    assert (test["status"], test["config"], test["result"]) == ("running", config, None)
    assert store.start_ab_test(test_id="t1", model="roas_predictor", champion_version="v1", challenger_version="v2",
                               config=config, started_at=DAY) == test
    with pytest.raises(ValueError, match="already runs A/B test 't1'"):
        store.start_ab_test(test_id="t2", model="roas_predictor", champion_version="v1", challenger_version="v3",
                            config=config, started_at=DAY)
    with store.engine.begin() as conn, pytest.raises(sa.exc.IntegrityError):  # the index holds it too
        conn.execute(sa.text("INSERT INTO ab_tests (test_id, model, champion_version, challenger_version, config, "
                             "status) VALUES ('t3', 'roas_predictor', 'v1', 'v3', '{}', 'running')"))
    assert store.running_ab_test("roas_predictor")["test_id"] == "t1"
    store.update_ab_test("t1", result={"looks": [1]}, status="promoted", ended_at=NEXT_DAY)
    assert store.running_ab_test("roas_predictor") is None
    assert store.get_ab_test("t1")["result"] == {"looks": [1]}
    assert [t["test_id"] for t in store.list_ab_tests(model="roas_predictor", status="promoted")] == ["t1"]
    with pytest.raises(KeyError, match="no A/B test 'x'"):
        store.get_ab_test("x")
    with pytest.raises(ValueError, match="status"):
        store.update_ab_test("t1", result={}, status="won")

    frame = prediction_frame(30)
    frame.loc[:9, "model_version"] = "v2"
    frame["unit_id"] = [f"c{i % 4}" for i in range(30)]
    store.register_predictions(frame)
    assert store.arm_counts("roas_predictor", DAY, NEXT_DAY) == {"v1": {"predictions": 20, "units": 4},
                                                                 "v2": {"predictions": 10, "units": 4}}


def test_migration_0004_goes_down_and_up(store):
    store.request_retrain(request_id="r1", model="roas_predictor", reasons=["a"], window_end=DAY, causes=["mape"])
    downgrade(store, "0003")
    with store.engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("retrain_requests")}
        assert not {"causes", "detail"} & columns
        assert "uq_ab_tests_running" not in {i["name"] for i in sa.inspect(conn).get_indexes("ab_tests")}
    assert store.ensure_schema() == HEAD
    assert store.retrain_request_list()[0]["reasons"] == ["a"]
