"""The KS p-value at large sizes: scipy's ``kstwo.sf`` against Kolmogorov's limit distribution.

For each size (rows a side), one unshifted normal column: the KS statistic D, the seconds of
``stats.kstwo.sf(D, round(n_eff))`` (what ``compare_numeric`` called before issue 18, and what
``ks_2samp`` calls) and of ``ks_asymptotic_p_value`` (kstwobign with Stephens' correction from
n_eff = 10,000), both p-values, and the whole ``compare_numeric`` call.

Run: ``.venv/bin/python bench/ks_pvalue_bench.py`` (about 20 s).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins")]
from self_learning.core.drift.comparisons import compare_numeric, ks_asymptotic_p_value  # noqa: E402


def timed(call, repeats: int = 3):
    best, value = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        value = call()
        best = min(best, time.perf_counter() - started)
    return best, value


def main() -> None:
    rng = np.random.default_rng(18)
    print("kstwo's time depends on D: each size is timed at D = x / sqrt(n_eff), x in 0.6 .. 2.0 (the")
    print("range of an unshifted column), then on one column's own D with the whole compare_numeric call.")
    print(f"{'rows/side':>10} {'x':>5} {'D':>9} {'kstwo s':>9} {'new s':>9} {'p kstwo':>9} {'p new':>9}")
    for rows in (20_000, 100_000, 1_000_000):
        n_eff = rows / 2
        for x in (0.6, 1.0, 1.4, 2.0):
            d = x / np.sqrt(n_eff)
            slow_s, slow_p = timed(lambda d=d, n=n_eff: stats.kstwo.sf(d, round(n)))
            fast_s, fast_p = timed(lambda d=d, n=n_eff: ks_asymptotic_p_value(d, n))
            print(f"{rows:>10,} {x:>5.1f} {d:>9.5f} {slow_s:>9.4f} {fast_s:>9.5f} {slow_p:>9.5f} {fast_p:>9.5f}")
    print(f"{'rows/side':>10} {'D':>9} {'compare_numeric s':>18} {'np.sort both s':>15}")
    for rows in (100_000, 1_000_000):
        ref, cur = rng.standard_normal(rows), rng.standard_normal(rows)
        compare_s, result = timed(lambda ref=ref, cur=cur: compare_numeric(ref, cur), 2)
        sort_s, _ = timed(lambda ref=ref, cur=cur: (np.sort(ref), np.sort(cur)), 2)
        print(f"{rows:>10,} {result.ks_statistic:>9.5f} {compare_s:>18.3f} {sort_s:>15.3f}")


if __name__ == "__main__":
    main()
