"""The Airflow half of ``make demo``, in one process: migrate the embedded metadata DB, create the
DB pool, run the daily DAG for each window end with ``dag.test()`` (what ``airflow dags test``
runs), then the retrain DAG for the first retrain request of the retrained model, with the conf
the daily run's trigger sent; then ``--ab-days`` of traffic served to its A/B test as the assignment
says (``ab_traffic``) and the weekly DAG, whose conclusion looks at the test.

Why one process and not one ``airflow`` CLI call per step: each CLI call starts Airflow from
scratch (imports, configuration, DAG folder parse: 3-10 s each); later ``dag.test()`` runs in the
same process reuse all of it. The demo with one day to run at 120 rows a day, side by side on an
idle 2-core machine: 49.5 s with a CLI call per step (migrate, pools, one per DAG run), 27.6 s.

Run by ``self_learning.demo.run`` with the Airflow environment (``AIRFLOW_HOME``, the SQLite
metadata DB, the feedback connection) set before Airflow is imported:

    python -m self_learning.demo.airflow_runs --dags DIR --store-url URL --model NAME [--ab-days 14]
        [--rows-per-day 500] [--seed 7] END [END ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

DAG_ID = "self_learning_daily"
RETRAIN_DAG_ID = "self_learning_retrain"
WEEKLY_DAG_ID = "self_learning_weekly"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dags", type=Path, required=True, help="the DAG folder")
    parser.add_argument("--store-url", required=True, help="the feedback store (to find the retrain request)")
    parser.add_argument("--model", required=True, help="the model whose first retrain request is run")
    parser.add_argument("--ab-days", type=int, default=14, help="days of traffic served to the A/B test")
    parser.add_argument("--rows-per-day", type=int, default=500, help="predictions per day of that traffic")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("ends", nargs="+", type=datetime.fromisoformat, help="window ends of the daily runs")
    args = parser.parse_args(argv)

    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.pool import Pool
    from airflow.utils import db
    from airflow.utils.state import DagRunState

    from ..operators import DB_POOL
    from ..store import FeedbackStore

    db.upgradedb()  # what `airflow db migrate` runs
    Pool.create_or_update_pool(DB_POOL, 4, "self-learning DB-heavy tasks", include_deferred=False)
    bag = DagBag(dag_folder=str(args.dags))
    if bag.import_errors:
        raise SystemExit(f"the DAG folder {args.dags} has import errors: {bag.import_errors}")

    def test(dag_id: str, logical_date: datetime, conf: dict | None = None) -> None:
        started = time.perf_counter()
        run = bag.get_dag(dag_id).test(logical_date=logical_date, run_conf=conf)
        print(f"demo: {dag_id} run {run.run_id} ended {run.state} in {time.perf_counter() - started:.0f} s",
              flush=True)
        if run.state != DagRunState.SUCCESS:
            raise SystemExit(f"{dag_id} run {run.run_id} failed")

    for end in args.ends:
        test(DAG_ID, end)
    requests = FeedbackStore.from_url(args.store_url).retrain_request_list(model=args.model)
    if requests:
        request = requests[0]
        conf = {"model": args.model, "request_id": request.request_id, "reason": "; ".join(request.reasons),
                "window_end": request.window_end.isoformat()}
        test(RETRAIN_DAG_ID, request.window_end, conf)  # dated by the request's window, not the clock
    store = FeedbackStore.from_url(args.store_url)
    running = store.running_ab_test(args.model)
    if running is not None and args.ab_days > 0:
        from ..operators.retrain import artifact_storage
        from .ab_traffic import serve_ab_test

        served, week_end = serve_ab_test(store, args.model, days=args.ab_days, rows_per_day=args.rows_per_day,
                                         seed=args.seed + 1, artifact_root=str(artifact_storage(None, None)))
        print(f"demo: served {served} predictions to A/B test {running.test_id}", flush=True)
        test(WEEKLY_DAG_ID, week_end, {"window_end": week_end.isoformat()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
