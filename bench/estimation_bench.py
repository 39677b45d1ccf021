"""Estimated performance and multivariate drift at scale: what they add to the daily run.

One model with 50 features (45 numeric, 5 categorical, as ``daily_bench``); a labelled reference
window and an unlabelled current window of ``--rows`` rows each (100k and 1M by default). For
binary CBPE and regression DLE it prints the fit time (once per baseline), the first estimate of
a window (it also computes the band's reference chunks for that window size, cached) and a
repeated estimate; then one multivariate-drift report. OpenMP / BLAS pinned to one thread, as
on a busy 2-core worker; each step prints its wall and CPU seconds. Prints figures, asserts nothing.
Run: ``.venv/bin/python bench/estimation_bench.py [--rows 100000 1000000]``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
from self_learning.core.drift import detect_multivariate_drift  # noqa: E402
from self_learning.core.estimation import fit_estimator  # noqa: E402

NUMERIC, CATEGORICAL = 45, 5


def make_window(rows: int, task_kind: str, shift: float, seed: int) -> tuple[pd.DataFrame, dict[str, str]]:
    rng = np.random.default_rng(seed)
    numeric = rng.standard_normal((rows, NUMERIC)).astype(np.float64) + shift
    frame = pd.DataFrame(numeric, columns=[f"n{i:02d}" for i in range(NUMERIC)])
    for i in range(CATEGORICAL):
        frame[f"c{i}"] = pd.Categorical.from_codes(rng.integers(0, 8, rows), [f"v{j}" for j in range(8)])
    signal = numeric[:, :5] @ np.array([0.8, -0.5, 0.4, 0.3, -0.2])
    if task_kind == "binary_classification":
        probability = 1 / (1 + np.exp(-(signal - 0.5)))
        frame["predicted_value"] = probability
        frame["actual_value"] = (rng.random(rows) < probability).astype(float)
    else:
        frame["predicted_value"] = 3 + signal
        frame["actual_value"] = 3 + signal + rng.standard_normal(rows) * (0.5 + 0.3 * np.abs(numeric[:, 5]))
    kinds = {name: ("categorical" if name.startswith("c") else "numeric") for name in frame.columns[:-2]}
    return frame, kinds


class Took:
    """Wall and CPU seconds of a step: on a shared machine the wall time carries other processes'
    load, the CPU time is what the step costs on an idle core."""

    def __init__(self, wall: float, cpu: float):
        self.wall, self.cpu = wall, cpu

    def __format__(self, spec: str) -> str:
        return f"{self.wall:{spec}} s (cpu {self.cpu:{spec}})"


def timed(function):
    start, cpu = time.perf_counter(), time.process_time()
    value = function()
    return value, Took(time.perf_counter() - start, time.process_time() - cpu)


def bench(rows: int) -> None:
    for task_kind in ("binary_classification", "regression"):
        reference, kinds = make_window(rows, task_kind, 0.0, seed=1)
        current, _ = make_window(rows, task_kind, 0.3, seed=2)
        unlabelled = current.drop(columns="actual_value")
        options = {"feature_kinds": kinds} if task_kind == "regression" else {}
        estimator, fit_s = timed(lambda: fit_estimator(reference, task_kind=task_kind, **options))  # noqa: B023
        first, first_s = timed(lambda: estimator.estimate(unlabelled))  # noqa: B023
        _, again_s = timed(lambda: estimator.estimate(unlabelled))  # noqa: B023
        metric = "accuracy" if task_kind == "binary_classification" else "mae"
        shown = first.metrics[metric]
        print(f"{rows:>9,} rows  {first.method:4} {task_kind:22} fit {fit_s:5.2f}  first estimate {first_s:5.2f}  "
              f"estimate {again_s:5.2f}  ({metric} {shown.value:.4f} in [{shown.lower:.4f}, {shown.upper:.4f}], "
              f"sd {shown.sampling_error:.5f})", flush=True)
    reference, kinds = make_window(rows, "regression", 0.0, seed=3)
    current, _ = make_window(rows, "regression", 0.0, seed=4)
    report, drift_s = timed(lambda: detect_multivariate_drift(reference[list(kinds)], current[list(kinds)],
                                                              feature_kinds=kinds))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{rows:>9,} rows  multivariate drift (PCA + domain classifier) {drift_s:5.2f}  "
          f"severity {report.severity.value}  peak RSS {peak_mb:,.0f} MB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    for rows in parser.parse_args().rows:
        bench(rows)


if __name__ == "__main__":
    main()
