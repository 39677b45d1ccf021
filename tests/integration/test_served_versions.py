"""A prediction's ``model_version``: one of the registry's once the model has registered versions
(issue 20: an unregistered version was accepted silently). On both databases."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
from self_learning.store import DEFAULT_VERSION
from support.stores import DAY


def test_a_model_using_the_registry_refuses_an_unregistered_version(store):
    store.register_version("roas_predictor", "v7")
    with pytest.raises(ValueError, match=r"^model_version: 'v8' is not a registered version of 'roas_predictor' "
                                         r"\(did you mean 'v7'\? registered: v7\); register it first: "
                                         r"store\.register_version\('roas_predictor', 'v8'\)"):
        store.register_prediction("roas_predictor", 1.0, {"spend": 1.0}, model_version="v8", served_at=DAY)
    store.register_prediction("roas_predictor", 1.0, {"spend": 1.0}, model_version="v7", served_at=DAY)
    store.register_prediction("roas_predictor", 1.0, {"spend": 1.0}, served_at=DAY)  # unversioned: always
    store.register_version("roas_predictor", "v8")  # registered explicitly: accepted from now on
    store.register_prediction("roas_predictor", 1.0, {"spend": 1.0}, model_version="v8", served_at=DAY)
    assert store.read_window("roas_predictor", DAY, DAY + pd.Timedelta(days=1), labelled_only=False
                             )["model_version"].value_counts().to_dict() == {"v7": 1, "v8": 1, DEFAULT_VERSION: 1}


def test_bulk_rows_of_an_unregistered_version_are_rejected_and_the_rest_land(store):
    store.register_version("roas_predictor", "v7")
    frame = pd.DataFrame({"prediction_id": ["a", "b", "c"], "model": "roas_predictor", "predicted_value": 1.0,
                          "model_version": ["v7", "v7-hotfix", None], "served_at": DAY, "spend": 1.0})
    report = store.register_predictions(frame)
    assert report.inserted == 2
    (error,) = report.rejected
    assert (error.row, error.prediction_id, error.field) == (1, "b", "model_version")
    assert "'v7-hotfix' is not a registered version of 'roas_predictor'" in error.reason


def test_a_model_without_a_registry_takes_any_version_with_a_warning_once(store, caplog):
    with caplog.at_level(logging.WARNING, logger="self_learning.store.versions"):
        for _ in range(3):
            store.register_prediction("roas_predictor", 1.0, {"spend": 1.0}, model_version="v1", served_at=DAY)
        store.register_predictions(pd.DataFrame({"model": ["roas_predictor"], "predicted_value": [1.0],
                                                 "model_version": ["v1"], "served_at": [DAY], "spend": [1.0]}))
    warnings = [r.getMessage() for r in caplog.records if "is not in the model registry" in r.getMessage()]
    assert len(warnings) == 1 and "'v1' of roas_predictor" in warnings[0]
