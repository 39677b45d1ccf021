"""Production volume with daily profiles: the daily run's profile step and a profile-based analysis.

Fills a throwaway PostgreSQL (``tests/support/pg_server``) with the package's own bulk API
(``register_predictions``, ``record_outcomes``; every row labelled) for ``--models`` regression
models x ``--rows-per-day`` x ``--features`` (up to 5 categorical, the rest numeric), then times,
per model, exactly what the daily DAG's ``profile`` task runs (``ProfileDaysOperator.run``):

- ``profile_build_s``: the steady-state daily run - the window ending at END builds the one day
  that just ended (its unlabelled and labelled profile, one read), summed over the models;
- ``backfill_s``: the run before it, which backfilled the other stored days (per day the same
  read-and-build), and ``rerun_s`` a re-run of the daily window (nothing to build);
- ``analysis_s``: what the monitor will compute once it reads profiles (it still reads raw rows
  today): the ``--current-days`` and ``--reference-days`` profiles read from the store and merged,
  every numeric feature, the prediction and the error compared (``compare_numeric_profiles``),
  every categorical one (``compare_categorical_profiles``), both windows' performance.

Only ``--distinct-days`` days are stored as rows (loading 37 days of 1M rows takes longer than a
bench run may): the first reference day (the pinned baseline needs served rows) and the last
``distinct-days - 1`` days; with 1, the last day only (no baseline pinned, the backfill run has
nothing to build). The other days of both windows are copies of a built day's profiles
under their dates (a merge costs the same whatever the values), so the analysis reads and merges
full-size windows. The loading runs in a child process, so ``peak_rss_mb`` (this process's
``ru_maxrss``) is the profile step's and the analysis', not the load's.

Run: ``.venv/bin/python bench/scale_bench.py --models 1 --rows-per-day 1000000 --features 50
--current-days 7 --reference-days 30 --json`` (the last line is JSON).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "tests")]

END = datetime(2026, 11, 1, tzinfo=UTC)
CHUNK = 250_000


def model_names(models: int) -> list[str]:
    return [f"scale_model_{i}" for i in range(models)]


def feature_names(features: int) -> tuple[list[str], list[str]]:
    categorical = min(5, features // 10)
    return ([f"num_{i:02d}" for i in range(features - categorical)], [f"cat_{i}" for i in range(categorical)])


def stored_days(current: int, reference: int, distinct: int) -> list[datetime]:
    """The days stored as rows: the first reference day and the last ``distinct - 1`` days (one:
    the last day only, and no baseline is pinned)."""
    if distinct == 1:
        return [END - timedelta(days=1)]
    first = END - timedelta(days=current + reference)
    last = [END - timedelta(days=i) for i in range(distinct - 1, 0, -1)]
    return [first, *[d for d in last if d > first]]


def load(url: str, args) -> None:
    """The child process: register the models and store their rows (not measured)."""
    from self_learning.core.types import ModelSpec
    from self_learning.store import FeedbackStore

    store = FeedbackStore.from_url(url)
    numeric, categorical = feature_names(args.features)
    kinds = {name: "numeric" for name in numeric} | {name: "categorical" for name in categorical}
    for number, model in enumerate(model_names(args.models)):
        store.register_model(ModelSpec(model, "regression", kinds))
        for day_number, day in enumerate(stored_days(args.current_days, args.reference_days, args.distinct_days)):
            for offset in range(0, args.rows_per_day, CHUNK):
                n = min(CHUNK, args.rows_per_day - offset)
                rng = np.random.default_rng([number, day_number, offset])
                values = rng.standard_normal((n, len(numeric)))
                frame = pd.DataFrame(values, columns=numeric)
                for i, name in enumerate(categorical):
                    frame[name] = rng.choice([f"c{i}_{j}" for j in range(3 + 4 * i)], n)
                truth = 3.0 + values[:, :5].sum(axis=1) * 0.2 + rng.gamma(2.0, 0.5, n)
                frame["predicted_value"] = truth + rng.normal(0.0, 0.4, n)
                frame["prediction_id"] = [f"{model}-{day_number}-{offset + i:08d}" for i in range(n)]
                frame["model"], frame["model_version"] = model, "v1"
                frame["served_at"] = pd.Timestamp(day) + pd.to_timedelta(rng.integers(0, 86_400_000_000, n),
                                                                          unit="us")
                store.register_predictions(frame)
                store.record_outcomes(pd.DataFrame({"prediction_id": frame["prediction_id"], "actual_value": truth,
                                                    "observed_at": frame["served_at"] + pd.Timedelta(hours=6)}))
        if args.distinct_days > 1:  # a baseline needs served rows; the analysis reads profiles by date
            store.set_baseline(model, END - timedelta(days=args.current_days + args.reference_days),
                               END - timedelta(days=args.current_days), note="scale bench")


def profile_step(store, model: str, window_end: datetime) -> tuple[float, dict]:
    from self_learning.operators import ProfileDaysOperator, RunSettings

    settings = RunSettings(window_end=window_end, interval_start=window_end - timedelta(days=1))
    operator = ProfileDaysOperator(task_id="profile", model=model)
    started = time.perf_counter()
    summary = operator.run(store, store.get_model(model), settings)
    return time.perf_counter() - started, summary


def split(store, model: str) -> tuple[float, float]:
    """The daily step's new day read again (``read_window``) and profiled in memory, timed apart."""
    from self_learning.core.profiles import build_day_profile

    day = (END - timedelta(days=1)).date()
    started = time.perf_counter()
    rows = store.read_window(model, END - timedelta(days=1), END, labelled_only=False)
    read_at = time.perf_counter()
    spec, registry = store.get_model(model), store.feature_registry(model)
    build_day_profile(rows, model=model, model_version="v1", day=day, task_kind=spec.task_kind, labelled=True,
                      numeric_features=sorted(k for k, (kind, _) in registry.items() if kind == "numeric"),
                      categorical_features=sorted(k for k, (kind, _) in registry.items() if kind == "categorical"))
    return read_at - started, time.perf_counter() - read_at


def fill_copies(store, model: str, args) -> int:
    """Every day of both windows without a stored profile gets the last day's, re-dated."""
    last = (END - timedelta(days=1)).date()
    first = (END - timedelta(days=args.current_days + args.reference_days)).date()
    built = {row["day"] for row in store.day_profile_index(model, first, END.date())}
    copies = []
    for labelled in (False, True):
        (template,) = store.read_day_profiles(model, last, END.date(), labelled=labelled)
        copies += [dataclasses.replace(template, covers=(("v1", first + timedelta(days=i)),))
                   for i in range((last - first).days) if first + timedelta(days=i) not in built]
    return store.save_day_profiles(copies)


def analysis(store, model: str, args) -> float:
    from self_learning.core.profile_comparisons import (
        compare_categorical_profiles,
        compare_numeric_profiles,
        profile_performance,
    )
    from self_learning.core.profiles import merge_profiles

    current_start = (END - timedelta(days=args.current_days)).date()
    reference_start = current_start - timedelta(days=args.reference_days)
    started = time.perf_counter()
    windows = {}
    for labelled in (False, True):
        windows[labelled] = [merge_profiles(store.read_day_profiles(model, since, until, labelled=labelled))
                             for since, until in ((reference_start, current_start), (current_start, END.date()))]
    (reference, current), (reference_labelled, current_labelled) = windows[False], windows[True]
    for name in reference.numeric:
        compare_numeric_profiles(reference.numeric[name], current.numeric[name])
    compare_numeric_profiles(reference.prediction, current.prediction)
    compare_numeric_profiles(reference_labelled.error, current_labelled.error)
    for name in reference.categorical:
        compare_categorical_profiles(reference.categorical[name], current.categorical[name])
    profile_performance(reference_labelled)
    profile_performance(current_labelled)
    assert current.rows == args.current_days * args.rows_per_day, current.rows
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1)
    parser.add_argument("--rows-per-day", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--current-days", type=int, default=7)
    parser.add_argument("--reference-days", type=int, default=30)
    parser.add_argument("--distinct-days", type=int, default=2, help="days stored as rows (see the docstring)")
    parser.add_argument("--json", action="store_true", help="print the figures as a JSON line last")
    parser.add_argument("--load-into", help=argparse.SUPPRESS)  # the child process that fills the store
    args = parser.parse_args()
    if args.distinct_days < 1 or args.distinct_days > args.current_days + 1:
        parser.error("--distinct-days: between 1 and current-days + 1")
    if args.load_into:
        load(args.load_into, args)
        return

    from self_learning.store import FeedbackStore
    from support.pg_server import ThrowawayPostgres

    server = ThrowawayPostgres().start()
    try:
        url = server.create_database("scale_bench")
        store = FeedbackStore.from_url(url)
        store.ensure_schema()
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, *sys.argv[1:], "--load-into", url], check=True)
        models = model_names(args.models)
        rows = args.models * args.rows_per_day * args.distinct_days
        print(f"set-up: {rows:,} labelled rows ({args.distinct_days} days x {args.models} models) loaded in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        backfill = build = rerun = analysed = 0.0
        built_days = 0
        for model in models:
            seconds, summary = profile_step(store, model, END - timedelta(days=1))
            backfill, built_days = backfill + seconds, built_days + len(summary["built"])
            seconds, summary = profile_step(store, model, END)
            assert summary["built"] == [(END - timedelta(days=1)).date().isoformat()], summary
            build += seconds
            seconds, summary = profile_step(store, model, END)
            assert summary["status"] == "up_to_date", summary
            rerun += seconds
            if model == models[0]:  # the step's split, re-measured on the new day: the read, then the sketches
                read_s, sketch_s = split(store, model)
            fill_copies(store, model, args)
            analysed += analysis(store, model, args)
        size = max(r["row_count"] for r in store.day_profile_index(models[0], END.date() - timedelta(days=1),
                                                                    END.date()))
        with store.engine.connect() as conn:
            import sqlalchemy as sa

            payload = conn.execute(sa.text("SELECT max(length(payload)) FROM day_profiles")).scalar_one()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        per_day = (backfill + build) / (built_days + args.models)
        print(f"{args.models} models x {args.rows_per_day:,} rows/day x {args.features} features, "
              f"{args.current_days}-day current vs {args.reference_days}-day reference")
        print(f"  daily profile step (1 new day per model): {build:7.1f} s  ({build / args.models:.1f} s per model)")
        print(f"  backfill run ({built_days} days):               {backfill:7.1f} s  (read + build {per_day:.1f} s per "
              f"day; a full {args.current_days + args.reference_days}-day backfill of one model ~"
              f"{per_day * (args.current_days + args.reference_days):.0f} s, extrapolated)")
        print(f"    of which, re-measured on one model's day: read {read_s:.1f} s, sketches {sketch_s:.1f} s; the "
              "rest: finding stale days (outcomes recorded since the last build) and the write")
        print(f"  re-run of the daily step (nothing to build):  {rerun:7.2f} s")
        print(f"  analysis from stored profiles (not yet the monitor's path): {analysed:7.2f} s")
        print(f"  largest profile: {payload / 1024:.0f} KB ({size:,} rows); peak RSS {peak:.0f} MB "
              "(this process: profile step and analysis; the load ran in a child)")
        if args.json:
            print(json.dumps({"analysis_s": round(analysed, 3), "profile_build_s": round(build, 3),
                              "peak_rss_mb": round(peak), "rows": rows, "backfill_s": round(backfill, 3),
                              "backfill_days": built_days, "profile_day_s": round(per_day, 3),
                              "rerun_s": round(rerun, 3), "read_s": round(read_s, 3),
                              "sketch_s": round(sketch_s, 3), "profile_bytes": payload,
                              "distinct_days": args.distinct_days}))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
