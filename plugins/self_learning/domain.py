"""Kept import path: the domain types now live in ``self_learning.core.types``."""

from .core.types import (
    ALERT_SEVERITY_NAMES,
    DEFAULT_MAX_FEATURES,
    DEFAULT_MODELS,
    FEATURE_KINDS,
    FEATURE_THREADS,
    MAX_FEATURES_CEILING,
    SEVERITY_NAMES,
    DriftReport,
    DriftType,
    ModelSpec,
    ModelType,
    PredictionOutcome,
    Result,
    Severity,
    SeverityLadder,
    Status,
    TaskKind,
    as_utc,
    feature_cap,
    model_name,
    shown,
    to_jsonable,
)

__all__ = ["ALERT_SEVERITY_NAMES", "DEFAULT_MAX_FEATURES", "DEFAULT_MODELS", "FEATURE_KINDS", "FEATURE_THREADS",
           "MAX_FEATURES_CEILING", "SEVERITY_NAMES", "DriftReport", "DriftType", "ModelSpec", "ModelType",
           "PredictionOutcome", "Result", "Severity", "SeverityLadder", "Status", "TaskKind", "as_utc", "feature_cap",
           "model_name", "shown", "to_jsonable"]
