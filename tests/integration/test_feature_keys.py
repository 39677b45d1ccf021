"""A model's feature keys are closed by its first stored prediction; a key outside them is refused
naming the closest known one; the set grows on purpose only (issue 20: ``spendd`` silently became
a new feature). On both databases."""

from __future__ import annotations

import pandas as pd
import pytest
from self_learning.core.types import ModelSpec
from support.stores import DAY


def _bulk(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    return pd.DataFrame({"prediction_id": [f"b{i}" for i in range(n)], "model": "roas_predictor",
                         "predicted_value": 1.0, "served_at": DAY, **columns})


def test_a_typo_after_the_first_registration_is_refused_naming_the_closest_key(store):
    store.register_prediction("roas_predictor", 2.4, {"spend": 120.0, "platform": "meta"}, served_at=DAY)
    with pytest.raises(ValueError, match=r"^features\.spendd: not a feature of 'roas_predictor' \(did you mean "
                                         r"'spend'\? its features: platform, spend\); .*store\.add_features"):
        store.register_prediction("roas_predictor", 2.5, {"spendd": 130.0, "platform": "meta"}, served_at=DAY)
    assert sorted(store.feature_registry("roas_predictor")) == ["platform", "spend"]


def test_a_bulk_typo_rejects_only_the_rows_carrying_it(store):
    first = store.register_predictions(_bulk(spend=[1.0, 2.0], platform=["meta", "tiktok"], cpm=[3.0, 4.0]))
    assert (first.inserted, first.rejected) == (2, [])  # the first batch decides the keys: all three
    later = _bulk(spend=[1.0, 2.0, 3.0], platfrom=["meta", None, None]).assign(prediction_id=["c0", "c1", "c2"])
    report = store.register_predictions(later)
    assert report.inserted == 2
    (error,) = report.rejected
    assert (error.row, error.field) == (0, "features.platfrom")
    assert "did you mean 'platform'?" in error.reason
    assert sorted(store.feature_registry("roas_predictor")) == ["cpm", "platform", "spend"]


def test_an_unrelated_key_names_the_known_ones_without_a_guess(store):
    store.register_prediction("roas_predictor", 1.0, {"spend": 1.0}, served_at=DAY)
    with pytest.raises(ValueError, match=r"features\.weather: not a feature of 'roas_predictor' \(its features: "
                                         r"spend\)"):
        store.register_prediction("roas_predictor", 1.0, {"weather": "sunny"}, served_at=DAY)


def test_declared_features_and_the_first_batch_make_the_set(store):
    store.register_model(ModelSpec("declared", "regression", {"price": "numeric"}))
    store.register_prediction("declared", 1.0, {"price": 3.0, "code": "a"}, served_at=DAY)  # first: code joins
    assert store.feature_registry("declared") == {"price": ("numeric", 1), "code": ("categorical", 1)}
    with pytest.raises(ValueError, match=r"features\.prices: .*did you mean 'price'\?"):
        store.register_prediction("declared", 1.0, {"prices": 3.0}, served_at=DAY)


def test_features_are_added_on_purpose(store):
    store.register_prediction("roas_predictor", 1.0, {"spend": 1.0}, served_at=DAY)
    registry = store.add_features("roas_predictor", {"budget": "numeric", "market": "categorical"})
    assert registry["budget"] == ("numeric", 2) and registry["market"] == ("categorical", 1)
    assert store.get_model("roas_predictor").feature_schema == {"budget": "numeric", "market": "categorical"}
    store.register_prediction("roas_predictor", 1.0, {"spend": 2.0, "budget": 9.0, "market": "de"}, served_at=DAY)
    assert store.add_features("roas_predictor", {"budget": "numeric"})["budget"] == ("numeric", 2)  # a no-op
    with pytest.raises(ValueError, match=r"feature_schema\['budget'\]: declared categorical, but the feature is "
                                         "registered as numeric"):
        store.add_features("roas_predictor", {"budget": "categorical"})
    with pytest.raises(ValueError, match=r"feature_schema\['x'\]: kind must be 'numeric' or 'categorical', got 'int'"):
        store.add_features("roas_predictor", {"x": "int"})
    with pytest.raises(ValueError, match=r"model: 'nobody' is not registered"):
        store.add_features("nobody", {"x": "numeric"})
    # re-registering the model with a larger declared schema extends it as well
    store.register_model(ModelSpec("roas_predictor", "regression", {"budget": "numeric", "reach": "numeric"}))
    store.register_prediction("roas_predictor", 1.0, {"reach": 5.0}, served_at=DAY)


def test_a_model_may_opt_in_to_registering_keys_as_they_come(store):
    store.register_model(ModelSpec("open", "regression", thresholds={"extend_features": True}))
    store.register_prediction("open", 1.0, {"a": 1.0}, served_at=DAY)
    store.register_prediction("open", 1.0, {"b": "x"}, served_at=DAY)
    assert store.register_predictions(_bulk(c=[1.0]).assign(model="open")).rejected == []
    assert sorted(store.feature_registry("open")) == ["a", "b", "c"]
    with pytest.raises(ValueError, match=r"thresholds\.extend_features: must be true or false, got 'yes'"):
        ModelSpec("unclear", "regression", thresholds={"extend_features": "yes"})
