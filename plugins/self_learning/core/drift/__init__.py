"""Feature (data), prediction and concept drift between a reference and a current window.

Why the decision rule looks the way it does: at production sample sizes every p-value is
tiny, and across many features uncorrected tests raise a false alarm almost every day.
So a check flags drift only when it is (1) significant after Benjamini-Hochberg across
all checks of one report and (2) its effect size passes a practical threshold; its
severity grows with the effect size, never with the p-value.

Checks per feature (``checks``: a registry; a new statistic is one function plus
``@register_check``)
- numeric: two-sample Kolmogorov-Smirnov; effect = max(PSI, Wasserstein / reference std).
- categorical: chi-squared test of homogeneity (reference vs current counts) with rare
  and unseen categories pooled into one ``other`` bucket, so one unseen row never gives
  p = 0; effect = Jensen-Shannon distance (base 2).
- missing rate (NaN, None, +-inf): Fisher's exact test; effect = absolute change.
- unseen categories: binomial test of the current unseen share against the reference's
  Good-Turing estimate of unseen mass; effect = unseen share.

Default cut-offs (``DriftThresholds``): PSI, Wasserstein/std and JS distance are rated
low / medium / high / critical at 0.1 / 0.2 / 0.3 / 0.5; missing-rate change and unseen
share at 0.05 / 0.1 / 0.2 / 0.4. The ``low`` cut-off is the practical threshold.

Layout: ``comparisons`` (two-sample statistics), ``checks`` (the registry and the thresholds),
``features`` (the feature-drift report), ``outputs`` (prediction and concept drift).
"""

from .checks import (
    CONCEPT_LADDER,
    EFFECT_LADDER,
    RATE_LADDER,
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
from .outputs import detect_concept_drift, detect_prediction_drift, pointwise_loss

__all__ = ["CONCEPT_LADDER", "EFFECT_LADDER", "PSI_MIN_PER_BIN", "PSI_PSEUDO_COUNT", "RATE_LADDER",
           "CategoricalComparison", "CheckOutcome", "DriftCheck", "DriftThresholds", "FeatureSample",
           "NumericComparison", "checks_for", "compare_categorical", "compare_numeric", "detect_concept_drift",
           "detect_feature_drift", "detect_prediction_drift", "pointwise_loss", "population_stability_index",
           "register_check"]
