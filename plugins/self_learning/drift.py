"""Kept import path: drift detection now lives in ``self_learning.core.drift`` (comparisons, the
registry of checks, the feature / prediction / concept drift reports)."""

from .core.drift import (
    CONCEPT_LADDER,
    EFFECT_LADDER,
    PSI_MIN_PER_BIN,
    PSI_PSEUDO_COUNT,
    RATE_LADDER,
    CategoricalComparison,
    DriftThresholds,
    NumericComparison,
    compare_categorical,
    compare_numeric,
    detect_concept_drift,
    detect_feature_drift,
    detect_multivariate_drift,
    detect_prediction_drift,
    pointwise_loss,
    population_stability_index,
)

__all__ = ["CONCEPT_LADDER", "EFFECT_LADDER", "PSI_MIN_PER_BIN", "PSI_PSEUDO_COUNT", "RATE_LADDER",
           "CategoricalComparison", "DriftThresholds", "NumericComparison", "compare_categorical", "compare_numeric",
           "detect_concept_drift", "detect_feature_drift", "detect_multivariate_drift", "detect_prediction_drift",
           "pointwise_loss",
           "population_stability_index"]
