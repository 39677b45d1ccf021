"""The sequential monitor: drift and degradation against a pinned baseline, with false alarms
controlled per model per unit of time (issue 15, item 2).

Why not a test per run. Daily runs on overlapping 7-day windows share 6/7 of their rows, so per-run
alpha alarms in bursts: 8 of 152 runs on a stable classifier, 7.2 % of 607 runs on another stream.
Instead every check gets ONE statistic per UTC day (disjoint days), and Page's CUSUM adds them up.

1. Day statistics (``daily``, ``labels``): raw_z, one-sided, ~N(0, 1) for iid rows without change.
   Numeric: distribution = Phi^-1(1 - p_KS) (asymptotic Kolmogorov p at D sqrt(n_eff)),
   mean_up / mean_down = Welch z; categorical: distribution = Phi^-1(1 - p) of the chi-squared
   test pooled as ``compare_categorical``; missing_up = two-proportion z; prediction = numeric
   checks of predicted_value; concept:loss_up = Welch z of the mean loss (0/1 loss for hard-label
   classifiers); performance:<metric> = ``core.degradation.compare_metrics``'s z. Label checks
   only on matured days (coverage >= 0.8 x the baseline's), else ``labels_pending``.
2. Empirical null (Efron 2004). Real data have day effects, weekly seasons and autocorrelated days:
   at 20,000 rows/day a day effect of 0.04 sigma is z ~ 5 every day. Each baseline day is compared
   with the rest of the baseline (exact leave-one-out by the (1 - w) correction); location m =
   median, scale s = 1.4826 MAD, and z = (raw_z - max(m, 0)) / max(s, 1): never more sensitive than
   theory. Two refinements, both measured on a stream with AR(1) day effects (rho 0.6, sd 0.03)
   and a weekly sine (0.05 sigma) at 20,000 rows/day: the KS / chi-squared z is a distance, right-
   skewed under day effects, so its scale is at least the upper spread (q90 - median) / 1.2816
   (alarm-days of one 30-day window: 19 -> 1 of ~60 checks); and when the baseline days' lag-1
   autocorrelation rho exceeds 2/sqrt(days) the scale grows by sqrt((1 + rho)/(1 - rho)) (the long-run
   sd of a sum, which is what the CUSUM accumulates). Fewer than 7 baseline days: theory (m 0, s 1).
3. CUSUM (``cusum``): S_t = max(0, S_{t-1} + z_t - k), alarm while S_t > h, over the stored days of
   the ``lookback_days`` (28) before the window plus the window's days (deterministic, recomputable).
   Budget: ``false_alarm_days`` (365) expected in-control days between false alarms per model
   (the issue asks <= 1 per 90 runs), split 0.4 features / 0.2 prediction / 0.2 concept / 0.2
   performance, Bonferroni over a family's checks; h from Siegmund's ARL0 approximation (brentq).
   50 numeric features = 150 checks: per-check ARL0 137,000 days, h = 3.28 at k = 1.5.
   k: features and prediction 1.5 (best two-day detection: 2k + h is smallest near 1.5 and a 0.2
   sigma shift at 500 rows/day or 0.1 sigma at 2,000 gives z ~ 4.4; exact Markov-chain ARL1 at
   z = 4.4 is 1.7 days, at z = 3.5 (0.08 sigma at 2,000 rows/day) 2.3 days); concept and
   performance 1.0 (accuracy -3 points at 1,000 labelled rows/day is z ~ 2.4: ARL1 3.3 matured days
   at k = 1 vs 4.4 at k = 1.5).
4. Practical gate (``gates``): an alarm is reported only when the effect on the rows since the
   CUSUM's change start (the day after its last reset, within the window) passes the statistic's
   ladder; severity from that effect. The baseline does not move, so a drift stays reported while
   the data stay shifted (S keeps growing).

Measured (seeded, tests/unit/test_monitoring.py; 2 cores shared with other jobs):
- false alarms: 1,320 model-days (4 iid streams x 300 days at 200 rows/day, and 120 days of the
  seasonal stream at 5,000 rows/day), 20 features: new alarms per model-day within the bound of 1/90.
- abrupt 0.2 sigma in 1 of 50 features at 500 rows/day: named by the run after the 2nd shifted day in
  35/40 and 16/20 trials (80-88 %, short of the issue's 90 %: with this false-alarm budget the sum of
  two days must reach 2k + h = 6.3 while it averages ~7.8 after the null's rounding), after the 3rd
  day in nearly all; no other feature named. 0.08 sigma at 2,000 rows/day: within 3 runs in 36/40.
- speed, 50 features, 30 baseline days, 7 current days: 2,000 rows/day 6.9 s (1.8 s with a cached
  ``BaselineCalibration``); 50,000 rows/day 151 s (65 s cached), on a loaded 2-core machine.
"""

from .cusum import CusumPath, run_cusum, siegmund_arl0, threshold
from .monitor import monitor_window
from .results import (
    BUDGET_SHARES,
    FAMILIES,
    BaselineCalibration,
    DayStatistic,
    MonitoringResult,
    MonitorSettings,
    NullFit,
)

__all__ = ["BUDGET_SHARES", "FAMILIES", "BaselineCalibration", "CusumPath", "DayStatistic", "MonitorSettings",
           "MonitoringResult", "NullFit", "monitor_window", "run_cusum", "siegmund_arl0", "threshold"]
