"""Feature (data), prediction and concept drift between a reference and a current window.

Why the decision rule looks the way it does: at production sample sizes every p-value is
tiny, and across many features uncorrected tests raise a false alarm almost every day.
So a check flags drift only when it is (1) significant after Benjamini-Hochberg across
all checks of one report and (2) its effect size passes a practical threshold; its
severity grows with the effect size, never with the p-value.

Checks per feature (``checks``: a registry; a new statistic is one function plus
``@register_check``)
- numeric: two-sample Kolmogorov-Smirnov; effects Wasserstein / reference std and PSI, each beyond
  its null mean (``comparisons``) and on its own ladder; the worse rating wins.
- categorical: chi-squared test of homogeneity (reference vs current counts) with rare
  and unseen categories pooled into one ``other`` bucket, so one unseen row never gives
  p = 0; effect = Jensen-Shannon distance (base 2) beyond its null mean.
- missing rate (NaN, None, +-inf): Fisher's exact test; effect = absolute change.
- unseen categories: binomial test of the current unseen share against the reference's
  Good-Turing estimate of unseen mass; effect = unseen share.

Effect thresholds (``DriftThresholds``; low / medium / high / critical, ``low`` is the practical
threshold). A fixed 0.1 on max(PSI, Wasserstein/std) hid real 0.08-0.098 sigma shifts seen on
thousands of rows a day (issue 15), while PSI's noise grows with bins / n. So each statistic is
calibrated on its own:
- Wasserstein / reference std (``WASSERSTEIN_LADDER``): 0.05 / 0.2 / 0.3 / 0.5, on the part
  beyond its null mean (``wasserstein_excess``). W/std does not depend on bins and its noise falls
  like 1/sqrt(n), but at daily volumes the noise is as large as a real shift (0.049 at 2,000 vs
  1,000 rows with no drift), so it is removed in quadrature: pure noise then rates ~0.01, a real
  0.08 sigma shift 0.078-0.083 at 2,000-20,000 current rows ("low"), and a 0.01 sigma shift at 1M
  rows a side 0.009 ("none"); the KS test (after BH) must agree. Medium and above are the old
  cut-offs, on which the retrain default ("high") was set.
- PSI (``PSI_LADDER``): 0.1 / 0.2 / 0.3 / 0.5 (the rule of thumb), on PSI minus its null mean
  (B - 1)(1/n_ref + 1/n_cur) (``psi_excess``): uncorrected, a 100-row window carries ~0.09.
- Jensen-Shannon distance (``JS_LADDER``): 0.1 / 0.2 / 0.3 / 0.5, on the distance left after
  subtracting its null divergence (K - 1)(1/n_ref + 1/n_cur) / (8 ln 2) over K tested groups
  (``js_excess``): with many categories the raw distance of pure noise passed 0.1.
- Missing-rate change and unseen share (``RATE_LADDER``): 0.05 / 0.1 / 0.2 / 0.4.

Multivariate drift (``multivariate``): PCA reconstruction error and a domain classifier, for a
change in how the features move together that the per-feature checks cannot see.

Layout: ``comparisons`` (two-sample statistics), ``checks`` (the registry and the thresholds),
``features`` (the feature-drift report), ``outputs`` (prediction and concept drift),
``multivariate`` (the multivariate-drift report).
"""

from .checks import (
    CONCEPT_LADDER,
    EFFECT_LADDER,
    JS_LADDER,
    PSI_LADDER,
    RATE_LADDER,
    WASSERSTEIN_LADDER,
    CheckOutcome,
    DriftCheck,
    DriftThresholds,
    FeatureSample,
    checks_for,
    register_check,
)
from .comparisons import (
    PSI_MIN_PER_BIN,
    PSI_PSEUDO_COUNT,
    CategoricalComparison,
    NumericComparison,
    compare_categorical,
    compare_numeric,
    population_stability_index,
)
from .features import detect_feature_drift
from .multivariate import detect_multivariate_drift
from .outputs import detect_class_prediction_drift, detect_concept_drift, detect_prediction_drift, pointwise_loss

__all__ = ["CONCEPT_LADDER", "EFFECT_LADDER", "JS_LADDER", "PSI_LADDER", "PSI_MIN_PER_BIN", "PSI_PSEUDO_COUNT",
           "RATE_LADDER", "WASSERSTEIN_LADDER",
           "CategoricalComparison", "CheckOutcome", "DriftCheck", "DriftThresholds", "FeatureSample",
           "NumericComparison", "checks_for", "compare_categorical", "compare_numeric", "detect_class_prediction_drift",
           "detect_concept_drift",
           "detect_feature_drift", "detect_multivariate_drift", "detect_prediction_drift", "pointwise_loss",
           "population_stability_index",
           "register_check"]
