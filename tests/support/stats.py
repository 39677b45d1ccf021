"""Bounds for the statistical claims of the tests: a simulated rate is compared with its claim through
the one-sided 95 % Clopper–Pearson bound, so a test passes only when the runs show the claim with 95 %
confidence (not when a lucky seed lands on the right side of it)."""

from __future__ import annotations

from scipy import stats

CONFIDENCE = 0.95


def rate_upper_bound(successes: int, trials: int, confidence: float = CONFIDENCE) -> float:
    """The one-sided Clopper–Pearson upper bound of a binomial rate: the true rate is below it with
    ``confidence`` (for a claim "the rate is at most p")."""
    if successes >= trials:
        return 1.0
    return float(stats.beta.ppf(confidence, successes + 1, trials - successes))


def rate_lower_bound(successes: int, trials: int, confidence: float = CONFIDENCE) -> float:
    """The one-sided Clopper–Pearson lower bound (for a claim "the rate is at least p")."""
    if successes <= 0:
        return 0.0
    return float(stats.beta.ppf(1 - confidence, successes, trials - successes + 1))
