"""Notifications over real transports on loopback when something goes wrong: a Slack webhook that
fails once, and the task's retry must not send the e-mail a second time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from support.channels import use_alert_channels

END = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def channels(smtp_inbox, slack_endpoint, monkeypatch):
    """E-mail from severity high, Slack from medium, both through Airflow connections from the environment."""
    use_alert_channels(monkeypatch, smtp_inbox[0], slack_endpoint.port)


def test_a_slack_failure_half_way_is_retried_without_a_second_email(feedback_db, channels, smtp_inbox,
                                                                    slack_endpoint):
    """E-mail goes out, Slack answers 500 once, the task fails; its retry must deliver exactly one
    Slack post and no second e-mail, then mark the alert notified (a third attempt sends nothing)."""
    from self_learning.operators import NotifyAlertsOperator

    _, mails = smtp_inbox
    slack_endpoint.statuses = [500]
    feedback_db.raise_alert(model="ctr_predictor", alert_type="feature_drift", severity="critical",
                            cause="audience_size", details={"summary": "feature 'audience_size' drifted"},
                            window_end=END)
    operator = NotifyAlertsOperator(task_id="notify_alerts")
    context = {"params": {}, "data_interval_start": END - timedelta(days=1), "data_interval_end": END}

    with pytest.raises(Exception, match="500"):  # the Slack provider reports the status; the try fails
        operator.execute(context)
    assert [status for status, _ in slack_endpoint.requests] == [500]
    assert len(mails) == 1  # the e-mail went out before Slack failed

    retry = operator.execute(context)  # the task's retry
    assert retry["notified"] == 1
    assert len(slack_endpoint.delivered) == 1 and "audience_size" in slack_endpoint.delivered[0]["text"]
    assert len(mails) == 1, f"the retry sent the e-mail again: {len(mails)} e-mails for one alert"

    assert operator.execute(context)["notified"] == 0  # a later re-run sends nothing
    assert len(mails) == 1 and len(slack_endpoint.delivered) == 1



def test_a_failing_dag_run_tells_the_channels_through_run_failure_notifier(dag_bag, fresh_runs, feedback_db,
                                                                            channels, smtp_inbox, slack_endpoint,
                                                                            monkeypatch):
    """A retrain of a model that does not exist fails the run. The scheduler's failure callback
    request for that run is executed the way the dag-processor executes it (``dag.test()`` runs the
    callback with its serialized DAG, which notifiers cannot render with): the DAG's
    ``RunFailureNotifier`` sends one e-mail and one Slack post naming the DAG, the run and the task."""
    import structlog
    from airflow.dag_processing.processor import _execute_dag_callbacks
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from self_learning.notifications import RunFailureNotifier
    from support.scenarios import run

    _, mails = smtp_inbox
    retrain_dag = dag_bag.get_dag("self_learning_retrain")
    assert isinstance(retrain_dag.on_failure_callback, RunFailureNotifier)
    for task in retrain_dag.tasks:
        monkeypatch.setattr(task, "retries", 0)
    failed = run(retrain_dag, end=None, state="failed", model="no_such_model", window_end=END.isoformat())
    mails.clear()  # whatever dag.test()'s own callback managed to send is not what is tested here
    slack_endpoint.requests.clear()
    with create_session() as session:
        dag_run = session.query(DagRun).filter(DagRun.run_id == failed.run_id).one()
        (failed_task,) = [ti for ti in dag_run.get_task_instances(session=session) if ti.task_id == "claim_request"]
        assert failed_task.state == "failed"
        request = dag_run.produce_dag_callback(dag=None, success=False, relevant_ti=failed_task,
                                               reason="task_failure")
    _execute_dag_callbacks(dag_bag, request, structlog.get_logger())

    ((recipients, mail),) = mails
    assert recipients == ["oncall@example.com"]
    assert mail["Subject"] == "[high] self_learning_retrain failed: 1 alert"
    part = mail.get_payload()[0] if mail.is_multipart() else mail
    body = part.get_payload(decode=True).decode()
    assert failed.run_id in body and "task_failure" in body
    (post,) = slack_endpoint.delivered
    assert post["text"].startswith("[high] self_learning_retrain failed")
    assert f"self_learning_retrain run {failed.run_id} failed: task_failure" in post["text"]
