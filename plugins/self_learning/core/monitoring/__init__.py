"""The sequential monitor: drift and degradation against a pinned baseline, with false alarms
controlled per model per unit of time (issue 15, item 2).

Why not a test per run. Daily runs on overlapping 7-day windows share 6/7 of their rows, so per-run
alpha alarms in bursts: 8 of 152 runs on a stable classifier, 7.2 % of 607 runs on another stream.
Instead every check gets ONE statistic per UTC day (disjoint days), and Page's CUSUM adds them up.

1. Day statistics (``daily``, ``labels``): raw_z, one-sided, ~N(0, 1) for iid rows without change.
   Numeric: distribution = Phi^-1(1 - p_KS) (asymptotic Kolmogorov p at D sqrt(n_eff)), mean_up /
   mean_down = Welch z of the day's van der Waerden normal scores (Phi^-1 of each value's mid-rank
   share in the baseline pool) against the pool's; categorical: distribution = Phi^-1(1 - p) of the
   chi-squared test pooled as ``compare_categorical``; missing_up = two-proportion z; prediction =
   numeric checks of predicted_value; concept:loss_up = Welch z of the day's losses' normal scores
   in the baseline's losses (0/1 loss for hard-label classifiers; ``labels``: losses are
   heavy-tailed); performance:<metric> = ``core.degradation.compare_metrics``'s z.
   Multiclass models (``classes``): prediction = the served class's distribution (categorical) and
   each class's probability (numeric: a class the model grows less sure of moves before the mix of
   served classes does), concept = the multiclass log loss (0/1 for one-hot probabilities),
   performance = accuracy, log loss and macro F1 (``core.degradation_multiclass``). Measured in
   tests/unit/test_monitoring_multiclass.py: accuracy -20 points at 1,000 labelled rows/day alarmed
   on the first run with the changed day's labels matured in 6 of 6 seeds; none of their 14 stable
   runs alarmed. Label checks only on matured days (coverage >= 0.8 x the baseline's), else ``labels_pending``.
   Why normal scores, not Welch on the values: a Welch t of a skewed feature is itself skewed (a
   low day mean comes with a low day sd), so on lognormal / Pareto features at 100 rows/day its
   left tail is far heavier than N(0, 1) and mean_down alarmed on stable streams (the bench's
   streams, 100 rows/day: 7 of 10 false alarms in 300 runs were mean_down on heavy-tailed
   features). Normal scores are symmetric and light-tailed whatever the marginal, exact as a
   two-sample rank test for a baseline day against the rest, and as powerful as Welch for normal
   data (asymptotic relative efficiency 1; above 1 for heavy tails).
2. Empirical null (Efron 2004), only where the baseline shows it is needed. Each baseline day is
   compared with the rest of the baseline (exact leave-one-out by the (1 - w) correction). Theory
   (location 0, scale 1) holds unless the days' sum of z^2 exceeds chi^2_B's 90 % quantile or
   their lag-1 correlation exceeds z_0.9 / sqrt(B): the estimation noise of a 30-day scale
   (MAD: +-0.2) rounded up by max(s, 1) cost ~10 % of every day's z and most of the missing power
   of the two-run detection. Otherwise: location m = median, scale s = 1.4826 MAD (for the
   right-skewed KS / chi-squared z at least (q90 - median) / 1.2816), and then two corrections
   for autocorrelated day effects, which the CUSUM adds up: the lag-1 correlation rho of the
   days' z (Marriott-Pope bias-corrected, + (1 + 4 rho) / B), floored by a prior: day effects that
   exist are assumed at least phi = 0.5 persistent, so rho >= 0.5 x the day effects' share of
   the variance, (s^2 - 1) / s^2 (30 days of a phi = 0.7 process hold ~5 effective observations;
   the sample rho is often near 0); the scale grows by the long-run factor sqrt((1 + rho) /
   (1 - rho)) and by the small-sample bias of a variance of autocorrelated days, 1 / (1 - (1 +
   rho) / ((1 - rho) B)). z = (raw_z - max(m, 0)) / max(s, 1): never more sensitive than theory.
   The stored fit's ``autocorrelation`` is the rho used. Fewer than 7 baseline days: theory.
   Weekly pattern first: ad traffic differs by weekday, and on thousands of rows a day a feature
   whose level moves by 0.05 sigma between weekdays has baseline-day z swinging by +-2 or more.
   Read as autocorrelated day effects, that swing set the scale at 4-7 (a real 3-sigma day scored
   0.4-0.7) and hid real shifts of seasonal features (the bench's 0.08 sigma shift of a seasonal
   feature at 2,000 rows/day was never named). When a one-way F test of the baseline days by
   weekday rejects "no weekly pattern" at 1 % (every weekday seen twice), each weekday's mean z
   (less the overall mean) is subtracted from that weekday's days, baseline and current
   (``NullFit.weekday_offsets``), and the fit above runs on the residuals, always empirical: their
   spread widened by sqrt(B / (B - 7)) for the 7 fitted means and by sqrt(1 + 7 / B) for the error
   of a weekday's estimated offset.
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

Measured on the bench's realistic stable streams (``bench/streams.py``: weekly seasonality, heavy
tails, new rare categories, AR(1) day effects, label delays 1-7 days), replayed in memory through
``monitor_window`` one day per run (history handed on), 3 seeds x 100 runs each; new alarms
(reported, gate passed) per 90 runs, before -> after steps 1-2 above:
- regression, 100 rows/day, 16 features: 3.0 -> 1.8 (features 2.1 -> 0.9: mean_down on skewed
  features gone; a Pareto feature's KS whose baseline mean z is 1.2 now gets the empirical null;
  performance:mape 0.9 -> 0.9, from ``compare_metrics``' MAPE z on 100 heavy-tailed rows);
- binary, 1,000 rows/day, 12 features (seeds 0-1, 200 runs): 3.6 -> 0.45 (lognormal features'
  KS and mean_down gone; one prediction-distribution alarm left);
- regression, 500 rows/day, 12 features: 3.0 -> 3.0 (features and prediction 0.9 -> 0.9; concept
  0.6 and performance 1.5, nearly all from seed 0: concept / performance on a baseline whose 30 days of the
  outcome's AR(1) offsets happened to be calm: its
  days pass the test of theory while later days' z run at mean 0.57, sd 1.39 - no statistic of 30
  baseline days can see that; see "left open");
- regression, 20,000 rows/day, 8 features: 4.8 before (after not measured: the replay is slow).
Left open: the outcome's day effects (the concept and performance families) are under-estimated
by a calm 30-day baseline; the remedies are a prior on the loss's between-day variance, or
re-estimating it from monitored days whose CUSUM stayed at 0.

Measured (seeded, tests/unit/test_monitoring.py; 2 cores shared with other jobs):
- false alarms: 1,320 model-days (4 iid streams x 300 days at 200 rows/day, and 120 days of the
  seasonal stream at 5,000 rows/day), 20 features: new alarms per model-day within the bound of 1/90.
- abrupt 0.2 sigma in 1 of 50 features at 500 rows/day: named by the run after the 2nd shifted day in
  35/40 and 16/20 trials (80-88 %, short of the issue's 90 %: with this false-alarm budget the sum of
  two days must reach 2k + h = 6.3 while it averages ~7.8 after the null's rounding), after the 3rd
  day in nearly all; no other feature named. 0.08 sigma at 2,000 rows/day: within 3 runs in 36/40.
- speed, 50 features, 30 baseline days, 7 current days: 2,000 rows/day 6.9 s (1.8 s with a cached
  ``BaselineCalibration``); 50,000 rows/day 151 s (65 s cached), on a loaded 2-core machine.

Speed (issue 15; verdicts unchanged: tests pin the day statistics, fits and reports computed before,
and whole results of the runs below agreed to 1e-9). Per model-run of ``monitor_window``, binary
classifier, 50 numeric features, 30 baseline days, 7 + 14 current days, two feature threads, same
2-core machine, before -> after, with the load average at the time:
- 2,000 rows/day: 1.9-2.0 s -> 0.94-1.0 s (load 1.1-1.8); with a cached calibration 1.0-1.6 s ->
  0.7-1.1 s (load 0.5-1.1). A regressor at 2,000 rows/day: 1.0-1.1 s before and after (load 2).
- 50,000 rows/day: 42.8 s -> 20.2 s (load 1.3-1.8); cached 19.5 s -> 10.1 s (load 1.3-1.6). Under
  load 3-6 (other jobs): 51-117 s -> 33-38 s.
Where it went: ``compare_metrics`` rebuilt the reference side (three rank sorts of the labelled
baseline for DeLong, each loss) for each of the 14 current days and each of the 30 leave-one-out
baseline days; it now takes a ``core.degradation.ReferenceMetrics`` built once per run, whose
``excluding(day rows)`` derives the rest without sorting it. ``NumericPool.build`` re-sorted its
sorted pool (``np.unique``) and computed every baseline value's normal score twice; both now come
off the one merge of the sorted days (a merge: half the time of sorting the pool from scratch at
50,000 rows/day). What is left at 50,000 rows/day (serial profile, 29 s): the pools (day sorts,
the merge, the gathers of places and scores: ~17 s) and placing the 7 current days in each pool
(``searchsorted``: ~5 s).
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
