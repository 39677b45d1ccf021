"""Kept import path: this code now lives in ``self_learning.core.training``."""

from .core.training import (
    MAX_CATEGORIES,
    PRIMARY_LOSS,
    Verdict,
    default_trainer,
    feature_frame,
    fit,
    holdout_performance,
    judge,
    load_trainer,
    predict,
    time_holdout,
)

__all__ = ["MAX_CATEGORIES", "PRIMARY_LOSS", "Verdict", "default_trainer", "feature_frame", "fit",
           "holdout_performance", "judge", "load_trainer", "predict", "time_holdout"]
