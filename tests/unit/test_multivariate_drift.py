"""Multivariate drift against issue 19's targets, by seeded simulation.

- Correlation-only change (two features' correlation 0.8 -> 0, marginals unchanged): reported by the
  PCA reconstruction error and by the domain classifier, while the per-feature ``detect_feature_drift``
  flags neither feature.
- Stable windows: the false-alarm rate per window is bounded through the one-sided 95 %
  Clopper-Pearson bound (``support.stats``): both methods over 50 windows (claim: <= 6 % a window,
  which needs 0 alarms in 50), the PCA check alone over 150 windows (claim: <= 3.5 %).
- Too few rows give ``insufficient_data``; bad input raises naming the field.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import sklearn.ensemble  # noqa: F401  (loads OpenMP, so that threadpool_limits below reaches it)
from self_learning.core.types import DriftType, Severity, Status
from self_learning.drift import detect_feature_drift, detect_multivariate_drift
from support.stats import rate_upper_bound
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def _one_thread():
    """The domain classifier's OpenMP threads spin on a shared 2-core machine: one thread is faster."""
    with threadpool_limits(limits=1):
        yield


def _window(rng, rows: int, correlation: float) -> pd.DataFrame:
    """Six features: x1, x2 standard normal with the given correlation (marginals never change), three
    independent others (one skewed) and a categorical one."""
    z = rng.standard_normal((rows, 2))
    return pd.DataFrame({
        "x1": z[:, 0], "x2": correlation * z[:, 0] + np.sqrt(1 - correlation ** 2) * z[:, 1],
        "x3": rng.standard_normal(rows), "x4": rng.gamma(2.0, 1.0, rows), "x5": rng.standard_normal(rows),
        "channel": rng.choice(np.array(["search", "social", "video"]), rows, p=[0.5, 0.3, 0.2]),
    })


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_broken_correlation_is_multivariate_drift_and_invisible_to_the_univariate_checks(seed):
    rng = np.random.default_rng(seed)
    reference, current = _window(rng, 5_000, 0.8), _window(rng, 2_000, 0.0)
    report = detect_multivariate_drift(reference, current, random_state=seed)
    assert report.drift_type is DriftType.MULTIVARIATE_DRIFT and report.status is Status.OK
    pca, classifier = report.statistical_tests["pca"], report.statistical_tests["domain_classifier"]
    assert pca["drifted"] and pca["relative_change"] > 0.1, pca
    assert classifier["drifted"] and classifier["roc_auc"] > 0.6, classifier
    assert report.severity.at_least(Severity.MEDIUM)
    assert "Multivariate drift" in report.recommendation
    univariate = detect_feature_drift(reference, current)
    assert not {"x1", "x2"} & set(univariate.affected_features), univariate.affected_features
    json.dumps(report.to_dict())


@pytest.mark.slow
def test_stable_windows_raise_no_multivariate_alarm():
    rng = np.random.default_rng(20)
    reference = _window(rng, 2_000, 0.8)
    alarms = sum(detect_multivariate_drift(reference, _window(rng, 200, 0.8), random_state=i).drift_detected
                 for i in range(50))
    assert rate_upper_bound(alarms, 50) <= 0.06, f"{alarms} alarms in 50 stable windows"


def test_stable_windows_keep_the_pca_check_quiet():
    rng = np.random.default_rng(21)
    reference = _window(rng, 3_000, 0.8)
    reports = [detect_multivariate_drift(reference, _window(rng, 500, 0.8), methods=("pca",)) for _ in range(150)]
    alarms = sum(r.drift_detected for r in reports)
    assert rate_upper_bound(alarms, 150) <= 0.035, f"{alarms} PCA alarms in 150 stable windows"
    assert max(abs(r.statistical_tests["pca"]["relative_change"]) for r in reports) < 0.1


def test_a_strengthened_correlation_lowers_the_reconstruction_error():
    rng = np.random.default_rng(22)
    report = detect_multivariate_drift(_window(rng, 5_000, 0.3), _window(rng, 2_000, 0.95), methods=("pca",))
    assert report.statistical_tests["pca"]["relative_change"] < 0 and report.drift_detected


def test_too_few_rows_give_insufficient_data():
    rng = np.random.default_rng(23)
    report = detect_multivariate_drift(_window(rng, 2_000, 0.8), _window(rng, 50, 0.0))
    assert report.status is Status.INSUFFICIENT_DATA and report.severity is Severity.NONE
    assert report.statistical_tests["pca"]["status"] == "insufficient_data"


@pytest.mark.parametrize(("change", "kwargs", "message"), [
    (lambda r, c: (r, c.drop(columns="x2")), {}, r"current\.x2: missing column"),
    (lambda r, c: (r.assign(x1="a"), c), {"feature_kinds": {"x1": "numeric"}}, r"reference\.x1: non-numeric"),
    (lambda r, c: (r, c), {"feature_kinds": {"x1": "ordinal"}}, r"feature_kinds\['x1'\]"),
    (lambda r, c: (r, c), {"methods": ("pca", "kl")}, "methods"),
    (lambda r, c: (r, c), {"variance_kept": 1.5}, "variance_kept"),
    (lambda r, c: (r, c), {"folds": 1}, "folds"),
    (lambda r, c: (r, c.to_numpy()), {}, "current: expected a pandas DataFrame"),
])
def test_bad_input_names_the_field(change, kwargs, message):
    rng = np.random.default_rng(24)
    reference, current = change(_window(rng, 400, 0.8), _window(rng, 300, 0.8))
    with pytest.raises(ValueError, match=message):
        detect_multivariate_drift(reference, current, **kwargs)


def test_large_windows_are_scored_on_capped_samples(monkeypatch):
    """The caps that bound the cost at a million rows (``MAX_PCA_ROWS`` rows scored a window, a seeded
    sample of the current one), shrunk so that a small window takes the same path."""
    from self_learning.core.drift import multivariate

    monkeypatch.setattr(multivariate, "MAX_PCA_ROWS", 2_000)
    monkeypatch.setattr(multivariate, "MAX_PCA_FIT_ROWS", 3_000)
    rng = np.random.default_rng(25)
    reference = _window(rng, 8_000, 0.8)
    broken = detect_multivariate_drift(reference, _window(rng, 5_000, 0.0), methods=("pca",))
    stable = detect_multivariate_drift(reference, _window(rng, 5_000, 0.8), methods=("pca",))
    assert broken.statistical_tests["pca"]["current_rows_scored"] == 2_000
    assert broken.drift_detected and not stable.drift_detected
    assert abs(stable.statistical_tests["pca"]["z"]) < 3
