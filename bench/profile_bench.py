"""Daily profiles at production volume: build a day, merge windows, compare them - against raw rows.

At ``--rows`` labelled rows a day x ``--features`` features (all but 5 numeric, 5 categorical), a
regression model:
- the build time of a day's labelled profile (``core.profiles.build_day_profile``) and its size;
- a 7-day current and a 30-day reference window merged from day profiles (``merge_profiles``; the
  days are ``--distinct-days`` built profiles given other dates: a merge costs the same whatever
  the values) and compared: every numeric feature, the prediction and the error by
  ``compare_numeric_profiles``, every categorical feature by ``compare_categorical_profiles``, the
  performance of each window by ``profile_performance``;
- the exact raw-row path at the same size: ``compare_numeric`` of 7 x rows against 30 x rows
  values, timed on ``--raw-features`` numeric columns and extrapolated to all of them (the raw
  windows of 37M rows x 50 features, 15 GB of float64, do not fit this machine at once);
- memory: tracemalloc's peak of each phase (numpy's and Python's allocations; DataSketches' C++
  heap is not traced, a sketch is ~15 KB) and the process's peak RSS.

Run: ``.venv/bin/python bench/profile_bench.py`` (1M rows, 50 features: about 2 minutes).
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import time
import tracemalloc
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins")]
from self_learning.core.drift.comparisons import compare_numeric  # noqa: E402
from self_learning.core.profile_comparisons import (  # noqa: E402
    compare_categorical_profiles,
    compare_numeric_profiles,
    profile_performance,
)
from self_learning.core.profiles import build_day_profile, merge_profiles  # noqa: E402

CATEGORICAL = 5
FIRST_DAY = date(2026, 10, 1)


def day_frame(rows: int, features: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray | pd.Categorical] = {}
    for i in range(features - CATEGORICAL):
        values = rng.lognormal(0, 1, rows) if i % 2 else rng.standard_normal(rows)
        columns[f"num_{i:02d}"] = values
    for i in range(CATEGORICAL):
        labels = [f"c{i}_{j}" for j in range(3 + 4 * i)]
        columns[f"cat_{i}"] = pd.Categorical(rng.choice(labels, rows), categories=labels)
    actual = rng.gamma(2.0, 1.5, rows)
    columns["actual_value"] = actual
    columns["predicted_value"] = actual * rng.lognormal(0, 0.3, rows)
    return pd.DataFrame(columns)


@dataclasses.dataclass
class Phase:
    seconds: float
    peak_mb: float


def measured(call):
    tracemalloc.start()
    tracemalloc.reset_peak()
    started = time.perf_counter()
    value = call()
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return value, Phase(seconds, peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="labelled rows a day")
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--distinct-days", type=int, default=2, help="day profiles actually built")
    parser.add_argument("--raw-features", type=int, default=2, help="numeric columns timed on the raw path")
    args = parser.parse_args()
    numeric = [f"num_{i:02d}" for i in range(args.features - CATEGORICAL)]
    categorical = [f"cat_{i}" for i in range(CATEGORICAL)]

    built, builds = [], []
    for seed in range(args.distinct_days):
        frame = day_frame(args.rows, args.features, seed)
        profile, phase = measured(lambda frame=frame, seed=seed: build_day_profile(
            frame, model="roas_predictor", model_version="v1", day=FIRST_DAY + timedelta(days=seed),
            task_kind="regression", labelled=True, numeric_features=numeric, categorical_features=categorical))
        built.append(profile)
        builds.append(phase)
        del frame
    size_kb = len(built[0].to_bytes()) / 1024

    def window_days(first: int, days: int):
        return [dataclasses.replace(built[i % len(built)], covers=(("v1", FIRST_DAY + timedelta(days=first + i)),))
                for i in range(days)]

    reference_days, current_days = window_days(0, 30), window_days(30, 7)

    def profile_analysis():
        reference, current = merge_profiles(reference_days), merge_profiles(current_days)
        merged_at = time.perf_counter()
        for name in numeric:
            compare_numeric_profiles(reference.numeric[name], current.numeric[name])
        compare_numeric_profiles(reference.prediction, current.prediction)
        compare_numeric_profiles(reference.error, current.error)
        for name in categorical:
            compare_categorical_profiles(reference.categorical[name], current.categorical[name])
        profile_performance(reference)
        profile_performance(current)
        return merged_at

    started = time.perf_counter()
    merged_at, analysis = measured(profile_analysis)
    merge_seconds = merged_at - started
    ninety, merge_90 = measured(lambda: merge_profiles(window_days(0, 90)))

    rng = np.random.default_rng(99)
    raw_phases = []
    for i in range(args.raw_features):
        reference_values = rng.lognormal(0, 1, 30 * args.rows) if i % 2 else rng.standard_normal(30 * args.rows)
        current_values = rng.lognormal(0, 1, 7 * args.rows) if i % 2 else rng.standard_normal(7 * args.rows)
        _, phase = measured(lambda r=reference_values, c=current_values: compare_numeric(r, c))
        raw_phases.append(phase)
        del reference_values, current_values
    raw_per_feature = float(np.mean([p.seconds for p in raw_phases]))
    compared_columns = len(numeric) + 2  # and the prediction and the error

    print(f"{args.rows:,} labelled rows/day x {args.features} features ({len(numeric)} numeric, {CATEGORICAL} "
          f"categorical), 7-day current vs 30-day reference")
    print(f"{'':44} {'seconds':>9} {'peak MB':>9}")
    for i, phase in enumerate(builds):
        print(f"{f'profile build, day {i + 1}':44} {phase.seconds:>9.2f} {phase.peak_mb:>9.0f}")
    print(f"{'profile size (bytes of one day)':44} {size_kb:>8.0f}K")
    print(f"{'merge 30 + 7 day profiles':44} {merge_seconds:>9.3f}")
    print(f"{'merge + compare all columns + performance':44} {analysis.seconds:>9.3f} {analysis.peak_mb:>9.0f}")
    print(f"{'merge 90 day profiles':44} {merge_90.seconds:>9.3f} {merge_90.peak_mb:>9.0f}")
    print(f"{'raw compare_numeric, one column (measured)':44} {raw_per_feature:>9.2f} "
          f"{max(p.peak_mb for p in raw_phases):>9.0f}")
    print(f"{f'raw, {compared_columns} columns (extrapolated)':44} {raw_per_feature * compared_columns:>9.1f} "
          f"{'':>9}")
    print(f"{'raw windows as float64 (37 days x all numeric)':44} {'':>9} "
          f"{37 * args.rows * compared_columns * 8 / 2**20:>9.0f}")
    print(f"process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
          f"90-day window rows: {ninety.rows:,}")


if __name__ == "__main__":
    main()
