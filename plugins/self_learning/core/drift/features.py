"""Feature (data) drift: every registered check of every feature, corrected together.

Each feature's values are prepared once (numeric: sorted finite values; categorical: labels as
text), compared once (``comparisons``), and then every check registered for its kind
(``checks``) turns that into a p-value and an effect; Benjamini-Hochberg runs across all checks
of the report, and a significant check is rated by its effect on its ladder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..types import FEATURE_KINDS, FEATURE_THREADS, DriftReport, DriftType, Severity, Status
from ..validation import label_text, plain
from .checks import CheckOutcome, DriftThresholds, FeatureSample, checks_for, compare_feature

_NUMERIC_INFERRED = {"floating", "integer", "mixed-integer-float", "decimal"}
_THREADED_ROWS = (5_000, 10_000)  # window sizes where the features' threads pay (see detect_feature_drift)


@dataclasses.dataclass
class _Check:
    """One hypothesis test of a feature, before and after the correction."""

    feature: str
    name: str
    outcome: CheckOutcome
    p_adjusted: float = 1.0
    severity: Severity = Severity.NONE

    @property
    def p_value(self) -> float:
        return self.outcome.p_value

    def to_dict(self) -> dict[str, Any]:
        return {
            "p_value": self.p_value,
            "p_adjusted": self.p_adjusted,
            **self.outcome.effects,
            "severity": self.severity.value,
            "flagged": self.severity is not Severity.NONE,
        }


def detect_feature_drift(
    reference,
    current,
    *,
    feature_kinds: Mapping[str, str] | None = None,
    thresholds: DriftThresholds | None = None,
    detected_at: datetime | None = None,
) -> DriftReport:
    """Data drift of every feature, reference window vs current window.

    ``reference`` and ``current`` are DataFrames (or mappings of column name to values).
    ``feature_kinds`` may force ``numeric`` / ``categorical``; otherwise the kind is
    inferred from the reference values. Features absent from one window, mixed-up types
    and windows below ``min_samples`` get a status instead of an exception.
    """
    thresholds = thresholds or DriftThresholds()
    feature_kinds = dict(feature_kinds or {})
    names = list(dict.fromkeys([*_columns(reference), *_columns(current)]))
    if len({str(n) for n in names}) != len(names):
        raise ValueError("features: column names clash when converted to text (e.g. 0 and '0')")
    details: dict[str, dict[str, Any]] = {}
    checks: list[_Check] = []
    # Features are independent, and the exact KS p-value of a numeric feature (compiled, GIL
    # released) is most of its time from a few thousand rows up to its 10,000-row limit: there two
    # threads use both cores of a small worker (50 features at 10,000 vs 5,000 rows: 0.46 s -> 0.28 s
    # wall). Elsewhere the threads only cost: 2,000 vs 1,000 rows, 0.11 s of wall either way and 15 %
    # more CPU; 50,000 vs 25,000 rows, pandas holds the GIL (0.58 s alone, 0.64 s threaded); and
    # categorical features are Python and pandas throughout (100 of 2,000 Zipf labels at 5,000 rows:
    # 0.47 s of CPU alone, 0.61 s threaded). Results keep the column order either way.
    def checks_of(name):
        return _feature_checks(name, reference, current, feature_kinds.get(str(name)), thresholds)

    def is_numeric(name) -> bool:  # the kind _feature_checks will use
        if declared := feature_kinds.get(str(name)):
            return declared == "numeric"
        ref, cur = _column(reference, name), _column(current, name)
        return ref is not None and cur is not None and _infer_kind(ref, cur) == "numeric"

    results = {}
    if _THREADED_ROWS[0] <= max(_rows(reference), _rows(current)) <= _THREADED_ROWS[1]:
        numeric = [name for name in names if is_numeric(name)]
        with ThreadPoolExecutor(max_workers=FEATURE_THREADS) as pool:
            results = dict(zip(numeric, pool.map(checks_of, numeric), strict=True))
    for name in names:
        detail, feature_checks = results[name] if name in results else checks_of(name)
        details[str(name)] = detail
        checks.extend(feature_checks)

    if checks:
        adjusted = stats.false_discovery_control([c.p_value for c in checks], method="bh")
        for check, p_adj in zip(checks, adjusted, strict=True):
            check.p_adjusted = float(p_adj)
            if p_adj < thresholds.alpha:
                check.severity = check.outcome.severity()
    for check in checks:
        details[check.feature]["checks"][check.name] = check.to_dict()
    for detail in details.values():
        severities = [Severity(c["severity"]) for c in detail.get("checks", {}).values()]
        detail["severity"] = Severity.worst(severities).value
        detail["drifted"] = detail["severity"] != Severity.NONE.value

    affected = [name for name, d in details.items() if d["drifted"]]
    severity = Severity.worst(Severity(details[name]["severity"]) for name in affected)
    tested = sum(1 for d in details.values() if d["status"] == Status.OK.value)
    status = Status.OK if tested else Status.INSUFFICIENT_DATA
    summary = {
        "features_tested": tested,
        "features_drifted": len(affected),
        "drift_share": len(affected) / tested if tested else None,
        "checks": len(checks),
        "correction": "benjamini-hochberg",
        "alpha": thresholds.alpha,
        "min_samples": thresholds.min_samples,
    }
    return DriftReport(
        drift_type=DriftType.DATA_DRIFT,
        severity=severity,
        affected_features=affected,
        statistical_tests={"summary": summary, "features": details},
        recommendation=_feature_recommendation(status, severity, affected, details),
        status=status,
        detected_at=detected_at,
    )


def _rows(frame) -> int:
    if hasattr(frame, "columns"):
        return len(frame)
    return max((np.size(values) for values in frame.values()), default=0)


def _columns(frame) -> list:
    names = list(frame.columns if hasattr(frame, "columns") else frame.keys())
    texts = [str(n) for n in names]
    if len(set(texts)) != len(texts):
        duplicated = sorted({t for t in texts if texts.count(t) > 1})
        raise ValueError(f"features: duplicate column names {duplicated}")
    return names


def _feature_checks(name, reference, current, declared_kind, thresholds):
    """Per-feature detail dict and its (uncorrected) checks."""
    ref_raw, cur_raw = _column(reference, name), _column(current, name)
    if ref_raw is None or cur_raw is None:
        missing_from = "reference" if ref_raw is None else "current"
        return _status_detail(None, Status.INVALID, f"feature absent from the {missing_from} window"), []
    kind = declared_kind or _infer_kind(ref_raw, cur_raw)
    if kind not in FEATURE_KINDS:
        raise ValueError(f"feature_kinds[{name!r}]: must be 'numeric' or 'categorical', got {kind!r}")
    if kind == "numeric":
        ref_values, ref_bad = _numeric_values(ref_raw)
        cur_values, cur_bad = _numeric_values(cur_raw)
        if ref_bad or cur_bad:
            window, bad = ("reference", ref_bad) if ref_bad else ("current", cur_bad)
            return _status_detail(kind, Status.INVALID, f"non-numeric values in the {window} window: {bad}"), []
        ref_sorted, cur_sorted = _finite_sorted(ref_values), _finite_sorted(cur_values)
        n_ref, n_cur = ref_sorted.size, cur_sorted.size
    else:
        ref_values, cur_values = _labels(ref_raw), _labels(cur_raw)
        ref_present, cur_present = ~pd.isna(ref_values), ~pd.isna(cur_values)
        n_ref, n_cur = int(ref_present.sum()), int(cur_present.sum())

    detail = _status_detail(kind, Status.OK, None)
    detail.update(
        n_reference=n_ref,
        n_current=n_cur,
        missing_rate_reference=1 - n_ref / ref_values.size if ref_values.size else None,
        missing_rate_current=1 - n_cur / cur_values.size if cur_values.size else None,
    )
    if min(n_ref, n_cur) < thresholds.min_samples:
        detail["status"] = Status.INSUFFICIENT_DATA.value
        detail["reason"] = (
            f"{n_ref} reference and {n_cur} current values; at least {thresholds.min_samples} needed in each"
        )
        return detail, []

    if kind == "numeric":
        ref_present_values, cur_present_values = ref_sorted, cur_sorted
    else:
        ref_present_values, cur_present_values = ref_values[ref_present], cur_values[cur_present]
    sample = FeatureSample(
        name=str(name), kind=kind, reference=ref_present_values, current=cur_present_values,
        missing_reference=ref_values.size - n_ref, missing_current=cur_values.size - n_cur,
        comparison=compare_feature(kind, ref_present_values, cur_present_values, thresholds), thresholds=thresholds)
    detail["statistics"] = sample.comparison.to_dict()
    checks = []
    for check_name, check in checks_for(kind).items():
        outcome = check(sample)
        if outcome is not None:
            checks.append(_Check(str(name), check_name, outcome))
    return detail, checks


def _status_detail(kind, status: Status, reason: str | None) -> dict[str, Any]:
    return {"kind": kind, "status": status.value, "reason": reason, "checks": {}}


def _column(frame, name) -> pd.Series | None:
    if hasattr(frame, "columns"):
        return frame[name].reset_index(drop=True) if name in frame.columns else None
    values = frame.get(name)
    if values is None:
        return None
    return values.reset_index(drop=True) if isinstance(values, pd.Series) else pd.Series(np.atleast_1d(values))


def _infer_kind(reference: pd.Series, current: pd.Series) -> str:
    """Categorical for category/bool/string data, numeric for numbers, datetimes and durations."""
    for values in (reference, current):
        dtype = values.dtype
        if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype):
            return "categorical"
        if pd.api.types.is_numeric_dtype(dtype) or dtype.kind in "mM" or isinstance(dtype, pd.DatetimeTZDtype):
            return "numeric"
        inferred = pd.api.types.infer_dtype(values, skipna=True)
        if inferred != "empty":
            return "numeric" if inferred in _NUMERIC_INFERRED else "categorical"
    return "numeric"


def _finite_sorted(values: np.ndarray) -> np.ndarray:
    """Sorted finite values: one sort puts -inf first and +inf, NaN last; slice them off."""
    ordered = np.sort(values)
    return ordered[np.searchsorted(ordered, -np.inf, side="right"):np.searchsorted(ordered, np.inf, side="left")]


def _numeric_values(values: pd.Series) -> tuple[np.ndarray, str | None]:
    """Float values (missing as NaN) and a description of non-numeric entries, if any.

    Booleans count as 0/1, datetimes as seconds since the epoch, durations as seconds.
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    if values.dtype.kind == "M":
        return _seconds(values - pd.Timestamp(0)), None
    if values.dtype.kind == "m":
        return _seconds(values), None
    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "iuf":
        return values.to_numpy().astype(np.float64, copy=False), None  # no copy for float64
    if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype):
        return values.to_numpy(dtype=np.float64, na_value=np.nan), None
    raw = values.to_numpy(dtype=object)
    numeric = pd.to_numeric(pd.Series(raw, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(numeric) & ~pd.isna(raw)
    if bad.any():
        examples = pd.unique(raw[bad])[:3]
        return numeric, f"{int(bad.sum())} rows, e.g. {', '.join(repr(plain(v)) for v in examples)}"
    return numeric, None


def _seconds(durations: pd.Series) -> np.ndarray:
    return durations.dt.total_seconds().to_numpy(dtype=np.float64, na_value=np.nan)


def _labels(values: pd.Series) -> np.ndarray:
    """Category labels as text; missing values stay missing.

    Whole floats print as integers, so code 3 stays "3" when a NaN turns the column float.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):  # already coded (window reads return these)
        codes, uniques = values.cat.codes.to_numpy(), values.cat.categories
    else:
        codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=True)
    texts = np.array([label_text(u) for u in uniques] + [None], dtype=object)
    return texts[codes]


def _feature_recommendation(status, severity, affected, details) -> str:
    if status is Status.INSUFFICIENT_DATA:
        return "Not enough data in one of the windows to test for drift; widen the window or wait for more traffic."
    if not affected:
        return "No practically significant feature drift; keep monitoring."
    quality = [n for n in affected if any(
        c["flagged"] for key, c in details[n]["checks"].items() if key in ("missing_rate", "unseen_categories"))]
    listed = ", ".join(affected[:5]) + (f" and {len(affected) - 5} more" if len(affected) > 5 else "")
    advice = {
        Severity.LOW: "monitor; no action needed yet",
        Severity.MEDIUM: "investigate the cause and watch performance as labels arrive",
        Severity.HIGH: "retrain on recent data if performance confirms the shift",
        Severity.CRITICAL: "retrain on recent data and check the upstream feature pipeline",
    }[severity]
    text = f"{severity.value.capitalize()} drift in {listed}: {advice}."
    if quality:
        text += f" Data-quality change (missing or unseen values) in {', '.join(quality)}: check the source."
    return text
