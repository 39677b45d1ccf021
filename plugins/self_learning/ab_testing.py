"""Kept import path: this code now lives in ``self_learning.core.ab``."""

from .core.ab import (
    SRM_ALPHA,
    UNITS,
    ABDecision,
    ABTestConfig,
    ArmComparison,
    ArmLoss,
    SampleRatio,
    arm_version,
    assign_arm,
    bucket,
    compare_arms,
    decide,
    fnv1a32,
    row_losses,
    sample_ratio_mismatch,
)
from .core.tasks import LOG_LOSS_EPS

__all__ = ["LOG_LOSS_EPS", "SRM_ALPHA", "UNITS", "ABDecision", "ABTestConfig", "ArmComparison", "ArmLoss",
           "SampleRatio", "arm_version", "assign_arm", "bucket", "compare_arms", "decide", "fnv1a32", "row_losses",
           "sample_ratio_mismatch"]
