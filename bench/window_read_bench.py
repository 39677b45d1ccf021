"""Window read cost against stored history: a 1-day window with 1x vs 10x history (issue 18).

One day of ``--rows`` labelled predictions (16 numeric + 4 categorical features) is ingested with
the store's bulk API; history is then added server-side by copying that day to earlier days
(``INSERT ... SELECT``, predictions and outcomes), so the store holds ``1 + history`` days. The
same 1-day window is read (``read_window``, the daily analysis' read) with 1x history (the day
alone) and with 10x (the day plus 9 earlier ones), and the plan of its join is printed: a read
that costs O(window) takes the same time in both columns.

Run: ``.venv/bin/python bench/window_read_bench.py --rows 100000`` (about a minute).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "tests")]
from ingest_bench import make_frame  # noqa: E402
from self_learning import store  # noqa: E402
from self_learning.store import copy_out  # noqa: E402
from self_learning.store.tables import outcomes, predictions  # noqa: E402
from support.pg_server import ThrowawayPostgres  # noqa: E402

DAY = datetime(2026, 11, 30, tzinfo=UTC)
MODEL = "roas_predictor"
WINDOW_ROWS = [0]


def day_frame(rows: int, seed: int = 1) -> pd.DataFrame:
    """One served day of ``MODEL`` at ``DAY`` (ingest_bench's rows: 16 numeric, 4 categorical features)."""
    return make_frame(rows, seed, day=DAY, id_prefix="w", versions=("v1",))


def add_history_days(feedback: store.FeedbackStore, days: range) -> None:
    """Copy the window's day (predictions and outcomes) to ``days`` days before it, server-side."""
    columns = [c.name for c in predictions.c if c.name != "row_id"]
    with feedback.engine.begin() as conn:
        for back in days:
            shifted = [f"prediction_id || '-h{back}'" if c == "prediction_id"
                       else f"served_at - interval '{back} days'" if c == "served_at" else c for c in columns]
            conn.exec_driver_sql(f"INSERT INTO predictions ({', '.join(columns)}) SELECT {', '.join(shifted)} "
                                 "FROM predictions WHERE prediction_id LIKE 'w-%%' AND prediction_id NOT LIKE '%%-h%%'")
            ocolumns = [c.name for c in outcomes.c]
            oshifted = [f"prediction_id || '-h{back}'" if c == "prediction_id"
                        else f"{c} - interval '{back} days'" if c in ("observed_at", "recorded_at") else c
                        for c in ocolumns]
            conn.exec_driver_sql(f"INSERT INTO outcomes ({', '.join(ocolumns)}) SELECT {', '.join(oshifted)} "
                                 "FROM outcomes WHERE prediction_id NOT LIKE '%%-h%%'")
    for table in ("predictions", "outcomes"):
        with feedback.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"VACUUM ANALYZE {table}")


# Before issue 18 the read set work_mem alone: the planner chose a hash join over every outcome.
BEFORE = copy_out.WINDOW_READ_SETTINGS[:1]
AFTER = copy_out.WINDOW_READ_SETTINGS


def timed_reads(feedback: store.FeedbackStore, repeats: int, settings: tuple[str, ...]) -> float:
    copy_out.WINDOW_READ_SETTINGS = settings
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        rows = len(feedback.read_window(MODEL, DAY, DAY + timedelta(days=1)))
        times.append(time.perf_counter() - started)
        assert rows == WINDOW_ROWS[0]
    return statistics.median(times)


def join_plan(feedback: store.FeedbackStore, settings: tuple[str, ...]) -> str:
    """EXPLAIN ANALYZE of the window read's join (``store.window_read_plan``), its node lines only."""
    copy_out.WINDOW_READ_SETTINGS = settings
    plan = feedback.window_read_plan(MODEL, DAY, DAY + timedelta(days=1), analyze=True)
    return "\n".join(line for line in plan.splitlines()
                     if "->" in line or line.split("(")[0].strip().endswith(("Join", "Loop", "Gather"))
                     or line.startswith("Execution"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="labelled predictions in the window's day")
    parser.add_argument("--history", type=int, default=10, help="days stored in the second column")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with ThrowawayPostgres() as server:
        feedback = store.FeedbackStore.from_url(server.create_database("bench"))
        feedback.ensure_schema()
        frame = day_frame(args.rows)
        assert feedback.register_predictions(frame).inserted == args.rows
        labels = pd.DataFrame({"prediction_id": frame["prediction_id"], "actual_value": frame["predicted_value"] * 0.9,
                               "observed_at": frame["served_at"] + pd.Timedelta(hours=1)})
        assert feedback.record_outcomes(labels).inserted == args.rows
        with feedback.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE predictions")
            conn.exec_driver_sql("VACUUM ANALYZE outcomes")
        WINDOW_ROWS[0] = args.rows
        results, plans = {}, {}
        for history in (1, args.history):
            if history > 1:
                add_history_days(feedback, range(1, history))
            for label, settings in (("before", BEFORE), ("after", AFTER)):
                results[history, label] = timed_reads(feedback, args.repeats, settings)
                plans[history, label] = join_plan(feedback, settings)
        print(f"1-day window of {args.rows:,} labelled rows (20 features), read_window s, median of {args.repeats}:")
        print(f"{'history':>8} {'stored rows':>12} {'before':>8} {'after':>8}")
        for history in (1, args.history):
            print(f"{history:>7}x {args.rows * history:>12,} {results[history, 'before']:>8.3f} "
                  f"{results[history, 'after']:>8.3f}")
        for label in ("before", "after"):
            print(f"{label}: {args.history}x / 1x history = {results[args.history, label] / results[1, label]:.2f}")
        for (history, label), plan in plans.items():
            print(f"-- join plan {label}, {history}x history --\n{plan}")
        feedback.engine.dispose()


if __name__ == "__main__":
    main()
