"""The daily DAG end to end: real DAG runs (``dag.test()``) against the session's PostgreSQL.

All DAG runs live in this one module so Airflow's start-up cost is paid once per session.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from self_learning.domain import Severity
from self_learning.store import ALL_VERSIONS, FeedbackStore
from self_learning.synthetic import DRIFTED_FEATURES, MODEL_FEATURES, Scenario, generate
from support import ROOT
from support.scenarios import DAYS, END, load, run

DAG_ID = "self_learning_daily"
pytestmark = pytest.mark.usefixtures("fresh_runs")
STAMP_COLUMNS = {"computed_at", "updated_at", "created_at", "recorded_at", "ingested_at", "requested_at",
                 "replaced_at"}
RESULT_TABLES = ("performance_snapshots", "drift_reports", "error_analyses", "alerts", "retrain_requests",
                 "outcomes", "outcome_history", "predictions")


@pytest.fixture(scope="module")
def daily_dag(dag_bag):
    return dag_bag.get_dag(DAG_ID)


def mapped_labels(dag_run, task_id: str) -> set[str]:
    """The names the UI shows for the mapped instances of a task (its rendered map index)."""
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        instances = session.query(TaskInstance).filter(TaskInstance.run_id == dag_run.run_id,
                                                       TaskInstance.task_id == task_id)
        return {ti.rendered_map_index for ti in instances}


def retrain_runs() -> dict[str, dict]:
    """Runs of the retrain DAG in the metadata DB (queued by the trigger; ``dag.test`` does not run them)."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return {r.run_id: r.conf for r in session.query(DagRun).filter(DagRun.dag_id == "self_learning_retrain")}


def drift(store: FeedbackStore, end: datetime = END) -> dict[tuple[str, str], dict]:
    return {(r["model"], r["kind"]): r for r in store.read_results("drift_reports", window_end=end)}


def alert_types(store: FeedbackStore, end: datetime = END) -> set[tuple[str, str]]:
    return {(a["model"], a["alert_type"]) for a in store.check_alerts(until=end, include_suppressed=True)}


def requested(store: FeedbackStore, end: datetime = END) -> set[str]:
    return {r["model"] for r in store.retrain_request_list(window_end=end)}


def snapshot(store: FeedbackStore) -> dict[str, list[tuple]]:
    """Every row of the tables the DAG writes, without audit timestamps, sorted."""
    out = {}
    with store.engine.connect() as conn:
        for name in RESULT_TABLES:
            table = sa.Table(name, sa.MetaData(), autoload_with=conn)
            columns = [c for c in table.columns if c.name not in STAMP_COLUMNS and c.name != "id"]
            out[name] = sorted(repr(tuple(row)) for row in conn.execute(sa.select(*columns)))
    return out


def test_stable_scenario_raises_no_drift_alert(daily_dag, feedback_db):
    load(feedback_db, Scenario(days=DAYS, rows_per_day=300, seed=11))
    result = run(daily_dag)
    reports = drift(feedback_db)
    assert len(reports) == 4 * len(MODEL_FEATURES)  # feature, prediction, concept drift, performance degradation
    assert {k: r["severity"] for k, r in reports.items() if r["severity"] != "none"} == {}
    assert not {t for _, t in alert_types(feedback_db) if t.endswith("_drift")}
    assert requested(feedback_db) == set()
    performance = feedback_db.read_results("performance_snapshots", window_end=END, model_version=ALL_VERSIONS)
    assert {r["model"] for r in performance} == set(MODEL_FEATURES)
    assert mapped_labels(result, "model.analyse") == mapped_labels(result, "model.trigger_retrain") \
        == mapped_labels(result, "model.profile") == set(MODEL_FEATURES)
    assert all(r["result"]["status"] == "ok" and 0 < r["label_coverage"] < 1 for r in performance)
    # the profile step, mapped per model: every day the monitor reads (the default 30-day baseline
    # from the first served day, the 14-day label window) profiled, labelled where outcomes arrived
    days = {(END - timedelta(days=i)).date() for i in range(1, DAYS + 1)}
    for model in MODEL_FEATURES:
        index = feedback_db.day_profile_index(model, min(days), END.date())
        assert {r["day"] for r in index if not r["labelled"]} == days, model
        assert {r["day"] for r in index if r["labelled"]} and all(r["row_count"] > 0 for r in index), model


def test_a_multiclass_model_runs_next_to_the_others(daily_dag, feedback_db):
    """The hook classifier served as a multiclass model: mapped and analysed with the others, its
    performance (per class, in the JSON result), error analysis and four drift reports stored (its
    prediction checks: the served class and each class's probability), and the run succeeds."""
    from self_learning.core.performance import MulticlassPerformance, performance_from_dict

    load(feedback_db, Scenario(days=DAYS, rows_per_day=150, seed=17, multiclass_hooks=True))
    result = run(daily_dag)
    assert mapped_labels(result, "model.analyse") == set(MODEL_FEATURES)
    performance = {r["model"]: r for r in feedback_db.read_results("performance_snapshots", window_end=END,
                                                                   model_version=ALL_VERSIONS)}
    hooks = performance_from_dict(performance["hook_classifier"]["result"])
    assert isinstance(hooks, MulticlassPerformance) and hooks.status.value == "ok" and hooks.accuracy > 0.4
    assert len(hooks.confusion_matrix) == len(hooks.classes) == 5
    kinds = {r["kind"] for r in feedback_db.read_results("error_analyses", model="hook_classifier", window_end=END)}
    assert kinds == {"error_distribution", "systematic_errors"}
    reports = drift(feedback_db)
    assert all(len({k for m, k in reports if m == model}) == 4 for model in MODEL_FEATURES)
    checks = reports["hook_classifier", "prediction_drift"]["result"]["statistical_tests"]["checks"]
    assert {"class:distribution", "proba_question:distribution"} <= set(checks)

    # the run's daily summary and /metrics show the per-class figures
    from prometheus_client.parser import text_string_to_metric_families
    from self_learning.loop.reporting import model_health
    from self_learning.web.metrics import exposition

    (summary,) = feedback_db.learning_reports(kind="daily", period_end=END)
    view = summary["report"]["performance"]["hook_classifier"]["per_class"]
    assert view["classes"] == list(hooks.classes)
    assert view["confusion_matrix"] == list(map(list, hooks.confusion_matrix))
    assert [row["recall"] for row in view["per_class"]] == pytest.approx(list(hooks.per_class_recall.values()))
    page = Path(summary["artifact_uri"].removeprefix("file://")).read_text(encoding="utf-8")
    section = page.split("<h2 id='hook_classifier'>")[1].split("<h2")[0]
    assert "data-table='confusion-matrix'" in section and section.count("<td class='diagonal'") == 5
    assert (f"<tr data-class='story'><th class='l' scope='row'>story</th><td>{hooks.per_class_support['story']}</td>"
            in section) and "Macro F1" in section
    assert "data-chart='recall-by-class-values'" in section  # one daily run: values, not a one-point chart
    families = {f.name: f for f in text_string_to_metric_families(exposition(model_health(feedback_db)).decode())}
    recall = {s.labels["class"]: s.value for s in families["self_learning_class_recall"].samples
              if s.labels["model"] == "hook_classifier" and s.labels["version"] == ALL_VERSIONS}
    assert recall == pytest.approx(hooks.per_class_recall)
    (accuracy,) = [s.value for s in families["self_learning_accuracy"].samples
                   if s.labels == {"model": "hook_classifier", "version": ALL_VERSIONS}]
    assert accuracy == pytest.approx(hooks.accuracy)


def test_feature_drift_flags_exactly_the_drifted_features_and_requests_retraining(daily_dag, feedback_db):
    load(feedback_db, Scenario(days=DAYS, rows_per_day=300, seed=12, feature_drift_day=DAYS - 7))
    run(daily_dag)
    reports = drift(feedback_db)
    for model, features in MODEL_FEATURES.items():
        expected = set(features) & set(DRIFTED_FEATURES)
        assert set(reports[model, "feature_drift"]["affected_features"]) == expected, model
        # The loss may move a little when the inputs move (the model is worse where it saw less
        # data), so the loss check may say "low"; a covariate shift is not a concept change.
        assert reports[model, "concept_drift"]["severity"] in ("none", "low"), model
    drifting = {m for m, features in MODEL_FEATURES.items() if set(features) & set(DRIFTED_FEATURES)}
    assert requested(feedback_db) == drifting
    assert {(m, "feature_drift") for m in drifting} <= alert_types(feedback_db)


def test_concept_shift_flags_concept_drift_not_feature_drift(daily_dag, feedback_db):
    load(feedback_db, Scenario(days=DAYS, rows_per_day=300, seed=13, concept_shift_day=DAYS - 7,
                               concept_shift_model="ctr_predictor"))
    run(daily_dag)
    reports = drift(feedback_db)
    assert reports["ctr_predictor", "concept_drift"]["severity"] in ("medium", "high", "critical")
    assert all(reports[m, "feature_drift"]["severity"] == "none" for m in MODEL_FEATURES)
    assert all(reports[m, "concept_drift"]["severity"] == "none" for m in MODEL_FEATURES if m != "ctr_predictor")
    assert requested(feedback_db) == {"ctr_predictor"}
    retrain = feedback_db.retrain_request_list(model="ctr_predictor")[0]
    assert any("concept drift" in reason for reason in retrain["reasons"])
    assert "concept_drift" in retrain["causes"]
    # the retrain DAG was triggered once for the request, with the request as its conf
    triggered = retrain_runs()
    assert triggered == {"retrain__ctr_predictor_2026-11-01T00:00Z": {
        "model": "ctr_predictor", "request_id": retrain["request_id"], "window_end": END.isoformat(),
        "reason": "; ".join(retrain["reasons"])}}


def test_reruns_leave_identical_contents_and_consecutive_intervals_add_a_result_set(daily_dag, feedback_db):
    load(feedback_db, Scenario(days=DAYS, rows_per_day=200, seed=14, feature_drift_day=DAYS - 4))
    run(daily_dag)
    first = snapshot(feedback_db)
    run(daily_dag)  # a re-run sees the first run's alerts, requests and day statistics: nothing changes
    assert snapshot(feedback_db) == first
    assert first["drift_reports"] and first["alerts"]

    day_before = END - timedelta(days=1)
    run(daily_dag, end=day_before)
    for table in ("performance_snapshots", "drift_reports", "error_analyses"):
        ends = {r["window_end"] for r in feedback_db.read_results(table)}
        assert ends == {day_before, END}, table
    # END ran first, and a cooldown looks back only: its alerts are all open
    assert {a["status"] for a in feedback_db.check_alerts(until=END, include_suppressed=True)} == {"open"}
    run(daily_dag)  # re-run END now that the day before has alerted: same cause, no worse -> suppressed
    earlier = {a["dedupe_key"]: Severity(a["severity"]) for a in feedback_db.check_alerts(until=day_before)}
    statuses = {}
    for alert in feedback_db.check_alerts(until=END, include_suppressed=True):
        before = earlier.get(alert["dedupe_key"])
        repeated = before is not None and before.rank >= Severity(alert["severity"]).rank
        assert alert["status"] == ("suppressed" if repeated else "open"), alert
        statuses[alert["status"]] = statuses.get(alert["status"], 0) + 1
    assert statuses.get("suppressed"), statuses


def test_late_labels_raise_coverage_and_update_metrics_in_place(daily_dag, feedback_db):
    scenario = Scenario(days=DAYS, rows_per_day=200, seed=15)
    load(feedback_db, scenario)
    run(daily_dag, models=["roas_predictor"])
    before = feedback_db.read_results("performance_snapshots", model="roas_predictor", model_version=ALL_VERSIONS)
    late = generate(scenario).outcomes_received(END, END + timedelta(days=10))
    feedback_db.enqueue_outcomes(late.assign(received_at=END - timedelta(hours=1)))  # arrives within the interval
    run(daily_dag, models=["roas_predictor"])
    after = feedback_db.read_results("performance_snapshots", model="roas_predictor", model_version=ALL_VERSIONS)
    assert len(before) == len(after) == 1
    assert after[0]["label_coverage"] > before[0]["label_coverage"] + 0.2
    assert after[0]["sample_count"] > before[0]["sample_count"]
    assert after[0]["mae"] != before[0]["mae"]


def test_manual_run_without_logical_date(daily_dag, feedback_db):
    load(feedback_db, Scenario(days=DAYS, rows_per_day=100, seed=16))
    run(daily_dag, end=None, window_end=END.isoformat(), models=["hook_classifier"])
    assert {r["model"] for r in feedback_db.read_results("drift_reports", window_end=END)} == {"hook_classifier"}
    # no window given: the last complete day before the run was queued, which has no data here
    run(daily_dag, end=None, models=["hook_classifier"])
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = feedback_db.read_results("drift_reports", window_end=today)
    assert rows and {r["status"] for r in rows} == {"insufficient_data"}


def test_outcomes_from_a_sql_query_on_any_connection(daily_dag, feedback_db, feedback_url, monkeypatch):
    load(feedback_db, Scenario(days=DAYS, rows_per_day=50, seed=17, models=("roas_predictor",)))
    ids = [r["prediction_id"] for r in feedback_db.read_window(
        "roas_predictor", END - timedelta(days=30), END, labelled_only=False, with_ids=True).to_dict("records")
        if pd.isna(r["actual_value"])][:5]
    with feedback_db.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE crm_results (pid text, roas float8, at timestamptz)")
        conn.execute(sa.text("INSERT INTO crm_results VALUES (:pid, 9.5, :at)"),
                     [{"pid": pid, "at": END - timedelta(hours=2)} for pid in [*ids, "never-served"]])
    monkeypatch.setenv("AIRFLOW_CONN_CRM", feedback_url)
    monkeypatch.setenv("AIRFLOW_VAR_SELF_LEARNING_OUTCOME_CONN_ID", "crm")
    monkeypatch.setenv("AIRFLOW_VAR_SELF_LEARNING_OUTCOME_SQL",
                       "SELECT pid AS prediction_id, roas AS actual_value, at AS observed_at FROM crm_results "
                       "WHERE at >= :start AND at < :end")
    run(daily_dag, models=["roas_predictor"])
    window = feedback_db.read_window("roas_predictor", END - timedelta(days=30), END, with_ids=True)
    assert set(window.loc[window["prediction_id"].isin(ids), "actual_value"]) == {9.5}
    assert len(window[window["prediction_id"].isin(ids)]) == len(ids)
    assert feedback_db.count_orphan_outcomes() == 1


def test_invalid_params_are_rejected(daily_dag, feedback_db):
    from airflow.sdk.definitions.param import ParamValidationError

    for conf in ({"alpha": 0.9}, {"current_window_days": 0}, {"feature_drift_severity": "huge"},
                 {"models": "roas_predictor"}):
        with pytest.raises(ParamValidationError):
            daily_dag.test(logical_date=END, run_conf=conf)


def test_dag_integrity(daily_dag):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    assert bag.dag_ids
    for dag in bag.dags.values():
        assert dag.tags, dag.dag_id
        for task in dag.tasks:
            # bookkeeping that runs whatever happened upstream and reports it need not retry
            assert task.retries >= 2 or task.trigger_rule == "all_done", f"{dag.dag_id}.{task.task_id}"
            if getattr(task, "feedback_conn_id", None):
                assert task.pool == "self_learning_db", f"{dag.dag_id}.{task.task_id} runs in {task.pool}"
        dag.topological_sort()  # raises on a cycle


# One interpreter with what the DAG processor has loaded already; each file is imported in a forked
# child, as the DAG processor parses each file in a fork of itself, and set up as it is: the garbage
# collector's objects frozen before the fork (the manager's gc.freeze(); without it a full collection
# of Airflow's heap during the parse was 0.1-0.2 s of the 0.2-0.33 s measured) and bytecode cached
# (the suite runs with PYTHONDONTWRITEBYTECODE, so every import compiled its source: ~0.08 s more).
# The child's CPU time is what parsing costs the DAG processor; wall time also counted the other
# processes of a busy machine. The least of three forks: the file's cost, not the machine's noise.
_IMPORT_PROBE = """
import gc, importlib.util, json, os, shutil, sys, tempfile, time
import airflow.sdk, airflow.timetables.interval
sys.dont_write_bytecode = False
sys.pycache_prefix = tempfile.mkdtemp(prefix="dag-parse-pyc-")  # the first fork writes it, later ones read it
gc.freeze()
results = {}
for path in sys.argv[1:]:
    for attempt in range(3):
        read, write = os.pipe()
        if os.fork() == 0:
            os.close(read)
            before = set(sys.modules)
            start = time.process_time()
            spec = importlib.util.spec_from_file_location("dag_under_test", path)
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
            elapsed = time.process_time() - start
            heavy = sorted({m.split(".")[0] for m in set(sys.modules) - before} & {"pandas", "scipy", "sklearn"})
            os.write(write, json.dumps({"seconds": elapsed, "heavy": heavy}).encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            probe = json.loads(pipe.read())
        os.wait()
        best = results.setdefault(path, probe)
        best["seconds"] = min(best["seconds"], probe["seconds"])
        best["heavy"] = sorted(set(best["heavy"]) | set(probe["heavy"]))
shutil.rmtree(sys.pycache_prefix, ignore_errors=True)
print(json.dumps(results))
"""
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))


@pytest.fixture(scope="module")
def dag_file_imports() -> dict[str, dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    result = subprocess.run([sys.executable, "-c", _IMPORT_PROBE, *map(str, DAG_FILES)], capture_output=True,
                            text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_parses_fast_without_heavy_imports(path, dag_file_imports):
    probe = dag_file_imports[str(path)]
    assert probe["heavy"] == []
    assert probe["seconds"] <= 0.3, f"{path.name} takes {probe['seconds']:.2f} s of CPU to import"


def test_make_demo_runs_the_daily_dag_on_the_embedded_default(tmp_path):
    """What ``make demo`` runs, smaller: SQLite store, SQLite Airflow, ``airflow dags test``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))}
    env["PYTHONPATH"] = str(ROOT / "plugins")
    result = subprocess.run(
        [sys.executable, "-m", "self_learning.demo", "--home", str(tmp_path / "demo"), "--days-to-run", "1",
         "--rows-per-day", "120"], capture_output=True, text=True, env=env, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "== window ending 2026-11-01" in result.stdout
    assert "ctr_predictor: MAPE" in result.stdout and "concept_drift: " in result.stdout
    # the hook classifier is served as a multiclass model over five hook types
    assert re.search(r"hook_classifier: accuracy 0\.\d+, macro F1 0\.\d+, log loss \d\.\d+ on", result.stdout)
    assert re.search(r"actual classes: question \d+%, statistic \d+%, story \d+%, offer \d+%, testimonial \d+%",
                     result.stdout)
    assert "RETRAIN requested" in result.stdout
    assert "then self_learning_retrain for ctr_predictor@2026-11-01T00:00Z" in result.stdout
    assert "request ctr_predictor@2026-11-01T00:00Z: done -> r20261101T0000Z" in result.stdout
    # the A/B test got challenger traffic as the assignment says and the weekly conclusion looked at it
    assert "served its A/B test and ran self_learning_weekly" in result.stdout
    look = re.search(r"last look 2026-11-15: (\w+) \(assigned per arm \[(\d+), (\d+)\]\): (.*)", result.stdout)
    assert look is not None, result.stdout[-3000:]
    action, champion, challenger, reasons = look.groups()
    assert int(champion) > 0 and int(challenger) > 0, look.group(0)
    assert action == "promote" or (action == "continue" and reasons.startswith("still running: ")), look.group(0)
    assert (tmp_path / "demo" / "feedback.db").exists()
