"""The store's typed records on PostgreSQL and SQLite, and the retrain-request rule end to end:
a request raised by a false alarm does not block the request for a real, stronger cause."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from self_learning.core.records import ABTestRecord, AlertRecord, ModelVersion, RetrainRequestRecord
from self_learning.core.types import DriftReport, DriftType, Severity, TaskKind
from self_learning.operators.daily import RetrainDecisionOperator
from self_learning.performance import ModelPerformance
from self_learning.settings import RunSettings
from self_learning.store import ALL_VERSIONS
from self_learning.store.tables import ab_tests, alerts, model_versions, retrain_requests
from support.stores import DAY, NEXT_DAY

MODEL = "roas_predictor"


def _timestamps_are_utc(record) -> bool:
    stamps = [v for v in dict(record).values() if isinstance(v, datetime)]
    return bool(stamps) and all(v.tzinfo is UTC for v in stamps)


@pytest.mark.parametrize(("record", "table"), [(ModelVersion, model_versions), (ABTestRecord, ab_tests),
                                               (AlertRecord, alerts), (RetrainRequestRecord, retrain_requests)])
def test_record_fields_are_exactly_the_migrated_columns(store, record, table):
    with store.engine.connect() as conn:
        migrated = [c["name"] for c in sa.inspect(conn).get_columns(table.name)]
    assert sorted(f.name for f in dataclasses.fields(record)) == sorted(migrated) == sorted(table.columns.keys())


def test_registry_and_ab_reads_are_typed_with_utc_datetimes(store):
    registered = store.register_version(MODEL, "v1", training_window=(DAY - timedelta(days=30), DAY),
                                        metrics={"mae": 0.2}, artifact_uri="file:///a/v1")
    store.register_version(MODEL, "v2")
    assert store.get_champion(MODEL) is None
    store.promote(MODEL, "v1")
    champion = store.get_champion(MODEL)
    assert type(registered) is type(champion) is ModelVersion
    assert (champion.version, champion.status, champion.metrics) == ("v1", "champion", {"mae": 0.2})
    assert champion.training_window == (DAY - timedelta(days=30), DAY) and _timestamps_are_utc(champion)
    assert [(v.version, v.status) for v in store.version_history(MODEL)] == [("v1", "champion"), ("v2", "challenger")]

    started = store.start_ab_test(test_id="t1", model=MODEL, champion_version="v1", challenger_version="v2",
                                  config={"seed": "t1", "traffic_split": 0.2}, started_at=DAY)
    running = store.running_ab_test(MODEL)
    assert type(started) is type(running) is ABTestRecord and running == started
    assert running.running and running.started_at == DAY and running.started_at.tzinfo is UTC
    assert running["config"]["seed"] == "t1"  # the serving snippet's reads keep working
    store.update_ab_test("t1", result={"latest": {"p": 0.5}}, status="inconclusive", ended_at=NEXT_DAY)
    closed = store.get_ab_test("t1")
    assert (closed.status, closed.result, closed.ended_at) == ("inconclusive", {"latest": {"p": 0.5}}, NEXT_DAY)
    assert closed.ended_at > closed.started_at  # comparable on both databases (SQLite used to hand back naive)
    assert store.list_ab_tests(model=MODEL) == [closed] and store.running_ab_test(MODEL) is None


def test_alert_and_retrain_request_reads_are_typed(store):
    raised = store.raise_alert(model=MODEL, alert_type="feature_drift", severity="high", cause="spend",
                               details={"summary": "spend drifted"}, window_end=DAY)
    [alert] = store.check_alerts(until=DAY)
    assert type(alert) is AlertRecord and alert.id == raised["id"] and alert.summary == "spend drifted"
    assert alert.window_end == DAY and _timestamps_are_utc(alert)
    assert store.open_alerts(model=MODEL) == [alert]
    assert store.alerts_to_notify(until=DAY) == [alert]
    acknowledged = store.set_alert_status(alert.id, "acknowledged")
    assert type(acknowledged) is AlertRecord and acknowledged.status == "acknowledged"

    store.request_retrain(request_id="r1", model=MODEL, reasons=["concept drift"], window_end=DAY,
                          causes=["concept_drift", "mape"], cause_severities={"concept_drift": "critical"})
    [request] = store.retrain_request_list(model=MODEL)
    assert type(request) is RetrainRequestRecord and request.causes == {"concept_drift": "critical", "mape": "high"}
    assert request.window_end == DAY and _timestamps_are_utc(request)
    claimed = store.claim_retrain_request("m1", model=MODEL, reasons=["by hand"], window_end=NEXT_DAY)
    assert type(claimed) is RetrainRequestRecord and (claimed.status, claimed.causes) == ("running", {"manual": "high"})


def test_a_list_shaped_request_of_before_severities_reads_as_high(store):
    with store.engine.begin() as conn:  # how requests were stored before causes carried severities
        conn.execute(retrain_requests.insert().values(request_id="old", model=MODEL, reasons=["x"], status="done",
                                                      window_end=DAY, causes=["concept_drift"]))
    assert store.retrain_request_list(request_id="old")[0].causes == {"concept_drift": "high"}
    covering = store.covering_retrain_request(MODEL, {"concept_drift": "high"}, window_end=NEXT_DAY,
                                              cooldown=timedelta(days=7))
    assert covering.request_id == "old"
    assert store.covering_retrain_request(MODEL, {"concept_drift": "critical"}, window_end=NEXT_DAY,
                                          cooldown=timedelta(days=7)) is None


def _decide(store, end: datetime, *, feature: Severity = Severity.NONE, concept: Severity = Severity.NONE) -> dict:
    """Store one window's drift and performance as the daily run does, then run its retrain decision."""
    key = {"model": MODEL, "model_version": ALL_VERSIONS, "window_start": end - timedelta(days=7), "window_end": end}
    performance = ModelPerformance(TaskKind.REGRESSION, 500, 1.0, False, mape=10.0)  # below the 30 % limit
    store.save_result("performance_snapshots", **key, kind="performance", result=performance, sample_count=500,
                      label_coverage=1.0, provisional=False, mape=10.0)
    for kind, drift_type, severity in (("feature_drift", DriftType.DATA_DRIFT, feature),
                                       ("concept_drift", DriftType.CONCEPT_DRIFT, concept)):
        features = ["spend"] if severity is not Severity.NONE and kind == "feature_drift" else []
        store.save_result("drift_reports", **key, kind=kind, severity=severity.value, status="ok",
                          affected_features=features, result=DriftReport(drift_type, severity, features, {}, ""))
    settings = RunSettings(window_end=end, interval_start=end - timedelta(days=1), feature_drift_severity="low",
                           retrain_cooldown_days=7)
    operator = RetrainDecisionOperator(task_id="retrain_decision", model=MODEL)
    return operator.run(store, store.get_model(MODEL), settings)


def test_a_false_alarm_request_does_not_block_the_real_one(store):
    false_alarm = _decide(store, DAY, feature=Severity.LOW)  # a low feature-drift alarm that clears next day
    assert false_alarm["request_id"] == "roas_predictor@2026-11-01T00:00Z"
    assert store.retrain_request_list(request_id=false_alarm["request_id"])[0].causes == {"feature_drift": "low"}
    assert _decide(store, DAY + timedelta(days=1))["retrain"] is False

    real = _decide(store, DAY + timedelta(days=2), concept=Severity.HIGH)  # the old rule: blocked for 7 days
    assert real["request_id"] == "roas_predictor@2026-11-03T00:00Z"
    [stored] = store.retrain_request_list(request_id=real["request_id"])
    assert stored.causes == {"concept_drift": "high"}
    assert stored.reasons[-1] == ("supersedes retrain request roas_predictor@2026-11-01T00:00Z (requested: "
                                  "feature_drift low): concept_drift high is new; feature_drift no longer present")

    repeat = _decide(store, DAY + timedelta(days=3), concept=Severity.HIGH)  # same cause, same severity
    assert (repeat["retrain"], repeat["request_id"]) == (False, None)
    assert repeat["reasons"][-1] == ("retrain request roas_predictor@2026-11-03T00:00Z (requested) already covers "
                                     "concept_drift high within the 7-day retrain cooldown")
    again = _decide(store, DAY + timedelta(days=2), concept=Severity.HIGH)  # re-running a window changes nothing
    assert again["request_id"] == real["request_id"]
    [rerun] = store.retrain_request_list(request_id=real["request_id"])
    assert dataclasses.replace(rerun, updated_at=None) == dataclasses.replace(stored, updated_at=None)

    stronger = _decide(store, DAY + timedelta(days=4), concept=Severity.CRITICAL)
    [filed] = store.retrain_request_list(request_id=stronger["request_id"])
    assert filed.causes == {"concept_drift": "critical"}
    assert filed.reasons[-2:] == [
        "supersedes retrain request roas_predictor@2026-11-03T00:00Z (requested: concept_drift high): concept_drift "
        "rose from high to critical",
        "supersedes retrain request roas_predictor@2026-11-01T00:00Z (requested: feature_drift low): concept_drift "
        "critical is new; feature_drift no longer present"]
    assert len(store.retrain_request_list(model=MODEL)) == 3


def test_a_running_ab_test_still_decides_and_a_failed_request_blocks_nothing(store):
    first = _decide(store, DAY, concept=Severity.HIGH)
    store.claim_retrain_request(first["request_id"], model=MODEL, reasons=["x"], window_end=DAY)
    store.finish_retrain_request(first["request_id"], status="failed", detail={"error": "boom"})
    retried = _decide(store, NEXT_DAY, concept=Severity.HIGH)
    assert retried["request_id"] == "roas_predictor@2026-11-02T00:00Z"
    assert not any("supersedes" in reason for reason in store.retrain_request_list(
        request_id=retried["request_id"])[0].reasons)  # a failed request is not superseded: it failed
    for version in ("v1", "v2"):
        store.register_version(MODEL, version)
    store.start_ab_test(test_id="t1", model=MODEL, champion_version="v1", challenger_version="v2", config={},
                        started_at=NEXT_DAY)
    during = _decide(store, NEXT_DAY + timedelta(days=1), concept=Severity.CRITICAL)
    assert (during["retrain"], during["reasons"][-1]) == (False, "A/B test t1 is running; its conclusion decides")
