"""Kept import path: this code now lives in ``self_learning.core.retraining``."""

from .core.retraining import (
    PerformanceBreach,
    RetrainDecision,
    RetrainThresholds,
    performance_breaches,
    should_retrain,
)

__all__ = ["PerformanceBreach", "RetrainDecision", "RetrainThresholds", "performance_breaches", "should_retrain"]
