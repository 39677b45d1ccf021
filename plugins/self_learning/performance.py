"""Kept import path: this code now lives in ``self_learning.core.performance``."""

from .core.performance import (
    DEFAULT_MIN_LABEL_COVERAGE,
    ModelPerformance,
    classification_performance,
    compute_performance,
    expected_calibration_error,
    label_coverage,
    regression_performance,
)

__all__ = ["DEFAULT_MIN_LABEL_COVERAGE", "ModelPerformance", "classification_performance", "compute_performance",
           "expected_calibration_error", "label_coverage", "regression_performance"]
