"""The plan of an A/B test: how many units each arm needs, how long that takes, and the variance
reduction that lowers it.

Why a plan: replayed on public streams at ~15 outcomes per arm per day, every test under the old
28-day cap ended "inconclusive" long before the evidence could decide, although the whole stream
showed the challenger clearly better. A test now runs until the size it needs for its minimum
detectable effect (or stops early: a winner, harm), with a hard maximum of ``max_days``, and says at
the start when its expected duration exceeds that maximum.

The size is the always-valid test's, not a fixed-horizon one. With the normal-mixture confidence
sequence tuned at ``n_star`` units (``ab.mixture_rho2``), the interval's half-width at ``n = n_star``
is ``m * se`` with ``m = ab.sequence_multiplier(n_star, n_star, alpha)`` (3.03 for alpha = 0.05,
where a fixed-horizon interval has 1.96). The promotion rule wants the upper end below ``-margin``,
so a true relative effect ``mde`` is found at the planned size with probability ``power`` when
``(mde - margin) * mean = (m + z_power) * se``; with ``se^2 = sd^2 (1 / n_champion + 1 /
n_challenger)`` and the arms in the ratio of the split this gives the total

    N = ((m + z_power) * sd / ((mde - margin) * mean))^2 * (1 / s + 1 / (1 - s)),

``n_star = N``. (m + z)^2 / (1.96 + 0.84)^2 = 1.92: always-valid costs about twice a single-look
test's size, the price of looking every week.) Power is a floor: earlier looks add chances to
promote. Measured with weekly looks (tests/unit/test_ab_plan.py, gamma losses with CV 0.5): at a
10 % MDE and 15 outcomes per arm per day (planned ~750 per arm, ~50 days), a challenger 10 % better
is promoted within the planned duration in 897 of 1,000 runs, and none ends inconclusive before the
planned size; with no difference, 3 of 1,000 runs promote (the rest end inconclusive at the planned
size, 4 stopped for harm).

Variance reduction (CUPED, Deng et al. 2013): with a covariate X measured before the test (the
unit's loss under the champion in the weeks before), ``Y - theta (X - mean X)`` with ``theta =
cov(Y, X) / var(X)`` pooled over both arms keeps the difference of means unbiased (X does not
depend on the arm) and its variance is ``(1 - rho^2)`` times the raw one, so the required size drops
by ``rho^2`` (49 % at rho = 0.7; measured over 200 plans from 2,800 rows: 42.8 % at the least, 49.0 %
on average, and at that smaller size a 5 % better challenger was still promoted in 180 of 200 runs).
Rows without a covariate (a unit new since the pre-period) are left as they are. Without any
covariate (unit = prediction: a prediction has no past) it is off.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
from scipy import stats

from .ab import _arm, check_effect_size, sequence_multiplier
from .types import Result
from .validation import as_float_array, check_alpha

MAX_DAYS = 90.0


@dataclasses.dataclass(frozen=True)
class ABTestPlan(Result):
    """The size a test needs and how long it should take.

    ``units_per_arm`` (champion, challenger) reach the ``mde`` with ``power`` under the always-valid
    test; ``n_star`` is their sum (the confidence sequence is tuned there); ``expected_days`` at the
    recent traffic (None when unknown); ``units_without_adjustment`` the size without variance
    reduction and ``size_reduction`` the share CUPED saves (0 without a covariate).
    ``available_units`` (campaign / account units) is how many distinct units served recently: a
    plan needing more can never be reached, so its duration is unknown and it counts as exceeding
    the maximum (the test then ends with a winner, harm, or at ``max_days``).
    """

    mde: float
    power: float
    alpha: float
    margin: float
    baseline_loss: float
    baseline_sd: float
    units_per_arm: list[int]
    n_star: float
    units_per_day: float | None
    expected_days: float | None
    max_days: float
    exceeds_max_days: bool
    covariate_correlation: float | None
    units_without_adjustment: list[int]
    size_reduction: float
    available_units: int | None = None
    effect: str = "lower loss"  # what the mde is of ("higher business value" for that metric)

    def summary(self) -> str:
        """One line for the form's result, the report and the UI."""
        text = (f"plan: {self.units_per_arm[0]} + {self.units_per_arm[1]} units (champion + challenger) for a "
                f"{self.mde:.0%} {self.effect} at {self.power:.0%} power")
        if self.expected_days is not None:
            text += f", about {self.expected_days:.0f} days at recent traffic"
        if self.size_reduction > 0:
            text += f" ({self.size_reduction:.0%} fewer with CUPED, correlation {self.covariate_correlation:.2f})"
        if self.available_units is not None and self.n_star > self.available_units:
            text += f"; more units than the {self.available_units} that served recently"
        if self.exceeds_max_days:
            text += f"; exceeds the maximum of {self.max_days:g} days: likely inconclusive, consider a larger mde"
        return text


def required_units(sd: float, mean: float, *, mde: float, power: float, alpha: float, traffic_split: float,
                   margin: float = 0.0) -> list[int]:
    """Units per arm (champion, challenger) for the always-valid test (formula in the module docstring)."""
    check_effect_size(mde, power, margin)
    check_alpha(alpha)
    if not sd >= 0 or not mean > 0:
        raise ValueError(f"champion_loss: needs a positive mean loss and a finite spread, got mean {mean}, sd {sd}")
    multiplier = sequence_multiplier(1.0, 1.0, alpha) + stats.norm.ppf(power)
    total = (multiplier * sd / ((mde - margin) * mean)) ** 2 * (1 / traffic_split + 1 / (1 - traffic_split))
    return [max(2, math.ceil(total * (1 - traffic_split))), max(2, math.ceil(total * traffic_split))]


def plan_ab_test(champion_loss, *, units=None, covariate=None, mde: float = 0.05, power: float = 0.8,
                 alpha: float = 0.05, traffic_split: float = 0.5, margin: float = 0.0,
                 units_per_day: float | None = None, max_days: float = MAX_DAYS,
                 available_units: int | None = None) -> ABTestPlan:
    """The plan from the champion's recent per-row losses (grouped by ``units`` when the test
    randomises campaigns or accounts: the spread is then that of the unit-level ratio, as the
    comparison measures it). ``covariate`` (per row, NaN where missing) is the pre-period value
    CUPED would adjust with; ``units_per_day`` the recent traffic of both arms together."""
    loss = as_float_array("champion_loss", champion_loss)
    if units is not None and len(units) != loss.size:
        raise ValueError(f"units: {len(units)} unit ids for {loss.size} losses")
    arm = _arm(loss, units)
    if arm.standard_error is None:
        raise ValueError(f"champion_loss: needs at least 2 units of recent outcomes to plan, got {arm.n}")
    rho = covariate_correlation(loss, covariate, units) if covariate is not None else None
    return plan_from_spread(arm.mean, arm.standard_error * math.sqrt(arm.n), correlation=rho, mde=mde, power=power,
                            alpha=alpha, traffic_split=traffic_split, margin=margin, units_per_day=units_per_day,
                            max_days=max_days, available_units=available_units)


def plan_from_spread(mean: float, sd: float, *, correlation: float | None = None, mde: float = 0.05,
                     power: float = 0.8, alpha: float = 0.05, traffic_split: float = 0.5, margin: float = 0.0,
                     units_per_day: float | None = None, max_days: float = MAX_DAYS,
                     available_units: int | None = None) -> ABTestPlan:
    """The plan from the champion's mean loss and its spread per unit (``sd``; for a metric that
    is not a mean per row, such as 1 - AUC, its standard error times the root of the rows);
    ``correlation`` that of a pre-period covariate with the loss (None: no variance reduction)."""
    if units_per_day is not None and not units_per_day >= 0:
        raise ValueError(f"units_per_day: must be >= 0, got {units_per_day}")
    if not 0 < traffic_split < 1:
        raise ValueError(f"traffic_split: the challenger's share must be in (0, 1), got {traffic_split!r}")
    if not max_days > 0:
        raise ValueError(f"max_days: must be > 0, got {max_days}")
    if correlation is not None and not -1 <= correlation <= 1:
        raise ValueError(f"correlation: must be in [-1, 1], got {correlation}")
    raw = required_units(sd, mean, mde=mde, power=power, alpha=alpha, traffic_split=traffic_split, margin=margin)
    adjusted = raw if correlation is None else required_units(
        sd * math.sqrt(1 - correlation * correlation), mean, mde=mde, power=power, alpha=alpha,
        traffic_split=traffic_split, margin=margin)
    if available_units is not None and available_units < 0:
        raise ValueError(f"available_units: must be >= 0, got {available_units}")
    unreachable = available_units is not None and sum(adjusted) > available_units
    days = None
    if units_per_day and not unreachable:
        days = max(adjusted[0] / (units_per_day * (1 - traffic_split)), adjusted[1] / (units_per_day * traffic_split))
    return ABTestPlan(mde, power, alpha, margin, float(mean), float(sd), adjusted, float(sum(adjusted)),
                      units_per_day, days, max_days, unreachable or (days is not None and days > max_days),
                      correlation, raw, 1 - sum(adjusted) / sum(raw), available_units)


def covariate_correlation(loss, covariate, units=None) -> float | None:
    """Pearson correlation of the loss and its pre-period covariate over the rows (or, with
    ``units``, the unit means) that have one; None with fewer than 3 or no variation."""
    y = as_float_array("loss", loss, min_size=0)
    x = as_float_array("covariate", covariate, min_size=0, allow_nonfinite=True)
    if x.shape != y.shape:
        raise ValueError(f"covariate: {x.size} values for {y.size} losses")
    if units is not None:
        frame = pd.DataFrame({"unit": np.asarray(units), "y": y, "x": x}).groupby("unit", sort=False).mean()
        y, x = frame["y"].to_numpy(), frame["x"].to_numpy()
    kept = np.isfinite(x)
    if kept.sum() < 3 or np.ptp(x[kept]) == 0 or np.ptp(y[kept]) == 0:
        return None
    return float(np.corrcoef(y[kept], x[kept])[0, 1])


@dataclasses.dataclass(frozen=True)
class Adjusted(Result):
    """CUPED-adjusted losses of both arms, with ``theta`` and the correlation it was fitted on."""

    champion: np.ndarray
    challenger: np.ndarray
    theta: float
    correlation: float | None


def cuped(champion_loss, challenger_loss, champion_covariate, challenger_covariate) -> Adjusted:
    """``Y - theta (X - mean X)`` per row, ``theta`` and the mean of X pooled over both arms and
    over the rows that have a covariate (NaN: none, the row is left as it is). With fewer than 3
    covariates or none varying, the losses come back unadjusted (theta 0)."""
    a = as_float_array("champion_loss", champion_loss, min_size=0)
    b = as_float_array("challenger_loss", challenger_loss, min_size=0)
    xa = as_float_array("champion_covariate", champion_covariate, min_size=0, allow_nonfinite=True)
    xb = as_float_array("challenger_covariate", challenger_covariate, min_size=0, allow_nonfinite=True)
    for name, x, y in (("champion_covariate", xa, a), ("challenger_covariate", xb, b)):
        if x.shape != y.shape:
            raise ValueError(f"{name}: {x.size} values for {y.size} losses")
    y, x = np.concatenate((a, b)), np.concatenate((xa, xb))
    kept = np.isfinite(x)
    if kept.sum() < 3 or np.ptp(x[kept]) == 0:
        return Adjusted(a, b, 0.0, None)
    centred = np.where(kept, x - x[kept].mean(), 0.0)
    theta = float(np.cov(y[kept], x[kept])[0, 1] / x[kept].var(ddof=1))
    rho = float(np.corrcoef(y[kept], x[kept])[0, 1]) if np.ptp(y[kept]) > 0 else None
    adjusted = y - theta * centred
    return Adjusted(adjusted[: a.size], adjusted[a.size:], theta, rho)
