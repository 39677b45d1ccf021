"""A model's day of results becomes visible whole or not at all.

The daily DAG's ``analyse`` step writes performance, drift and error analysis in one transaction.
The kill test runs that step in a child process that SIGKILLs itself in the middle of writing (as
the second result row is about to be written, after the first was sent to the server) and checks,
from the parent, that no reader sees any row of the model's new day while the previous day stays
whole. The same child writing result by result (the former three tasks' per-row transactions)
leaves a partial day, so the harness does catch what it is meant to catch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
import sqlalchemy as sa
from self_learning.operators import DriftOperator, ErrorAnalysisOperator, PerformanceOperator, RunSettings
from self_learning.operators.daily import AnalyseModelOperator
from self_learning.store import FeedbackStore
from self_learning.store.tables import RESULT_TABLES
from self_learning.synthetic import Scenario
from support import ROOT
from support.scenarios import DAYS, END, load

MODEL = "hook_classifier"  # a classifier served as two versions: three performance rows a day
DAY_TABLES = ("performance_snapshots", "drift_reports", "error_analyses")
FULL_DAY = {"performance_snapshots": 3, "drift_reports": 4, "error_analyses": 2}  # rows per model and day
PREVIOUS_END = END - timedelta(days=1)

# The child: the analysis step for one model, killed with SIGKILL as it is about to send its
# second INSERT into a result table. ``per_result`` replays the former writes (each result in its
# own transaction) to show that the harness detects a partial day.
_KILLED_CHILD = """
import os, signal, sys
from datetime import datetime, timedelta

import sqlalchemy as sa
from self_learning.operators import RunSettings
from self_learning.operators.daily import AnalyseModelOperator
from self_learning.store import FeedbackStore
from self_learning.store.tables import RESULT_TABLES

url, model, end, mode = sys.argv[1:]
inserts = 0
execute = sa.engine.Connection.execute


def execute_then_die(self, statement, *args, **kwargs):
    global inserts
    if isinstance(statement, sa.sql.dml.Insert) and statement.table.name in RESULT_TABLES:
        inserts += 1
        if inserts == 2:
            print("killing myself before the second result write", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    return execute(self, statement, *args, **kwargs)


sa.engine.Connection.execute = execute_then_die
if mode == "per_result":
    save_results = FeedbackStore.save_results
    FeedbackStore.save_results = lambda self, results: sum(save_results(self, [r]) for r in results)
store = FeedbackStore.from_url(url)
window_end = datetime.fromisoformat(end)
settings = RunSettings(window_end=window_end, interval_start=window_end - timedelta(days=1))
AnalyseModelOperator(task_id="analyse", model=model).run(store, store.get_model(model), settings)
print("finished without being killed", flush=True)
"""


def settings_for(end) -> RunSettings:
    return RunSettings(window_end=end, interval_start=end - timedelta(days=1))


def analyse(store: FeedbackStore, model: str, end) -> dict:
    return AnalyseModelOperator(task_id="analyse", model=model).run(store, store.get_model(model), settings_for(end))


def run_killed_child(url: str, mode: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    return subprocess.run([sys.executable, "-c", _KILLED_CHILD, url, MODEL, END.isoformat(), mode],
                          capture_output=True, text=True, env=env, timeout=300, check=False)


def rows_of_day(store: FeedbackStore, end) -> dict[str, int]:
    return {table: len(store.read_results(table, model=MODEL, window_end=end)) for table in DAY_TABLES}


def latest_window_ends(store: FeedbackStore) -> dict[str, set]:
    return {table: {row["window_end"] for row in store.latest_results(table, model=MODEL)} for table in DAY_TABLES}


def stored_rows(store: FeedbackStore) -> dict[str, list[tuple]]:
    """Every result row of the three tables, without the write time, sorted."""
    out = {}
    with store.engine.connect() as conn:
        for table in DAY_TABLES:
            columns = [c for c in RESULT_TABLES[table].columns if c.name != "computed_at"]
            out[table] = sorted(repr(tuple(row)) for row in conn.execute(sa.select(*columns)))
    return out


@pytest.fixture
def loaded(feedback_db) -> FeedbackStore:
    load(feedback_db, Scenario(days=DAYS, rows_per_day=150, seed=31, models=(MODEL,)))
    analyse(feedback_db, MODEL, PREVIOUS_END)  # the day before: the state readers keep seeing
    assert rows_of_day(feedback_db, PREVIOUS_END) == FULL_DAY
    return feedback_db


def test_a_step_killed_while_writing_leaves_no_row_of_its_day(loaded, feedback_url):
    killed = run_killed_child(feedback_url, "atomic")
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr[-3000:]
    assert "killing myself" in killed.stdout
    assert rows_of_day(loaded, END) == dict.fromkeys(DAY_TABLES, 0)
    assert latest_window_ends(loaded) == {table: {PREVIOUS_END} for table in DAY_TABLES}
    assert rows_of_day(loaded, PREVIOUS_END) == FULL_DAY

    summary = analyse(loaded, MODEL, END)  # the re-run stores the whole day
    assert rows_of_day(loaded, END) == FULL_DAY
    assert latest_window_ends(loaded) == {table: {END} for table in DAY_TABLES}
    assert set(summary) == {"performance", "drift", "error_analysis"}


def test_the_harness_sees_the_partial_day_that_per_result_writes_leave(loaded, feedback_url):
    """The former writes, one transaction per result, killed at the same point: the first result
    is committed without the others. Proves the kill lands mid-write and that the checks above
    would fail on per-table writes."""
    killed = run_killed_child(feedback_url, "per_result")
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr[-3000:]
    day = rows_of_day(loaded, END)
    assert sum(day.values()) == 1, day
    assert len({frozenset(ends) for ends in latest_window_ends(loaded).values()}) == 2  # readers see a mixed "now"


@pytest.mark.parametrize("model", ["hook_classifier", "roas_predictor"])
def test_the_single_step_stores_what_the_three_steps_stored(store, model):
    """Same rows, same kinds, same XCom summaries as performance, drift and error analysis run
    as three steps (each reading the window itself), on both stores."""
    load(store, Scenario(days=DAYS, rows_per_day=120, seed=32, models=(model,), feature_drift_day=DAYS - 5))
    spec, settings = store.get_model(model), settings_for(END)
    separate = {name: step(task_id=name, model=model).run(store, spec, settings) for name, step in
                (("performance", PerformanceOperator), ("drift", DriftOperator),
                 ("error_analysis", ErrorAnalysisOperator))}
    three_steps = stored_rows(store)
    with store.engine.begin() as conn:
        for table in DAY_TABLES:
            conn.execute(sa.delete(RESULT_TABLES[table]))
    assert stored_rows(store) == {table: [] for table in DAY_TABLES}

    together = analyse(store, model, END)
    assert stored_rows(store) == three_steps
    assert together == separate
    assert separate["drift"]["feature_drift"]["affected_features"]  # the comparison covers a finding
    assert 0 < separate["performance"]["*"]["label_coverage"] < 1  # and unlabelled rows in the window
