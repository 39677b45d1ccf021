"""The A/B test's plan, stopping rules, guardrails and variance reduction, by seeded simulation.

Each run plans from 28 days of the champion's recent losses, then looks once a week (as the weekly
DAG does) with the real ``compare_arms`` and ``decide`` until a decision. Losses are gamma with a
coefficient of variation of 0.5 (mean 1). Every claim is checked through the one-sided 95 %
Clopper-Pearson bound of its rate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from self_learning.core.ab import ABTestConfig, compare_arms, decide, parse_guardrails, sample_ratio_mismatch
from self_learning.core.ab_metrics import compare_metric, guardrail_check, primary_metric
from self_learning.core.ab_plan import covariate_correlation, cuped, plan_ab_test, required_units
from support.stats import rate_lower_bound, rate_upper_bound

SHAPE = 4.0  # gamma shape: sd / mean = 0.5
HEALTHY = sample_ratio_mismatch([1, 1], [0.5, 0.5])


def losses(rng, size, mean=1.0):
    return rng.gamma(SHAPE, mean / SHAPE, size)


def recent_plan(rng, per_arm_per_day, *, mde, covariate=None, history=None):
    """The plan from 28 days of the champion serving both arms' traffic."""
    history = losses(rng, 28 * 2 * per_arm_per_day) if history is None else history
    return plan_ab_test(history, covariate=covariate, mde=mde, units_per_day=2 * per_arm_per_day)


def run_test(rng, plan, per_arm_per_day, *, challenger_mean, guardrail=None, adjust=None, max_days=90):
    """Weekly looks until a decision: (action, day, units per arm at the decision).

    ``guardrail`` = (challenger's guardrail mean, margin): a second loss per row, compared as a
    guardrail. ``adjust`` = correlation of a pre-period covariate with the loss (CUPED applied)."""
    days = max_days + 7
    size = days * per_arm_per_day
    if adjust is None:
        champion, challenger = losses(rng, size), losses(rng, size, challenger_mean)
    else:
        champion, challenger, x_a, x_b = correlated(rng, size, challenger_mean, adjust)
    if guardrail is not None:
        guard_a, guard_b = losses(rng, size), losses(rng, size, guardrail[0])
    min_p = guard_min_p = 1.0
    for day in range(7, days, 7):
        n = day * per_arm_per_day
        a, b = champion[:n], challenger[:n]
        if adjust is not None:
            fitted = cuped(a, b, x_a[:n], x_b[:n])
            a, b = fitted.champion, fitted.challenger
        comparison = compare_arms(a, b, n_star=plan.n_star, previous_min_p=min_p)
        min_p = comparison.running_min_p
        checks = []
        if guardrail is not None:
            guard = compare_arms(guard_a[:n], guard_b[:n], n_star=plan.n_star, previous_min_p=guard_min_p)
            guard_min_p = guard.running_min_p
            checks.append(guardrail_check("mae", guardrail[1], guard))
        decision = decide(comparison, HEALTHY, days_elapsed=day, max_days=max_days,
                          planned_units=plan.units_per_arm, guardrails=checks)
        if decision.action != "continue":
            return decision.action, day, n
    raise AssertionError("no decision by the maximum duration")


def correlated(rng, size, challenger_mean, rho):
    """Losses (mean 1 or ``challenger_mean``, sd 0.5) and a pre-period covariate correlated ``rho``."""
    x = rng.normal(size=(2, size))
    noise = rng.normal(size=(2, size))
    y = 0.5 * (rho * x + math.sqrt(1 - rho * rho) * noise)
    return 1.0 + y[0], challenger_mean + y[1], x[0], x[1]


def test_no_difference_weekly_looks_to_the_planned_size_rarely_promote():
    """False winners <= 5 % with 95 % confidence (1,000 runs, seed 1601; 9 weekly looks each)."""
    rng = np.random.default_rng(1601)
    runs = 1_000
    actions = []
    for _ in range(runs):
        plan = recent_plan(rng, 50, mde=0.05)
        actions.append(run_test(rng, plan, 50, challenger_mean=1.0))
    promoted = sum(action == "promote" for action, _, _ in actions)
    assert rate_upper_bound(promoted, runs) <= 0.05, promoted
    assert {action for action, _, _ in actions} <= {"promote", "keep_champion", "stop_for_harm"}


def test_low_traffic_better_challenger_is_promoted_within_the_planned_duration():
    """15 outcomes per arm per day, challenger 10 % lower loss, planned for a 10 % MDE: promoted
    within the planned duration in >= 80 % of runs with 95 % confidence (1,000 runs, seed 1602),
    and never inconclusive before the planned size."""
    rng = np.random.default_rng(1602)
    runs = 1_000
    promoted = 0
    for _ in range(runs):
        plan = recent_plan(rng, 15, mde=0.10)
        assert not plan.exceeds_max_days, plan.summary()
        action, day, n = run_test(rng, plan, 15, challenger_mean=0.9)
        planned_look = 7 * math.ceil(plan.expected_days / 7)
        promoted += action == "promote" and day <= planned_look
        if action == "keep_champion":
            assert n >= max(plan.units_per_arm), (n, plan.units_per_arm)
    assert rate_lower_bound(promoted, runs) >= 0.8, promoted


def test_a_guardrail_worse_by_more_than_its_margin_is_never_promoted():
    """Guardrail MAE 10 % worse against a 5 % margin: no promotion in 300 runs whether the primary
    loss is equal or 10 % better (seed 1603; upper bound < 1 %); without the guardrail the better
    challenger would have won in >= 80 % of the runs."""
    rng = np.random.default_rng(1603)
    runs = 300
    outcomes = {0.9: [], 1.0: []}
    unguarded = 0
    for _ in range(runs):
        plan = recent_plan(rng, 15, mde=0.10)
        for primary, actions in outcomes.items():
            actions.append(run_test(rng, plan, 15, challenger_mean=primary, guardrail=(1.10, 0.05))[0])
        unguarded += run_test(rng, plan, 15, challenger_mean=0.9)[0] == "promote"
    for primary, actions in outcomes.items():
        promoted = actions.count("promote")
        assert promoted == 0 and rate_upper_bound(promoted, runs) < 0.01, (primary, promoted)
    assert rate_lower_bound(unguarded, runs) >= 0.8, unguarded


def test_a_worse_challenger_is_stopped_for_harm_before_half_the_planned_size():
    """Challenger 10 % worse, planned for the default 5 % MDE at 50 outcomes per arm per day:
    stopped for harm before half the planned size in >= 80 % of runs (1,000 runs, seed 1604)."""
    rng = np.random.default_rng(1604)
    runs = 1_000
    stopped = 0
    for _ in range(runs):
        plan = recent_plan(rng, 50, mde=0.05)
        action, _, n = run_test(rng, plan, 50, challenger_mean=1.1)
        stopped += action == "stop_for_harm" and n < max(plan.units_per_arm) / 2
    assert rate_lower_bound(stopped, runs) >= 0.8, stopped


def test_cuped_with_a_covariate_correlated_0_7_cuts_the_required_size_and_keeps_the_power():
    """Correlation 0.7: the planned size is >= 40 % smaller in >= 95 % of plans (200 runs, seed
    1605) and a 5 % better challenger is still promoted within that smaller size in >= 80 % of runs."""
    rng = np.random.default_rng(1605)
    runs = 200
    smaller = promoted = 0
    for _ in range(runs):
        history, _, covariate, _ = correlated(rng, 28 * 100, 1.0, 0.7)
        plan = recent_plan(rng, 50, mde=0.05, covariate=covariate, history=history)
        smaller += plan.size_reduction >= 0.40
        action, _, n = run_test(rng, plan, 50, challenger_mean=0.95, adjust=0.7)
        promoted += action == "promote" and n <= max(plan.units_per_arm) + 7 * 50
    assert rate_lower_bound(smaller, runs) >= 0.95, smaller
    assert rate_lower_bound(promoted, runs) >= 0.8, promoted


def test_the_plan_is_the_always_valid_size_and_says_when_it_exceeds_the_maximum():
    # (3.035 + 0.842)^2 * 0.5^2 / 0.1^2 * (2 + 2) = 1503 in all, 752 per arm
    assert required_units(0.5, 1.0, mde=0.1, power=0.8, alpha=0.05, traffic_split=0.5) == [752, 752]
    # a 20 % challenger share needs more units in all, four times as many for the champion
    champion, challenger = required_units(0.5, 1.0, mde=0.1, power=0.8, alpha=0.05, traffic_split=0.2)
    assert champion + challenger > 1503 and champion == pytest.approx(4 * challenger, rel=0.01)
    rng = np.random.default_rng(5)
    plan = plan_ab_test(losses(rng, 2_000), mde=0.05, units_per_day=30)
    assert plan.n_star == sum(plan.units_per_arm) and plan.exceeds_max_days and plan.expected_days > 90
    assert "exceeds the maximum of 90 days" in plan.summary()
    assert plan.size_reduction == 0 and plan.covariate_correlation is None
    # campaign units: a plan needing more units than served recently cannot be reached
    short = plan_ab_test(losses(rng, 2_000), mde=0.10, units_per_day=30, available_units=500)
    assert short.exceeds_max_days and short.expected_days is None and sum(short.units_per_arm) > 500
    assert "more units than the 500 that served recently" in short.summary()
    enough = plan_ab_test(losses(rng, 2_000), mde=0.10, units_per_day=30, available_units=5_000)
    assert not enough.exceeds_max_days and enough.expected_days < 90


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"mde": 0}, "mde: a relative effect in \\(0, 1\\), must be > 0"), ({"mde": -0.1}, "mde"),
    ({"power": 1.0}, "power"), ({"power": 0}, "power"), ({"units_per_day": -1}, "units_per_day"),
    ({"mde": 0.01, "margin": 0.02}, "mde")])
def test_bad_plans_are_named(kwargs, field):
    with pytest.raises(ValueError, match=field):
        plan_ab_test([1.0, 2.0, 3.0], **kwargs)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"mde": -0.1}, "mde"), ({"power": 1.5}, "power"), ({"primary_metric": "f1"}, "primary_metric"),
    ({"guardrails": ["accuracy:x"]}, "guardrails"), ({"guardrails": "mae"}, "guardrails"),
    ({"guardrails": ["nope"]}, "guardrails")])
def test_bad_test_definitions_are_named(kwargs, field):
    with pytest.raises(ValueError, match=field):
        ABTestConfig(**kwargs)


def test_metrics_and_guardrails_follow_the_task_kind():
    assert primary_metric("regression", None) == "mae"
    assert primary_metric("binary_classification", None) == "log_loss"
    with pytest.raises(ValueError, match="primary_metric: 'roc_auc' is not a metric of regression"):
        primary_metric("regression", "roc_auc")
    with pytest.raises(ValueError, match="guardrails: 'roc_auc' is not a metric of regression models"):
        parse_guardrails(["roc_auc"], task_kind="regression")
    assert parse_guardrails(["accuracy:0.01", "log_loss"], task_kind="binary_classification",
                            primary_metric="log_loss") == [("accuracy", 0.01)]


def test_roc_auc_and_accuracy_compare_with_an_interval_and_hard_labels_on_zero_one_loss():
    rng = np.random.default_rng(8)
    y_a, y_b = rng.integers(0, 2, 4_000), rng.integers(0, 2, 4_000)
    good = np.clip(0.5 + (y_b - 0.5) * 0.6 + rng.normal(0, 0.2, 4_000), 0, 1)
    poor = np.clip(0.5 + (y_a - 0.5) * 0.2 + rng.normal(0, 0.2, 4_000), 0, 1)
    auc = compare_metric("roc_auc", "binary_classification", (y_a, poor), (y_b, good), n_star=8_000)
    assert auc.ci_high < 0 and 0 < auc.challenger.mean < auc.champion.mean < 0.5  # 1 - AUC
    accuracy = compare_metric("accuracy", "binary_classification", (y_a, poor), (y_b, good), n_star=8_000)
    assert accuracy.ci_high < 0
    # hard labels: both arms on the 0/1 loss (its mean is 1 - accuracy), decided once for both arms
    hard_a, hard_b = (poor >= 0.5).astype(float), (good >= 0.5).astype(float)
    zero_one = compare_metric("log_loss", "binary_classification", (y_a, hard_a), (y_b, hard_b), n_star=8_000)
    assert zero_one.champion.mean == pytest.approx(np.mean(hard_a != y_a))
    assert zero_one.challenger.mean == pytest.approx(np.mean(hard_b != y_b))


def test_cuped_leaves_the_difference_unbiased_and_is_off_without_a_covariate():
    rng = np.random.default_rng(9)
    a, b, x_a, x_b = correlated(rng, 20_000, 0.95, 0.7)
    fitted = cuped(a, b, x_a, x_b)
    assert fitted.challenger.mean() - fitted.champion.mean() == pytest.approx(-0.05, abs=0.005)
    assert fitted.challenger.var() == pytest.approx(b.var() * 0.51, rel=0.05)
    assert fitted.correlation == pytest.approx(0.7, abs=0.02)
    assert covariate_correlation(a, x_a) == pytest.approx(0.7, abs=0.02)
    missing = cuped(a, b, np.full(a.size, np.nan), np.full(b.size, np.nan))
    assert missing.theta == 0 and np.array_equal(missing.champion, a)
