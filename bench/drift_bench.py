"""Feature-drift report at scale: 50 numeric features, 1M reference vs 1M current rows.

Standard normal data with a 0.2 sigma shift in 5 columns; BLAS threads pinned to 1, the
report's own two feature threads (``domain.FEATURE_THREADS``) as in production. Prints wall
time, peak RSS, values/s and the ratio to a bare single-threaded ``np.sort`` of the same 100
columns (the floor for an exact KS test on one core). Run: ``make bench``.
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
from self_learning.core.drift import detect_feature_drift  # noqa: E402


def make_frames(rows: int, features: int, shifted: int, seed: int = 7):
    rng = np.random.default_rng(seed)
    names = [f"f{i:02d}" for i in range(features)]
    reference = pd.DataFrame(rng.standard_normal((rows, features)), columns=names)
    current = pd.DataFrame(rng.standard_normal((rows, features)), columns=names)
    for name in names[:shifted]:
        current[name] += 0.2
    return reference, current, names[:shifted]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--shifted", type=int, default=5)
    args = parser.parse_args()

    reference, current, shifted = make_frames(args.rows, args.features, args.shifted)
    rss_data = peak_rss_mb()

    start = time.perf_counter()
    for frame in (reference, current):
        for name in frame.columns:
            np.sort(frame[name].to_numpy())
    sort_seconds = time.perf_counter() - start

    start = time.perf_counter()
    report = detect_feature_drift(reference, current)
    seconds = time.perf_counter() - start

    values = 2 * args.rows * args.features
    found = sorted(report.affected_features)
    print(f"feature drift: {args.features} features x {args.rows:,} reference + {args.rows:,} current rows")
    print(f"  wall time          {seconds:8.2f} s")
    print(f"  values/s           {values / seconds:,.0f}")
    print(f"  bare np.sort       {sort_seconds:8.2f} s   ratio {seconds / sort_seconds:.2f}x")
    print(f"  peak RSS           {peak_rss_mb():8.0f} MB  (input data alone {rss_data:.0f} MB)")
    print(f"  drifted            {found} (shifted: {shifted}), severity {report.severity.value}")


if __name__ == "__main__":
    main()
