"""The store's typed records: frozen, fields = columns, UTC datetimes, readable as the dicts they replace."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from self_learning.core.records import (
    ABTestRecord,
    AlertRecord,
    ModelVersion,
    RetrainRequestRecord,
    cause_severities,
)

DAY = datetime(2026, 11, 1, tzinfo=UTC)


def _version(**changes) -> ModelVersion:
    row = {"model": "roas_predictor", "version": "v1", "status": "champion", "artifact_uri": "file:///a/v1",
           "training_window_start": DAY - timedelta(days=30), "training_window_end": DAY,
           "metrics": {"mae": 0.2}, "created_by": "retrain", "created_at": DAY + timedelta(hours=1)}
    return ModelVersion.from_row(row | changes)


def test_a_record_reads_like_the_dict_it_replaces():
    version = _version()
    assert version.version == version["version"] == "v1"
    assert version.get("artifact_uri") == "file:///a/v1" and version.get("nope", 7) == 7
    assert "metrics" in version and "nope" not in version
    assert list(version) == [f.name for f in dataclasses.fields(ModelVersion)] == list(version.keys())
    assert len(version) == 9
    as_dict = dict(version)
    assert as_dict["created_at"] == DAY + timedelta(hours=1) and as_dict["metrics"] == {"mae": 0.2}
    assert version == as_dict and {**version} == as_dict  # compares and unpacks as that dict
    assert version != as_dict | {"status": "archived"}
    with pytest.raises(KeyError, match="nope"):
        version["nope"]


def test_to_dict_is_json_and_round_trips():
    version = _version()
    text = json.dumps(version.to_dict())
    assert json.loads(text)["created_at"] == "2026-11-01T01:00:00+00:00"
    assert ModelVersion.from_dict(json.loads(text)) == version


def test_records_are_frozen():
    version = _version()
    with pytest.raises(dataclasses.FrozenInstanceError):
        version.status = "archived"  # type: ignore[misc]
    with pytest.raises(TypeError):
        version["status"] = "archived"  # type: ignore[index]


def test_datetimes_are_aware_utc_whatever_the_driver_returned():
    naive = _version(created_at=datetime(2026, 11, 1, 1, 0))  # SQLite hands back naive UTC
    shifted = _version(created_at=datetime(2026, 11, 1, 3, 0, tzinfo=timezone(timedelta(hours=2))))
    assert naive.created_at == shifted.created_at == DAY + timedelta(hours=1)
    assert naive.created_at.tzinfo is UTC and shifted.created_at.tzinfo is UTC
    assert naive.training_window == (DAY - timedelta(days=30), DAY)
    assert _version(training_window_start=None).training_window is None
    with pytest.raises(ValueError, match=r"^created_at: expected a datetime"):
        _version(created_at="2026-11-01")


def test_json_columns_must_hold_objects():
    with pytest.raises(ValueError, match=r"^metrics: expected a JSON object"):
        _version(metrics=[1, 2])
    assert _version(metrics=None).metrics is None
    with pytest.raises(ValueError, match=r"^config: expected a JSON object"):
        ABTestRecord("t1", "m", "v1", "v2", "not json", "running")


def test_from_row_ignores_unknown_columns_and_names_a_missing_one():
    assert _version(extra_column=1).version == "v1"
    with pytest.raises(ValueError, match=r"^version: the ModelVersion row has no such column"):
        ModelVersion.from_row({"model": "m", "status": "champion"})


def test_ab_test_and_alert_records():
    test = ABTestRecord("t1", "m", "v1", "v2", {"seed": "t1", "traffic_split": 0.1}, "running", None,
                        datetime(2026, 11, 1), None)
    assert test.running and test["config"]["seed"] == "t1" and test.started_at == DAY
    assert not dataclasses.replace(test, status="promoted").running
    alert = AlertRecord(3, "m|drift|x", "m", "feature_drift", "high", "open", {"summary": "spend drifted"}, DAY)
    assert alert.summary == "spend drifted" and alert["severity"] == "high"
    assert dataclasses.replace(alert, details=None).summary == ""
    with pytest.raises(ValueError, match=r"^severity: one of none, low, medium, high, critical, got 'huge'"):
        dataclasses.replace(alert, severity="huge")


def test_retrain_request_causes_read_in_either_stored_shape():
    legacy = RetrainRequestRecord("r1", "m", ["concept drift"], "done", DAY, causes=["mape", "concept_drift"])
    assert legacy.causes == {"concept_drift": "high", "mape": "high"}  # a list of names: each "high"
    current = RetrainRequestRecord("r2", "m", ("a",), "requested", DAY, causes={"feature_drift": "low"})
    assert current.causes == {"feature_drift": "low"} and current.reasons == ["a"]
    assert RetrainRequestRecord("r3", "m", [], "running", DAY, causes=None).causes == {}
    assert "feature_drift" in current["causes"]  # what callers of the list-shaped rows did still works
    with pytest.raises(ValueError, match=r"^causes\[mape\]: severity one of low, medium, high, critical"):
        RetrainRequestRecord("r4", "m", [], "requested", DAY, causes={"mape": "none"})


def test_cause_severities_checks_both_shapes():
    assert cause_severities(["b", "a"], default="low") == {"a": "low", "b": "low"}
    assert cause_severities({"a": "critical"}) == {"a": "critical"}
    with pytest.raises(ValueError, match=r"^causes: expected a list of causes"):
        cause_severities("mape")
    with pytest.raises(ValueError, match=r"^causes: cause names are non-empty strings"):
        cause_severities([""])
