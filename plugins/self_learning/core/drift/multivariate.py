"""Multivariate drift: a change in how the features move together that no single feature's test sees
(two features' correlation 0.8 -> 0 with unchanged marginals). Two methods, as NannyML:

PCA reconstruction error (``pca``). Numeric features are standardised by the reference (missing values
take the reference median), categorical ones one-hot encoded over their ``max_categories`` most
frequent reference categories (the rest, unseen ones and missing share one "other" column). PCA keeps
``variance_kept`` (65 %, NannyML's default) of the reference's variance; a row's error is the
Euclidean distance between it and its reconstruction. A correlation that breaks moves rows off the
plane the reference's correlation made, so the mean error rises (and a new correlation lowers it).
Threshold from the reference's chunk variability: the reference is cut into contiguous chunks of
the current window's size (at least ``MIN_CHUNKS`` chunks; smaller ones when the reference is
short, their deviation scaled by sqrt(chunk / window), the 1/sqrt(n) of a mean) and the current
mean error is compared with the chunk means' mean +- ``threshold_sd`` (3, NannyML's) standard
deviations. It is flagged only when it is outside that range AND its relative change passes the
practical ladder ``PCA_LADDER`` (low 10 %, medium 20 %, high 30 %, critical 50 %): at a million rows
a 0.5 % change is outside 3 sd, and at 250 rows a stable window's change reached 5.8 % (z 2.8) in 50
stable windows, so a 5 % gate was one noisy day from a false alarm.

Domain classifier (``domain_classifier``). A gradient-boosting classifier (scikit-learn's
``HistGradientBoostingClassifier``) learns to tell reference rows from current rows (at most
``classifier_rows`` (5,000) current rows and twice as many reference rows as current ones, sampled
with the seed: this bounds its cost at a million rows, and a 300-row window is not fitted against
all of a 5,000-row reference, which cost 0.5 s a run for no power the practical threshold uses);
30 boosting rounds of 8-leaf trees (learning rate 0.2): on a correlation 0.8 -> 0 they reach the
AUC of 60 rounds of 15 leaves (0.68 at 300 current rows, 0.73 at 2,000) in half the time;
its ``folds``-fold cross-validated, out-of-fold ROC AUC is 0.5 when the windows do not differ.
Null: the asymptotic null of the AUC (Mann-Whitney), mean 0.5 and variance
(n1 + n2 + 1) / (12 n1 n2), one-sided. A permutation null would refit the classifier for every
permutation (hundreds of fits per run); pooled out-of-fold AUCs sit at or slightly below 0.5 under
no drift, so the asymptotic null errs on the safe side. Flagged when p < ``alpha`` (0.01: two methods
share the run's 5 %) AND the AUC passes ``AUC_LADDER`` (low 0.6, medium 0.65, high 0.75, critical
0.85). A 0.55 gate raised 1 false alarm in 50 stable 250-row windows (AUC 0.564, p 0.002: at 250 vs
500 rows the null's sd is 0.022, so 0.55 is barely 2 sd); 0.6 is 4.5 sd there.

Measured (``tests/unit/test_multivariate_drift.py``, seeded): correlation 0.8 -> 0 between two of
six features, 5,000 reference vs 2,000 current rows, seeds 1-3: PCA mean error +19.7 % / +21.0 % /
+20.9 % (low / medium / medium), domain classifier AUC 0.719 / 0.726 / 0.743 (medium), while
``detect_feature_drift`` flags no feature at all. Stable windows: 0 alarms in 50 windows of 200 rows
(the test), and in 60 of 200 rows and 60 of 1,000 rows on other seeds (largest AUC 0.572 and
0.529, largest |PCA change| 7.8 % and 3.0 %); the PCA check alone: 0 in 150 windows of 500 rows.
Cost: ~0.02 s for the PCA check and ~0.15-0.3 s for the domain classifier per run at these sizes
(one thread, on a loaded 2-core machine). At a million rows a side the first version encoded both
windows whole (1M x 90 floats each) and took 15.9 s of CPU with a 4.4 GB peak; now the encoding and
the PCA are fitted on a seeded ``MAX_PCA_FIT_ROWS`` sample of the reference, at most
``MAX_PCA_ROWS`` rows of each window are scored (the heads of at most ``MAX_CHUNKS`` evenly spread
reference chunks, a seeded sample of the current window whose own standard error joins the
threshold's in quadrature), in blocks of ``BLOCK_ROWS``, and the domain classifier encodes only the
rows it samples (``bench/estimation_bench.py`` prints the figures).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..estimation_methods import category_codes, category_index
from ..types import FEATURE_KINDS, DriftReport, DriftType, Severity, SeverityLadder, Status, shown

METHODS = ("pca", "domain_classifier")
DEFAULT_VARIANCE_KEPT = 0.65
DEFAULT_MAX_CATEGORIES = 20
DEFAULT_THRESHOLD_SD = 3.0
DEFAULT_CLASSIFIER_ROWS = 5_000
DEFAULT_FOLDS = 3
DEFAULT_ALPHA = 0.01
MIN_ROWS = 200  # per window, below it: insufficient_data
MIN_CHUNKS = 20  # reference chunks behind the PCA threshold (fewer make its sd a noisy guess)
MAX_PCA_FIT_ROWS = 100_000  # reference rows the encoding and the PCA are fitted on (a seeded sample)
MAX_PCA_ROWS = 250_000  # rows scored per window: reference chunk heads, a seeded sample of the current
MAX_CHUNKS = 100  # reference chunks evaluated, evenly spread
BLOCK_ROWS = 50_000
REFERENCE_PER_CURRENT = 2  # the domain classifier sees at most 2 reference rows per current row
PCA_LADDER = SeverityLadder(low=0.1, medium=0.2, high=0.3, critical=0.5)  # |relative change of the mean error|
AUC_LADDER = SeverityLadder(low=0.6, medium=0.65, high=0.75, critical=0.85)


class _Encoder:
    """Reference-fitted encoding: standardised numeric columns, capped one-hot categoricals."""

    def __init__(self, reference: pd.DataFrame, kinds: dict[str, str], max_categories: int):
        self.kinds, self.center, self.scale, self.categories = kinds, {}, {}, {}
        for name, kind in kinds.items():
            if kind == "numeric":
                values = _numeric("reference", name, reference[name])
                finite = values[np.isfinite(values)]
                median = float(np.median(finite)) if finite.size else 0.0
                filled = np.where(np.isfinite(values), values, median)
                std = float(filled.std())
                self.center[name], self.scale[name] = (median, float(filled.mean())), std if std > 0 else 1.0
            else:
                self.categories[name] = category_index(reference[name], max_categories)

    def matrix(self, frame: pd.DataFrame, field: str) -> np.ndarray:
        columns = []
        for name, kind in self.kinds.items():
            if kind == "numeric":
                values = _numeric(field, name, frame[name])
                median, mean = self.center[name]
                columns.append((np.where(np.isfinite(values), values, median) - mean) / self.scale[name])
            else:
                categories = self.categories[name]
                codes = np.nan_to_num(category_codes(frame[name], categories), nan=len(categories)).astype(np.int64)
                columns.extend((codes == j).astype(float) for j in range(len(categories) + 1))  # + "other"
        return np.column_stack(columns)


def _numeric(field: str, name: str, values: pd.Series) -> np.ndarray:
    numeric = pd.to_numeric(values, errors="coerce")
    bad = numeric.isna() & values.notna()
    if bad.any():
        raise ValueError(f"{field}.{name}: non-numeric value {shown(values[bad].iloc[0])} ({int(bad.sum())} in all)")
    return numeric.to_numpy(dtype=np.float64)


def _feature_kinds(reference: pd.DataFrame, current: pd.DataFrame, feature_kinds) -> dict[str, str]:
    if feature_kinds is None:
        names = [c for c in reference.columns if not pd.api.types.is_datetime64_any_dtype(reference[c])]
        kinds = {str(c): "numeric" if pd.api.types.is_numeric_dtype(reference[c])
                 and not pd.api.types.is_bool_dtype(reference[c]) else "categorical" for c in names}
    else:
        kinds = dict(feature_kinds)
    if not kinds:
        raise ValueError("feature_kinds: no features to compare")
    for name, kind in kinds.items():
        if kind not in FEATURE_KINDS:
            raise ValueError(f"feature_kinds[{shown(name)}]: must be 'numeric' or 'categorical', got {shown(kind)}")
        for field, frame in (("reference", reference), ("current", current)):
            if name not in frame.columns:
                raise ValueError(f"{field}.{name}: missing column")
    return kinds


def _sample(rng: np.random.Generator, n: int, cap: int) -> np.ndarray:
    """All row positions, or ``cap`` of them drawn with the seed (sorted: time order kept)."""
    return np.arange(n) if n <= cap else np.sort(rng.choice(n, cap, replace=False))


def _pca_check(encoder: _Encoder, reference: pd.DataFrame, current: pd.DataFrame, fit_rows: np.ndarray,
               variance_kept: float, threshold_sd: float, rng: np.random.Generator) -> dict[str, Any]:
    from sklearn.decomposition import PCA

    # the eigendecomposition of the d x d covariance, not an SVD of the n x d matrix: 100,000 rows x
    # 90 encoded columns took 2.8 s with the full SVD
    pca = PCA(n_components=variance_kept, svd_solver="covariance_eigh")
    pca.fit(encoder.matrix(reference.iloc[fit_rows], "reference"))

    def errors(frame: pd.DataFrame, rows: np.ndarray, field: str) -> np.ndarray:
        blocks = []
        for start in range(0, rows.size, BLOCK_ROWS):  # encoded in blocks: 1M x 90 at once peaked at 4.4 GB
            block = encoder.matrix(frame.iloc[rows[start:start + BLOCK_ROWS]], field)
            blocks.append(np.linalg.norm(block - pca.inverse_transform(pca.transform(block)), axis=1))
        return np.concatenate(blocks) if blocks else np.zeros(0)

    n_ref, n_cur = len(reference), len(current)
    chunk = min(n_cur, n_ref // MIN_CHUNKS)
    count = n_ref // chunk
    starts = np.unique(np.linspace(0, count - 1, min(count, MAX_CHUNKS)).round().astype(int)) * chunk
    evaluated = min(chunk, MAX_PCA_ROWS // starts.size)  # the head of each chunk when chunks are long
    rows = (starts[:, None] + np.arange(evaluated)).ravel()
    chunk_means = errors(reference, rows, "reference").reshape(starts.size, evaluated).mean(axis=1)
    current_rows = _sample(rng, n_cur, MAX_PCA_ROWS)
    current_errors = errors(current, current_rows, "current")
    current_mean = float(current_errors.mean())
    center = float(chunk_means.mean())
    sd = float(chunk_means.std(ddof=1) * math.sqrt(evaluated / n_cur))
    if current_rows.size < n_cur:  # the sampled current mean's own standard error, without replacement
        sd = math.hypot(sd, float(current_errors.std()) * math.sqrt((1 - current_rows.size / n_cur)
                                                                     / current_rows.size))
    lower, upper = center - threshold_sd * sd, center + threshold_sd * sd
    relative = (current_mean - center) / center if center > 0 else 0.0
    outside = not lower <= current_mean <= upper
    severity = PCA_LADDER.rate(abs(relative)) if outside else Severity.NONE
    return {"status": Status.OK.value, "components": int(pca.n_components_), "variance_kept": variance_kept,
            "reference_mean_error": center, "current_mean_error": current_mean, "lower_threshold": lower,
            "upper_threshold": upper, "z": (current_mean - center) / sd if sd > 0 else None,
            "relative_change": relative, "outside_threshold": outside, "severity": severity.value,
            "drifted": severity is not Severity.NONE, "current_rows_scored": int(current_rows.size),
            "threshold": f"reference chunk means +- {threshold_sd:g} sd ({starts.size} chunks of {evaluated:,} rows"
                         + (f", scaled to {n_cur:,} rows)" if evaluated != n_cur else ")")}


def _domain_classifier_check(encoder: _Encoder, reference: pd.DataFrame, current: pd.DataFrame, rows: int,
                             folds: int, alpha: float, rng: np.random.Generator, random_state: int
                             ) -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    current_rows = min(len(current), rows)
    reference_rows = min(len(reference), rows, REFERENCE_PER_CURRENT * current_rows)
    sampled = [encoder.matrix(frame.iloc[_sample(rng, len(frame), size)], field)
               for frame, size, field in ((reference, reference_rows, "reference"), (current, current_rows, "current"))]
    n1, n2 = len(sampled[1]), len(sampled[0])  # current rows are the positives
    features = np.vstack(sampled)
    is_current = np.concatenate([np.zeros(n2), np.ones(n1)])
    model = HistGradientBoostingClassifier(max_iter=30, learning_rate=0.2, max_leaf_nodes=8, early_stopping=False,
                                           random_state=random_state)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state)
    probability = cross_val_predict(model, features, is_current, cv=splitter, method="predict_proba")[:, 1]
    auc = float(roc_auc_score(is_current, probability))
    null_sd = math.sqrt((n1 + n2 + 1) / (12.0 * n1 * n2))
    p_value = float(stats.norm.sf((auc - 0.5) / null_sd))
    severity = AUC_LADDER.rate(auc) if p_value < alpha else Severity.NONE
    return {"status": Status.OK.value, "roc_auc": auc, "p_value": p_value, "alpha": alpha, "null": "asymptotic "
            f"Mann-Whitney, sd {null_sd:.4f}", "reference_rows": n2, "current_rows": n1, "folds": folds,
            "severity": severity.value, "drifted": severity is not Severity.NONE}


def detect_multivariate_drift(
    reference,
    current,
    *,
    feature_kinds: Mapping[str, str] | None = None,
    methods: Sequence[str] = METHODS,
    variance_kept: float = DEFAULT_VARIANCE_KEPT,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    threshold_sd: float = DEFAULT_THRESHOLD_SD,
    classifier_rows: int = DEFAULT_CLASSIFIER_ROWS,
    folds: int = DEFAULT_FOLDS,
    alpha: float = DEFAULT_ALPHA,
    random_state: int = 0,
    detected_at: datetime | None = None,
) -> DriftReport:
    """Multivariate drift of the features, reference window vs current window (DataFrames, reference
    rows in time order): PCA reconstruction error and a domain classifier (``methods``). Severity is
    the worse of the two; ``statistical_tests`` holds {"pca": {...}, "domain_classifier": {...}, "summary":
    {...}}. ``feature_kinds`` None: every non-timestamp column, numeric dtypes as numeric. Windows
    below ``MIN_ROWS`` rows give ``insufficient_data``."""
    for field, frame in (("reference", reference), ("current", current)):
        if not isinstance(frame, pd.DataFrame):
            raise ValueError(f"{field}: expected a pandas DataFrame, got {type(frame).__name__}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods or isinstance(methods, str):
        raise ValueError(f"methods: choose from {list(METHODS)}, got {shown(methods)}")
    if not 0 < variance_kept < 1:
        raise ValueError(f"variance_kept: must be in (0, 1), got {shown(variance_kept)}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: must be in (0, 1), got {shown(alpha)}")
    if not (isinstance(threshold_sd, (int, float)) and threshold_sd > 0):
        raise ValueError(f"threshold_sd: must be a positive number, got {shown(threshold_sd)}")
    for name, value, least in (("max_categories", max_categories, 1), ("classifier_rows", classifier_rows, MIN_ROWS),
                               ("folds", folds, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name}: must be an integer >= {least}, got {shown(value)}")
    kinds = _feature_kinds(reference, current, feature_kinds)
    summary = {"features": len(kinds), "reference_rows": len(reference), "current_rows": len(current),
               "methods": list(methods), "min_rows": MIN_ROWS}
    if min(len(reference), len(current)) < MIN_ROWS:
        reason = (f"{len(reference)} reference and {len(current)} current rows; at least {MIN_ROWS} needed in each")
        skipped = {"status": Status.INSUFFICIENT_DATA.value, "reason": reason}
        tests = {"summary": summary, **{m: dict(skipped) for m in methods}}
        return DriftReport(drift_type=DriftType.MULTIVARIATE_DRIFT, severity=Severity.NONE, affected_features=[],
                           statistical_tests=tests, recommendation=f"Not enough data for multivariate drift: {reason}.",
                           status=Status.INSUFFICIENT_DATA, detected_at=detected_at)
    rng = np.random.default_rng(random_state)
    fit_rows = _sample(rng, len(reference), MAX_PCA_FIT_ROWS)
    encoder = _Encoder(reference.iloc[fit_rows], kinds, max_categories)
    tests: dict[str, Any] = {"summary": summary}
    if "pca" in methods:
        tests["pca"] = _pca_check(encoder, reference, current, fit_rows, variance_kept, threshold_sd, rng)
    if "domain_classifier" in methods:
        tests["domain_classifier"] = _domain_classifier_check(encoder, reference, current, classifier_rows, folds,
                                                              alpha, rng, random_state)
    severity = Severity.worst(Severity(tests[m]["severity"]) for m in methods)
    flagged = [m for m in methods if tests[m]["drifted"]]
    summary["flagged_by"] = flagged
    return DriftReport(drift_type=DriftType.MULTIVARIATE_DRIFT, severity=severity, affected_features=[],
                       statistical_tests=tests, recommendation=_recommendation(severity, flagged, tests),
                       status=Status.OK, detected_at=detected_at)


def _recommendation(severity: Severity, flagged: list[str], tests: dict[str, Any]) -> str:
    if severity is Severity.NONE:
        return "No multivariate drift: the features move together as in the reference."
    found = []
    if "pca" in flagged:
        found.append(f"PCA reconstruction error {tests['pca']['relative_change']:+.0%} vs the reference")
    if "domain_classifier" in flagged:
        found.append(f"a classifier tells current from reference rows with ROC AUC "
                     f"{tests['domain_classifier']['roc_auc']:.2f}")
    return (f"Multivariate drift ({severity.value}): {'; '.join(found)}. The joint distribution of the features "
            "changed (e.g. a correlation) even where each feature alone looks stable; check the feature pipeline "
            "and consider retraining on recent data.")
