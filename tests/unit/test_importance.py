"""Feature weights, permutation importance and trends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from self_learning.domain import Status
from self_learning.importance import importance_trends, permutation_weights, update_feature_weights
from self_learning.training import default_trainer, fit

KINDS = {"spend": "numeric", "noise": "numeric", "platform": "categorical", "hook": "categorical"}


def _frame(n: int = 4000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"spend": rng.lognormal(5, 1, n), "noise": rng.normal(size=n),
                          "platform": rng.choice(["meta", "tiktok", "google"], n),
                          "hook": rng.choice(["a", "b", "c", "d"], n)})
    y = np.log(frame["spend"]) + frame["platform"].map({"meta": 0.0, "tiktok": 1.0, "google": -1.0}) \
        + rng.normal(0, 0.5, n)
    return frame, y.to_numpy()


def test_weights_rank_the_features_that_drive_the_outcome_and_sum_to_one():
    frame, y = _frame()
    weights = update_feature_weights(frame, y, feature_kinds=KINDS)
    by_name = {w.feature: w for w in weights.weights}
    assert sum(w.weight for w in weights.weights) == pytest.approx(1.0)
    assert {w.feature for w in weights.weights[:2]} == {"spend", "platform"}
    assert by_name["noise"].weight < 0.05 and by_name["hook"].weight < 0.05
    assert by_name["spend"].method == "spearman" and by_name["platform"].method == "correlation_ratio"
    assert by_name["spend"].association == pytest.approx(abs(stats.spearmanr(frame["spend"], y).statistic))
    groups = [y[frame["platform"] == p] for p in ("meta", "tiktok", "google")]
    assert by_name["platform"].p_value == pytest.approx(stats.f_oneway(*groups).pvalue, abs=1e-12)
    assert by_name["spend"].p_value < 1e-10 and by_name["noise"].p_value > 1e-3


def test_missing_values_are_left_out_per_feature_and_small_windows_are_insufficient():
    frame, y = _frame(n=500)
    frame.loc[:99, "spend"] = np.nan
    frame.loc[:49, "platform"] = None
    weights = {w.feature: w for w in update_feature_weights(frame, y, feature_kinds=KINDS).weights}
    assert (weights["spend"].sample_count, weights["platform"].sample_count) == (400, 450)
    assert update_feature_weights(frame.head(5), y[:5], feature_kinds=KINDS).status is Status.INSUFFICIENT_DATA
    with pytest.raises(ValueError, match="outcome"):
        update_feature_weights(frame, y[:10], feature_kinds=KINDS)


def test_permutation_importance_of_a_fitted_model():
    frame, y = _frame(n=3000)
    rows = frame.assign(actual_value=y)
    model = fit(default_trainer("regression", KINDS), rows, KINDS)
    importance = permutation_weights(model, rows, KINDS, "regression", repeats=3)
    assert importance["spend"]["mean"] > importance["platform"]["mean"] > 10 * max(importance["noise"]["mean"], 1e-4)


def test_trends_give_the_slope_per_30_days():
    start = datetime(2026, 8, 1, tzinfo=UTC)
    history = [("spend", start + timedelta(days=7 * k), 0.2 + 0.01 * k) for k in range(6)]
    history += [("noise", start, 0.1), ("noise", start + timedelta(days=7), 0.1)]
    trends = {t.feature: t for t in importance_trends(history)}
    assert trends["spend"].slope_per_30_days == pytest.approx(0.01 / 7 * 30)
    assert trends["noise"].slope_per_30_days is None and len(trends["noise"].points) == 2


HOOKS = ("question", "statistic", "story", "offer", "testimonial")


def _class_frame(n: int = 4000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A class outcome driven by spend (skewed) and platform; noise and hook unrelated."""
    frame, _ = _frame(n, seed)
    rng = np.random.default_rng(seed + 1)
    logits = np.column_stack([(np.log(frame["spend"]) - 5) * (j - 2) * 0.6 for j in range(len(HOOKS))])
    logits[:, 3] += np.where(frame["platform"] == "tiktok", 2.0, 0.0)
    logits += rng.gumbel(size=logits.shape)
    return frame, np.asarray(HOOKS, dtype=object)[logits.argmax(axis=1)]


def test_a_class_outcome_is_weighed_by_rank_correlation_ratio_and_cramers_v():
    frame, classes = _class_frame()
    # read as numbers, a class label is missing on every row: no association at all
    assert all(w.association is None for w in update_feature_weights(frame, classes, feature_kinds=KINDS).weights)
    weights = update_feature_weights(frame, classes, feature_kinds=KINDS, task_kind="multiclass_classification")
    by_name = {w.feature: w for w in weights.weights}
    assert sum(w.weight for w in weights.weights) == pytest.approx(1.0)
    assert [w.feature for w in weights.weights[:2]] == ["spend", "platform"]
    # unrelated features: η² of 5 groups is biased up by about 4 / n, so their weights are small, not 0
    assert by_name["noise"].weight < 0.1 and by_name["hook"].weight < 0.1
    assert (by_name["spend"].method, by_name["platform"].method) == ("rank_correlation_ratio", "cramers_v")
    # η² of the ranks is Kruskal-Wallis' H / (n - 1) (no ties); V from the χ² of the table
    h = stats.kruskal(*(frame["spend"][classes == c] for c in HOOKS)).statistic
    assert by_name["spend"].association == pytest.approx(np.sqrt(h / (len(frame) - 1)))
    table = pd.crosstab(frame["platform"], classes)
    chi2, p_value, _, _ = stats.chi2_contingency(table, correction=False)
    assert by_name["platform"].association == pytest.approx(np.sqrt(chi2 / (len(frame) * 2)))
    assert by_name["platform"].p_value == pytest.approx(p_value)
    assert by_name["spend"].p_value < 1e-10 and by_name["noise"].p_value > 1e-3


def test_permutation_importance_of_a_multiclass_model_leaves_out_classes_it_never_saw():
    frame, classes = _class_frame(n=3000)
    rows = frame.assign(actual_label=classes).iloc[1500:]  # scored on rows it was not fitted to
    trained = frame.assign(actual_label=classes).iloc[:1500]
    trained = trained[trained["actual_label"] != "testimonial"]
    model = fit(default_trainer("multiclass_classification", KINDS), trained, KINDS, target="actual_label")
    assert "testimonial" in set(rows["actual_label"])  # the window has a class the model has not
    importance = permutation_weights(model, rows, KINDS, "multiclass_classification", repeats=3)
    assert importance["spend"]["mean"] > importance["platform"]["mean"] > 10 * max(importance["noise"]["mean"], 1e-4)
