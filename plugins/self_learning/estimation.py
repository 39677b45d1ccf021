"""Estimated performance before the labels arrive (CBPE, DLE) and the estimator's reliability check;
the code lives in ``self_learning.core.estimation``."""

from .core.estimation import (
    DEFAULT_BAND_Z,
    EstimatedMetric,
    EstimatorReliability,
    MaturedEstimate,
    PerformanceEstimate,
    PerformanceEstimator,
    estimate_performance,
    estimator_reliability,
    fit_estimator,
    realized_metrics,
)

__all__ = ["DEFAULT_BAND_Z", "EstimatedMetric", "EstimatorReliability", "MaturedEstimate", "PerformanceEstimate",
           "PerformanceEstimator", "estimate_performance", "estimator_reliability", "fit_estimator", "realized_metrics"]
