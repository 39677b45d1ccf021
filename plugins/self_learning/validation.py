"""Kept import path: this code now lives in ``self_learning.core.validation``."""

from .core.validation import (
    as_float_array,
    check_alpha,
    check_same_length,
    label_text,
    plain,
)

__all__ = ["as_float_array", "check_alpha", "check_same_length", "label_text", "plain"]
