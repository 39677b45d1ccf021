"""Input checks shared by the statistics: every error names the field and the reason."""

from __future__ import annotations

import numpy as np
import pandas as pd


def as_float_array(field: str, values, *, allow_nonfinite: bool = False, min_size: int = 1) -> np.ndarray:
    """Return ``values`` as a 1-D float64 array or raise ``ValueError`` naming ``field``."""
    if isinstance(values, (str, bytes)):
        raise ValueError(f"{field}: expected a sequence of numbers, got a string")
    array = np.asarray(values)
    if array.ndim != 1:
        array = array.reshape(-1) if array.ndim == 0 else array
        if array.ndim != 1:
            raise ValueError(f"{field}: expected a 1-D sequence, got shape {array.shape}")
    if array.dtype.kind not in "biuf":
        numeric = pd.to_numeric(pd.Series(array, dtype=object), errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(np.isnan(numeric) & ~pd.isna(array))
        if bad.size:
            raise ValueError(
                f"{field}: non-numeric value {plain(array[bad[0]])!r} at index {int(bad[0])} "
                f"({bad.size} non-numeric values in all)"
            )
        array = numeric
    array = array.astype(np.float64, copy=False)
    if array.size < min_size:
        raise ValueError(f"{field}: needs at least {min_size} values, got {array.size}")
    if not allow_nonfinite:
        bad = np.flatnonzero(~np.isfinite(array))
        if bad.size:
            raise ValueError(
                f"{field}: non-finite value {array[bad[0]]} at index {int(bad[0])} "
                f"({bad.size} NaN/inf values in all)"
            )
    return array


def plain(value):
    """A numpy scalar as the Python value it holds (for readable error messages)."""
    return value.item() if isinstance(value, np.generic) else value


def label_text(value) -> str:
    """A category label as text; whole floats print as integers, so code 3 stays "3" when a
    missing value has made pandas store the column as floats."""
    value = plain(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def check_same_length(**arrays: np.ndarray) -> int:
    """Raise ``ValueError`` unless all arrays have one length; return it."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise ValueError(f"length mismatch: {described}")
    return next(iter(lengths.values()))


def check_alpha(alpha: float) -> float:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: must be in (0, 1), got {alpha}")
    return float(alpha)

