"""Kept import path: this code now lives in ``self_learning.core.error_analysis``."""

from .core.error_analysis import (
    HISTOGRAM_BINS,
    PERCENTILES,
    SHAPIRO_MAX_N,
    ErrorDistribution,
    SystematicErrorPattern,
    SystematicErrors,
    analyze_error_distribution,
    identify_systematic_errors,
)

__all__ = ["HISTOGRAM_BINS", "PERCENTILES", "SHAPIRO_MAX_N", "ErrorDistribution", "SystematicErrorPattern",
           "SystematicErrors", "analyze_error_distribution", "identify_systematic_errors"]
