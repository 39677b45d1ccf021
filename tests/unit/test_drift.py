"""Feature, prediction and concept drift: reference values, properties, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats
from scipy.spatial import distance
from self_learning.core.drift import JS_LADDER, PSI_LADDER, WASSERSTEIN_LADDER, CheckOutcome
from self_learning.core.drift.comparisons import (
    ASYMPTOTIC_KS_MIN_N_EFF,
    js_null_divergence,
    ks_asymptotic_p_value,
    psi_null_mean,
    wasserstein_null_mean,
)
from self_learning.domain import DriftType, Severity, Status
from self_learning.drift import (
    EFFECT_LADDER,
    DriftThresholds,
    compare_categorical,
    compare_numeric,
    detect_concept_drift,
    detect_feature_drift,
    detect_prediction_drift,
    population_stability_index,
)


@pytest.fixture
def rng():
    return np.random.default_rng(20261127)


# --- reference values -------------------------------------------------------------------------

@pytest.mark.parametrize(("n1", "n2"), [(50, 70), (3000, 1700), (20_000, 15_000)])
def test_numeric_comparison_equals_scipy(rng, n1, n2):
    ref = rng.standard_normal(n1)
    cur = rng.standard_normal(n2) * 1.1 + 0.05
    result = compare_numeric(ref, cur)
    ks = stats.ks_2samp(ref, cur)
    assert result.ks_statistic == pytest.approx(ks.statistic, abs=1e-12)
    assert result.p_value == pytest.approx(ks.pvalue, rel=1e-9, abs=1e-300)
    assert result.wasserstein == pytest.approx(stats.wasserstein_distance(ref, cur), rel=1e-9)
    assert result.wasserstein_norm == pytest.approx(result.wasserstein / ref.std(), rel=1e-12)
    assert result.mean_shift == pytest.approx(cur.mean() - ref.mean())


@pytest.mark.parametrize("n_eff", [ASYMPTOTIC_KS_MIN_N_EFF, 40_000])
def test_large_sample_ks_p_values_agree_with_kstwo_within_the_stated_bound(n_eff):
    """Kolmogorov's limit distribution (Stephens' correction) replaces kstwo from n_eff = 10,000:
    within 0.0015 absolute and 3 % relative (p > 1e-10) of it, 1/sqrt(n) tighter beyond."""
    scale = np.sqrt(ASYMPTOTIC_KS_MIN_N_EFF / n_eff)
    for statistic in np.linspace(0.01, 7.0, 25) / np.sqrt(n_eff):
        exact = stats.kstwo.sf(statistic, n_eff)
        fast = ks_asymptotic_p_value(statistic, n_eff)
        assert abs(fast - exact) <= 0.0015 * scale, (statistic, exact, fast)
        if exact > 1e-10:
            assert abs(fast - exact) <= 0.03 * exact, (statistic, exact, fast)
    below = ASYMPTOTIC_KS_MIN_N_EFF - 1  # kstwo itself below the limit
    assert ks_asymptotic_p_value(0.01, below) == pytest.approx(stats.kstwo.sf(0.01, below), rel=1e-12)


def test_a_million_rows_a_side_get_their_p_value_from_the_statistic_without_the_slow_path(rng):
    """1M vs 1M rows of one unshifted column (D ~ 0.001): p equals ks_2samp's within the bound."""
    ref, cur = rng.standard_normal(1_000_000), rng.standard_normal(1_000_000)
    result = compare_numeric(ref, cur)
    assert result.p_value == pytest.approx(stats.ks_2samp(ref, cur).pvalue, abs=0.0015 * np.sqrt(1 / 50))


def test_numeric_comparison_with_ties_equals_scipy(rng):
    for _ in range(50):
        ref = rng.integers(0, rng.integers(1, 15), rng.integers(1, 80)).astype(float)
        cur = rng.integers(0, rng.integers(1, 15), rng.integers(1, 80)).astype(float)
        result = compare_numeric(ref, cur)
        assert result.ks_statistic == pytest.approx(stats.ks_2samp(ref, cur).statistic, abs=1e-12)
        assert result.wasserstein == pytest.approx(stats.wasserstein_distance(ref, cur), abs=1e-12)


def test_psi_textbook_value():
    # shares 0.1/0.2/0.3/0.4 -> 0.2/0.2/0.3/0.3: 0.1 ln 2 + 0.1 ln(4/3)
    expected = 0.1 * np.log(2) + 0.1 * np.log(4 / 3)
    assert population_stability_index([10, 20, 30, 40], [20, 20, 30, 30], pseudo_count=0) == pytest.approx(expected)
    assert population_stability_index([5, 5], [5, 5]) == 0.0
    # default: half a count added to every bin
    e, a = np.array([10.5, 20.5, 30.5, 40.5]) / 102, np.array([20.5, 20.5, 30.5, 30.5]) / 102
    smoothed = np.sum((a - e) * np.log(a / e))
    assert population_stability_index([10, 20, 30, 40], [20, 20, 30, 30]) == pytest.approx(smoothed)


def test_psi_uses_reference_deciles(rng):
    ref = rng.standard_normal(10_000)
    cur = rng.standard_normal(10_000) + 0.5
    edges = np.quantile(ref, np.arange(1, 10) / 10, method="inverted_cdf")
    counts = [np.bincount(np.searchsorted(edges, x, side="left"), minlength=10) for x in (ref, cur)]
    assert compare_numeric(ref, cur).psi == pytest.approx(population_stability_index(*counts))


def test_categorical_comparison_equals_scipy():
    ref = ["a"] * 500 + ["b"] * 300 + ["c"] * 200 + ["d"] * 9 + ["e"] * 3
    cur = ["a"] * 400 + ["b"] * 350 + ["c"] * 240 + ["d"] * 1 + ["e"] * 2 + ["new"] * 10
    result = compare_categorical(ref, cur)
    # pooled totals e=5, d=10, new=10 are below 5 * 2015 / 1003 ~ 10.04: e+d form one group
    # (15) and the leftover 'new' (10) joins the smallest column large enough on its own (c)
    table = np.array([[500, 300, 200, 12], [400, 350, 250, 3]])
    expected = stats.chi2_contingency(table, correction=False)
    assert result.chi2 == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)
    assert result.dof == 3
    assert result.js_distance == pytest.approx(distance.jensenshannon(table[0] / 1012, table[1] / 1003, base=2))
    assert result.unseen_count == 10
    assert result.unseen_share == pytest.approx(10 / 1003)
    assert result.expected_unseen_share == 0  # no singletons in the reference
    # new | new + singletons ~ Binomial(10, n_cur / (n_ref + n_cur))
    assert result.unseen_p_value == pytest.approx(stats.binomtest(10, 10, 1003 / 2015, alternative="greater").pvalue)


def test_one_unseen_row_never_dominates_a_small_window(rng):
    ref = rng.choice(list("abc"), 100_000)
    cur = np.append(rng.choice(list("abc"), 19), "zzz")
    result = compare_categorical(ref, cur)
    assert result.p_value > 0.01  # the chi-squared part is not blown up by the new value
    # A value never seen in 100k rows is real evidence of something new; 1 row in 20 is a
    # 5% excess share, which rates "low" - never more.
    report = detect_feature_drift({"x": ref}, {"x": cur})
    checks = report.statistical_tests["features"]["x"]["checks"]
    assert checks["distribution"]["severity"] == "none"
    assert checks["unseen_categories"]["severity"] == "low"
    assert report.severity is Severity.LOW


def test_many_rare_categories_stay_testable():
    result = compare_categorical(np.repeat(list("abcdefghij"), 200), ["a"] * 40)
    assert result.categories_tested >= 2 and result.p_value < 1e-6
    assert detect_feature_drift({"x": np.repeat(list("abcdefghij"), 200)}, {"x": ["a"] * 40}).affected_features == ["x"]


def test_integer_codes_declared_categorical_survive_a_nan(rng):
    codes = rng.integers(0, 5, 3000)
    current = codes.astype(float)
    current[7] = np.nan
    report = detect_feature_drift({"cat_id": codes}, {"cat_id": current}, feature_kinds={"cat_id": "categorical"})
    assert report.affected_features == []
    assert report.statistical_tests["features"]["cat_id"]["statistics"]["unseen_count"] == 0


# --- properties -------------------------------------------------------------------------------

finite_floats = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
samples = arrays(np.float64, st.integers(1, 60), elements=finite_floats)


@pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful:RuntimeWarning")
@settings(max_examples=150, deadline=None)
@given(ref=samples, cur=samples, seed=st.integers(0, 2**32 - 1))
def test_numeric_comparison_properties(ref, cur, seed):
    result = compare_numeric(ref, cur)
    permuted = np.random.default_rng(seed)
    again = compare_numeric(permuted.permutation(ref), permuted.permutation(cur))
    assert again == result  # invariant to row order
    assert 0.0 <= result.p_value <= 1.0
    assert 0.0 <= result.ks_statistic <= 1.0
    assert result.psi >= 0.0
    assert result.wasserstein >= 0.0
    assert result.ks_statistic == pytest.approx(stats.ks_2samp(ref, cur).statistic, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(
    ref=st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=80),
    cur=st.lists(st.sampled_from("abcdefgxyz"), min_size=1, max_size=80),
)
def test_categorical_comparison_properties(ref, cur):
    result = compare_categorical(ref, cur)
    assert 0.0 <= result.p_value <= 1.0
    assert 0.0 <= result.js_distance <= 1.0
    assert 0.0 <= result.unseen_p_value <= 1.0
    assert compare_categorical(ref[::-1], cur[::-1]) == result


@settings(max_examples=60, deadline=None)
@given(
    ref=arrays(np.float64, st.integers(0, 40), elements=st.floats(allow_nan=True, allow_infinity=True, width=32)),
    cur=arrays(np.float64, st.integers(0, 40), elements=st.floats(allow_nan=True, allow_infinity=True, width=32)),
)
def test_feature_drift_never_crashes_on_nan_and_inf(ref, cur):
    report = detect_feature_drift({"x": ref}, {"x": cur})
    detail = report.statistical_tests["features"]["x"]
    assert detail["status"] in {"ok", "insufficient_data"}
    json.dumps(report.to_dict(), allow_nan=False)  # strictly JSON-serialisable


# --- decisions --------------------------------------------------------------------------------

def test_shift_is_flagged_with_severity_from_effect(rng):
    ref = pd.DataFrame({"spend": rng.standard_normal(5000), "ctr": rng.standard_normal(5000)})
    cur = pd.DataFrame({"spend": rng.standard_normal(5000) + 0.6, "ctr": rng.standard_normal(5000)})
    report = detect_feature_drift(ref, cur, detected_at=pd.Timestamp("2026-11-27", tz="UTC"))
    assert report.drift_type is DriftType.DATA_DRIFT
    assert report.affected_features == ["spend"]
    spend = report.statistical_tests["features"]["spend"]
    assert spend["checks"]["distribution"]["flagged"]
    assert report.severity is Severity.CRITICAL  # Wasserstein/std ~0.6 >= 0.5
    assert "spend" in report.recommendation
    assert report.to_dict()["detected_at"].startswith("2026-11-27")


def test_one_unseen_category_does_not_flag_but_twenty_percent_does(rng):
    cats = np.array(["feed", "story", "reel", "search"])
    ref = {"placement": rng.choice(cats, 10_000)}
    one_new = rng.choice(cats, 10_000).astype(object)
    one_new[17] = "brand_new"
    assert detect_feature_drift(ref, {"placement": one_new}).affected_features == []

    many_new = rng.choice(cats, 10_000).astype(object)
    many_new[:2000] = "brand_new"
    report = detect_feature_drift(ref, {"placement": many_new})
    assert report.affected_features == ["placement"]
    checks = report.statistical_tests["features"]["placement"]["checks"]
    assert checks["unseen_categories"]["flagged"]
    assert checks["unseen_categories"]["unseen_excess_share"] == pytest.approx(0.2)
    assert checks["unseen_categories"]["severity"] == "high"
    assert checks["distribution"]["flagged"]


def test_high_cardinality_feature_with_routine_new_values_is_not_flagged(rng):
    # Campaign ids: new ones appear every day; the reference has many singletons.
    ref = {"campaign": [f"c{i}" for i in rng.integers(0, 50_000, 5000)]}
    cur = {"campaign": [f"c{i}" for i in rng.integers(0, 50_000, 2000)]}
    assert detect_feature_drift(ref, cur).affected_features == []


def test_missing_rate_change_is_its_own_check(rng):
    ref = rng.standard_normal(5000)
    cur = rng.standard_normal(5000)
    cur[:1000] = np.nan
    report = detect_feature_drift({"cpm": ref}, {"cpm": cur})
    detail = report.statistical_tests["features"]["cpm"]
    assert detail["missing_rate_current"] == pytest.approx(0.2)
    assert detail["checks"]["missing_rate"]["flagged"]
    assert not detail["checks"]["distribution"]["flagged"]
    assert report.affected_features == ["cpm"]
    assert "missing" in report.recommendation


def test_constant_features(rng):
    same = detect_feature_drift({"x": np.ones(100)}, {"x": np.ones(100)})
    assert same.affected_features == [] and same.status is Status.OK
    moved = detect_feature_drift({"x": np.ones(100)}, {"x": np.full(100, 2.0)})
    assert moved.affected_features == ["x"]
    assert moved.statistical_tests["features"]["x"]["statistics"]["wasserstein_norm"] is None


def test_insufficient_data_is_a_status_not_drift(rng):
    report = detect_feature_drift({"x": rng.standard_normal(100)}, {"x": rng.standard_normal(5) + 10})
    assert report.status is Status.INSUFFICIENT_DATA
    assert report.severity is Severity.NONE
    assert report.statistical_tests["features"]["x"]["status"] == "insufficient_data"
    custom = detect_feature_drift({"x": rng.standard_normal(100)}, {"x": rng.standard_normal(5) + 10},
                                  thresholds=DriftThresholds(min_samples=3))
    assert custom.affected_features == ["x"]


def test_mixed_types_and_absent_features_get_a_status(rng):
    ref = {"spend": rng.standard_normal(200), "mixed": [1, "a", 2.5, None] * 50, "gone": rng.standard_normal(200)}
    cur_spend = rng.standard_normal(200).astype(object)
    cur_spend[3] = "oops"
    cur = {"spend": cur_spend, "mixed": [1, "a", 2.5, None] * 50, "new": rng.standard_normal(200)}
    features = detect_feature_drift(ref, cur).statistical_tests["features"]
    assert features["spend"]["status"] == "invalid"
    assert "non-numeric" in features["spend"]["reason"] and "'oops'" in features["spend"]["reason"]
    assert features["mixed"]["status"] == "ok" and features["mixed"]["kind"] == "categorical"
    assert features["gone"]["status"] == "invalid" and "current" in features["gone"]["reason"]
    assert features["new"]["status"] == "invalid" and "reference" in features["new"]["reason"]


def test_declared_kind_overrides_inference(rng):
    codes = {"hook_type": rng.integers(0, 4, 1000)}
    report = detect_feature_drift(codes, codes, feature_kinds={"hook_type": "categorical"})
    assert report.statistical_tests["features"]["hook_type"]["kind"] == "categorical"
    with pytest.raises(ValueError, match=r"feature_kinds\['hook_type'\]"):
        detect_feature_drift(codes, codes, feature_kinds={"hook_type": "ordinal"})


def test_prediction_drift(rng):
    ref = rng.gamma(2.0, 1.0, 4000)
    stable = detect_prediction_drift(ref, rng.gamma(2.0, 1.0, 4000))
    assert stable.severity is Severity.NONE and stable.affected_features == []
    shifted = detect_prediction_drift(ref, rng.gamma(2.0, 1.0, 4000) * 1.5)
    assert shifted.drift_type is DriftType.PREDICTION_DRIFT
    assert shifted.severity.at_least(Severity.MEDIUM)
    assert shifted.statistical_tests["mean_shift"] == pytest.approx(1.0, abs=0.15)
    assert "up" in shifted.recommendation


def test_concept_drift_regression(rng):
    y_ref, y_cur = rng.gamma(2.0, 1.5, 3000), rng.gamma(2.0, 1.5, 3000)
    pred_ref = y_ref + rng.normal(0, 0.5, 3000)
    same = detect_concept_drift(y_ref, pred_ref, y_cur, y_cur + rng.normal(0, 0.5, 3000))
    assert same.severity is Severity.NONE
    worse = detect_concept_drift(y_ref, pred_ref, y_cur, y_cur + rng.normal(0, 0.8, 3000))
    tests = worse.statistical_tests
    assert tests["metric"] == "mae"
    assert tests["pct_change"] == pytest.approx(60, abs=8)
    assert worse.severity is Severity.CRITICAL
    better = detect_concept_drift(y_ref, pred_ref, y_cur, y_cur + rng.normal(0, 0.2, 3000))
    assert better.severity is Severity.NONE and "improved" in better.recommendation


def test_concept_drift_p_values_equal_scipy(rng):
    y = rng.normal(size=500)
    p_ref, p_cur = y + rng.normal(0, 1, 500), y + rng.normal(0, 1.2, 500)
    tests = detect_concept_drift(y, p_ref, y, p_cur).statistical_tests
    loss_ref, loss_cur = np.abs(p_ref - y), np.abs(p_cur - y)
    welch = stats.ttest_ind(loss_cur, loss_ref, equal_var=False)
    assert tests["welch_t_test"]["p_value"] == pytest.approx(welch.pvalue)
    assert tests["mann_whitney_u"]["p_value"] == pytest.approx(stats.mannwhitneyu(loss_cur, loss_ref).pvalue)


def test_concept_drift_classification_uses_log_loss(rng):
    y = rng.integers(0, 2, 4000).astype(float)
    good = np.clip(np.where(y == 1, 0.8, 0.2) + rng.normal(0, 0.05, 4000), 0.01, 0.99)
    bad = np.clip(np.where(y == 1, 0.6, 0.4) + rng.normal(0, 0.05, 4000), 0.01, 0.99)
    report = detect_concept_drift(y, good, y, bad, task_kind="binary_classification")
    assert report.statistical_tests["metric"] == "log_loss"
    assert report.severity is Severity.CRITICAL


def test_hard_label_classifier_concept_drift_is_bounded(rng):
    """Issue 15: a hard-label classifier (0/1 predictions, no score) whose reference window had no
    mistake showed a log-loss change of +1.9e17 % (log loss of 2e-16 per right row). It is compared
    on the 0/1 loss; a percentage against a zero reference is "not comparable", never absurd."""
    y_ref, y_cur = rng.integers(0, 2, 500).astype(float), rng.integers(0, 2, 500).astype(float)
    pred_cur = y_cur.copy()
    pred_cur[:40] = 1 - pred_cur[:40]  # 8 % of the current predictions are wrong
    report = detect_concept_drift(y_ref, y_ref.copy(), y_cur, pred_cur, task_kind="binary_classification")
    tests = report.to_dict()["statistical_tests"]
    json.dumps(tests, allow_nan=False)
    assert tests["metric"] == "zero_one_loss" and tests["hard_labels"]
    assert tests["reference_value"] == 0.0 and tests["current_value"] == pytest.approx(0.08)
    assert tests["pct_change"] is None and tests["comparable"] is False
    assert report.severity is Severity.CRITICAL  # significant, and infinitely many times the reference
    assert "e+" not in report.recommendation and "inf" not in report.recommendation
    assert "not comparable" in report.recommendation
    # Errors on both sides: a bounded percentage of the 0/1 loss.
    pred_ref = y_ref.copy()
    pred_ref[:20] = 1 - pred_ref[:20]
    both = detect_concept_drift(y_ref, pred_ref, y_cur, pred_cur, task_kind="binary_classification")
    assert both.statistical_tests["pct_change"] == pytest.approx(100.0)
    # One window of scores and one of labels: both compared as labels (scores cut at 0.5).
    scores = np.clip(y_ref * 0.7 + 0.15, 0, 1)
    mixed = detect_concept_drift(y_ref, scores, y_cur, pred_cur, task_kind="binary_classification")
    assert mixed.statistical_tests["metric"] == "zero_one_loss" and mixed.statistical_tests["reference_value"] == 0.0


# --- effect thresholds that scale with the sample (issue 15) ----------------------------------

def test_the_null_means_match_simulation(rng):
    """PSI, Wasserstein and JS each lose their mean under no drift; the formulas agree with 300 draws."""
    refs = [np.sort(rng.lognormal(0, 1.0, 2_000)) for _ in range(300)]
    runs = [compare_numeric(ref, rng.lognormal(0, 1.0, 400)) for ref in refs]
    first = runs[0].to_dict()
    assert first["psi_bins"] == 10
    assert first["psi_excess"] == max(0.0, first["psi"] - psi_null_mean(10, 2_000, 400))
    assert first["wasserstein_null"] == pytest.approx(wasserstein_null_mean(refs[0], 400) / refs[0].std())
    assert np.mean([r.psi for r in runs]) == pytest.approx(psi_null_mean(10, 2_000, 400), rel=0.1)
    null_mean = np.mean([r.wasserstein_null for r in runs])
    assert np.mean([r.wasserstein_norm for r in runs]) == pytest.approx(null_mean, rel=0.1)
    assert np.mean([r.wasserstein_excess for r in runs]) < 0.5 * null_mean
    cats, shares = np.array(list("abcdefgh")), [0.3, 0.2, 0.15, 0.1, 0.1, 0.05, 0.05, 0.05]
    js = [compare_categorical(rng.choice(cats, 1_500, p=shares), rng.choice(cats, 500, p=shares)) for _ in range(300)]
    assert np.mean([c.js_distance ** 2 for c in js]) == pytest.approx(js_null_divergence(8, 1_500, 500), rel=0.1)
    assert js[0].js_excess == pytest.approx(np.sqrt(max(0.0, js[0].js_distance ** 2 - js[0].js_null)))


def test_a_008_sigma_shift_on_thousands_of_rows_is_reported_and_noise_is_not(rng):
    """The old fixed 0.1 gate hid real 0.08-0.098 sigma shifts; Wasserstein beyond its noise rates them low."""
    ref = pd.DataFrame({"spend": rng.standard_normal(20_000), "ctr": rng.standard_normal(20_000)})
    cur = pd.DataFrame({"spend": rng.standard_normal(20_000) + 0.08, "ctr": rng.standard_normal(20_000)})
    report = detect_feature_drift(ref, cur)
    assert report.affected_features == ["spend"] and report.severity is Severity.LOW
    check = report.statistical_tests["features"]["spend"]["checks"]["distribution"]
    assert check["wasserstein_excess"] == pytest.approx(0.08, abs=0.015) and check["psi_excess"] < 0.1
    predictions = detect_prediction_drift(ref["spend"], cur["spend"])
    assert predictions.severity is Severity.LOW and predictions.statistical_tests["wasserstein_excess"] > 0.05
    # Many rare categories: the raw JS distance of pure noise passes 0.1, the excess does not.
    weights = 1 / np.arange(1, 2_001)
    labels = np.array([f"v{i}" for i in range(2_000)])
    noise = compare_categorical(rng.choice(labels, 5_000, p=weights / weights.sum()),
                                rng.choice(labels, 5_000, p=weights / weights.sum()))
    assert noise.js_distance > JS_LADDER.low > noise.js_excess


def test_the_numeric_severity_is_the_worse_of_its_two_effects():
    assert (WASSERSTEIN_LADDER.low, PSI_LADDER.low, JS_LADDER.low) == (0.05, 0.1, 0.1)
    assert EFFECT_LADDER == JS_LADDER  # the old name still imports
    outcome = CheckOutcome(1e-6, "wasserstein_excess", 0.06, WASSERSTEIN_LADDER,
                           also=(("psi_excess", 0.35, PSI_LADDER),))
    assert outcome.severity() is Severity.HIGH
    assert outcome.effects == {"wasserstein_excess": 0.06, "psi_excess": 0.35}
    assert CheckOutcome(1e-6, "wasserstein_excess", None, WASSERSTEIN_LADDER,
                        also=(("psi_excess", 0.0, PSI_LADDER),)).severity() is Severity.NONE


# --- bad input --------------------------------------------------------------------------------

def test_bad_input_names_the_field():
    with pytest.raises(ValueError, match="reference: needs at least 1"):
        compare_numeric([], [1.0])
    with pytest.raises(ValueError, match="current: non-numeric value 'x'"):
        compare_numeric([1.0, 2.0], ["1", "x"])
    with pytest.raises(ValueError, match="current_predicted: non-finite"):
        detect_prediction_drift(np.ones(20), [1.0] * 19 + [np.nan])
    with pytest.raises(ValueError, match="actual, predicted: lengths differ"):
        detect_concept_drift([1, 2, 3], [1, 2], [1], [1])
    with pytest.raises(ValueError, match="actual: a classifier's outcomes must be 0 or 1"):
        detect_concept_drift([0, 2], [0.1, 0.2], [0, 1], [0.1, 0.2], task_kind="binary_classification")
    with pytest.raises(ValueError, match="alpha"):
        DriftThresholds(alpha=1.5)


def test_empty_windows_are_insufficient_not_errors():
    assert detect_prediction_drift([], []).status is Status.INSUFFICIENT_DATA
    assert detect_concept_drift([], [], [], []).status is Status.INSUFFICIENT_DATA
    assert detect_feature_drift({}, {}).status is Status.INSUFFICIENT_DATA
    all_nan = detect_feature_drift({"x": [np.nan] * 50}, {"x": [np.nan] * 50})
    assert all_nan.status is Status.INSUFFICIENT_DATA


def test_column_kinds_follow_the_dtype(rng):
    stamps = pd.Series(pd.date_range("2026-10-01", periods=500, freq="h", tz="UTC"))
    ref = pd.DataFrame({
        "served": stamps,
        "creative": pd.Series(rng.integers(0, 4, 500)).astype("category"),
        "is_video": rng.random(500) < 0.5,
        "budget": pd.array(rng.integers(1, 100, 500), dtype="Int64"),
    })
    later = ref.assign(served=stamps + pd.Timedelta(days=30))
    features = detect_feature_drift(ref, later).statistical_tests["features"]
    assert features["served"]["kind"] == "numeric" and features["served"]["drifted"]
    assert features["creative"]["kind"] == "categorical"
    assert features["is_video"]["kind"] == "categorical"
    assert features["budget"]["kind"] == "numeric" and not features["budget"]["drifted"]
    as_numbers = detect_feature_drift(ref, ref, feature_kinds={"is_video": "numeric"})
    assert as_numbers.statistical_tests["features"]["is_video"]["status"] == "ok"


def test_malformed_frames_are_named():
    with pytest.raises(ValueError, match=r"duplicate column names \['x'\]"):
        detect_feature_drift(pd.DataFrame([[1, 2]], columns=["x", "x"]), {"x": [1]})
    with pytest.raises(ValueError, match="clash"):
        detect_feature_drift({0: [1.0] * 20}, {"0": [1.0] * 20})
    scalar = detect_feature_drift({"x": 1.0}, {"x": 2.0})
    assert scalar.statistical_tests["features"]["x"]["status"] == "insufficient_data"


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_span_beyond_the_float_range():
    result = compare_numeric([-1e308] * 20, [1e308] * 20)
    assert result.ks_statistic == 1.0
    assert result.wasserstein == stats.wasserstein_distance([-1e308] * 20, [1e308] * 20) == np.inf


def test_psi_is_not_noise_on_tiny_windows(rng):
    psis = [compare_numeric(rng.standard_normal(10_000), rng.standard_normal(20)).psi for _ in range(200)]
    assert np.median(psis) < 0.1  # with 10 bins and a 1e-4 floor it was ~1
