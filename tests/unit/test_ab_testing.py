"""A/B statistics: assignment, sample ratio mismatch, and the always-valid comparison by simulation."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from self_learning.ab_testing import (
    ABTestConfig,
    arm_version,
    assign_arm,
    compare_arms,
    decide,
    fnv1a32,
    row_losses,
    sample_ratio_mismatch,
)
from self_learning.domain import Status
from support import ROOT
from support.stats import rate_lower_bound, rate_upper_bound

WEIGHTS = {"champion": 0.5, "challenger": 0.5}


def test_fnv1a32_matches_the_reference_vectors():
    assert fnv1a32("") == 0x811C9DC5
    assert fnv1a32("a") == 0xE40C292C
    assert fnv1a32("foobar") == 0xBF9CF968


def test_assignment_is_sticky_across_processes_and_follows_the_split():
    units = [f"campaign-{i}" for i in range(100_000)]
    arms = [assign_arm("test-42", u, {"a": 0.2, "b": 0.8}) for u in units]
    assert abs(arms.count("a") / len(arms) - 0.2) < 0.01
    probe = ("import json, sys; sys.path.insert(0, 'plugins'); from self_learning.ab_testing import assign_arm; "
             "print(json.dumps([assign_arm('test-42', f'campaign-{i}', {'a': 0.2, 'b': 0.8}) for i in range(500)]))")
    other = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(other.stdout) == arms[:500]
    # GrowthBook's v2 hash decides the arm: two FNV-1a rounds of seed + unit, 10,000 buckets
    position = fnv1a32(str(fnv1a32("another-testcampaign-1"))) % 10_000 / 10_000
    assert assign_arm("another-test", "campaign-1", WEIGHTS) == ("champion" if position < 0.5 else "challenger")
    # another seed reshuffles the units: a unit's arms under two seeds agree about half the time
    agree = sum(assign_arm("test-42", u, WEIGHTS) == assign_arm("another-test", u, WEIGHTS) for u in units[:10_000])
    assert abs(agree / 10_000 - 0.5) < 0.02


@pytest.mark.parametrize("weights", [{"a": 1.0}, {"a": 0.7, "b": 0.7}, {"a": 0.0, "b": 1.0}, {"a": 1.2, "b": -0.2}])
def test_bad_splits_are_named(weights):
    with pytest.raises(ValueError, match="weights"):
        assign_arm("t", "u", weights)


def test_sample_ratio_mismatch_blocks_promotion():
    srm = sample_ratio_mismatch([10_400, 9_600], [0.5, 0.5])
    assert not srm.healthy and srm.p_value < 1e-6
    assert sample_ratio_mismatch([10_050, 9_950], [0.5, 0.5]).healthy
    rng = np.random.default_rng(0)
    comparison = compare_arms(np.abs(rng.normal(0, 1, 10_400)), np.abs(rng.normal(0, 0.5, 9_600)), n_star=20_000)
    decision = decide(comparison, srm, days_elapsed=14)
    assert decision.action == "unhealthy"
    with pytest.raises(ValueError, match="counts"):
        sample_ratio_mismatch([1, 2, 3], [0.5, 0.5])


def weekly_looks(rng, champion_sd, challenger_sd, per_look, looks, n_star):
    """The decision at each weekly look over accumulating outcomes; the first promotion ends it."""
    champion = np.abs(rng.normal(0, champion_sd, per_look * looks))
    challenger = np.abs(rng.normal(0, challenger_sd, per_look * looks))
    min_p = 1.0
    srm = sample_ratio_mismatch([per_look, per_look], [0.5, 0.5])
    for look in range(1, looks + 1):
        n = per_look * look
        comparison = compare_arms(champion[:n], challenger[:n], n_star=n_star, previous_min_p=min_p)
        min_p = comparison.running_min_p
        if decide(comparison, srm, days_elapsed=7 * look).action == "promote":
            return True
    return False


def test_identical_arms_rarely_produce_a_winner_over_eight_weekly_looks():
    """At most 5 % false promotions, with 95 % confidence (about 0.2 % observed; 500 runs take ~1 s)."""
    rng = np.random.default_rng(20261127)
    runs = 500
    winners = sum(weekly_looks(rng, 1.0, 1.0, 2_500, 8, 40_000) for _ in range(runs))
    assert rate_upper_bound(winners, runs) <= 0.05, winners


def test_a_five_percent_better_challenger_is_promoted():
    """Power of at least 80 %, with 95 % confidence over 1,000 runs (each stops at its promotion)."""
    rng = np.random.default_rng(7)
    runs = 1_000
    promoted = sum(weekly_looks(rng, 1.0, 0.95, 5_000, 4, 40_000) for _ in range(runs))
    assert rate_lower_bound(promoted, runs) >= 0.8, promoted


def test_fixed_horizon_welch_would_declare_false_winners_the_sequence_does_not():
    """The reason for the confidence sequence: the Welch p-value checked at 8 looks is not valid."""
    rng = np.random.default_rng(3)
    runs = 1_000  # about 2 s; ~8.5 % of the runs have a Welch "winner", ~0.3 % a sequence one
    welch_winners = sequence_winners = 0
    for _ in range(runs):
        a, b = np.abs(rng.normal(0, 1, 16_000)), np.abs(rng.normal(0, 1, 16_000))
        looks = [compare_arms(a[:n], b[:n], n_star=32_000) for n in range(2_000, 16_001, 2_000)]
        welch_winners += any(c.welch_p_value < 0.05 and c.difference < 0 for c in looks)
        sequence_winners += any(c.ci_high < 0 for c in looks)
    # with 95 % confidence: peeking inflates Welch's one-sided error above its nominal alpha / 2 ...
    assert rate_lower_bound(welch_winners, runs) > 0.025, welch_winners
    # ... and the confidence sequence keeps it within alpha / 2
    assert rate_upper_bound(sequence_winners, runs) <= 0.025, sequence_winners


@pytest.mark.parametrize(("n_champion", "n_challenger"), [(2_000, 2_000), (5, 300), (3, 2)])
def test_the_welch_p_value_is_scipys(n_champion, n_challenger):
    from scipy import stats

    rng = np.random.default_rng(n_champion + n_challenger)
    a, b = rng.gamma(4, 0.25, n_champion), rng.gamma(4, 0.3, n_challenger)
    expected = stats.ttest_ind(b, a, equal_var=False).pvalue
    assert compare_arms(a, b, n_star=600).welch_p_value == pytest.approx(expected, rel=1e-9)


def test_losses_are_aggregated_per_randomisation_unit():
    rng = np.random.default_rng(11)
    units = np.repeat(np.arange(200), 50)  # 200 campaigns of 50 predictions sharing a campaign effect
    effect = np.repeat(rng.normal(0, 1, 200), 50)
    loss_a, loss_b = np.abs(effect + rng.normal(0, 0.2, units.size)), np.abs(effect + rng.normal(0, 0.2, units.size))
    naive = compare_arms(loss_a, loss_b, n_star=20_000)
    clustered = compare_arms(loss_a, loss_b, champion_units=units, challenger_units=units + 1000, n_star=400)
    assert clustered.champion.n == 200 and clustered.champion.rows == 10_000
    assert clustered.standard_error > 3 * naive.standard_error
    assert clustered.champion.mean == pytest.approx(loss_a.mean())


def test_no_outcomes_is_insufficient_data_not_an_error():
    comparison = compare_arms([], [1.0, 2.0], n_star=1000)
    assert comparison.status is Status.INSUFFICIENT_DATA
    decision = decide(comparison, sample_ratio_mismatch([0, 2], [0.5, 0.5]), days_elapsed=30, max_days=28)
    assert decision.action == "keep_champion"  # the SRM of 0 vs 2 outcomes is no evidence of a broken split
    assert decision.reasons[0] == "maximum duration reached without a winner"
    with pytest.raises(ValueError, match="n_star"):
        compare_arms([1.0, 2.0], [1.0, 2.0], n_star=0)
    with pytest.raises(ValueError, match="champion_units"):
        compare_arms([1.0, 2.0], [1.0, 2.0], champion_units=["a"], n_star=10)


def test_row_losses_are_the_primary_losses_and_bad_values_are_named():
    assert row_losses("regression", [1.0, 2.0], [1.5, 1.0]).tolist() == [0.5, 1.0]
    losses = row_losses("binary_classification", [1, 0], [0.8, 0.8])
    assert losses == pytest.approx([-np.log(0.8), -np.log(0.2)])
    assert np.isfinite(row_losses("binary_classification", [1], [0.0])).all()  # clipped, not infinite
    with pytest.raises(ValueError, match="actual: a classifier's outcomes must be 0 or 1"):
        row_losses("binary_classification", [0.5], [0.5])
    with pytest.raises(ValueError, match=r"predicted: .* probabilities"):
        row_losses("binary_classification", [1], [1.2])
    with pytest.raises(ValueError, match="lengths differ"):
        row_losses("regression", [1.0], [1.0, 2.0])


@pytest.mark.parametrize(("field", "value"), [("traffic_split", 0), ("traffic_split", 1.0), ("traffic_split", True),
                                              ("unit", "user"), ("min_days", 100), ("min_outcomes_per_arm", 1),
                                              ("margin", 1.0), ("alpha", 0.0), ("n_star", 0), ("seed", "")])
def test_test_definitions_are_validated_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        ABTestConfig(**{field: value})


def test_arm_version_follows_the_configured_share_of_the_challenger():
    config = ABTestConfig(traffic_split=0.2)
    arms = [arm_version("t1", f"campaign-{i}", "v1", "v2", config.traffic_split) for i in range(20_000)]
    assert abs(arms.count("v2") / len(arms) - 0.2) < 0.01
    assert arm_version("t1", "campaign-7", "v1", "v2", 0.2) == arms[7]
    assert config.weights == [0.8, 0.2]


def test_a_decision_without_a_margin_says_below_0_not_below_minus_0():
    rng = np.random.default_rng(12)
    healthy = sample_ratio_mismatch([400, 400], [0.5, 0.5])
    better = compare_arms(rng.gamma(4, 0.25, 400), rng.gamma(4, 0.2, 400), n_star=800)
    promoted = decide(better, healthy, days_elapsed=14)
    assert promoted.action == "promote" and "below 0)" in promoted.reasons[0], promoted.reasons
    equal = compare_arms(rng.gamma(4, 0.25, 400), rng.gamma(4, 0.25, 400), n_star=800)
    reasons = " ".join(decide(equal, healthy, days_elapsed=14).reasons + decide(
        equal, healthy, days_elapsed=14, margin=0.0125).reasons)
    assert "below -0 " not in reasons + " " and "not entirely below 0" in reasons
    assert "not entirely below -0.0125" in reasons
