"""The practical gate: an alarm is reported only when the effect measured on the rows since the
CUSUM's estimated change start passes the statistic's practical threshold; severity grows with it.

Ladders (low / medium / high / critical; the ladders are the one-shot drift report's,
``core.drift.checks``):
- Wasserstein / reference std, and a mean shift in reference stds: 0.05 / 0.2 / 0.3 / 0.5. The old
  fixed 0.1 hid real shifts of 0.08-0.098 sigma (issue 15); Wasserstein/std does not grow with
  noise the way a binned statistic does (its null value falls like 1/sqrt(n): about 0.02 for one
  day of 2,000 rows against 60,000), so 0.05 reports a real 0.08 sigma shift at "low" and keeps a
  0.01 sigma shift at 1M rows at "none".
- PSI, bias-corrected: PSI minus its null mean (B - 1)(1/n_ref + 1/n_cur) for B bins (its
  chi-squared approximation; 0.019 for 10 bins, 580 vs 2,500 rows), rated 0.1 / 0.2 / 0.3 / 0.5
  (the usual rule of thumb: 0.1 moderate, 0.25 major). Uncorrected, a one-day segment of 100 rows
  carries ~0.09 of pure noise.
- Jensen-Shannon distance (base 2) of categories: 0.1 / 0.2 / 0.3 / 0.5 (unchanged).
- Missing-rate increase (absolute): 0.05 / 0.1 / 0.2 / 0.4 (unchanged).
- Concept drift: % increase of the mean loss, 10 / 20 / 35 / 50 (unchanged).
- Performance: an alarm needs the metric's practical margin (``core.degradation``'s
  ``practical``); severity then from ``relative_worse_by``: low from the margin, 0.05 medium,
  0.1 high, 0.2 critical.
"""

from __future__ import annotations

import numpy as np

from ..drift.checks import CONCEPT_LADDER, JS_LADDER, PSI_LADDER, RATE_LADDER, WASSERSTEIN_LADDER
from ..drift.comparisons import _ks_and_wasserstein, _psi_sorted, psi_null_mean
from ..types import Severity, SeverityLadder

__all__ = ["JS_LADDER", "LOSS_LADDER", "MISSING_LADDER", "PERFORMANCE_LADDER", "PSI_LADDER", "WASSERSTEIN_LADDER",
           "numeric_distribution_gate", "psi_corrected", "rate"]
MISSING_LADDER = RATE_LADDER
LOSS_LADDER = CONCEPT_LADDER
PERFORMANCE_LADDER = SeverityLadder(low=0.0, medium=0.05, high=0.1, critical=0.2)


def psi_corrected(reference_sorted: np.ndarray, current_sorted: np.ndarray, bins: int) -> tuple[float, float, int]:
    """(PSI, PSI minus its null mean, bins used) over bins cut at reference quantiles, with the same
    bin count rule as the drift report (at most one bin per ``PSI_MIN_PER_BIN`` rows of the smaller
    sample)."""
    psi, used = _psi_sorted(reference_sorted, current_sorted, bins)
    return psi, psi - psi_null_mean(used, reference_sorted.size, current_sorted.size), used


def numeric_distribution_gate(reference_sorted: np.ndarray, reference_std: float, segment_sorted: np.ndarray,
                              bins: int) -> tuple[float | None, Severity, dict]:
    """Wasserstein / reference std and bias-corrected PSI of the segment; the worse rating wins."""
    ks, wasserstein = _ks_and_wasserstein(reference_sorted, segment_sorted)
    psi, psi_c, used = psi_corrected(reference_sorted, segment_sorted, bins)
    w_norm = wasserstein / reference_std if reference_std > 0 else None
    severity = Severity.worst([WASSERSTEIN_LADDER.rate(w_norm) if w_norm is not None else Severity.NONE,
                               PSI_LADDER.rate(max(psi_c, 0.0))])
    return w_norm, severity, {"wasserstein": wasserstein, "wasserstein_norm": w_norm, "psi": psi,
                              "psi_corrected": psi_c, "psi_bins": used, "ks_statistic": ks}


def rate(ladder: SeverityLadder, effect: float | None) -> Severity:
    """A one-sided effect on its ladder (a change in the other direction is no effect)."""
    return Severity.NONE if effect is None else ladder.rate(max(effect, 0.0))
