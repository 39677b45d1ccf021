"""Retention (issue 13, item 6): what the weekly clean-up deletes, what it never deletes, and how a
bad policy fails, on PostgreSQL and SQLite."""


from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from self_learning.store import RETENTION_DEFAULTS, FeedbackStore, retention_policy
from self_learning.store.rows import _utc
from self_learning.store.tables import ingest_rejects, outcome_history
from support.stores import DAY, prediction_frame, row_count

NOW = datetime(2027, 6, 1, tzinfo=UTC)  # the clean-up run's window end
OLD = NOW - timedelta(days=500)  # older than every default
RECENT = NOW - timedelta(days=10)  # younger than every default
TEST_START = DAY + timedelta(hours=12)  # a running A/B test of roas_predictor since then


def _ids(store: FeedbackStore, table: str, column: str = "prediction_id") -> set:
    with store.engine.connect() as conn:
        return set(conn.execute(sa.text(f"SELECT {column} FROM {table}")).scalars())


def _fill(store: FeedbackStore) -> dict:
    """Something old and something recent in every table, and the rows no policy may delete."""
    old_predictions = prediction_frame(40)  # served on DAY, 7 months before NOW
    recent_predictions = prediction_frame(5, start=100).assign(served_at=RECENT)
    store.register_predictions(old_predictions)
    store.register_predictions(recent_predictions)
    for version in ("v1", "v2"):
        store.register_version("roas_predictor", version)
    store.start_ab_test(test_id="t1", model="roas_predictor", champion_version="v1", challenger_version="v2",
                        config={}, started_at=TEST_START)
    store.record_outcomes([{"prediction_id": pid, "actual_value": 1.0, "observed_at": DAY}
                           for pid in old_predictions["prediction_id"]])
    store.record_outcome("p100", 1.0, observed_at=RECENT)
    store.record_outcomes([{"prediction_id": "orphan-old", "actual_value": 1.0, "observed_at": OLD},
                           {"prediction_id": "orphan-recent", "actual_value": 1.0, "observed_at": RECENT}])

    store.enqueue_outcomes([{"prediction_id": pid, "actual_value": 2.0, "observed_at": at, "received_at": at}
                            for pid, at in (("inbox-old-done", OLD), ("inbox-old-waiting", OLD + timedelta(days=1)),
                                            ("inbox-recent-done", RECENT))])
    store.pull_outcome_inbox(OLD + timedelta(hours=12))  # takes inbox-old-done only
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE outcome_inbox SET processed_at = :at WHERE prediction_id = 'inbox-recent-done'"),
                     {"at": RECENT})
        conn.execute(ingest_rejects.insert(), [{"record_kind": "outcome", "reason": "bad", "prediction_id": pid,
                                                "rejected_at": at} for pid, at in (("old", OLD), ("recent", RECENT))])
        conn.execute(outcome_history.insert(), [
            {"prediction_id": pid, "actual_value": 0.5, "observed_at": DAY, "recorded_at": DAY, "revision": 1,
             "replaced_at": at} for pid, at in (("old", OLD), ("recent", RECENT))])

    alert_ids = {}
    for name, status, end in (("open", "open", OLD), ("acknowledged", "acknowledged", OLD),
                              ("resolved", "resolved", OLD), ("resolved-recent", "resolved", RECENT)):
        alert_ids[name] = store.create_alert("manual", "roas_predictor", {"summary": name}, cause=name, window_end=end)
        if status != "open":
            store.set_alert_status(alert_ids[name], status)
    alert_ids["suppressed"] = store.raise_alert(model="roas_predictor", alert_type="manual", severity="medium",
                                                cause="open", details={}, window_end=OLD + timedelta(days=1),
                                                cooldown=timedelta(days=3))["id"]
    for request, status in (("done-old", "done"), ("waiting-old", "requested"), ("running-old", "running")):
        store.request_retrain(request_id=request, model="roas_predictor", reasons=["x"], window_end=OLD)
        if status != "requested":
            store.claim_retrain_request(request, model="roas_predictor", reasons=["x"], window_end=OLD)
        if status == "done":
            store.finish_retrain_request(request, status="done")
    for end in (OLD, RECENT):
        store.save_result("error_analyses", model="roas_predictor", model_version="v1",
                          window_start=end - timedelta(days=7), window_end=end, kind="errors", result={"n": 1})
        store.save_learning_report(period_start=end - timedelta(days=7), period_end=end, kind="weekly", report={})
    return {"old_predictions": old_predictions}


def test_the_defaults_delete_only_what_has_expired_and_never_what_is_still_needed(store):
    _fill(store)
    before = {table: row_count(store, table) for table in ("predictions", "outcomes")}
    deleted = store.apply_retention(now=NOW, batch_size=2)  # batches of two: every loop turns
    assert deleted == {"outcome_inbox": 1, "ingest_rejects": 1, "outcome_history": 1, "alerts": 2,
                       "retrain_requests": 1, "error_analyses": 1, "performance_snapshots": 0, "drift_reports": 0,
                       "feature_importance": 0, "learning_reports": 1, "day_statistics": 0,
                       "day_profiles": 0}
    assert _ids(store, "outcome_inbox") == {"inbox-old-waiting", "inbox-recent-done"}  # unprocessed: kept
    assert _ids(store, "ingest_rejects") == _ids(store, "outcome_history") == {"recent"}
    with store.engine.connect() as conn:
        statuses = sorted(conn.execute(sa.text("SELECT status FROM alerts")).scalars())
    assert statuses == ["acknowledged", "open", "resolved"]  # open and acknowledged never go, however old
    assert _ids(store, "retrain_requests", "request_id") == {"waiting-old", "running-old"}
    assert [_utc(r["window_end"]) for r in store.read_results("error_analyses")] == [RECENT]
    assert [_utc(r["period_end"]) for r in store.learning_reports()] == [RECENT]
    assert {table: row_count(store, table) for table in ("predictions", "outcomes")} == before  # kept by default
    assert store.apply_retention(now=NOW, batch_size=2) == dict.fromkeys(deleted, 0)  # a re-run deletes nothing


def test_predictions_go_with_their_outcomes_except_a_running_ab_tests(store):
    filled = _fill(store)
    deleted = store.apply_retention(now=NOW, keep_days={"predictions": 60, "outcomes": 60})
    old = filled["old_predictions"]
    tested = set(old.loc[old["served_at"] >= TEST_START, "prediction_id"])
    assert 0 < len(tested) < len(old)
    assert _ids(store, "predictions") == tested | {f"p{i}" for i in range(100, 105)}
    # outcomes of deleted predictions went with them, and the old orphans; a kept prediction keeps
    # its outcome however old (observed on DAY)
    assert _ids(store, "outcomes") == tested | {"p100", "orphan-recent"}
    assert deleted["predictions"] == len(old) - len(tested)
    assert deleted["outcomes"] == len(old) - len(tested) + 2  # orphan-old and the pulled inbox-old-done


@pytest.mark.parametrize(("keep_days", "field"), [
    ({"outcome_inbx": 30}, "keep_days.outcome_inbx"), ({"alerts": -1}, "keep_days.alerts"),
    ({"alerts": 1.5}, "keep_days.alerts"), ({"alerts": True}, "keep_days.alerts"),
    ({"predictions": 7}, "keep_days.predictions"), ({"drift_reports": 30}, "keep_days.drift_reports"),
    ([30], "keep_days"),
])
def test_a_bad_policy_is_an_error_naming_the_table(keep_days, field):
    with pytest.raises(ValueError, match=rf"^{field}: "):
        retention_policy(keep_days)


def test_policy_is_the_defaults_with_overrides():
    assert retention_policy() == RETENTION_DEFAULTS
    assert retention_policy({"predictions": 400, "alerts": None}) == {**RETENTION_DEFAULTS, "predictions": 400,
                                                                      "alerts": None}
    assert RETENTION_DEFAULTS["predictions"] is None and RETENTION_DEFAULTS["outcomes"] is None


def test_apply_retention_checks_its_arguments(store):
    with pytest.raises(ValueError, match=r"^now: "):
        store.apply_retention(now=datetime(2027, 1, 1))
    with pytest.raises(ValueError, match=r"^keep_days\.alerts: "):
        store.apply_retention(now=NOW, keep_days={"alerts": -3})
    with pytest.raises(ValueError, match=r"^batch_size: "):
        store.apply_retention(now=NOW, batch_size=0)


def test_the_operator_fails_at_once_on_a_bad_variable(monkeypatch):
    from self_learning.operators import InvalidParams
    from self_learning.operators.maintenance import RetentionOperator

    context = {"params": {}, "data_interval_start": NOW - timedelta(days=7), "data_interval_end": NOW}
    monkeypatch.setenv("AIRFLOW_VAR_SELF_LEARNING_RETENTION_DAYS", '{"alerts": -1}')
    with pytest.raises(InvalidParams, match=r"^keep_days\.alerts: .*self_learning_retention_days"):
        RetentionOperator(task_id="cleanup").execute(context)
    monkeypatch.setenv("AIRFLOW_VAR_SELF_LEARNING_RETENTION_DAYS", "{not json")
    with pytest.raises(InvalidParams, match=r"^keep_days: "):
        RetentionOperator(task_id="cleanup").execute(context)
    with pytest.raises(InvalidParams, match=r"^keep_days\.nope: "):
        RetentionOperator(task_id="cleanup", keep_days={"nope": 1}).execute(context)
