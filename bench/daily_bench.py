"""The daily pipeline's compute for one big model, on a throwaway PostgreSQL.

One model with 50 features (45 numeric, 5 categorical), 1M labelled predictions in the current
window (7 days) and 1M in the reference window (30 days before it). Runs the per-model steps of
the daily DAG - the analysis (performance, drift, error analysis, one read of each window), alerts,
retrain decision - exactly as the tasks do (their ``run`` methods on a store), and prints wall time
and peak RSS with the split between store reads, statistics and store writes. Loading the data is set-up, not measured.
Run: ``make bench`` (or ``.venv/bin/python bench/daily_bench.py --rows 200000``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "tests")]
from self_learning.core.types import ModelSpec  # noqa: E402
from self_learning.operators import (  # noqa: E402
    AlertOperator,
    AnalyseModelOperator,
    RetrainDecisionOperator,
    RunSettings,
)
from self_learning.store import FeedbackStore  # noqa: E402
from support.pg_server import ThrowawayPostgres  # noqa: E402

END = datetime(2026, 11, 1, tzinfo=UTC)
MODEL = "bench_model"
NUMERIC, CATEGORICAL = 45, 5
CATEGORIES = [["meta", "tiktok", "google", "youtube"], ["video", "image", "carousel"],
              ["question", "testimonial", "humor", "statistic", "problem"], [f"region_{i}" for i in range(20)],
              ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]]
READS = ("read_window", "count_predictions_by_version", "feature_registry", "read_results")
WRITES = ("save_result", "save_results", "raise_alert", "request_retrain")


def load(store: FeedbackStore, rows: int, *, chunk: int = 250_000) -> None:
    """``rows`` labelled predictions in each window; two numeric features drift in the current one."""
    features = {f"num_{i:02d}": "numeric" for i in range(NUMERIC)} | {f"cat_{i}": "categorical"
                                                                      for i in range(CATEGORICAL)}
    store.register_model(ModelSpec(MODEL, "regression", features))
    windows = (("ref", END - timedelta(days=37), 30), ("cur", END - timedelta(days=7), 7))
    for number, (name, start, days) in enumerate(windows):
        for offset in range(0, rows, chunk):
            n = min(chunk, rows - offset)
            rng = np.random.default_rng([number, offset])
            frame = pd.DataFrame({
                "prediction_id": [f"{name}-{offset + i:09d}" for i in range(n)],
                "model": MODEL,
                "model_version": rng.choice(["v1", "v2"], n, p=[0.8, 0.2]),
                "served_at": pd.Timestamp(start) + pd.to_timedelta(rng.integers(0, days * 86_400_000_000, n),
                                                                   unit="us"),
            })
            numeric = rng.standard_normal((n, NUMERIC))
            if name == "cur":
                numeric[:, :2] += 0.3
            for i in range(NUMERIC):
                frame[f"num_{i:02d}"] = numeric[:, i]
            for i, labels in enumerate(CATEGORIES):
                frame[f"cat_{i}"] = rng.choice(labels, n)
            truth = 3.0 + numeric[:, :5].sum(axis=1) * 0.2 + rng.gamma(2.0, 0.5, n)
            frame["predicted_value"] = truth + rng.normal(0.0, 0.4, n)
            store.register_predictions(frame)
            store.record_outcomes(pd.DataFrame({"prediction_id": frame["prediction_id"], "actual_value": truth,
                                                "observed_at": frame["served_at"] + pd.Timedelta(days=1)}))


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM := current RSS


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def instrument(store: FeedbackStore, timers: dict[str, float]) -> None:
    """Accumulate the time spent in store reads and writes (everything else is statistics)."""
    def timed(kind, method):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                timers[kind] += time.perf_counter() - start
        return wrapper

    for kind, names in (("read", READS), ("write", WRITES)):
        for name in names:
            setattr(store, name, timed(kind, getattr(store, name)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="labelled rows per window")
    args = parser.parse_args()
    server = ThrowawayPostgres().start()
    try:
        store = FeedbackStore.from_url(server.create_database("daily_bench"))
        store.ensure_schema()
        started = time.perf_counter()
        load(store, args.rows)
        print(f"set-up: {2 * args.rows:,} labelled predictions with {NUMERIC + CATEGORICAL} features loaded in "
              f"{time.perf_counter() - started:.0f} s")
        spec = store.get_model(MODEL)
        settings = RunSettings(window_end=END, interval_start=END - timedelta(days=1))
        timers: dict[str, float] = defaultdict(float)
        instrument(store, timers)
        reset_peak_rss()
        baseline = peak_rss_mb()
        total_start = time.perf_counter()
        for step in (AnalyseModelOperator, AlertOperator, RetrainDecisionOperator):
            before = dict(timers)
            start = time.perf_counter()
            result = step(task_id=step.__name__, model=MODEL).run(store, spec, settings)
            elapsed = time.perf_counter() - start
            read, write = (timers[k] - before.get(k, 0.0) for k in ("read", "write"))
            print(f"  {step.__name__:<26} {elapsed:6.1f} s  (read {read:5.1f}, statistics "
                  f"{elapsed - read - write:5.1f}, write {write:4.1f})")
            if step is AnalyseModelOperator:
                drift = result["drift"]
                print(f"    drift: { {k: v['severity'] for k, v in drift.items() if isinstance(v, dict)} }")
        total = time.perf_counter() - total_start
        statistics = total - timers["read"] - timers["write"]
        print(f"daily pipeline, 1 model x {NUMERIC + CATEGORICAL} features, {args.rows:,} current + {args.rows:,} "
              f"reference labelled rows: {total:.1f} s (store reads {timers['read']:.1f} s, statistics "
              f"{statistics:.1f} s, writes {timers['write']:.1f} s); peak RSS {peak_rss_mb():.0f} MB "
              f"(process at start {baseline:.0f} MB); targets <= 30 s, <= 2048 MB")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
