"""The sequential monitor (core.monitoring): day statistics against a pinned baseline, empirical
null, CUSUM, practical gate. Exact pieces are compared with scipy / the drift report; statistical
claims go through one-sided 95 % Clopper-Pearson bounds (support.stats)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats
from self_learning.core.drift.comparisons import compare_categorical
from self_learning.core.monitoring import (
    BaselineCalibration,
    DayStatistic,
    MonitorSettings,
    daily,
    monitor_window,
    run_cusum,
    siegmund_arl0,
    threshold,
)
from self_learning.core.monitoring.labels import losses
from self_learning.core.types import Status
from support.stats import rate_lower_bound, rate_upper_bound

START = datetime(2026, 1, 1, tzinfo=UTC)
BASELINE_DAYS = 30


def _day(rng, day: int, rows: int, features: int, *, shift: dict | None = None, offsets=None,
         task: str = "regression", flip: float = 0.0, categorical: int = 0) -> pd.DataFrame:
    served = pd.Timestamp(START + timedelta(days=day)) + pd.to_timedelta(np.sort(rng.uniform(0, 86_399, rows)),
                                                                         unit="s")
    values = {f"f{j}": rng.standard_normal(rows) for j in range(features)}
    if task == "regression":
        actual = values["f0"] + rng.standard_normal(rows)
        predicted = values["f0"].copy()
    else:
        p = 1 / (1 + np.exp(-2 * values["f0"]))
        actual = (rng.uniform(size=rows) < p).astype(float)
        predicted = p.copy()
        wrong = rng.uniform(size=rows) < flip  # the model's score flipped: accuracy falls
        predicted[wrong] = 1 - predicted[wrong]
    for j in range(features):
        values[f"f{j}"] = values[f"f{j}"] + (shift or {}).get(j, 0.0) + (0.0 if offsets is None else offsets[j])
    columns = {"model_version": "v1", "served_at": served, "predicted_value": predicted, "predicted_label": None,
               "actual_value": actual, "observed_at": served + pd.Timedelta(days=2), "error": predicted - actual,
               **values}
    for j in range(categorical):
        columns[f"c{j}"] = pd.Categorical(rng.choice(["a", "b", "c", "d"], rows, p=[0.4, 0.3, 0.2, 0.1]))
    return pd.DataFrame(columns)  # one constructor: a column at a time was most of the slow tests' time


def _stream(seed: int, days: int, rows: int, features: int, **kwargs) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.concat([_day(rng, d, rows, features, **{k: v(d) if callable(v) else v for k, v in kwargs.items()})
                      for d in range(days)], ignore_index=True)


def _between(frame: pd.DataFrame, first: int, end: int) -> pd.DataFrame:
    served = frame["served_at"]
    return frame[(served >= pd.Timestamp(START + timedelta(days=first))) &
                 (served < pd.Timestamp(START + timedelta(days=end)))].reset_index(drop=True)


def _kinds(features: int, categorical: int = 0) -> dict[str, str]:
    return {**{f"f{j}": "numeric" for j in range(features)}, **{f"c{j}": "categorical" for j in range(categorical)}}


# --- exact pieces ---------------------------------------------------------------------------------------

def test_threshold_inverts_siegmund_and_cusum_tracks_the_change_start():
    h = threshold(1.5, 100_000)
    assert siegmund_arl0(1.5, h) == pytest.approx(100_000, rel=1e-9)
    assert threshold(1.0, 1_000) < threshold(1.0, 10_000)
    days = [START + timedelta(days=i) for i in range(6)]
    path = run_cusum(days, [0.5, 3.0, None, 2.0, 4.0, 0.0], 1.5)
    assert path.values == pytest.approx((0.0, 1.5, 1.5, 2.0, 4.5, 3.0))
    assert path.change_start == days[1]
    assert run_cusum(days, [3.0, -5.0, 2.0, 2.0, None, None], 1.5).change_start == days[2]
    with pytest.raises(ValueError, match="k: must be > 0"):
        threshold(0.0, 100)


def test_ks_gap_equals_scipy_including_ties():
    rng = np.random.default_rng(3)
    pool = np.sort(np.round(rng.normal(size=5_000), 1))
    for day in (np.sort(np.round(rng.normal(0.1, 1, 300), 1)), np.sort(rng.normal(size=200))):
        assert daily._ks_gap(pool, day) == pytest.approx(stats.ks_2samp(pool, day).statistic, abs=1e-12)


def test_baseline_day_against_the_rest_is_exact():
    """The (1 - w) correction and the sums give the same z as recomputing against the rest."""
    rng = np.random.default_rng(4)
    values = np.round(rng.normal(size=3_000), 2)
    groups = np.array_split(np.arange(3_000), 10)
    pool = daily.NumericPool.build(values, groups)
    dist, up = daily._numeric_baseline(pool, 30)
    day, rest = np.sort(values[groups[3]]), np.sort(np.delete(values, groups[3]))
    gap = stats.ks_2samp(day, rest).statistic
    assert dist[3] == pytest.approx(daily._ks_z(gap, day.size, rest.size), abs=1e-9)
    # mean_up: Welch z of van der Waerden scores (mid-ranks in the pooled sample day + rest)
    ranks = stats.rankdata(np.concatenate([day, rest]))
    scores = special.ndtri(ranks / (values.size + 1))
    s_day, s_rest = scores[:day.size], scores[day.size:]
    welch = daily.welch_z(s_day.mean(), s_day.var(ddof=1), day.size, s_rest.mean(), s_rest.var(ddof=1), rest.size)
    assert up[3] == pytest.approx(welch, abs=1e-9)


def test_numeric_pool_places_each_day_as_a_search_of_the_sorted_pool():
    """One sort of the pool gives each day's sorted values and their places (ties, missing values
    and an empty day included) exactly as sorting the day and searching the pool would."""
    rng = np.random.default_rng(6)
    values = np.round(rng.normal(size=4_000), 1)
    values[rng.integers(0, 4_000, 40)] = np.nan
    values[:3] = np.inf
    groups = [*np.array_split(np.arange(3_500), 7), np.empty(0, np.int64), np.arange(3_500, 4_000)]
    pool = daily.NumericPool.build(values, groups)
    finite = np.sort(values[np.isfinite(values)])
    assert np.array_equal(pool.values, finite) and len(pool.days) == len(groups)
    for (day, below, upto), group in zip(pool.days, groups, strict=True):
        expected = np.sort(values[group][np.isfinite(values[group])])
        assert np.array_equal(day, expected)
        assert np.array_equal(below, np.searchsorted(finite, expected, side="left"))
        assert np.array_equal(upto, np.searchsorted(finite, expected, side="right"))
    ranks = stats.rankdata(finite)
    assert pool.score_sum == pytest.approx(special.ndtri(ranks / (finite.size + 1)).sum(), abs=1e-9)
    assert np.array_equal(daily.NumericPool.build(values, groups, with_days=False).values, finite)


# Computed with the monitor as it was before the speed-up (commit 237e1d6): per family, the days with
# a z, the sum of z and of |raw_z|; the baseline fits' summed location and scale and how many are
# empirical; each report's severity and what it names. The faster paths must not move them. (The
# concept_drift entries since its day z became the normal-score z of the losses: reports unchanged.)
PINNED = {
    "regression": {
        "feature_drift": [91, -0.9931314660479257, 133.9850633633379],
        "prediction_drift": [21, -2.379349811965813, 16.115805839757517],
        "concept_drift": [14, -2.9587471566656807, 12.499564086326714],
        "performance": [42, -6.606828663688167, 33.755500320234134],
        "fits": [-1.1219485618189153, 23.79791362786913, 6],
        "reports": {"feature_drift": ("high", ["f1"]), "prediction_drift": ("none", []),
                    "concept_drift": ("none", []), "performance_degradation": ("none", [])}},
    "binary_classification": {
        "feature_drift": [91, 16.658628892733038, 122.15083555678363],
        "prediction_drift": [21, -0.7120703968376438, 16.793537360894714],
        "concept_drift": [14, 24.80942422209487, 27.89354613426026],
        "performance": [56, 70.55588669626474, 91.24662658828727],
        "fits": [0.5680857952833052, 23.728077592035387, 5],
        "reports": {"feature_drift": ("high", ["f1"]), "prediction_drift": ("none", []),
                    "concept_drift": ("medium", []),
                    "performance_degradation": ("critical", ["accuracy", "f1", "log_loss", "roc_auc"])}},
}


@pytest.mark.parametrize("task_kind", sorted(PINNED))
def test_day_statistics_and_verdicts_are_those_of_the_monitor_before_the_speed_up(task_kind):
    data = _stream(21, 44, 300, 4, task="regression" if task_kind == "regression" else "binary", categorical=1,
                   shift=lambda d: {1: 0.3} if d >= 40 else None, flip=lambda d: 0.1 if d >= 36 else 0.0)
    result = monitor_window(_between(data, 0, 30), _between(data, 30, 44), task_kind=task_kind,
                            feature_kinds=_kinds(4, 1), window_end=START + timedelta(days=44))
    found: dict = {}
    for s in result.day_statistics:
        family = found.setdefault(s.family, [0, 0.0, 0.0])
        if s.z is not None:
            family[0] += 1
            family[1] += s.z
            family[2] += abs(s.raw_z)
    fits = result.calibration.checks.values()
    found["fits"] = [sum(f.location for f in fits), sum(f.scale for f in fits),
                     sum(f.source == "empirical" for f in fits)]
    found["reports"] = {name: (r.severity.value, sorted(getattr(r, "affected_features", None) or []))
                        for name, r in result.reports.items()}
    expected = PINNED[task_kind]
    assert found["reports"] == expected["reports"]
    for key in ("feature_drift", "prediction_drift", "concept_drift", "performance", "fits"):
        assert found[key] == pytest.approx(expected[key], rel=1e-9, abs=1e-9), key


def test_categorical_counts_pool_as_compare_categorical():
    rng = np.random.default_rng(5)
    reference = rng.choice(list("abcdefg"), 4_000, p=[0.3, 0.3, 0.2, 0.1, 0.05, 0.03, 0.02])
    current = rng.choice(list("abcdefgh"), 250, p=[0.25, 0.3, 0.2, 0.1, 0.05, 0.04, 0.03, 0.03])
    labels = sorted(set(reference) | set(current))
    counts = [np.array([(x == label).sum() for label in labels]) for x in (reference, current)]
    p, js = daily.chi2_js(*counts)
    expected = compare_categorical(reference, current)
    assert p == pytest.approx(expected.p_value, rel=1e-9)
    assert js == pytest.approx(expected.js_distance, rel=1e-9)


# --- behaviour ----------------------------------------------------------------------------------------------

def test_a_shift_is_reported_with_its_start_and_the_json_shape_the_alert_policy_reads():
    data = _stream(1, 44, 1_000, 5, categorical=1, shift=lambda d: {2: 0.3} if d >= 41 else None)
    result = monitor_window(_between(data, 0, 30), _between(data, 30, 44), task_kind="regression",
                            feature_kinds=_kinds(5, 1), window_end=START + timedelta(days=44))
    report = result.reports["feature_drift"]
    assert report.affected_features == ["f2"]
    entry = report.statistical_tests["features"]["f2"]
    check = entry["checks"]["mean_up"]
    assert check["flagged"] and check["cusum"] > check["threshold"]
    # the CUSUM's estimate: the day after its last reset (a day before the change may start it)
    assert (START + timedelta(days=39)).isoformat() <= check["change_start"] <= (START + timedelta(days=41)).isoformat()
    assert entry["kind"] == "numeric" and entry["drifted"] and entry["severity"] != "none"
    assert f"f2 (since {check['change_start'][:10]})" in report.recommendation
    assert set(report.statistical_tests["features"]["c0"]["checks"]) == {"distribution"}
    assert set(result.reports) == {"feature_drift", "prediction_drift", "concept_drift", "performance_degradation"}
    concept = result.reports["concept_drift"].statistical_tests
    assert {"metric", "reference_value", "current_value", "pct_change", "p_value"} <= set(concept)
    days = {s.day for s in result.day_statistics if s.check == "feature:f2:mean_up"}
    assert days == {START + timedelta(days=d) for d in range(37, 44)}
    assert result.details["calibration"] == "empirical"
    stored = [dict(s.to_dict(), model="m", window_end="x") for s in result.day_statistics]
    assert [DayStatistic.from_dict(s) for s in stored] == result.day_statistics


def test_determinism_and_one_day_runs_equal_one_week_run():
    data = _stream(2, 40, 400, 4, shift=lambda d: {1: 0.4} if d >= 37 else None)
    base, cur = _between(data, 0, 30), _between(data, 30, 40)
    settings = MonitorSettings(label_window_days=7)
    week = [monitor_window(base, cur, task_kind="regression", feature_kinds=_kinds(4),
                           window_end=START + timedelta(days=40), settings=settings) for _ in range(2)]
    assert week[0].to_dict() == week[1].to_dict()
    calibration = BaselineCalibration.from_dict(week[0].calibration.to_dict())
    assert calibration == week[0].calibration
    one_day = MonitorSettings(window_days=1, label_window_days=1)
    earlier: list[DayStatistic] = []
    for end in range(34, 41):
        run = monitor_window(base, cur, task_kind="regression", feature_kinds=_kinds(4),
                             window_end=START + timedelta(days=end), settings=one_day, earlier=earlier,
                             calibration=calibration)
        earlier += run.day_statistics
    last_week = [s for s in earlier if s.day >= START + timedelta(days=33) and s.family == "feature_drift"]
    assert sorted(last_week, key=lambda s: (s.check, s.day)) == sorted(
        [s for s in week[0].day_statistics if s.family == "feature_drift"], key=lambda s: (s.check, s.day))
    assert run.reports["feature_drift"].affected_features == week[0].reports["feature_drift"].affected_features


def test_drift_still_reported_sixty_days_later():
    data = _stream(3, 130, 300, 3, shift=lambda d: {0: 0.5} if d >= 60 else None)
    base = _between(data, 0, BASELINE_DAYS)
    earlier, calibration = [], None
    for end in range(40, 131, 10):  # ten-day runs, each handing its days to the next
        run = monitor_window(base, _between(data, end - 10, end), task_kind="regression", feature_kinds=_kinds(3),
                             window_end=START + timedelta(days=end), earlier=earlier, calibration=calibration,
                             settings=MonitorSettings(window_days=10, label_window_days=10))
        earlier, calibration = earlier + run.day_statistics, run.calibration
    assert run.reports["feature_drift"].affected_features == ["f0"]
    assert run.reports["feature_drift"].statistical_tests["features"]["f0"]["checks"]["mean_up"]["cusum"] > 50


def test_labels_pending_days_are_not_judged():
    data = _stream(4, 44, 300, 2)
    current = _between(data, 30, 44)
    recent = current["served_at"] >= pd.Timestamp(START + timedelta(days=42))
    current.loc[recent, "actual_value"] = np.where(np.arange(recent.sum()) % 2, current.loc[recent, "actual_value"],
                                                   np.nan)
    result = monitor_window(_between(data, 0, 30), current, task_kind="regression", feature_kinds=_kinds(2),
                            window_end=START + timedelta(days=44))
    concept = {s.day: s for s in result.day_statistics if s.check == "concept:loss_up"}
    assert len(concept) == 14
    assert concept[START + timedelta(days=43)].status == "labels_pending"
    assert concept[START + timedelta(days=43)].z is None
    assert concept[START + timedelta(days=40)].status == "ok"
    assert result.details["label_delay"]["median_days"] == pytest.approx(2.0)


def test_bad_input():
    data = _stream(5, 40, 100, 2)
    empty = _between(data, 0, 0)
    result = monitor_window(empty, _between(data, 30, 40), task_kind="regression", feature_kinds=_kinds(2),
                            window_end=START + timedelta(days=40))
    assert all(r.status is Status.INSUFFICIENT_DATA for r in result.reports.values())
    assert {s.status for s in result.day_statistics} == {"insufficient_data"}
    with pytest.raises(ValueError, match="task_kind"):
        monitor_window(data, data, task_kind="ranking", feature_kinds={}, window_end=START)
    with pytest.raises(ValueError, match=r"settings\.window_days"):
        MonitorSettings(window_days=0)
    with pytest.raises(ValueError, match=r"current\.actual_value"):
        monitor_window(data, data.drop(columns="actual_value"), task_kind="regression", feature_kinds={},
                       window_end=START)


# --- statistical claims -------------------------------------------------------------------------------------

def _alarm_episodes(statistics: list[DayStatistic], design: dict) -> int:
    """New alarms (S crossing h from below) over every check's whole path: what a model owner counts.
    No practical gate applied, so it bounds the reported alarms from above."""
    by_check: dict[str, list[DayStatistic]] = {}
    for s in statistics:
        by_check.setdefault(s.check, []).append(s)
    starts: set = set()
    for days in by_check.values():
        days.sort(key=lambda s: s.day)
        family = design[days[0].family]
        path = run_cusum([s.day for s in days], [s.z for s in days], family["k"])
        above = np.array(path.values) > family["h"]
        starts |= {days[i].day for i in np.flatnonzero(above & ~np.r_[False, above[:-1]])}
    return len(starts)


def _run_null(data: pd.DataFrame, days: int, features: int, chunk: int) -> tuple[int, int]:
    base = _between(data, 0, BASELINE_DAYS)
    earlier, calibration, reported = [], None, 0
    settings = MonitorSettings(window_days=chunk, label_window_days=chunk)
    for end in range(BASELINE_DAYS + chunk, BASELINE_DAYS + days + 1, chunk):
        run = monitor_window(base, _between(data, end - chunk, end), task_kind="regression",
                             feature_kinds=_kinds(features), window_end=START + timedelta(days=end), earlier=earlier,
                             calibration=calibration, settings=settings)
        earlier, calibration = earlier + run.day_statistics, run.calibration
        reported += any(r.drift_detected for r in run.reports.values())
    return _alarm_episodes(earlier, run.details["design"]), reported


@pytest.mark.slow
def test_false_alarms_per_model_and_90_days():
    """iid streams (4 x 300 days, 200 rows/day) and one with AR(1) day effects and weekly seasonality
    (120 days, 5,000 rows/day), 20 features: new alarms of any check per model-day <= 1/90.
    Days are computed in 60-day windows with the history handed on (a day's statistic is the same
    whichever run computes it; test_determinism_... checks that against one-day runs)."""
    episodes, model_days = 0, 0
    for seed in range(4):
        found, _ = _run_null(_stream(10 + seed, BASELINE_DAYS + 300, 200, 20), 300, 20, 60)
        episodes, model_days = episodes + found, model_days + 300
    rng = np.random.default_rng(99)
    effects = [np.zeros(20)]
    for _ in range(1, BASELINE_DAYS + 120):
        effects.append(0.6 * effects[-1] + rng.normal(0, 0.03, 20))
    weekly = [0.05 * np.sin(2 * np.pi * (d % 7) / 7) for d in range(BASELINE_DAYS + 120)]
    seasonal = _stream(98, BASELINE_DAYS + 120, 5_000, 20, offsets=lambda d: effects[d] + weekly[d])
    found, _ = _run_null(seasonal, 120, 20, 60)
    episodes, model_days = episodes + found, model_days + 120
    assert rate_upper_bound(episodes, model_days) <= 1 / 90, (episodes, model_days)


@pytest.mark.slow
def test_an_abrupt_shift_is_found_within_three_runs_and_only_that_feature():
    """0.2 sigma in one of 50 features at 500 rows/day: the run after the third shifted day names it
    and no other feature. (Within two runs the design finds 80-88 %: 16/20 and 35/40 measured; the
    issue asks for 90 %: see the package docstring.)"""
    found, wrong, trials = 0, 0, 0
    for b in range(3):
        base = _stream(200 + b, BASELINE_DAYS, 500, 50)
        calibration = None
        for c in range(5):
            current = _stream(300 + 10 * b + c, 40, 500, 50, shift=lambda d: {7: 0.2} if d >= 37 else None)
            run = monitor_window(base, _between(current, 33, 40), task_kind="regression",
                                 feature_kinds=_kinds(50), window_end=START + timedelta(days=40),
                                 calibration=calibration, settings=MonitorSettings(label_window_days=7))
            calibration = run.calibration
            affected = run.reports["feature_drift"].affected_features
            found += "f7" in affected
            wrong += any(name != "f7" for name in affected)
            trials += 1
    assert rate_lower_bound(found, trials) >= 0.8, (found, trials)
    assert rate_upper_bound(wrong, trials) <= 0.2, (wrong, trials)


def _delayed_stream(seed: int, days: int, rows: int, *, worse_from: int | None = None) -> pd.DataFrame:
    """A regression model whose quick labels are its easy rows: outcomes known within a day have a
    third of the error of the later ones (delays exponential, mean 2 days); from ``worse_from`` every
    error is 1.6 times as large (a concept change)."""
    rng = np.random.default_rng(seed)
    frames = []
    for day in range(days):
        served = pd.Timestamp(START + timedelta(days=day)) + pd.to_timedelta(np.sort(rng.uniform(0, 86_399, rows)),
                                                                             unit="s")
        delay_days = rng.exponential(2.0, rows) + 0.05
        feature = rng.standard_normal(rows)
        noise = rng.standard_normal(rows) * np.where(delay_days < 1, 0.5, 1.5)
        if worse_from is not None and day >= worse_from:
            noise *= 1.6
        frames.append(pd.DataFrame({
            "model_version": "v1", "served_at": served, "predicted_value": feature, "predicted_label": None,
            "actual_value": feature + noise, "observed_at": served + pd.to_timedelta(delay_days, unit="D"),
            "error": -noise, "f0": feature}))
    return pd.concat(frames, ignore_index=True)


def _known_by(frame: pd.DataFrame, end: datetime) -> pd.DataFrame:
    """The rows as a run at ``end`` reads them: outcomes observed later are not in the store yet."""
    frame = frame.copy()
    late = frame["observed_at"] > pd.Timestamp(end)
    frame.loc[late, ["actual_value", "observed_at", "error"]] = np.nan
    return frame


def test_a_day_whose_labels_are_arriving_is_judged_against_the_baseline_rows_labelled_as_early():
    """The first labels of a day are its easy rows here; compared with the whole baseline they would
    look 2-3 times better (or, once the slow ones arrive, worse) than they are. Matched on the delay,
    the provisional days of a stable stream are N(0, 1), and a real concept change is seen on them
    before any changed day has matured."""
    end = START + timedelta(days=44)
    stable = _delayed_stream(11, 44, 1_000)
    result = monitor_window(_between(stable, 0, 30), _known_by(_between(stable, 30, 44), end), task_kind="regression",
                            feature_kinds=_kinds(1), window_end=end)
    concept = {s.day: s for s in result.day_statistics if s.check == "concept:loss_up"}
    provisional = [s for s in concept.values() if s.details.get("provisional")]
    assert {s.day for s in provisional} >= {START + timedelta(days=43), START + timedelta(days=42)}
    assert all(s.status == "ok" and abs(s.raw_z) < 3.5 for s in provisional), [(s.day, s.raw_z) for s in provisional]
    # the same labels against the whole baseline: far from N(0, 1) (what the matching is for)
    base = _between(stable, 0, 30)
    whole_baseline = losses("regression", base["actual_value"].to_numpy(), base["predicted_value"].to_numpy(), False)
    newest = concept[START + timedelta(days=43)]
    assert newest.details["mean_loss"] < 0.6 * whole_baseline.mean()
    assert newest.details["matched_baseline_rows"] < 0.5 * len(base)
    assert result.reports["concept_drift"].severity.value == "none"

    changed = _delayed_stream(11, 44, 1_000, worse_from=42)  # the same rows, errors up from day 42
    result = monitor_window(_between(changed, 0, 30), _known_by(_between(changed, 30, 44), end),
                            task_kind="regression", feature_kinds=_kinds(1), window_end=end)
    concept = {s.day: s for s in result.day_statistics if s.check == "concept:loss_up"}
    assert concept[START + timedelta(days=42)].details["provisional"]  # not mature: 1-2 days old
    assert concept[START + timedelta(days=42)].raw_z > 4 and concept[START + timedelta(days=43)].raw_z > 4
    report = result.reports["concept_drift"]
    assert report.severity.value != "none", report.statistical_tests


def test_a_weekly_pattern_of_the_baseline_days_is_taken_out_and_no_pattern_is_left_alone():
    """A feature whose level moves by weekday, seen on thousands of rows a day, has baseline-day z
    that swing by weekday (here +-2.5): the plain empirical null spreads that swing over every day
    (scale ~1.9), which hides a real shift on the quiet weekdays. The weekday offsets take it out;
    and without a pattern the F test leaves the fit alone (1 % level)."""
    from self_learning.core.monitoring.monitor import fit_null

    rng = np.random.default_rng(12)
    weekdays = np.arange(28) % 7
    swing = 2.5 * np.sin(2 * np.pi * np.arange(7) / 7)
    values = swing[weekdays] + rng.normal(size=28)
    plain = fit_null(values, 7)
    seasonal = fit_null(values, 7, weekdays=weekdays)
    assert plain.weekday_offsets == () and plain.scale > 3
    assert np.allclose(seasonal.weekday_offsets, swing - swing.mean(), atol=0.8)
    assert seasonal.scale < 1.6  # the residual spread, widened for the 7 estimated offsets
    monday_shift = 3.0 + swing[0]  # a real 3-sigma day on a Monday
    assert seasonal.standardise(monday_shift, 0) > 2.0 and plain.standardise(monday_shift) < 1.0
    found = sum(bool(fit_null(rng.normal(size=28), 7, weekdays=weekdays).weekday_offsets) for _ in range(400))
    assert rate_upper_bound(found, 400) <= 0.03, f"{found} of 400 pattern-free baselines got weekday offsets"
