"""Day-level statistics: for every check, one one-sided standardised statistic per UTC day against
the baseline pool (``raw_z``, ~N(0, 1) when nothing changed and rows are iid), and the same
statistic for each baseline day against the rest of the baseline (the input of the empirical null).

Speed: each numeric baseline pool is sorted once; each baseline day's sorted values, their places
in the pool and their normal scores are read off that sort (a stable radix sort of the day labels
groups the sorted positions by day), so no day is sorted on its own and no score is computed
twice. A current day is compared with the pool by ``searchsorted`` (O(n_day log n_pool)). A baseline day is
compared with the rest of the baseline without re-sorting: a day that is share w of the pool has
F_pool = w F_day + (1 - w) F_rest, so F_day - F_rest = (F_day - F_pool) / (1 - w) exactly, for the
ECDF gap (KS) and the mean difference alike; the rest's variance comes from sums of squares.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from scipy import special, stats
from scipy.spatial import distance

from ..drift.comparisons import _merge_small_columns
from ..types import Severity
from ..validation import label_text
from . import gates

Z_MIN, Z_MAX = -8.0, 38.0  # ~ the normal quantiles of p = 1 - 1e-15 and p = 1e-300
DEGENERATE_Z = 10.0  # a difference between two constant samples: far beyond any threshold, finite
MIN_EXPECTED_COUNT = 5.0  # compare_categorical's pooling rule
_QUANTILE_GRID = (np.arange(512) + 0.5) / 512  # for a day's approximate Wasserstein distance
NS_PER_DAY = 86_400 * 10**9
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclasses.dataclass(frozen=True)
class DayValue:
    """A check's statistic on one day (before the empirical null)."""

    raw_z: float | None
    effect: float | None
    n: int
    status: str = "ok"
    details: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Track:
    """One check: its current days (aligned with the run's day list; None = outside the check's
    window), its baseline days' raw z (for the empirical null), and ``gate(day positions)``, the
    practical effect of the rows of those days: (effect, severity, details)."""

    check: str
    family: str
    effect_name: str
    days: list[DayValue | None]
    baseline: list[float | None]  # aligned with the baseline's days (None: too few rows that day)
    gate: Callable[[list[int]], tuple[float | None, Severity, dict]]
    skewed: bool = False  # a distance-type statistic (KS, chi-squared): right-skewed under day effects


def clip_z(z: float) -> float:
    return float(min(max(float(z), Z_MIN), Z_MAX))  # as np.clip (NaN stays NaN), without its overhead


def z_from_p(p: float) -> float:
    """Phi^-1(1 - p), clipped to [Z_MIN, Z_MAX]."""
    return clip_z(-special.ndtri(max(float(p), 1e-300)))


def utc_datetimes(timestamps) -> np.ndarray:
    """Timestamps as naive UTC ``datetime64[ns]``: aware ones converted, naive ones taken as UTC,
    anything else parsed (NaT for a missing or unreadable one)."""
    values = pd.Series(timestamps)
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    elif not pd.api.types.is_datetime64_dtype(values.dtype):
        values = pd.to_datetime(values, utc=True, errors="coerce").dt.tz_localize(None)
    return values.to_numpy(dtype="datetime64[ns]")


def day_numbers(served_at) -> np.ndarray:
    """UTC day of each timestamp, as days since 1970-01-01 (naive timestamps are taken as UTC)."""
    return np.floor_divide(utc_datetimes(served_at).view(np.int64), NS_PER_DAY)


def day_number(moment: datetime) -> int:
    """The UTC day of one aware datetime, as days since 1970-01-01."""
    return (moment - EPOCH) // timedelta(days=1)


def weekday(number) -> np.ndarray | int:
    """Monday 0 .. Sunday 6 of day numbers (1970-01-01 was a Thursday)."""
    return (np.asarray(number) + 3) % 7 if not isinstance(number, int) else (number + 3) % 7


def day_start(number: int) -> datetime:
    return EPOCH + timedelta(days=int(number))


def split_days(numbers: np.ndarray, wanted: list[int] | None = None) -> dict[int, np.ndarray]:
    """Row positions of each day (of ``wanted`` days only, when given), in row order."""
    order = np.argsort(numbers, kind="stable")
    unique, starts = np.unique(numbers[order], return_index=True)
    groups = dict(zip(unique.tolist(), np.split(order, starts[1:]), strict=True)) if numbers.size else {}
    if wanted is None:
        return groups
    return {d: groups.get(d, np.empty(0, dtype=np.int64)) for d in wanted}


def welch_z(mean_d: float, var_d: float, n_d: int, mean_r: float, var_r: float, n_r: int) -> float:
    """(mean_d - mean_r) / sqrt(var_d / n_d + var_r / n_r), clipped."""
    se = np.sqrt(var_d / n_d + var_r / n_r)
    diff = mean_d - mean_r
    if se > 0:
        return clip_z(diff / se)
    return 0.0 if diff == 0 else float(np.copysign(DEGENERATE_Z, diff))


# --- numeric -----------------------------------------------------------------------------------------

def _ks_gap(pool: np.ndarray, day: np.ndarray, below: np.ndarray | None = None,
            upto: np.ndarray | None = None) -> float:
    """sup |F_day - F_pool| of two sorted samples. Between two day values F_day is flat and F_pool
    monotone, so the supremum is reached at a day value (F_day - F_pool, right limits, at the last
    copy of each value) or just before one (F_pool - F_day, left limits, at the first copy).
    ``below`` / ``upto``: the pool counts < / <= each day value, when known (else searched)."""
    n_p, n_d = pool.size, day.size
    change = np.flatnonzero(day[1:] != day[:-1])
    last = np.empty(change.size + 1, dtype=np.int64)  # last copy of each distinct value
    last[:-1], last[-1] = change, n_d - 1
    first = np.empty(change.size + 1, dtype=np.int64)  # first copy
    first[0], first[1:] = 0, change + 1
    at_last = upto[last] if upto is not None else np.searchsorted(pool, day[last], side="right")
    at_first = below[first] if below is not None else np.searchsorted(pool, day[first], side="left")
    return float(max(((last + 1) / n_d - at_last / n_p).max(), (at_first / n_p - first / n_d).max()))


def _ks_z(gap: float, n1: int, n2: int) -> float:
    """z of the asymptotic KS p-value: Kolmogorov's distribution (``scipy.stats.kstwobign``) at
    gap * sqrt(n1 n2 / (n1 + n2))."""
    n_eff = n1 * n2 / (n1 + n2)
    return z_from_p(special.kolmogorov(gap * np.sqrt(n_eff)))


@dataclasses.dataclass
class NumericPool:
    """A numeric column of the baseline: the sorted pool of finite values and its days (each day's
    sorted values, and where they sit in the pool: ``below`` / ``upto`` = pool values < / <= each)."""

    values: np.ndarray  # sorted
    days: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    mean: float
    var: float  # ddof=1
    std: float  # ddof=0 (the Wasserstein normalisation of the drift report)
    quantiles: np.ndarray
    score_sum: float = 0.0  # normal scores of the pool's own values (see ``normal_scores``)
    score_sq: float = 0.0
    day_scores: list[np.ndarray] = dataclasses.field(default_factory=list)  # each day's, as ``days``

    def scores(self, below: np.ndarray, upto: np.ndarray) -> np.ndarray:
        return normal_scores(below, upto, self.values.size)

    def place(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pool counts < and <= each of (sorted) ``values``."""
        return (np.searchsorted(self.values, values, side="left"),
                np.searchsorted(self.values, values, side="right"))

    @classmethod
    def build(cls, values: np.ndarray, groups: list[np.ndarray], with_days: bool = True) -> NumericPool:
        """The pool sorted once: each day sorted, then the sorted runs merged by a stable argsort
        (timsort: O(n log days), half the time of sorting the pool from scratch at 50,000 rows a
        day); each day value's place and normal score are read off the merge (its position's run of
        equal values), not searched for or computed again per day (timings: package docstring)."""
        days, day_scores = [], []
        if with_days:
            sorted_days = [_finite_sorted(values[g]) for g in groups]
            joined = np.concatenate(sorted_days) if sorted_days else np.empty(0)
            order = np.argsort(joined, kind="stable")  # merges the sorted runs
            pool = joined[order]
        else:
            pool = _finite_sorted(values[np.concatenate(groups)] if groups else np.empty(0))
        n = pool.size
        new_value = np.r_[True, pool[1:] != pool[:-1]] if n else np.empty(0, bool)
        first = np.flatnonzero(new_value)  # first position of each distinct value
        ends = np.append(first[1:], n)  # one past its last
        tied = normal_scores(first, ends, n)  # the score of each distinct value
        if with_days and n:
            run = np.cumsum(new_value) - 1  # each pool position's distinct value
            at = np.empty(n, dtype=np.int64)
            at[order] = run  # each joined value's distinct value
            offset = 0
            for day in sorted_days:
                runs = at[offset:offset + day.size]
                days.append((day, first[runs], ends[runs]))  # pool values < / <= each day value
                day_scores.append(tied[runs])
                offset += day.size
        mean = float(pool.mean()) if n else float("nan")
        var = float(pool.var(ddof=1)) if n > 1 else 0.0
        score_sum = score_sq = 0.0
        if n:
            counts = ends - first
            score_sum, score_sq = float(tied @ counts), float((tied * tied) @ counts)
        return cls(pool, days, mean, var, float(pool.std()) if n else 0.0, _sorted_quantiles(pool), score_sum,
                   score_sq, day_scores)


def normal_scores(below: np.ndarray, upto: np.ndarray, n_pool: int) -> np.ndarray:
    """Van der Waerden scores of values placed in a pool of ``n_pool``: Phi^-1 of the mid-rank
    share (below + upto + 1) / (2 (n_pool + 1)); a pool value without ties gets Phi^-1(i / (n + 1))."""
    return special.ndtri((np.asarray(below, np.float64) + upto + 1) / (2.0 * (n_pool + 1)))


def _sorted_quantiles(values: np.ndarray) -> np.ndarray:
    """Quantiles of a sorted sample on ``_QUANTILE_GRID`` (inverse ECDF, no interpolation)."""
    if not values.size:
        return np.empty(0)
    return values[np.minimum((_QUANTILE_GRID * values.size).astype(np.int64), values.size - 1)]


def _finite_sorted(values: np.ndarray) -> np.ndarray:
    ordered = np.sort(values)
    return ordered[np.searchsorted(ordered, -np.inf, side="right"):np.searchsorted(ordered, np.inf, side="left")]


def numeric_tracks(prefix: str, family: str, base: np.ndarray, base_groups: list[np.ndarray], cur: np.ndarray,
                   cur_groups: list[np.ndarray | None], min_rows: int, psi_bins: int, *,
                   calibrate: bool = True) -> list[Track]:
    """The distribution, mean_up and mean_down checks of one numeric column (and missing_up when
    either window has missing values). ``calibrate`` False skips the baseline days' statistics."""
    pool = NumericPool.build(base, base_groups, with_days=calibrate)
    n_pool = pool.values.size
    day_values = [None if g is None else _finite_sorted(cur[g]) for g in cur_groups]
    dist, up, down = [], [], []
    for values in day_values:
        if values is None:
            dist.append(None), up.append(None), down.append(None)
            continue
        n = values.size
        if n < min_rows or n_pool < min_rows:
            for track in (dist, up, down):
                track.append(DayValue(None, None, n, "insufficient_data"))
            continue
        below, upto = pool.place(values)
        gap = _ks_gap(pool.values, values, below, upto)
        w_norm = (float(np.abs(_sorted_quantiles(values) - pool.quantiles).mean()) / pool.std
                  if pool.std > 0 else None)
        mean = float(values.mean())
        z = scores_z(pool.scores(below, upto), pool.score_sum, pool.score_sq, n_pool)
        shift = (mean - pool.mean) / pool.std if pool.std > 0 else None
        dist.append(DayValue(_ks_z(gap, n, n_pool), w_norm, n, details={"ks": gap}))
        up.append(DayValue(z, shift, n, details={"mean": mean}))
        down.append(DayValue(-z, None if shift is None else -shift, n, details={"mean": mean}))
    base_dist, base_up = _numeric_baseline(pool, min_rows) if calibrate else ([], [])

    def segment(positions: list[int]) -> np.ndarray:
        parts = [day_values[i] for i in positions if day_values[i] is not None]
        return np.sort(np.concatenate(parts)) if parts else np.empty(0)

    def distribution_gate(positions):
        seg = segment(positions)
        if seg.size == 0 or n_pool == 0:
            return None, Severity.NONE, {}
        return gates.numeric_distribution_gate(pool.values, pool.std, seg, psi_bins)

    def mean_gate(sign):
        def gate(positions):
            seg = segment(positions)
            if seg.size == 0 or n_pool == 0 or pool.std <= 0:
                return None, Severity.NONE, {}
            shift = sign * (float(seg.mean()) - pool.mean) / pool.std
            return shift, gates.rate(gates.WASSERSTEIN_LADDER, shift), {
                "mean_reference": pool.mean, "mean_current": float(seg.mean()), "n_current": int(seg.size)}
        return gate

    base_down = [None if z is None else -z for z in base_up]
    tracks = [Track(f"{prefix}:distribution", family, "wasserstein_norm", dist, base_dist, distribution_gate,
                    skewed=True),
              Track(f"{prefix}:mean_up", family, "mean_shift_std", up, base_up, mean_gate(1.0)),
              Track(f"{prefix}:mean_down", family, "mean_shift_std", down, base_down, mean_gate(-1.0))]
    missing = ~np.isfinite(base), ~np.isfinite(cur)
    if missing[0].any() or missing[1].any():
        tracks.append(missing_track(prefix, family, missing[0], base_groups if calibrate else [], missing[1],
                                    cur_groups, min_rows))
    return tracks


def _numeric_baseline(pool: NumericPool, min_rows: int) -> tuple[list[float], list[float]]:
    """Each baseline day against the rest of the baseline: KS z and Welch z (mean up); None for a
    day with too few rows (the lists are aligned with the baseline's days)."""
    n_pool = pool.values.size
    dist = []
    for values, below, upto in pool.days:
        n = values.size
        rest = n_pool - n
        if n < min_rows or rest < min_rows:
            dist.append(None)
            continue
        w = n / n_pool
        gap = _ks_gap(pool.values, values, below, upto) / (1 - w)
        dist.append(_ks_z(gap, n, rest))
    return dist, baseline_scores_z(pool, min_rows)


def baseline_scores_z(pool: NumericPool, min_rows: int) -> list[float]:
    """Each baseline day's normal-score z (``scores_z``) against the rest of the baseline (None for a
    day with too few rows: aligned with the pool's days)."""
    n_pool = pool.values.size
    up = []
    for (values, _, _), scores in zip(pool.days, pool.day_scores, strict=True):
        rest = n_pool - values.size
        if values.size < min_rows or rest < min_rows:
            up.append(None)
            continue
        up.append(scores_z(scores, pool.score_sum - float(scores.sum()), pool.score_sq - float(scores @ scores), rest))
    return up


def scores_z(scores: np.ndarray, rest_sum: float, rest_sq: float, rest: int) -> float:
    """Welch z of a day's mean normal score against the reference's (given by its sum and sum of
    squares over ``rest`` values)."""
    n = scores.size
    mean_r = rest_sum / rest
    var_r = max(rest_sq - rest * mean_r * mean_r, 0.0) / (rest - 1)
    return welch_z(float(scores.mean()), float(scores.var(ddof=1)), n, mean_r, var_r, rest)


# --- missing values -------------------------------------------------------------------------------------

def _proportion_z(x_d: int, n_d: int, x_r: int, n_r: int) -> float:
    """One-sided two-proportion z (pooled standard error) of x_d/n_d above x_r/n_r."""
    pooled = (x_d + x_r) / (n_d + n_r)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n_d + 1 / n_r))
    return clip_z((x_d / n_d - x_r / n_r) / se) if se > 0 else 0.0


def missing_track(prefix: str, family: str, base_missing: np.ndarray, base_groups: list[np.ndarray],
                  cur_missing: np.ndarray, cur_groups: list[np.ndarray | None], min_rows: int) -> Track:
    """``missing_up``: the day's missing share above the baseline's (two-proportion z)."""
    x_b, n_b = int(base_missing.sum()), int(base_missing.size)
    counts = [None if g is None else (int(cur_missing[g].sum()), int(g.size)) for g in cur_groups]
    days = []
    for count in counts:
        if count is None:
            days.append(None)
        elif count[1] < min_rows or n_b < min_rows:
            days.append(DayValue(None, None, count[1], "insufficient_data"))
        else:
            days.append(DayValue(_proportion_z(*count, x_b, n_b), count[0] / count[1] - x_b / n_b, count[1]))
    baseline = []
    for g in base_groups:
        x, n = int(base_missing[g].sum()), int(g.size)
        enough = n >= min_rows and n_b - n >= min_rows
        baseline.append(_proportion_z(x, n, x_b - x, n_b - n) if enough else None)

    def gate(positions):
        x = sum(counts[i][0] for i in positions if counts[i] is not None)
        n = sum(counts[i][1] for i in positions if counts[i] is not None)
        if not n or not n_b:
            return None, Severity.NONE, {}
        change = x / n - x_b / n_b
        return change, gates.rate(gates.MISSING_LADDER, change), {
            "missing_rate_reference": x_b / n_b, "missing_rate_current": x / n}

    return Track(f"{prefix}:missing_up", family, "missing_rate_change", days, baseline, gate)


# --- categorical ------------------------------------------------------------------------------------------

def category_codes(base: pd.Series, cur: pd.Series) -> tuple[np.ndarray, np.ndarray, int]:
    """Codes of both columns over the union of their labels (as text, sorted: compare_categorical's
    order), -1 for a missing value; and the number of categories."""
    texts = []
    for column in (base, cur):
        if isinstance(column.dtype, pd.CategoricalDtype):
            codes, uniques = column.cat.codes.to_numpy(), column.cat.categories
        else:
            codes, uniques = pd.factorize(column.astype(object), use_na_sentinel=True)
        texts.append((codes, [label_text(u) for u in uniques]))
    labels = sorted(set(texts[0][1]) | set(texts[1][1]))
    position = {label: i for i, label in enumerate(labels)}
    out = []
    for codes, uniques in texts:
        mapping = np.array([position[u] for u in uniques] + [-1], dtype=np.int64)
        out.append(mapping[np.where(codes < 0, len(uniques), codes)])
    return out[0], out[1], len(labels)


def chi2_js(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """(p-value, Jensen-Shannon distance) of two count vectors, pooled as ``compare_categorical``
    pools them (categories in label order; small ones merged until each group's expected count in
    the smaller sample reaches 5)."""
    n1, n2 = reference.sum(), current.sum()
    present = (reference + current) > 0
    table = _merge_small_columns(np.vstack((reference[present], current[present])).astype(np.float64),
                                 MIN_EXPECTED_COUNT * (n1 + n2) / min(n1, n2))
    if table.shape[1] < 2:
        return 1.0, 0.0
    p = float(stats.chi2_contingency(table, correction=False).pvalue)
    js = float(distance.jensenshannon(table[0] / n1, table[1] / n2, base=2))
    return p, js if np.isfinite(js) else 0.0


def categorical_tracks(prefix: str, family: str, base: pd.Series, base_groups: list[np.ndarray], cur: pd.Series,
                       cur_groups: list[np.ndarray | None], min_rows: int, *, calibrate: bool = True) -> list[Track]:
    """The distribution check of a categorical column (chi-squared; effect JS distance) and
    missing_up when either window has missing values."""
    base_codes, cur_codes, size = category_codes(base, cur)

    def counts(codes, group):
        present = codes[group]
        return np.bincount(present[present >= 0], minlength=size)

    pool = np.bincount(base_codes[base_codes >= 0], minlength=size)
    day_counts = [None if g is None else counts(cur_codes, g) for g in cur_groups]
    days = []
    for c in day_counts:
        if c is None:
            days.append(None)
        elif c.sum() < min_rows or pool.sum() < min_rows:
            days.append(DayValue(None, None, int(c.sum()), "insufficient_data"))
        else:
            p, js = chi2_js(pool, c)
            days.append(DayValue(z_from_p(p), js, int(c.sum())))
    baseline = []
    for g in base_groups if calibrate else []:
        c = counts(base_codes, g)
        rest = pool - c
        enough = c.sum() >= min_rows and rest.sum() >= min_rows
        baseline.append(z_from_p(chi2_js(rest, c)[0]) if enough else None)

    def gate(positions):
        total = sum((day_counts[i] for i in positions if day_counts[i] is not None), np.zeros(size, np.int64))
        if not total.sum() or not pool.sum():
            return None, Severity.NONE, {}
        p, js = chi2_js(pool, total)
        return js, gates.rate(gates.JS_LADDER, js), {"js_distance": js, "p_value": p, "n_current": int(total.sum())}

    tracks = [Track(f"{prefix}:distribution", family, "js_distance", days, baseline, gate, skewed=True)]
    if (base_codes < 0).any() or (cur_codes < 0).any():
        tracks.append(missing_track(prefix, family, base_codes < 0, base_groups if calibrate else [], cur_codes < 0,
                                    cur_groups, min_rows))
    return tracks
