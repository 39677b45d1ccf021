"""Error distribution and systematic errors by segment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from self_learning.domain import Status
from self_learning.error_analysis import analyze_error_distribution, identify_systematic_errors
from support.stats import rate_upper_bound


def test_distribution_statistics_equal_scipy():
    rng = np.random.default_rng(11)
    errors = rng.standard_t(5, 400)
    result = analyze_error_distribution(errors)
    assert result.mean == pytest.approx(errors.mean())
    assert result.median == pytest.approx(np.median(errors))
    assert result.std == pytest.approx(errors.std(ddof=1))
    assert result.percentiles["p90"] == pytest.approx(np.percentile(errors, 90))
    assert set(result.percentiles) == {"p25", "p50", "p75", "p90", "p95"}
    assert result.skewness == pytest.approx(stats.skew(errors))
    assert result.kurtosis == pytest.approx(stats.kurtosis(errors))
    assert result.normality_test == "shapiro_wilk"
    assert result.normality_p_value == pytest.approx(stats.shapiro(errors).pvalue)
    assert result.bias_p_value == pytest.approx(stats.ttest_1samp(errors, 0).pvalue)


def test_large_samples_use_dagostino_pearson():
    errors = np.random.default_rng(2).normal(0.3, 1, 6000)
    result = analyze_error_distribution(errors)
    assert result.normality_test == "dagostino_pearson"
    assert result.normality_p_value == pytest.approx(stats.normaltest(errors).pvalue)
    assert result.systematic_bias  # mean 0.3 at n = 6000


def test_degenerate_error_samples():
    assert analyze_error_distribution([0.1, 0.2]).status is Status.INSUFFICIENT_DATA
    constant = analyze_error_distribution([0.5] * 20)
    assert constant.status is Status.OK and constant.skewness is None and constant.systematic_bias
    assert analyze_error_distribution([0.0] * 20).systematic_bias is False
    with pytest.raises(ValueError, match="errors: non-finite"):
        analyze_error_distribution([0.1, np.inf, 0.3])


def _segment_data(seed: int, bias_in_story: float):
    rng = np.random.default_rng(seed)
    n = 3000
    features = pd.DataFrame({
        "placement": rng.choice(["feed", "story", "reel", "search"], n),
        "spend": rng.lognormal(3, 1, n),
        "audience": rng.integers(1_000, 1_000_000, n),
    })
    errors = rng.normal(0, 1, n) + np.where(features["placement"] == "story", bias_in_story, 0.0)
    return features, errors


def test_systematic_error_in_one_segment_is_found_alone():
    features, errors = _segment_data(5, bias_in_story=0.6)
    assert [(p.feature, p.bucket) for p in identify_systematic_errors(features, errors).patterns] == [
        ("placement", "story")]
    result = identify_systematic_errors(features, errors, winsorize=0.0)  # the raw errors: scipy's tests
    assert [(p.feature, p.bucket) for p in result.patterns] == [("placement", "story")]
    pattern = result.patterns[0]
    story = errors[features["placement"] == "story"]
    assert pattern.sample_count == story.size
    rest = errors[features["placement"] != "story"]
    assert pattern.p_value_zero == pytest.approx(stats.ttest_1samp(story, 0).pvalue)
    assert pattern.p_value_rest == pytest.approx(stats.ttest_ind(story, rest, equal_var=False).pvalue)
    assert pattern.p_value == max(pattern.p_value_zero, pattern.p_value_rest)
    assert pattern.mean_error == pytest.approx(story.mean())
    assert pattern.deviation == pytest.approx(story.mean() - rest.mean())
    assert pattern.direction == "over-prediction"
    assert result.buckets_tested == 4 + 5 + 5  # categories + quantile bins of two numeric features


def test_global_bias_alone_is_not_a_segment_pattern():
    features, errors = _segment_data(6, bias_in_story=0.0)
    result = identify_systematic_errors(features, errors + 0.8)
    assert result.patterns == []
    assert result.overall_mean_error == pytest.approx(errors.mean() + 0.8)


def test_a_proportional_global_bias_is_a_recalibration_not_a_segment_pattern():
    """Outcomes that run 10 % low for every row make a regressor over-predict in proportion to its
    prediction: the high-prediction category deviates from the rest. Given the predictions, the
    errors are relative to them, so it is one global bias; a segment's own bias is still found, and
    alone (residuals from a global line made a second segment report the opposite bias)."""
    rng = np.random.default_rng(11)

    def window(n, outcome_level, story_bias=0.0):
        placement = rng.choice(["feed", "story", "reel"], n)
        level = pd.Series(placement).map({"feed": 1.0, "story": 1.6, "reel": 1.3}).to_numpy()
        predicted = level * rng.lognormal(0, 0.5, n)  # other features: the categories' predictions overlap
        actual = predicted * outcome_level * rng.lognormal(-0.02, 0.2, n) - np.where(placement == "story",
                                                                                      story_bias, 0.0)
        return pd.DataFrame({"placement": placement}), predicted - actual, predicted

    base_features, base_errors, base_predicted = window(20_000, 1.0)
    features, errors, predicted = window(3_000, 0.9)
    kwargs = dict(alpha=0.0038, reference_features=base_features, reference_errors=base_errors)
    assert "story" in [p.bucket for p in identify_systematic_errors(features, errors, **kwargs).patterns]
    assert identify_systematic_errors(features, errors, predicted=predicted, reference_predicted=base_predicted,
                                      **kwargs).patterns == []
    features, errors, predicted = window(3_000, 0.9, story_bias=0.4)
    found = identify_systematic_errors(features, errors, predicted=predicted, reference_predicted=base_predicted,
                                       **kwargs)
    assert [(p.bucket, p.direction) for p in found.patterns] == [("story", "over-prediction")]
    with pytest.raises(ValueError, match="length mismatch: predicted=2, errors=3000"):
        identify_systematic_errors(features, errors, predicted=[1.0, 2.0])


@pytest.mark.slow
def test_no_pattern_without_systematic_error():
    """BH keeps false discoveries rare: at most alpha = 5 % of runs without any segment effect
    report a pattern, shown with 95 % confidence over 1,000 runs (about 3 % are observed)."""
    runs = 1_000
    found = sum(bool(identify_systematic_errors(*_segment_data(seed, 0.0)).patterns) for seed in range(runs))
    assert rate_upper_bound(found, runs) <= 0.05, f"{found} of {runs} runs report a pattern"


def test_missing_values_get_their_own_bucket_and_bad_input_is_named():
    features = pd.DataFrame({"cpm": [1.0, np.nan] * 100})
    errors = np.where(features["cpm"].isna(), 1.0, 0.0) + np.random.default_rng(0).normal(0, 0.1, 200)
    result = identify_systematic_errors(features, errors, min_bucket_size=30)
    assert [(p.feature, p.bucket) for p in result.patterns] == [("cpm", "missing")]
    with pytest.raises(ValueError, match="length mismatch: features=200, errors=3"):
        identify_systematic_errors(features, [1.0, 2.0, 3.0])
    assert identify_systematic_errors(features.head(10), errors[:10]).status is Status.INSUFFICIENT_DATA


def test_binary_and_discrete_features_get_one_bucket_per_value():
    rng = np.random.default_rng(8)
    is_mobile = (rng.random(2000) < 0.3).astype(int)
    errors = rng.normal(0, 1, 2000) + 1.0 * is_mobile
    result = identify_systematic_errors({"is_mobile": is_mobile}, errors)
    assert [(p.feature, p.bucket) for p in result.patterns] == [("is_mobile", "1")]
    nullable = pd.Series(is_mobile.astype(bool), dtype="boolean")
    result = identify_systematic_errors(pd.DataFrame({"is_mobile": nullable}), errors)
    assert [(p.feature, p.bucket) for p in result.patterns] == [("is_mobile", "True")]


def test_coded_categories_and_plain_text_give_the_same_patterns():
    rng = np.random.default_rng(5)
    n = 4000
    platform = rng.choice(["meta", "tiktok", "google"], n)
    errors = rng.normal(0, 1, n) + np.where(platform == "tiktok", 0.6, 0.0)
    spend = rng.lognormal(3, 1, n)
    plain = identify_systematic_errors(pd.DataFrame({"platform": platform, "spend": spend}), errors)
    coded = identify_systematic_errors(pd.DataFrame({"platform": pd.Categorical(platform), "spend": spend}), errors)
    assert plain == coded
    assert [(p.feature, p.bucket) for p in coded.patterns][:1] == [("platform", "tiktok")]


def test_welch_from_totals_matches_scipy_on_the_rows():
    rng = np.random.default_rng(6)
    segment = rng.random(3000) < 0.2
    errors = rng.normal(5.0, 1.0, 3000) + np.where(segment, 0.5, 0.0)  # far from 0: tests the centring
    result = identify_systematic_errors(pd.DataFrame({"flag": np.where(segment, "yes", "no")}), errors)
    pattern = next(p for p in result.patterns if p.bucket == "yes")
    expected = stats.ttest_ind(errors[segment], errors[~segment], equal_var=False).pvalue
    assert pattern.p_value_rest == pytest.approx(expected, rel=1e-6)
    assert pattern.p_value_zero == pytest.approx(stats.ttest_1samp(errors[segment], 0.0).pvalue, rel=1e-6, abs=1e-300)


def test_error_histogram_counts_every_error_with_the_tails_in_the_edge_bins():
    rng = np.random.default_rng(3)
    errors = np.concatenate([rng.normal(0, 1, 5000), [50.0, -80.0]])
    histogram = analyze_error_distribution(errors).histogram
    assert sum(histogram["counts"]) == errors.size and len(histogram["edges"]) == len(histogram["counts"]) + 1
    assert -3.5 < histogram["edges"][0] < -2 and 2 < histogram["edges"][-1] < 3.5
    assert analyze_error_distribution([1.0, 1.0, 1.0]).histogram == {"edges": [1.0, 1.0], "counts": [3]}


def _hard_label_window(rng, rows: int, *, flipped_placement: str | None = None):
    """A classifier serving 0/1 (P(y=1|x) thresholded at 0.5, positives ~30 %): it under-predicts
    where P < 0.5 and over-predicts above, in every window. ``flipped_placement``: there the labels
    of 30 % of the rows are flipped (a real new error)."""
    features = pd.DataFrame({"score_input": rng.standard_normal(rows),
                             "placement": rng.choice(["feed", "story", "reel"], rows)})
    p = 1 / (1 + np.exp(-(2.0 * features["score_input"].to_numpy() - 1.2)))
    actual = (rng.random(rows) < p).astype(float)
    if flipped_placement is not None:
        flip = (features["placement"].to_numpy() == flipped_placement) & (rng.random(rows) < 0.3)
        actual[flip] = 1 - actual[flip]
    return features, (p >= 0.5).astype(float) - actual


def test_a_segment_the_baseline_shows_as_much_is_the_models_shape_and_not_reported():
    rng = np.random.default_rng(8)
    base_features, base_errors = _hard_label_window(rng, 30_000)
    features, errors = _hard_label_window(rng, 7_000)
    alone = identify_systematic_errors(features, errors, alpha=0.0038)
    assert {p.feature for p in alone.patterns} == {"score_input"}  # the thresholding's shape, every window
    judged = identify_systematic_errors(features, errors, alpha=0.0038, reference_features=base_features,
                                        reference_errors=base_errors)
    assert judged.patterns == []
    assert judged.buckets_tested == alone.buckets_tested

    features, errors = _hard_label_window(rng, 7_000, flipped_placement="story")
    new = identify_systematic_errors(features, errors, alpha=0.0038, reference_features=base_features,
                                     reference_errors=base_errors)
    story = [p for p in new.patterns if p.feature == "placement"]
    assert [p.bucket for p in story] == ["story"]
    assert story[0].p_value_baseline < 1e-4 and abs(story[0].baseline_deviation) < abs(story[0].deviation)
    with pytest.raises(ValueError, match=r"reference_features\.placement: column missing"):
        identify_systematic_errors(features, errors, reference_features=base_features[["score_input"]],
                                   reference_errors=base_errors)
