"""Closing the loop end to end on the session's PostgreSQL: the daily run asks for a retrain, the
retrain DAG (``dag.test()``) trains and registers a challenger and starts an A/B test, serving
assigns units to the arms with the assignment helper, and the conclusion promotes the winner."""

from __future__ import annotations

import html
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from self_learning import lifecycle
from self_learning.ab_testing import ABTestConfig, arm_version
from self_learning.synthetic import Scenario, generate
from self_learning.training import predict
from support.scenarios import DAYS, END, load, run

pytestmark = pytest.mark.usefixtures("fresh_runs")
CONCEPT_SHIFT = Scenario(days=DAYS, rows_per_day=300, seed=21, concept_shift_day=DAYS - 9,
                         concept_shift_model="ctr_predictor")


@pytest.fixture
def artifacts(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "artifacts"
    monkeypatch.setenv("AIRFLOW_VAR_SELF_LEARNING_ARTIFACT_ROOT", f"file://{root}")
    return root


@pytest.fixture(scope="module")
def daily_dag(dag_bag):
    return dag_bag.get_dag("self_learning_daily")


@pytest.fixture(scope="module")
def retrain_dag(dag_bag):
    return dag_bag.get_dag("self_learning_retrain")


def champion_v5_and_v6(store) -> None:
    for version in ("v5", "v6"):
        store.register_version("ctr_predictor", version, status="archived")
    store.promote("ctr_predictor", "v5")


def triggered_conf() -> dict:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == "self_learning_retrain").all()
        assert len(runs) == 1, [r.run_id for r in runs]
        return dict(runs[0].conf)


def serve(store, test: dict, *, days: int, seed: int, artifact_root: Path) -> None:
    """Traffic after the test's start: each campaign is served by the arm the assignment helper
    gives it; the champion arm keeps the stale served model's predictions, the challenger arm
    predicts with its registered artifact. The concept shift goes on."""
    start = test["started_at"]
    data = generate(Scenario(days=days, rows_per_day=1500, seed=seed, end=start + timedelta(days=days),
                             concept_shift_day=0, concept_shift_model="ctr_predictor", models=("ctr_predictor",)))
    rows = data.predictions.assign(prediction_id="ab-" + data.predictions["prediction_id"])
    config = test["config"]
    rows["model_version"] = [arm_version(config["seed"], unit, test["champion_version"], test["challenger_version"],
                                         config["traffic_split"]) for unit in rows["unit_id"]]
    challenger = rows["model_version"] == test["challenger_version"]
    estimator = lifecycle.load_artifact(
        next(v for v in store.version_history("ctr_predictor") if v["version"] == test["challenger_version"])
        ["artifact_uri"], root=str(artifact_root))
    kinds = {f: kind for f, (kind, _) in store.feature_registry("ctr_predictor").items()}
    rows.loc[challenger, "predicted_value"] = predict(estimator, rows[challenger], kinds, "regression")
    assert not store.register_predictions(rows).rejected
    store.record_outcomes(data.outcomes.assign(prediction_id="ab-" + data.outcomes["prediction_id"]))


def test_retrain_registers_a_challenger_and_the_ab_test_promotes_it(daily_dag, retrain_dag, feedback_db, artifacts):
    load(feedback_db, CONCEPT_SHIFT)
    run(daily_dag)
    conf = triggered_conf()
    assert conf["model"] == "ctr_predictor"

    run(retrain_dag, end=None, **conf, training_window_days=8, ab_unit="campaign")
    history = {v["version"]: v for v in feedback_db.version_history("ctr_predictor")}
    version = lifecycle.version_name(END)
    assert history[version]["status"] == "challenger"
    assert history["v5"]["status"] == "champion"  # the served version, taken into the registry
    metrics = history[version]["metrics"]
    assert metrics["verdict"]["accept"] and metrics["verdict"]["relative_improvement"] > 0.2
    assert metrics["champion_source"] == "served predictions"
    artifact = Path(history[version]["artifact_uri"].removeprefix("file://"))
    assert artifact.is_relative_to(artifacts) and artifact.name == lifecycle.ARTIFACT_FILE
    assert artifact.read_bytes().startswith(lifecycle.ZIP_MAGIC)  # skops, not a pickle
    request = feedback_db.retrain_request_list(request_id=conf["request_id"])[0]
    assert (request["status"], request["result_version"]) == ("done", version)
    test = feedback_db.running_ab_test("ctr_predictor")
    assert (test["champion_version"], test["challenger_version"]) == ("v5", version)
    assert request["detail"]["ab_test"]["test_id"] == test["test_id"]
    assert test["config"]["unit"] == "campaign" and test["config"]["n_star"] > 0

    # while the test runs, the daily run does not ask for the same retrain again
    run(daily_dag, end=END + timedelta(days=1), models=["ctr_predictor"])
    decision = feedback_db.retrain_request_list(model="ctr_predictor", window_end=END + timedelta(days=1))
    assert decision == []

    serve(feedback_db, test, days=10, seed=23, artifact_root=artifacts)
    early = lifecycle.select_winning_model(feedback_db, test["test_id"], as_of=END + timedelta(days=4))
    assert (early.action, early.test_status, early.champion_version) == ("continue", "running", "v5")
    assert any("of at least 7 days" in reason for reason in early.reasons)

    look = lifecycle.select_winning_model(feedback_db, test["test_id"], as_of=END + timedelta(days=8))
    assert (look.action, look.test_status, look.champion_version) == ("promote", "promoted", version)
    history = {v["version"]: v["status"] for v in feedback_db.version_history("ctr_predictor")}
    assert history == {"v5": "archived", version: "champion"}
    stored = feedback_db.get_ab_test(test["test_id"])
    assert stored["status"] == "promoted" and len(stored["result"]["looks"]) == 2
    assert stored["result"]["running_min_p"] <= stored["result"]["looks"][0]["always_valid_p"]
    latest = stored["result"]["latest"]
    assert latest["sample_ratio"]["healthy"] and latest["comparison"]["ci_high"] < 0
    assert latest["challenger"]["mae"] < latest["champion"]["mae"]
    # campaigns have a past: the plan measured CUPED's covariate and the looks used it
    plan = stored["config"]["plan"]
    assert plan["covariate_correlation"] is not None and plan["size_reduction"] >= 0
    assert latest["variance_reduction"].startswith("CUPED on each unit's loss under the champion")
    assert latest["metric"] == "mae" and latest["guardrails"] == []  # MAE is the primary: no MAE guardrail
    alerts = feedback_db.check_alerts(until=END + timedelta(days=8), hours=24, model="ctr_predictor")
    assert [a["details"]["challenger_version"] for a in alerts if a["alert_type"] == "ab_test"] == [version]
    # a closed test is reported as it ended; nothing changes
    again = lifecycle.select_winning_model(feedback_db, test["test_id"], as_of=END + timedelta(days=9))
    assert (again.action, again.test_status, again.champion_version) == ("closed", "promoted", version)

    # the next retrain compares against the new champion's artifact
    candidate = lifecycle.train_candidate(feedback_db, "ctr_predictor", window_end=END + timedelta(days=9),
                                          training_window_days=20, artifact_root=f"file://{artifacts}")
    assert candidate.champion_source == f"champion {version} artifact"


def test_a_candidate_that_does_not_beat_the_champion_is_rejected_with_its_numbers(retrain_dag, feedback_db,
                                                                                   artifacts):
    load(feedback_db, Scenario(days=DAYS, rows_per_day=300, seed=24, models=("roas_predictor",)))
    run(retrain_dag, end=None, model="roas_predictor", window_end=END.isoformat(), margin=0.05)
    (version,) = feedback_db.version_history("roas_predictor")
    assert version["status"] == "rejected"
    verdict = version["metrics"]["verdict"]
    assert not verdict["accept"] and verdict["candidate"] is not None and verdict["champion"] is not None
    assert feedback_db.list_ab_tests(model="roas_predictor") == []
    (request,) = feedback_db.retrain_request_list(model="roas_predictor")
    assert request["status"] == "done" and request["result_version"] == version["version"]
    assert request["request_id"].startswith("roas_predictor@manual:")
    assert request["detail"]["ab_test"] is None and "does not beat" in request["detail"]["verdict"]


def test_a_champion_whose_artifact_lies_outside_the_root_fails_the_retrain_without_loading_it(
        retrain_dag, feedback_db, artifacts, tmp_path, monkeypatch):
    """The registry names ``/tmp/.../evil.pkl`` for the champion (a pickle that creates a marker
    file when loaded), and pickles are even allowed: the run fails on the root check, nothing ran."""
    import pickle

    from support.hostile import RunsCodeWhenUnpickled

    for task in retrain_dag.tasks:
        monkeypatch.setattr(task, "retries", 0)
    monkeypatch.setenv("AIRFLOW_VAR_SELF_LEARNING_ALLOW_PICKLE_ARTIFACTS", "true")
    marker, evil = tmp_path / "code-ran", tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(RunsCodeWhenUnpickled(marker)))
    load(feedback_db, Scenario(days=12, rows_per_day=60, seed=30, models=("ctr_predictor",)))
    feedback_db.register_version("ctr_predictor", "v9", status="archived", artifact_uri=f"file://{evil}")
    feedback_db.promote("ctr_predictor", "v9")
    run(retrain_dag, end=None, state="failed", model="ctr_predictor", window_end=END.isoformat(),
        training_window_days=12, request_id="ctr@evil")
    assert not marker.exists()
    assert [v["version"] for v in feedback_db.version_history("ctr_predictor")] == ["v9"]
    (request,) = feedback_db.retrain_request_list(request_id="ctr@evil")
    assert request["status"] == "failed"
    assert not any(artifacts.rglob("*"))


def test_unknown_model_fails_the_run_and_stores_nothing(retrain_dag, feedback_db, artifacts, monkeypatch):
    for task in retrain_dag.tasks:
        monkeypatch.setattr(task, "retries", 0)
    run(retrain_dag, end=None, state="failed", model="no_such_model", window_end=END.isoformat())
    assert feedback_db.retrain_request_list() == []


def test_a_model_with_its_own_training_dag_is_delegated(retrain_dag, feedback_db, artifacts):
    load(feedback_db, Scenario(days=5, rows_per_day=20, seed=25, models=("visual_pattern",)))
    spec = feedback_db.get_model("visual_pattern")
    feedback_db.register_model(type(spec)(spec.name, spec.task_kind, spec.feature_schema,
                                          {"trainer_dag_id": "self_learning_daily"}))
    run(retrain_dag, end=None, model="visual_pattern", window_end=END.isoformat(), request_id="visual@1")
    (request,) = feedback_db.retrain_request_list(model="visual_pattern")
    assert request["status"] == "delegated" and request["detail"] == {"trainer_dag_id": "self_learning_daily"}
    assert feedback_db.version_history("visual_pattern") == []


def test_ab_test_bad_input_is_named(feedback_db):
    load(feedback_db, Scenario(days=3, rows_per_day=20, seed=26, models=("ctr_predictor",)))
    feedback_db.register_version("ctr_predictor", "v5", status="archived")
    feedback_db.promote("ctr_predictor", "v5")
    feedback_db.register_version("ctr_predictor", "v6")
    start = END
    with pytest.raises(ValueError, match="model"):
        lifecycle.ab_test_model_versions(feedback_db, "no_such_model", "v5", "v6", started_at=start)
    with pytest.raises(ValueError, match="challenger_version: the arms need two different versions"):
        lifecycle.ab_test_model_versions(feedback_db, "ctr_predictor", "v5", "v5", started_at=start)
    with pytest.raises(ValueError, match=r"challenger_version: .* no registered version 'v7'"):
        lifecycle.ab_test_model_versions(feedback_db, "ctr_predictor", "v5", "v7", started_at=start)
    for split in (0, 1, 1.5, -0.1):
        with pytest.raises(ValueError, match="traffic_split"):
            ABTestConfig(traffic_split=split)
    with pytest.raises(ValueError, match="unit"):
        ABTestConfig(unit="user")
    test = lifecycle.ab_test_model_versions(feedback_db, "ctr_predictor", "v5", "v6", started_at=start)
    assert lifecycle.ab_test_model_versions(feedback_db, "ctr_predictor", "v5", "v6", started_at=start) == test
    feedback_db.register_version("ctr_predictor", "v7")
    with pytest.raises(ValueError, match="already runs A/B test"):
        lifecycle.ab_test_model_versions(feedback_db, "ctr_predictor", "v5", "v7", started_at=start)
    with pytest.raises(ValueError, match="as_of"):
        lifecycle.get_ab_test_results(feedback_db, test["test_id"], as_of=start)
    with pytest.raises(KeyError, match="test_id"):
        lifecycle.get_ab_test_results(feedback_db, "nope", as_of=start)
    # no outcomes yet: insufficient data, no winner, nothing promoted
    result = lifecycle.get_ab_test_results(feedback_db, test["test_id"], as_of=start + timedelta(days=10))
    assert result.status.value == "insufficient_data" and result.decision.action == "continue"
    look = lifecycle.select_winning_model(feedback_db, test["test_id"], as_of=start + timedelta(days=10))
    assert (look.action, look.champion_version) == ("continue", "v5")


def test_sample_ratio_mismatch_blocks_promotion_and_alerts(feedback_db):
    """A challenger that is clearly better but got 52 % of the units of a 50/50 test is not promoted."""
    load(feedback_db, Scenario(days=1, rows_per_day=10, seed=27, models=("ctr_predictor",)))
    champion_v5_and_v6(feedback_db)
    test = lifecycle.ab_test_model_versions(feedback_db, "ctr_predictor", "v5", "v6", started_at=END,
                                            config=ABTestConfig(n_star=20_000))
    data = generate(Scenario(days=10, rows_per_day=2000, seed=28, end=END + timedelta(days=10),
                             models=("ctr_predictor",)))
    rng = np.random.default_rng(0)
    rows = data.predictions.assign(prediction_id="srm-" + data.predictions["prediction_id"])
    challenger = rng.random(len(rows)) < 0.52
    rows["model_version"] = np.where(challenger, "v6", "v5")
    outcomes = data.outcomes.set_index("prediction_id")["actual_value"]
    truth = outcomes.reindex(data.predictions["prediction_id"]).to_numpy()
    rows.loc[challenger, "predicted_value"] = np.where(np.isnan(truth[challenger]), 0.01, truth[challenger])
    feedback_db.register_predictions(rows)
    feedback_db.record_outcomes(data.outcomes.assign(prediction_id="srm-" + data.outcomes["prediction_id"]))
    look = lifecycle.select_winning_model(feedback_db, test["test_id"], as_of=END + timedelta(days=10))
    assert (look.action, look.test_status, look.champion_version) == ("unhealthy", "running", "v5")
    assert any("sample ratio mismatch" in reason for reason in look.reasons)
    (alert,) = feedback_db.check_alerts(until=END + timedelta(days=10), model="ctr_predictor")
    assert (alert["alert_type"], alert["severity"]) == ("ab_test", "high")
    assert "sample ratio mismatch" in alert["details"]["summary"]


def test_the_looks_count_from_the_challengers_first_prediction(feedback_db):
    """Two days served by the champion alone after the test's start (serving had not picked the
    test up yet), then 50/50: the look counts arms from the challenger's first prediction, so the
    split is healthy; counted from the start it would be a sample ratio mismatch."""
    load(feedback_db, Scenario(days=1, rows_per_day=10, seed=31, models=("ctr_predictor",)))
    champion_v5_and_v6(feedback_db)
    test = lifecycle.ab_test_model_versions(feedback_db, "ctr_predictor", "v5", "v6", started_at=END)
    data = generate(Scenario(days=6, rows_per_day=500, seed=32, end=END + timedelta(days=6),
                             models=("ctr_predictor",)))
    rows = data.predictions.assign(prediction_id="late-" + data.predictions["prediction_id"])
    before = (rows["served_at"] < pd.Timestamp(END + timedelta(days=2))).to_numpy()
    split = np.random.default_rng(1).random(len(rows)) < 0.5
    rows["model_version"] = np.where(~before & split, "v6", "v5")
    feedback_db.register_predictions(rows)
    feedback_db.record_outcomes(data.outcomes.assign(prediction_id="late-" + data.outcomes["prediction_id"]))
    result = lifecycle.get_ab_test_results(feedback_db, test["test_id"], as_of=END + timedelta(days=6))
    challenger = (rows["model_version"] == "v6").to_numpy()
    after_first = (rows["served_at"] >= rows["served_at"][challenger].min()).to_numpy()
    expected = [int((after_first & ~challenger).sum()), int(challenger.sum())]
    assert result.sample_ratio.counts == expected and result.sample_ratio.healthy, result.sample_ratio
    assert feedback_db.arm_counts("ctr_predictor", END, END + timedelta(days=6))["v5"]["predictions"] > expected[0]


def test_conclusion_operator_runs_the_plain_function(feedback_db):
    from self_learning.operators import ConcludeABTestsOperator

    load(feedback_db, Scenario(days=1, rows_per_day=10, seed=29, models=("ctr_predictor",)))
    champion_v5_and_v6(feedback_db)
    test = lifecycle.ab_test_model_versions(feedback_db, "ctr_predictor", "v5", "v6", started_at=END,
                                            config=ABTestConfig(max_days=14))
    operator = ConcludeABTestsOperator(task_id="conclude_ab_tests")
    context = {"params": {"models": []}, "data_interval_start": END + timedelta(days=14),
               "data_interval_end": END + timedelta(days=15)}
    (summary,) = operator.execute(context)
    assert summary == {"test_id": test["test_id"], "model": "ctr_predictor", "action": "keep_champion",
                       "test_status": "inconclusive", "champion_version": "v5"}
    assert {v["version"]: v["status"] for v in feedback_db.version_history("ctr_predictor")} == {
        "v5": "champion", "v6": "archived"}
    assert feedback_db.running_ab_test("ctr_predictor") is None


def test_a_harmful_challenger_is_stopped_early_archived_and_alerted(feedback_db):
    """The plan is stored with the test; a challenger clearly worse is stopped at the first look
    (before ``min_days``): the champion stays, the challenger is archived, a high alert is raised."""
    load(feedback_db, Scenario(days=14, rows_per_day=200, seed=30, end=END, models=("ctr_predictor",)))
    champion_v5_and_v6(feedback_db)
    with pytest.raises(ValueError, match="primary_metric: 'roc_auc' is not a metric of regression models"):
        lifecycle.ab_test_model_versions(feedback_db, "ctr_predictor", "v5", "v6", started_at=END,
                                         config=ABTestConfig(primary_metric="roc_auc"))
    test = lifecycle.ab_test_model_versions(feedback_db, "ctr_predictor", "v5", "v6", started_at=END)
    plan = test["config"]["plan"]
    assert plan["mde"] == 0.05 and plan["units_per_arm"][0] > 2 and test["config"]["n_star"] == plan["n_star"]
    # traffic: the champion's labelled outcomes per day over the 14 days (200 served a day, labels still arriving)
    assert 100 < plan["units_per_day"] <= 200
    assert plan["expected_days"] == pytest.approx(sum(plan["units_per_arm"]) / plan["units_per_day"])
    assert test["config"]["plan_summary"].startswith("plan: ")
    assert plan["exceeds_max_days"] == ("exceeds the maximum of 90 days" in test["config"]["plan_summary"])
    # the UI's model health page shows the running test's plan
    from self_learning.loop.report_html import render_model_health
    from self_learning.loop.reporting import model_health

    assert html.escape(test["config"]["plan_summary"], quote=True) in render_model_health(model_health(feedback_db))
    data = generate(Scenario(days=3, rows_per_day=2000, seed=31, end=END + timedelta(days=3),
                             models=("ctr_predictor",)))
    rows = data.predictions.assign(prediction_id="harm-" + data.predictions["prediction_id"])
    rows["model_version"] = [arm_version(test["config"]["seed"], pid, "v5", "v6", 0.5) for pid in rows["prediction_id"]]
    challenger = (rows["model_version"] == "v6").to_numpy()
    rows.loc[challenger, "predicted_value"] *= 1.5  # 50 % too high
    feedback_db.register_predictions(rows)
    feedback_db.record_outcomes(data.outcomes.assign(prediction_id="harm-" + data.outcomes["prediction_id"]))
    look = lifecycle.select_winning_model(feedback_db, test["test_id"], as_of=END + timedelta(days=3))
    assert (look.action, look.test_status, look.champion_version) == ("stop_for_harm", "stopped", "v5")
    assert "entirely above 0" in look.reasons[0]
    assert {v["version"]: v["status"] for v in feedback_db.version_history("ctr_predictor")} == {
        "v5": "champion", "v6": "archived"}
    (alert,) = feedback_db.check_alerts(until=END + timedelta(days=3), model="ctr_predictor")
    assert (alert["alert_type"], alert["severity"]) == ("ab_test", "high")
    assert "stopped for harm" in alert["details"]["summary"] and alert["details"]["plan"].startswith("plan: ")


def test_a_classifier_judged_on_roc_auc_is_promoted_naming_its_guardrail(feedback_db):
    """Primary metric ROC AUC (DeLong, per look) with an accuracy guardrail: the promotion names both."""
    load(feedback_db, Scenario(days=14, rows_per_day=200, seed=32, end=END, models=("hook_classifier",)))
    for version in ("v1", "v2", "v3"):
        feedback_db.register_version("hook_classifier", version, status="archived")
    feedback_db.promote("hook_classifier", "v1")
    with pytest.raises(ValueError, match="guardrails: 'mae' is not a metric of binary_classification models"):
        lifecycle.ab_test_model_versions(feedback_db, "hook_classifier", "v1", "v3", started_at=END,
                                         config=ABTestConfig(guardrails=["mae"]))
    test = lifecycle.ab_test_model_versions(
        feedback_db, "hook_classifier", "v1", "v3", started_at=END,
        config=ABTestConfig(primary_metric="roc_auc", guardrails=["accuracy:0.05"]))
    assert test["config"]["plan"]["baseline_loss"] < 0.5  # 1 - AUC of the champion's recent outcomes
    data = generate(Scenario(days=8, rows_per_day=1500, seed=33, end=END + timedelta(days=8),
                             models=("hook_classifier",)))
    rows = data.predictions.assign(prediction_id="auc-" + data.predictions["prediction_id"])
    rows["model_version"] = [arm_version(test["config"]["seed"], pid, "v1", "v3", 0.5) for pid in rows["prediction_id"]]
    truth = data.outcomes.set_index("prediction_id")["actual_value"].reindex(data.predictions["prediction_id"])
    challenger = (rows["model_version"] == "v3").to_numpy() & truth.notna().to_numpy()
    rng = np.random.default_rng(1)  # the challenger ranks better: its score leans on the outcome
    rows.loc[challenger, "predicted_value"] = np.clip(
        0.5 + 0.3 * (truth.to_numpy()[challenger] - 0.5) + rng.normal(0, 0.15, challenger.sum()), 0, 1)
    feedback_db.register_predictions(rows)
    feedback_db.record_outcomes(data.outcomes.assign(prediction_id="auc-" + data.outcomes["prediction_id"]))
    look = lifecycle.select_winning_model(feedback_db, test["test_id"], as_of=END + timedelta(days=8))
    assert (look.action, look.champion_version) == ("promote", "v3"), look.reasons
    assert look.reasons[0].startswith("challenger loss lower by")
    assert look.reasons[1].startswith("guardrail accuracy: challenger - champion")
    latest = feedback_db.get_ab_test(test["test_id"])["result"]["latest"]
    assert latest["metric"] == "roc_auc" and latest["comparison"]["challenger"]["mean"] < \
        latest["comparison"]["champion"]["mean"]
