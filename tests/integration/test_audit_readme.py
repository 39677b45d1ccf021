"""The README's Python blocks, executed against a real PostgreSQL store: what a reader copies must
run. The serving block is self-contained (its URL from ``FEEDBACK_DB_URL``, pointed at the session's
server; ``test_readme_serving`` runs it on SQLite without Airflow); the A/B block is given only the
names it leaves to the reader (``unit_id``, ``deployed_version``), the estimation block its two
windows (``baseline_rows``, ``todays_window``)."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT
from self_learning import lifecycle
from self_learning.ab_testing import arm_version
from self_learning.store import FeedbackStore
from support.stores import DAY

BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.DOTALL)


def block(marker: str) -> str:
    (found,) = [b for b in BLOCKS if marker in b]
    return found


def execute(source: str, **names) -> dict:
    """Run a block as a reader would paste it; returns its namespace."""
    namespace = dict(names)
    exec(compile(source, "<README.md python block>", "exec"), namespace)
    return namespace


def test_every_python_block_of_the_readme_is_executed_here():
    assert len(BLOCKS) == 3, "a new ```python block in README.md: execute it in this module"


def test_the_serving_store_block_runs_against_a_real_store(pg_url, monkeypatch):
    monkeypatch.setenv("FEEDBACK_DB_URL", pg_url)
    names = execute(block("FeedbackStore.from_url"))
    report = names["report"]  # the outcomes' report
    assert (report.inserted, report.rejected) == (2, [])
    assert len(names["window"]) == 3  # the single prediction and the two of the frame, all labelled
    assert FeedbackStore.from_url(pg_url).record_outcome(names["pid"], 2.9) == "unchanged"
    assert execute(block("FeedbackStore.from_url"))["report"].unchanged == 2  # a restart: no conflict


@pytest.fixture
def serving(feedback_db):
    """Names the serving snippet needs: the store, a unit, and the version this process serves today."""
    return {"store": feedback_db, "unit_id": "campaign-42", "deployed_version": "v4"}


def test_the_ab_serving_block_picks_a_version_before_the_first_promotion(serving):
    """No champion yet (nothing promoted, no test): serving keeps the version it deploys."""
    assert serving["store"].get_champion("ctr_predictor") is None
    assert execute(block("arm_version"), **serving)["version"] == "v4"


def test_the_ab_serving_block_serves_the_champion_then_the_arm_of_the_unit(serving):
    store = serving["store"]
    for version in ("v5", "v6"):
        store.register_version("ctr_predictor", version, status="archived")
    store.promote("ctr_predictor", "v5")
    assert execute(block("arm_version"), **serving)["version"] == "v5"
    test = lifecycle.ab_test_model_versions(store, "ctr_predictor", "v5", "v6", started_at=DAY)
    expected = arm_version(test["config"]["seed"], "campaign-42", "v5", "v6", test["config"]["traffic_split"])
    assert execute(block("arm_version"), **serving)["version"] == expected


def test_the_estimation_block_estimates_a_window_before_its_labels():
    """A calibrated binary classifier: the block's estimated ROC AUC, from scores only, is within
    its band of the AUC the withheld labels give."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(19)

    def rows(n: int, shift: float) -> pd.DataFrame:
        x = rng.normal(shift, 1, n)
        p = 1 / (1 + np.exp(-1.5 * x))
        return pd.DataFrame({"x": x, "predicted_value": p, "actual_value": (rng.uniform(size=n) < p).astype(float)})

    baseline, today = rows(20_000, 0.0), rows(2_000, 0.5)
    names = execute(block("fit_estimator"), baseline_rows=baseline, todays_window=today.drop(columns="actual_value"))
    estimated = names["estimate"].metrics["roc_auc"]
    realized = roc_auc_score(today["actual_value"], today["predicted_value"])
    assert estimated.lower <= realized <= estimated.upper, (estimated, realized)
