"""The bounds the statistical tests assert: scipy's exact (Clopper-Pearson) interval, one-sided."""

from __future__ import annotations

import pytest
from scipy import stats
from support.stats import rate_lower_bound, rate_upper_bound


@pytest.mark.parametrize(("successes", "trials"), [(0, 59), (3, 200), (29, 1_000), (89, 1_000), (60, 60)])
def test_bounds_equal_scipys_exact_one_sided_interval(successes, trials):
    upper = stats.binomtest(successes, trials, alternative="less").proportion_ci(0.95, method="exact").high
    lower = stats.binomtest(successes, trials, alternative="greater").proportion_ci(0.95, method="exact").low
    assert rate_upper_bound(successes, trials) == pytest.approx(upper)
    assert rate_lower_bound(successes, trials) == pytest.approx(lower)


def test_a_rate_near_its_claim_needs_many_runs():
    """Why the simulations run 1,000 times: 7 % of 200 runs is not yet evidence of "above 5 %", 7 % of 1,000 is."""
    assert rate_lower_bound(14, 200) < 0.05 < rate_lower_bound(70, 1_000)
    assert rate_upper_bound(0, 58) > 0.05 >= rate_upper_bound(0, 59)
