"""Failures inside real DAG runs (``dag.test()`` on the session's PostgreSQL): one mapped model's
step raising in the daily run, and the retrain's training failing after the request was claimed.
What must hold: the other models' results are stored, the run is failed (not silently green), and
a failed retrain request is asked for again by the next day's run."""

from __future__ import annotations

from datetime import timedelta

import pytest
from self_learning.store import ALL_VERSIONS
from self_learning.synthetic import MODEL_FEATURES, Scenario
from support.scenarios import DAYS, END, load, run

pytestmark = pytest.mark.usefixtures("fresh_runs")
BROKEN_MODEL = "hook_classifier"


def task_states(dag_run) -> dict[tuple[str, str], str]:
    """(task id, model or '') -> state of every task instance of a run. A mapped instance is named
    by the model its ``model.analyse`` instance rendered (instances that never ran have no name)."""
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        instances = session.query(TaskInstance).filter(TaskInstance.run_id == dag_run.run_id,
                                                       TaskInstance.dag_id == dag_run.dag_id).all()
        models = {ti.map_index: ti.rendered_map_index for ti in instances if ti.task_id == "model.analyse"}
        return {(ti.task_id, models[ti.map_index] if ti.map_index >= 0 else ""): ti.state for ti in instances}


def retrain_run_ids() -> set[str]:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return {r.run_id for r in session.query(DagRun).filter(DagRun.dag_id == "self_learning_retrain")}


def without_retries(dag, monkeypatch) -> None:
    """A failing try fails the task at once (the DAG's retries wait minutes between tries)."""
    for task in dag.tasks:
        monkeypatch.setattr(task, "retries", 0)


def test_one_model_failing_keeps_the_others_results_and_fails_the_run(dag_bag, feedback_db, monkeypatch):
    from self_learning.operators import AnalyseModelOperator

    analyse = AnalyseModelOperator.run

    def analyse_or_break(self, store, spec, settings):
        if spec.name == BROKEN_MODEL:
            raise RuntimeError(f"{spec.name}: injected analysis failure")
        return analyse(self, store, spec, settings)

    daily = dag_bag.get_dag("self_learning_daily")
    without_retries(daily, monkeypatch)
    monkeypatch.setattr(AnalyseModelOperator, "run", analyse_or_break)
    load(feedback_db, Scenario(days=DAYS, rows_per_day=150, seed=41))

    result = run(daily, state="failed")
    healthy = set(MODEL_FEATURES) - {BROKEN_MODEL}
    for table in ("performance_snapshots", "drift_reports", "error_analyses"):
        stored = {r["model"] for r in feedback_db.read_results(table, window_end=END, model_version=ALL_VERSIONS)}
        assert stored == healthy, table
    states = task_states(result)
    assert states["model.analyse", BROKEN_MODEL] == "failed"
    assert {states["model.analyse", m] for m in healthy} == {"success"}
    assert {states[step, BROKEN_MODEL] for step in ("model.alerts", "model.retrain_decision")} == {"upstream_failed"}
    # the bookkeeping after the models ran for all of them, and the summary failed the run
    assert (states["notify_alerts", ""], states["daily_summary", ""]) == ("success", "success")
    assert states["run_summary", ""] == "failed"


def test_training_failing_after_the_claim_fails_the_request_and_the_next_day_asks_again(dag_bag, feedback_db,
                                                                                        monkeypatch, tmp_path):
    from self_learning.operators import TrainCandidateOperator

    monkeypatch.setenv("AIRFLOW_VAR_SELF_LEARNING_ARTIFACT_ROOT", f"file://{tmp_path / 'artifacts'}")
    daily, retrain = dag_bag.get_dag("self_learning_daily"), dag_bag.get_dag("self_learning_retrain")
    load(feedback_db, Scenario(days=DAYS, rows_per_day=300, seed=42, concept_shift_day=DAYS - 9,
                               concept_shift_model="ctr_predictor", models=("ctr_predictor",)))
    run(daily, models=["ctr_predictor"])
    (request,) = feedback_db.retrain_request_list(model="ctr_predictor")
    assert request["status"] == "requested"

    def training_breaks(self, store, spec, settings, context):
        raise RuntimeError("injected: the training worker died")

    without_retries(retrain, monkeypatch)
    monkeypatch.setattr(TrainCandidateOperator, "run", training_breaks)
    conf = {"model": "ctr_predictor", "request_id": request["request_id"], "window_end": END.isoformat(),
            "reason": "; ".join(request["reasons"])}
    failed = run(retrain, end=None, state="failed", **conf)
    states = task_states(failed)
    assert (states["claim_request", ""], states["train_candidate", ""]) == ("success", "failed")
    assert states["finish_request", ""] == "failed"  # it closed the request, then failed the run
    (request,) = feedback_db.retrain_request_list(request_id=request["request_id"])
    assert request["status"] == "failed" and request["result_version"] is None
    assert "train_candidate" in request["detail"]["error"]
    assert feedback_db.version_history("ctr_predictor") == []

    next_day = END + timedelta(days=1)
    run(daily, end=next_day, models=["ctr_predictor"])
    (again,) = feedback_db.retrain_request_list(model="ctr_predictor", window_end=next_day)
    assert again["status"] == "requested" and again["request_id"] != request["request_id"]
    assert "concept_drift" in again["causes"]
    assert f"retrain__{again['request_id'].replace('@', '_')}" in retrain_run_ids()
