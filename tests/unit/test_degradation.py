"""Performance degradation against the baseline (core.degradation): every metric's statistic checked
against scikit-learn, a bootstrap or a null simulation; hard labels; statuses instead of exceptions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from self_learning.core.degradation import (
    DEGENERATE_Z,
    PERFORMANCE_MARGINS,
    MetricComparison,
    ReferenceMetrics,
    compare_metrics,
    delong_auc_variance,
    is_hard_label,
)
from sklearn import metrics
from support.stats import rate_lower_bound, rate_upper_bound

BINARY = "binary_classification"


def classifier(rng, n, *, flip=0.0, positives=0.4):
    """0/1 outcomes and calibrated-ish scores (~82 % accuracy); ``flip`` turns that share of the
    scores into 1 - score (4.45 % costs about 3 accuracy points)."""
    y = rng.random(n) < positives
    score = 1 / (1 + np.exp(-(np.where(y, 1.2, -1.2) + rng.normal(0, 1.3, n))))
    return y.astype(float), np.where(rng.random(n) < flip, 1 - score, score)


def regressor(rng, n, *, noise=1.0):
    y = 2.0 + rng.gamma(2.0, 2.0, n)  # away from 0, so MAPE is not dominated by a few tiny actuals
    return y, y + rng.normal(0, noise, n)


def by_metric(results: list[MetricComparison]) -> dict[str, MetricComparison]:
    return {r.metric: r for r in results}


def test_the_values_equal_scikit_learn_and_worse_is_positive():
    rng = np.random.default_rng(1)
    ry, rp = regressor(rng, 400)
    cy, cp = regressor(rng, 300, noise=1.5)
    cy[:7] = 0.0  # excluded from MAPE and counted
    reg = by_metric(compare_metrics("regression", ry, rp, cy, cp))
    assert list(reg) == ["mae", "rmse", "mape"]
    assert reg["mae"].reference_value == pytest.approx(metrics.mean_absolute_error(ry, rp))
    assert reg["rmse"].current_value == pytest.approx(metrics.root_mean_squared_error(cy, cp))
    keep = cy != 0
    assert reg["mape"].current_value == pytest.approx(
        100 * metrics.mean_absolute_percentage_error(cy[keep], cp[keep]))
    assert reg["mape"].reason == "mape excludes 0 reference and 7 current rows with actual = 0"
    for result in reg.values():  # a 50 % noisier model: every loss is worse, significantly and practically
        assert result.status == "ok" and result.worse_by > 0 and result.z > 4 and result.practical
        assert result.relative_worse_by == pytest.approx(result.worse_by / result.reference_value)
        assert result.p_value == pytest.approx(stats.norm.sf(result.z))

    ry, rp = classifier(rng, 2_000)
    cy, cp = classifier(rng, 1_500, flip=0.1)
    binary = by_metric(compare_metrics(BINARY, ry, rp, cy, cp))
    assert list(binary) == ["accuracy", "roc_auc", "log_loss", "f1"]
    assert binary["accuracy"].current_value == pytest.approx(metrics.accuracy_score(cy, cp >= 0.5))
    assert binary["roc_auc"].reference_value == pytest.approx(metrics.roc_auc_score(ry, rp))
    assert binary["log_loss"].current_value == pytest.approx(metrics.log_loss(cy, cp))
    assert binary["f1"].reference_value == pytest.approx(metrics.f1_score(ry, rp >= 0.5))
    assert binary["accuracy"].worse_by == pytest.approx(binary["accuracy"].reference_value
                                                        - binary["accuracy"].current_value)
    assert all(r.worse_by > 0 and r.z > 3 and r.practical for r in binary.values())
    assert MetricComparison.from_dict(binary["roc_auc"].to_dict()) == binary["roc_auc"]


def test_delong_auc_equals_sklearn_and_its_variance_a_bootstrap():
    rng = np.random.default_rng(2)
    y, score = classifier(rng, 500)
    score = np.round(score, 1)  # many ties: midranks must handle them
    auc, variance = delong_auc_variance(y, score)
    assert auc == pytest.approx(metrics.roc_auc_score(y, score), abs=1e-12)
    boot = []
    for _ in range(1_000):
        index = rng.integers(0, y.size, y.size)
        boot.append(metrics.roc_auc_score(y[index], score[index]))
    assert variance == pytest.approx(np.var(boot), rel=0.15)
    with pytest.raises(ValueError, match=r"^actual: needs at least 2 rows of each class"):
        delong_auc_variance([1, 0, 0], [0.9, 0.1, 0.2])


def test_the_f1_delta_method_matches_a_bootstrap():
    rng = np.random.default_rng(3)
    ry, rp = classifier(rng, 800)
    cy, cp = classifier(rng, 600)
    f1 = by_metric(compare_metrics(BINARY, ry, rp, cy, cp, metrics=["f1"]))["f1"]
    assert f1.reference_value == pytest.approx(metrics.f1_score(ry, rp >= 0.5))

    def f1_rows(y, label):  # F1 of each bootstrap row (vectorised: 1,000 resamples at once)
        return 2 * (y * label).sum(axis=1) / (y.sum(axis=1) + label.sum(axis=1))

    i, j = rng.integers(0, ry.size, (1_000, ry.size)), rng.integers(0, cy.size, (1_000, cy.size))
    boot = f1_rows(ry[i], rp[i] >= 0.5) - f1_rows(cy[j], cp[j] >= 0.5)
    delta_se = f1.worse_by / f1.z
    assert delta_se == pytest.approx(np.std(boot), rel=0.1)


def test_z_is_standard_normal_with_no_change():
    """The CUSUM reads z: with no change its rejection rate at one-sided 5 % must be about 5 %."""
    rng = np.random.default_rng(4)
    runs, rejections = 300, {}
    for _ in range(runs):
        for result in compare_metrics(BINARY, *classifier(rng, 600), *classifier(rng, 300)) + \
                compare_metrics("regression", *regressor(rng, 600), *regressor(rng, 300)):
            rejections[result.metric] = rejections.get(result.metric, 0) + (result.p_value < 0.05)
    assert set(rejections) == {"mae", "rmse", "mape", "accuracy", "roc_auc", "log_loss", "f1"}
    for metric, k in rejections.items():
        # RMSE's squared errors and MAPE's ratios are skewed: Welch's z is a little liberal at 300 rows.
        assert rate_upper_bound(k, runs) >= 0.05 and rate_lower_bound(k, runs) <= 0.05 + 0.03, (metric, k)


def test_an_accuracy_drop_of_3_points_is_found_and_noise_at_1m_rows_is_not_practical():
    rng = np.random.default_rng(5)
    ref = classifier(rng, 30_000)
    found = 0
    for _ in range(100):  # a week at ~1,000 labelled rows per day
        accuracy = by_metric(compare_metrics(BINARY, *ref, *classifier(rng, 7_000, flip=0.0445)))["accuracy"]
        found += accuracy.p_value < 0.05 and accuracy.practical
    assert rate_lower_bound(found, 100) >= 0.95
    # A 0.3-point loss at a million rows a side is significant but below every margin.
    large = compare_metrics(BINARY, *classifier(rng, 1_000_000), *classifier(rng, 1_000_000, flip=0.0045))
    assert by_metric(large)["accuracy"].p_value < 0.05
    assert not any(r.practical for r in large)


def test_margins_are_documented_and_can_be_overridden():
    assert set(PERFORMANCE_MARGINS) == {"mae", "rmse", "mape", "log_loss", "accuracy", "roc_auc", "f1", "macro_f1"}
    assert all(how in ("relative", "absolute") and margin > 0 for how, margin in PERFORMANCE_MARGINS.values())
    rng = np.random.default_rng(6)
    ry, rp = regressor(rng, 500)
    cy, cp = regressor(rng, 500, noise=1.1)
    mae = compare_metrics("regression", ry, rp, cy, cp, metrics=["mae"], margins={"mae": 0.5})[0]
    assert mae.relative_worse_by < 0.5 and not mae.practical
    assert compare_metrics("regression", ry, rp, cy, cp, metrics=["mae"], margins={"mae": 0.0})[0].practical


def test_hard_labels_are_compared_on_0_1_loss_only():
    rng = np.random.default_rng(7)
    ry, rp = classifier(rng, 500)
    cy, cp = classifier(rng, 500, flip=0.2)
    ref_labels, cur_labels = (rp >= 0.5).astype(float), (cp >= 0.5).astype(float)
    assert is_hard_label(ref_labels) and is_hard_label([0, 1, np.nan]) and not is_hard_label(rp)
    assert not is_hard_label([])
    results = by_metric(compare_metrics(BINARY, ry, ref_labels, cy, cur_labels))
    assert results["log_loss"].status == results["roc_auc"].status == "not_comparable"
    assert "hard 0/1 labels" in results["log_loss"].reason and results["log_loss"].z is None
    assert results["accuracy"].status == results["f1"].status == "ok"
    assert results["accuracy"].current_value == pytest.approx(metrics.accuracy_score(cy, cur_labels))
    # One hard window is enough: a log loss of labels against one of scores would be absurd.
    assert by_metric(compare_metrics(BINARY, ry, rp, cy, cur_labels))["log_loss"].status == "not_comparable"
    with pytest.raises(ValueError, match=r"^reference_predicted: hard_labels=True needs predictions"):
        compare_metrics(BINARY, ry, rp, cy, cur_labels, hard_labels=True)
    # A perfect reference and a few mistakes: bounded numbers, not +1.9e17 %.
    perfect = compare_metrics(BINARY, cy, cy, cy, np.where(np.arange(cy.size) < 5, 1 - cy, cy))
    accuracy = by_metric(perfect)["accuracy"]
    assert accuracy.worse_by == pytest.approx(5 / cy.size) and abs(accuracy.z) < 10


def test_data_that_cannot_support_a_metric_gets_a_status():
    rng = np.random.default_rng(8)
    ry, rp = classifier(rng, 300)
    one_class = np.zeros(100)
    results = by_metric(compare_metrics(BINARY, ry, rp, one_class, rng.random(100)))
    assert results["roc_auc"].status == "not_comparable"
    assert results["roc_auc"].reason == "roc_auc undefined: the current window has a single class (0)"
    assert results["f1"].status == "ok" and results["accuracy"].status == "ok"
    assert by_metric(compare_metrics(BINARY, ry, rp, one_class, np.zeros(100)))["f1"].status == "not_comparable"
    few = compare_metrics(BINARY, ry, rp, ry[:29], rp[:29])
    assert {r.status for r in few} == {"insufficient_data"}
    assert few[0].reason == "300 reference and 29 current rows; at least 30 needed in each"
    assert all(r.z is None and r.p_value is None and not r.practical for r in few)
    zeros = compare_metrics("regression", np.zeros(50), np.ones(50), np.ones(50), np.ones(50), metrics=["mape"])[0]
    assert zeros.status == "insufficient_data" and "50 reference and 0 current rows with actual = 0" in zeros.reason


def test_constant_windows_give_a_bounded_z():
    worse = compare_metrics("regression", np.zeros(40), np.zeros(40), np.zeros(40), np.ones(40), metrics=["mae"])[0]
    assert worse.z == DEGENERATE_Z and worse.relative_worse_by is None and worse.practical
    same = compare_metrics("regression", np.zeros(40), np.ones(40), np.zeros(40), np.ones(40), metrics=["mae"])[0]
    assert same.z == 0.0 and same.p_value == 0.5 and not same.practical


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"reference_actual": ["a", 1]}, r"^reference_actual: non-numeric value 'a'"),
    ({"current_predicted": [0.5]}, r"^current_actual, current_predicted: lengths differ"),
    ({"current_actual": [2, 0]}, r"^current_actual: a classifier's outcomes must be 0 or 1"),
    ({"reference_predicted": [1.5, 0]}, r"^reference_predicted: a classifier's predictions must be probabilities"),
    ({"metrics": ["mae"]}, r"^metrics: \['mae'\] not among the binary_classification metrics"),
    ({"metrics": "accuracy"}, r"^metrics: expected a sequence"),
    ({"margins": {"accuracy": -1}}, r"^margins\['accuracy'\]: must be a finite number >= 0"),
    ({"margins": {"r2": 0.1}}, r"^margins: unknown metric 'r2'"),
    ({"min_samples": 1}, r"^min_samples: must be an integer >= 2"),
    ({"hard_labels": "yes"}, r"^hard_labels: must be True, False or None"),
    ({"task_kind": "multiclass"}, r"^task_kind: 'multiclass' is not a registered task kind"),
])
def test_bad_input_names_the_argument(kwargs, message):
    arguments = {"task_kind": BINARY, "reference_actual": [1, 0], "reference_predicted": [0.8, 0.3],
                 "current_actual": [1, 0], "current_predicted": [0.7, 0.4]}
    options = {key: value for key, value in kwargs.items() if key not in arguments}
    arguments.update({key: value for key, value in kwargs.items() if key in arguments})
    with pytest.raises(ValueError, match=message):
        compare_metrics(*arguments.values(), **options)


def _same(a: MetricComparison, b: MetricComparison, rel: float = 0.0) -> None:
    assert (a.metric, a.status, a.reason, a.practical) == (b.metric, b.status, b.reason, b.practical)
    for field in ("reference_value", "current_value", "worse_by", "z", "p_value"):
        x, y = getattr(a, field), getattr(b, field)
        assert (x is None) == (y is None), field
        if x is not None:
            assert x == pytest.approx(y, rel=rel, abs=rel), (a.metric, field)


@pytest.mark.parametrize("case", ["scores", "ties", "hard", "regression", "zeros"])
def test_a_prebuilt_reference_and_its_rows_left_out_give_the_same_comparisons(case):
    """The monitor builds the baseline's side once and leaves each baseline day out of it: the
    results equal building from the rows (exactly for the whole window, to rounding for the rest)."""
    rng = np.random.default_rng(9)
    kind = "regression" if case in ("regression", "zeros") else BINARY
    if kind == BINARY:
        y, p = classifier(rng, 3_000)
        cy, cp = classifier(rng, 400, flip=0.05)
        if case == "ties":
            p, cp = np.round(p, 1), np.round(cp, 1)
        if case == "hard":
            p, cp = (p >= 0.5).astype(float), (cp >= 0.5).astype(float)
    else:
        y, p = regressor(rng, 3_000)
        cy, cp = regressor(rng, 400, noise=1.2)
        if case == "zeros":
            y[::50] = 0.0
            y[7] = 1e-310  # one ratio overflows: MAPE not comparable while that row is in the window
    reference = ReferenceMetrics.build(kind, y, p)
    for a, b in zip(compare_metrics(kind, None, None, cy, cp, reference=reference),
                    compare_metrics(kind, y, p, cy, cp), strict=True):
        _same(a, b)
    for day in (np.arange(0, 100), np.arange(5, 3_000, 30), np.arange(2_950, 3_000)):
        keep = np.ones(y.size, bool)
        keep[day] = False
        rest = reference.excluding(day)
        assert rest.n == keep.sum() and rest.hard == (case == "hard")
        expected = compare_metrics(kind, y[keep], p[keep], y[day], p[day])
        results = compare_metrics(kind, None, None, y[day], p[day], reference=rest)
        assert [r.status for r in results] == [r.status for r in expected]
        for a, b in zip(results, expected, strict=True):
            _same(a, b, rel=1e-9)
    if case == "zeros":
        assert compare_metrics(kind, y, p, cy, cp)[2].status == "not_comparable"
        assert compare_metrics(kind, None, None, cy, cp, reference=reference.excluding([7]))[2].status == "ok"


def test_a_reference_left_out_to_one_class_or_too_few_rows_gets_a_status():
    rng = np.random.default_rng(10)
    y, p = classifier(rng, 200)
    reference = ReferenceMetrics.build(BINARY, y, p)
    positives = np.flatnonzero(y == 1)
    one_class = by_metric(compare_metrics(BINARY, None, None, y, p, reference=reference.excluding(positives)))
    assert one_class["roc_auc"].reason == "roc_auc undefined: the reference window has a single class (0)"
    few = by_metric(compare_metrics(BINARY, None, None, y, p, reference=reference.excluding(positives[1:])))
    assert few["roc_auc"].status == "insufficient_data" and "1 positive" in few["roc_auc"].reason
    assert compare_metrics(BINARY, None, None, y, p, reference=reference.excluding(np.arange(180)))[0].status == \
        "insufficient_data"
    with pytest.raises(ValueError, match=r"^reference_actual, reference_predicted: must be None"):
        compare_metrics(BINARY, y, p, y, p, reference=reference)
    with pytest.raises(ValueError, match=r"^reference: built for binary_classification"):
        compare_metrics("regression", None, None, y, p, reference=reference)
    with pytest.raises(ValueError, match=r"^threshold: 0.7 differs from the reference's 0.5"):
        compare_metrics(BINARY, None, None, y, p, reference=reference, threshold=0.7)
    with pytest.raises(ValueError, match=r"^reference_predicted: hard_labels=True needs"):
        compare_metrics(BINARY, None, None, y, (p > 0.5) * 1.0, reference=reference, hard_labels=True)
    with pytest.raises(ValueError, match=r"^rows: expected positions"):
        reference.excluding([500])
    with pytest.raises(ValueError, match=r"^reference: excluding needs"):
        reference.excluding([1]).excluding([2])
    with pytest.raises(ValueError, match=r"^reference_actual: a classifier's outcomes"):
        ReferenceMetrics.build(BINARY, [2, 0], [0.5, 0.5])
