"""Replaying history (issue 15, item 7): the DAGs start early enough that a run with a logical
date a year back analyses that window and stores its results; ``SELF_LEARNING_START_DATE`` moves
the start date when the DAG files are parsed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from self_learning.store import ALL_VERSIONS
from self_learning.synthetic import MODEL_FEATURES, Scenario
from support import ROOT
from support.scenarios import DAYS, END, load, run

YEAR_AGO = END - timedelta(days=365)  # 2025-11-01: before the old start_date 2026-01-01
DAG_IDS = ("self_learning_daily", "self_learning_weekly", "self_learning_retrain")


@pytest.mark.usefixtures("fresh_runs")
def test_a_daily_run_a_year_back_stores_that_windows_results(dag_bag, feedback_db):
    dag = dag_bag.get_dag("self_learning_daily")
    load(feedback_db, Scenario(days=DAYS, rows_per_day=150, seed=21, end=YEAR_AGO), interval_end=YEAR_AGO)
    run(dag, end=YEAR_AGO)
    performance = feedback_db.read_results("performance_snapshots", window_end=YEAR_AGO, model_version=ALL_VERSIONS)
    assert {r["model"] for r in performance} == set(MODEL_FEATURES)
    assert all(r["window_start"].date() == (YEAR_AGO - timedelta(days=7)).date() for r in performance)
    drift = feedback_db.read_results("drift_reports", window_end=YEAR_AGO)
    assert {(r["model"], r["kind"]) for r in drift} >= {(m, "feature_drift") for m in MODEL_FEATURES}
    assert feedback_db.latest_learning_report("daily")["period_end"].date() == YEAR_AGO.date()


def test_every_dag_starts_in_2000_unless_the_environment_says_otherwise(dag_bag):
    assert {dag_id: dag_bag.get_dag(dag_id).start_date for dag_id in DAG_IDS} \
        == dict.fromkeys(DAG_IDS, datetime(2000, 1, 1, tzinfo=UTC))
    probe = ("import importlib.util, json, sys\n"
             "out = {}\n"
             "for path in sys.argv[1:]:\n"
             "    spec = importlib.util.spec_from_file_location('probe_dag', path)\n"
             "    module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
             "    out[module.dag.dag_id] = module.dag.start_date.isoformat()\n"
             "print(json.dumps(out))")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins"), "SELF_LEARNING_START_DATE": "2024-03-01"}
    result = subprocess.run([sys.executable, "-c", probe, *(str(ROOT / "dags" / f"{d}.py") for d in DAG_IDS)],
                            capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    starts = json.loads(result.stdout.strip().splitlines()[-1])
    assert {dag_id: datetime.fromisoformat(start) for dag_id, start in starts.items()} \
        == dict.fromkeys(DAG_IDS, datetime(2024, 3, 1, tzinfo=UTC))
