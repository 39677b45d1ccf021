"""Kept import path: this code now lives in ``self_learning.core.importance``."""

from .core.importance import (
    MIN_ROWS,
    PERMUTATION_MAX_ROWS,
    FeatureWeight,
    FeatureWeights,
    ImportanceTrend,
    importance_trends,
    permutation_weights,
    update_feature_weights,
)

__all__ = ["MIN_ROWS", "PERMUTATION_MAX_ROWS", "FeatureWeight", "FeatureWeights", "ImportanceTrend",
           "importance_trends", "permutation_weights", "update_feature_weights"]
