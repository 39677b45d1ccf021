"""Helpers of the DAG tests: load a synthetic scenario into the store, run a DAG with ``dag.test()``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from self_learning.store import FeedbackStore
from self_learning.synthetic import Scenario, generate

DAYS = 40  # 30 reference + 7 current days, and a few more
END = datetime(2026, 11, 1, tzinfo=UTC)
MONITORED_DAYS = [datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)]  # see conftest
MONITORED_MODELS = ["roas_predictor", "ctr_predictor"]
MONITORED_MULTICLASS = "hook_classifier"  # served as a multiclass model, monitored with the others (see conftest)
PARAM_DEFAULTS: dict[str, dict] = {}  # per DAG id, recorded before any run (see ``run``)


def load(store: FeedbackStore, scenario: Scenario, *, interval_end: datetime = END) -> None:
    """Predictions up to the scenario's end; outcomes received before the interval as already
    recorded, those received during the interval waiting in the inbox (the DAG pulls them)."""
    data = generate(scenario)
    for spec in data.models:
        store.register_model(spec)
    assert not store.register_predictions(data.predictions).rejected
    interval_start = interval_end - timedelta(days=1)
    store.record_outcomes(data.outcomes_received(end=interval_start))
    store.enqueue_outcomes(data.outcomes_received(interval_start, interval_end))


def run(dag, *, end: datetime | None = END, state: str = "success", **conf):
    """One DAG run whose data interval ends at ``end`` (None: a manual run without a logical date).
    ``dag.test()`` keeps earlier runs' conf in the DAG's params, so every run restates all params."""
    result = dag.test(logical_date=end, run_conf={**PARAM_DEFAULTS[dag.dag_id], **conf})
    assert result.state == state, f"DAG run ended {result.state}"
    return result


def clear_dag_runs() -> None:
    """Delete every DAG run from the metadata DB."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        for dag_run in session.query(DagRun).all():
            session.delete(dag_run)
