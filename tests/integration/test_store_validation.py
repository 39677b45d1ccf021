"""Input the store refuses, and how it says so (issue 13, items 6 and 7), on PostgreSQL and SQLite.

Each test pins one defect the probe found: a model name with a trailing newline, ``features=None``
as a bare TypeError, implausible timestamps, outcomes converting "3.5" and True, a feature kind
fixed by one decimal text, an unbounded feature registry and 1 MB payloads kept in ingest_rejects.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from self_learning.domain import DEFAULT_MAX_FEATURES, ModelSpec, model_name
from self_learning.store import FeedbackStore
from self_learning.store.tables import MAX_REJECT_PAYLOAD_BYTES

DAY = datetime(2026, 11, 1, tzinfo=UTC)
NEXT_DAY = DAY + timedelta(days=1)


def _prediction(prediction_id: str, features, **fields) -> dict:
    return {"prediction_id": prediction_id, "model": "roas_predictor", "predicted_value": 1.0, "served_at": DAY,
            "features": features} | fields


def _rejected(report) -> list[tuple[int, str]]:
    return [(e.row, e.field) for e in report.rejected]


def _stored_ids(store: FeedbackStore) -> set[str]:
    with store.engine.connect() as conn:
        return {pid for (pid,) in conn.execute(sa.text("SELECT prediction_id FROM predictions"))}


# -- item 7: the smaller checks ---------------------------------------------------------------------------------


def test_a_model_name_with_a_trailing_newline_is_not_a_second_model(store):
    for name in ("roas_predictor\n", "roas_predictor\n\n", "\nroas_predictor"):
        with pytest.raises(ValueError, match=r"model: .* is not a valid model name"):
            model_name(name)
        with pytest.raises(ValueError, match=r"model: .* is not a valid model name"):
            ModelSpec(name, "regression")
        with pytest.raises(ValueError, match=r"model: .* is not a valid model name"):
            store.register_prediction(name, 1.0, {}, served_at=DAY)
    report = store.register_predictions([_prediction("n1", {}, model="roas_predictor\n"), _prediction("n2", {})])
    assert (report.inserted, _rejected(report)) == (1, [(0, "model")])
    assert model_name("roas_predictor") == "roas_predictor"


def test_features_none_is_a_value_error_naming_features(store):
    with pytest.raises(ValueError, match="features: must be a mapping of feature name to value, got None"):
        store.register_prediction("roas_predictor", 1.0, None, served_at=DAY)
    with pytest.raises(ValueError, match="features: must be a mapping"):
        store.register_prediction("roas_predictor", 1.0, ["spend", 1.0], served_at=DAY)
    report = store.register_predictions([_prediction("f1", None), _prediction("f2", {"spend": 1.0})])
    assert (report.inserted, _rejected(report)) == (1, [(0, "features")])


@pytest.mark.parametrize("stamp", [datetime(1, 1, 1, tzinfo=UTC), "9999-12-31T00:00:00Z", "1970-01-01",
                                   datetime(2250, 1, 1, tzinfo=UTC), 1_700_000_000])
def test_implausible_timestamps_are_refused_naming_the_field(store, stamp):
    with pytest.raises(ValueError, match=r"served_at: .* is outside the plausible range 2000-01-01 \.\. 2200-01-01"):
        store.register_prediction("roas_predictor", 1.0, {}, served_at=stamp, prediction_id="t0")
    report = store.register_predictions([_prediction("t1", {}, served_at=stamp), _prediction("t2", {})])
    assert (report.inserted, _rejected(report)) == (1, [(0, "served_at")])
    assert "outside the plausible range" in report.rejected[0].reason
    outcomes = store.record_outcomes([{"prediction_id": "t2", "actual_value": 1.0, "observed_at": stamp},
                                      {"prediction_id": "t3", "actual_value": 1.0, "observed_at": DAY}])
    assert (outcomes.inserted, _rejected(outcomes)) == (1, [(0, "observed_at")])
    inbox = store.enqueue_outcomes([{"prediction_id": "t4", "actual_value": 1.0, "received_at": stamp},
                                    {"prediction_id": "t5", "actual_value": 1.0, "received_at": DAY}])
    assert (inbox.inserted, _rejected(inbox)) == (1, [(0, "received_at")])
    assert _stored_ids(store) == {"t2"}


def test_plausible_timestamps_in_every_form_still_land(store):
    stamps = [DAY, "2026-11-01T01:00:00+02:00", pd.Timestamp("2026-11-01 05:00"), datetime(2026, 11, 1, 6)]
    report = store.register_predictions([_prediction(f"s{i}", {}, served_at=s) for i, s in enumerate(stamps)])
    assert (report.inserted, report.rejected) == (4, [])
    window = store.read_window("roas_predictor", DAY - timedelta(hours=1), NEXT_DAY, labelled_only=False,
                               with_ids=True).set_index("prediction_id")
    assert window.at["s1", "served_at"] == pd.Timestamp("2026-10-31T23:00:00Z")


@pytest.mark.parametrize("value", ["3.5", True, np.bool_(False), "", [1.0]])
def test_outcomes_refuse_what_predictions_refuse(store, value):
    with pytest.raises(ValueError, match="predicted_value: must be a number, got"):
        store.register_prediction("roas_predictor", value, {}, served_at=DAY)
    with pytest.raises(ValueError, match="actual_value: must be a number, got"):
        store.record_outcome("o1", value)
    predictions = store.register_predictions([_prediction("o1", {}, predicted_value=value), _prediction("o2", {})])
    assert (predictions.inserted, _rejected(predictions)) == (1, [(0, "predicted_value")])
    assert predictions.rejected[0].reason.startswith("must be a number, got")
    outcomes = store.record_outcomes([{"prediction_id": "o1", "actual_value": value},
                                      {"prediction_id": "o2", "actual_value": 3.5}])
    assert (outcomes.inserted, _rejected(outcomes)) == (1, [(0, "actual_value")])
    assert outcomes.rejected[0].reason == predictions.rejected[0].reason  # one rule, one wording
    assert store.record_outcome("o3", 2) == "recorded"  # integers are numbers


# -- item 6: declared kinds, kinds decided on more than one value, the feature cap ------------------------------


def test_declared_kinds_are_authoritative(store):
    store.register_model(ModelSpec("declared", "regression", {"price": "numeric", "code": "categorical"}))
    fresh = FeedbackStore(store.engine)  # a new serving process: nothing cached
    assert fresh.feature_registry("declared") == {"price": ("numeric", 1), "code": ("categorical", 1)}
    with pytest.raises(ValueError, match=r"features\.price: must be a number, got '120\.5'"):
        fresh.register_prediction("declared", 1.0, {"price": "120.5"}, served_at=DAY)
    with pytest.raises(ValueError, match=r"features\.code: the feature is categorical, got the number 120\.5"):
        fresh.register_prediction("declared", 1.0, {"code": 120.5}, served_at=DAY)
    fresh.register_prediction("declared", 1.0, {"price": 120.5, "code": 7}, prediction_id="d1", served_at=DAY)
    report = fresh.register_predictions(pd.DataFrame({
        "prediction_id": ["d2", "d3", "d4"], "model": "declared", "predicted_value": 1.0, "served_at": DAY,
        "price": [1.5, "120.5", 2.5], "code": ["a", "b", 3.25]}))
    assert (report.inserted, _rejected(report)) == (1, [(1, "features.price"), (2, "features.code")])
    window = fresh.read_window("declared", DAY, NEXT_DAY, labelled_only=False, with_ids=True).set_index(
        "prediction_id")
    assert (window.at["d1", "price"], window.at["d1", "code"], window.at["d2", "code"]) == (120.5, "7", "a")
    with pytest.raises(ValueError, match=r"feature_schema\['price'\]: declared categorical, but the feature is "
                                         r"registered as numeric"):
        fresh.register_model(ModelSpec("declared", "regression", {"price": "categorical"}, {"max_features": 9}))
    assert fresh.get_model("declared").feature_schema == {"price": "numeric", "code": "categorical"}  # rolled back


def test_one_decimal_text_does_not_decide_a_new_features_kind(store):
    with pytest.raises(ValueError, match=r"features\.price: cannot tell whether 'price' is numeric or categorical: "
                                         r"'120\.5' is text that reads as a number"):
        store.register_prediction("roas_predictor", 1.0, {"price": "120.5"}, served_at=DAY)
    assert "price" not in store.feature_registry("roas_predictor")
    store.register_prediction("roas_predictor", 1.0, {"price": 120.5, "zip": "02139"}, prediction_id="k1",
                              served_at=DAY)
    assert store.feature_registry("roas_predictor")["price"][0] == "numeric"
    assert store.feature_registry("roas_predictor")["zip"][0] == "categorical"  # whole-number text is a code
    with pytest.raises(ValueError, match=r"features\.zip: the feature is categorical, got the number 2139\.5"):
        store.register_prediction("roas_predictor", 1.0, {"zip": 2139.5}, served_at=DAY)


def test_a_bulk_batch_decides_a_new_features_kind_on_all_its_values(store):
    frame = pd.DataFrame({
        "prediction_id": [f"b{i}" for i in range(4)], "model": "roas_predictor", "predicted_value": 1.0,
        "served_at": DAY,
        "late_number": ["120.5", 3.0, 4.5, None],  # a decimal text first, numbers after: numeric
        "all_text": ["1.5", "2.5", None, "3.5"],  # only decimal text: undecided, its rows are refused
        "words": ["red", "blue", "7", None],  # text: categorical
    })
    report = store.register_predictions(frame)
    assert _rejected(report) == [(0, "features.all_text"), (0, "features.late_number"), (1, "features.all_text"),
                                 (3, "features.all_text")]
    assert "send numbers for a numeric feature, or declare its kind" in report.rejected[0].reason
    assert report.rejected[1].reason == "must be a number, got '120.5'"
    assert report.inserted == 1 and _stored_ids(store) == {"b2"}
    registry = store.feature_registry("roas_predictor")
    assert (registry["late_number"][0], registry["words"][0], "all_text" in registry) == (
        "numeric", "categorical", False)


@pytest.mark.parametrize("bulk", [False, True])
def test_a_models_feature_registry_is_capped(store, bulk):
    store.register_model(ModelSpec("capped", "regression", {"a": "numeric"}, {"max_features": 3,
                                                                                "extend_features": True}))
    store.register_prediction("capped", 1.0, {"a": 1.0, "b": 2.0, "c": "x"}, prediction_id="c0", served_at=DAY)
    cap_message = "the model 'capped' has 3 registered features, its cap (thresholds.max_features) is 3"
    if bulk:
        report = store.register_predictions([
            {"prediction_id": "c1", "model": "capped", "predicted_value": 1.0, "served_at": DAY,
             "features": {"a": 1.0, "d": 4.0}},
            {"prediction_id": "c2", "model": "capped", "predicted_value": 1.0, "served_at": DAY,
             "features": {"a": 2.0, "b": 3.0}},
        ])
        assert (report.inserted, _rejected(report)) == (1, [(0, "features.d")])
        assert cap_message in report.rejected[0].reason
    else:
        with pytest.raises(ValueError, match=r"features\.d: " + re.escape(cap_message)):
            store.register_prediction("capped", 1.0, {"a": 1.0, "d": 4.0}, served_at=DAY)
    assert sorted(FeedbackStore(store.engine).feature_registry("capped")) == ["a", "b", "c"]


def test_the_default_cap_stops_a_stream_of_new_keys(store):
    """The probe's case: batches of new keys kept registering features (3,000 after six)."""
    store.register_model(ModelSpec("roas_predictor", "regression", thresholds={"extend_features": True}))
    batches = [pd.DataFrame({"prediction_id": [f"g{b}-{i}" for i in range(3)], "model": "roas_predictor",
                             "predicted_value": 1.0, "served_at": DAY,
                             **{f"k{b}_{j}": np.arange(3.0) for j in range(100)}}) for b in range(6)]
    reports = [store.register_predictions(batch) for batch in batches]
    assert [r.inserted for r in reports] == [3, 3, 3, 3, 3, 0]
    assert {e.field for e in reports[5].rejected} == {f"features.k5_{j}" for j in range(100)}
    assert len(store.feature_registry("roas_predictor")) == DEFAULT_MAX_FEATURES


def test_model_specs_check_their_cap():
    with pytest.raises(ValueError, match=r"thresholds\.max_features: must be an integer in 1\.\.5000, got 0"):
        ModelSpec("m", "regression", thresholds={"max_features": 0})
    with pytest.raises(ValueError, match=r"thresholds\.max_features: .* got True"):
        ModelSpec("m", "regression", thresholds={"max_features": True})
    with pytest.raises(ValueError, match="feature_schema: declares 2 features, more than the model's cap of 1"):
        ModelSpec("m", "regression", {"a": "numeric", "b": "numeric"}, {"max_features": 1})
    assert ModelSpec("m", "regression").max_features == DEFAULT_MAX_FEATURES


# -- ingest_rejects: payloads and reasons are capped ------------------------------------------------------------


def test_a_rejected_megabyte_is_stored_cut_with_its_size(store):
    huge = "x" * 1_000_000
    escaped = '"\\é😀' * 100_000  # every character is escaped in JSON text
    report = store.register_predictions([_prediction("big", {"note": huge}), _prediction("small", {"note": 1.5}),
                                         _prediction("ok", {"note": "fine"}), _prediction("esc", {"note": escaped})],
                                        quarantine=True)
    assert report.inserted == 1
    assert _rejected(report) == [(0, "features.note"), (1, "features.note"), (3, "features.note")]
    assert all(len(e.reason) < 300 for e in report.rejected)
    with store.engine.connect() as conn:
        stored = dict(conn.execute(sa.text("SELECT prediction_id, payload FROM ingest_rejects")).all())
    payloads = {pid: value if isinstance(value, dict) else json.loads(value) for pid, value in stored.items()}
    assert payloads["big"]["truncated"] is True and payloads["big"]["original_bytes"] > 1_000_000
    assert len(json.dumps(payloads["big"])) <= MAX_REJECT_PAYLOAD_BYTES
    assert len(json.dumps(payloads["esc"])) <= MAX_REJECT_PAYLOAD_BYTES and payloads["esc"]["truncated"] is True
    assert payloads["big"]["head"].startswith('{"prediction_id": "big"')
    assert payloads["small"]["features"] == {"note": 1.5}  # small payloads are kept whole
    outcomes = store.record_outcomes([{"prediction_id": "big", "actual_value": huge}], quarantine=True)
    assert len(outcomes.rejected[0].reason) < 300
