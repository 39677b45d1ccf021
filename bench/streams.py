"""Seeded ad-model streams for the monitoring-quality benchmark (and its tests): pure numpy / pandas.

A stream is one model (regressor, binary classifier with scores, or a hard-label classifier that
serves 0/1), its features, a number of days and a volume, generated day by day from a seed so any
day can be rebuilt alone. What makes the stable behaviour realistic, and why each part is there:

- **weekly seasonality**: volume by weekday (Saturday and Sunday at 0.85 of a weekday) and the
  level of every third numeric feature by weekday (amplitude 0.05 σ). A daily statistic sees
  weekdays differ; a rule that tests day against baseline without allowing for it alarms weekly.
- **heavy tails**: numeric features cycle through normal, lognormal (spend-like, σ_log = 1),
  Pareto (α = 3, finite variance), a CTR-like rate in (0, 1) and a Poisson count (ties).
- **rare categories**: categorical features of 4, 8, 20 and 50 values with Zipf shares (s = 1.1:
  the 50-value feature has 36 values under 0.5 %), and now and then (3 % of days per wide feature)
  a new value appears at a 0.2 % share for 3-20 days, as new campaigns do.
- **autocorrelated days**: AR(1) day offsets (φ = 0.7) on three numeric features (stationary sd
  0.02 σ) and on the outcome (0.05 on the logit / log scale). Consecutive days are not
  independent draws, so overlapping windows and "n is large, p is tiny" both mislead.
- **label delays**: each outcome is observed 1-7 days after serving (30 / 25 / 15 / 10 / 8 / 7 /
  5 % by day, minus up to 6 h); ``label_share`` of the predictions ever get one.

The model's prediction is the known true function of the features under the stable regime (the
conditional mean for a regressor, the calibrated probability for a classifier, thresholded at 0.5
for a hard-label one), without the day offsets it cannot know. So a covariate shift moves the
predictions as a real model's would, a stable stream has no real systematic error, and any alert
on it is false. Five features (the first five numeric ones and the first two categorical ones)
drive the outcome through ``tanh`` of their standardised value.

Changes (``Change.kind``), from ``Change.start_day`` (an index over all days):
``abrupt`` / ``gradual`` (a location shift of ``effect`` × the feature's population σ, so the
Wasserstein distance / σ is exactly ``effect``; gradual ramps linearly over ``ramp_days``),
``concept`` (P(y|x) changes: ``effect`` × tanh(num_00) added to the outcome's latent; 0.2 raises
a regressor's MAE by 11 %; features unchanged), ``prior`` (the positive share becomes ``effect``
by keeping every positive and a fraction of the negatives, so P(x|y) is unchanged) and
``performance`` (each label is flipped with the probability that lowers the expected accuracy by
``effect``: q = Δ / (2a - 1)).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from scipy import special, stats

START = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday
NUMERIC_SHAPES = ("normal", "lognormal", "pareto", "rate", "count")
CARDINALITIES = (4, 8, 20, 50)
WEEKDAY_VOLUME = np.array([1.05, 1.1, 1.1, 1.05, 1.0, 0.85, 0.85])  # Monday first
WEEKDAY_AMPLITUDE = 0.05  # σ units, every third numeric feature
DAY_EFFECT_SD, DAY_EFFECT_PHI = 0.02, 0.7  # AR(1) day offsets of num_00..num_02 (σ units)
OUTCOME_DAY_SD = 0.05  # AR(1) day offset of the outcome's logit / log level
LABEL_DELAY_SHARES = np.array([0.30, 0.25, 0.15, 0.10, 0.08, 0.07, 0.05])  # 1..7 days
MAX_LABEL_DELAY_DAYS = len(LABEL_DELAY_SHARES)
INFORMATIVE = 5  # numeric features that drive the outcome
NOISE_SD = 0.25  # regression: log-normal noise of the outcome (MAPE about 20 %, under the default limit of 30)
CHANGE_KINDS = ("abrupt", "gradual", "concept", "prior", "performance")
TASKS = ("regression", "binary", "binary_hard")


@dataclasses.dataclass(frozen=True)
class Change:
    """What changes from ``start_day`` on (see the module docstring for each kind)."""

    kind: str
    start_day: int
    effect: float
    features: tuple[str, ...] = ()
    ramp_days: int = 14

    def __post_init__(self):
        if self.kind not in CHANGE_KINDS:
            raise ValueError(f"change.kind: one of {', '.join(CHANGE_KINDS)}, got {self.kind!r}")
        if self.kind in ("abrupt", "gradual") and not self.features:
            raise ValueError("change.features: a covariate shift needs the features it shifts")
        if self.kind == "prior" and not 0 < self.effect < 1:
            raise ValueError(f"change.effect: the new positive share, in (0, 1), got {self.effect}")
        if self.ramp_days < 1:
            raise ValueError(f"change.ramp_days: must be >= 1, got {self.ramp_days}")


@dataclasses.dataclass(frozen=True)
class StreamSpec:
    """One model's traffic: ``baseline_days`` of stable data, then ``monitored_days`` runs."""

    name: str
    task: str
    numeric: int
    categorical: int
    rows_per_day: int
    baseline_days: int = 30
    monitored_days: int = 90
    label_share: float = 1.0
    change: Change | None = None
    seed: int = 0

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"stream.task: one of {', '.join(TASKS)}, got {self.task!r}")
        if not 1 <= self.numeric + self.categorical <= 50 or min(self.numeric, self.categorical) < 0:
            raise ValueError(f"stream.numeric / categorical: 1..50 features in all, got {self.numeric} + "
                             f"{self.categorical}")
        if self.numeric < INFORMATIVE:
            raise ValueError(f"stream.numeric: at least {INFORMATIVE} (the outcome's drivers), got {self.numeric}")
        if not 10 <= self.rows_per_day <= 50_000:
            raise ValueError(f"stream.rows_per_day: 10..50000, got {self.rows_per_day}")
        if not 0 < self.label_share <= 1:
            raise ValueError(f"stream.label_share: in (0, 1], got {self.label_share}")
        unknown = set(self.change.features if self.change else ()) - set(self.feature_kinds)
        if unknown:
            raise ValueError(f"change.features: not features of the stream: {sorted(unknown)}")
        if self.change and not self.baseline_days <= self.change.start_day < self.days:
            raise ValueError(f"change.start_day: within the monitored days {self.baseline_days}..{self.days - 1}, "
                             f"got {self.change.start_day}")
        if self.change and self.change.kind in ("prior", "performance") and self.task == "regression":
            raise ValueError(f"change.kind: {self.change.kind} needs a classifier, the stream is a regressor")

    @property
    def days(self) -> int:
        return self.baseline_days + self.monitored_days

    @property
    def task_kind(self) -> str:
        return "regression" if self.task == "regression" else "binary_classification"

    @property
    def feature_kinds(self) -> dict[str, str]:
        return {**{f"num_{i:02d}": "numeric" for i in range(self.numeric)},
                **{f"cat_{i}": "categorical" for i in range(self.categorical)}}

    @property
    def shifted_features(self) -> tuple[str, ...]:
        return self.change.features if self.change and self.change.kind in ("abrupt", "gradual") else ()


def day_start(day: int) -> datetime:
    return START + timedelta(days=day)


class Stream:
    """The generator of one ``StreamSpec``: ``day(d)`` gives that day's predictions (features
    as columns, ready for ``FeedbackStore.register_predictions``) and their outcomes with
    ``observed_at`` (for ``record_outcomes`` once observed). Deterministic per (seed, day)."""

    def __init__(self, spec: StreamSpec):
        self.spec = spec
        rng = np.random.default_rng([spec.seed, 0xBEEF])
        self.shapes = [NUMERIC_SHAPES[i % len(NUMERIC_SHAPES)] for i in range(spec.numeric)]
        self.seasonal_phase = rng.uniform(0, 7, spec.numeric)
        self.seasonal = np.array([WEEKDAY_AMPLITUDE if i % 3 == 2 else 0.0 for i in range(spec.numeric)])
        self.day_effects = np.zeros((spec.days, spec.numeric))
        self.day_effects[:, :3] = _ar1(rng, spec.days, 3, DAY_EFFECT_SD)
        self.outcome_effect = _ar1(rng, spec.days, 1, OUTCOME_DAY_SD)[:, 0]
        self.categories = [CARDINALITIES[i % len(CARDINALITIES)] for i in range(spec.categorical)]
        self.category_effects = [rng.normal(0, 0.3, k) for k in self.categories[:2]]
        self.newcomers = _newcomers(rng, spec.days, self.categories)
        # population moments of each shape (a fixed large sample; the same for every stream)
        big = np.random.default_rng(12345).standard_normal(400_000)
        moments = {shape: _shape(shape, big, np.random.default_rng(1)) for shape in NUMERIC_SHAPES}
        self.mean = np.array([moments[s].mean() for s in self.shapes])
        self.std = np.array([moments[s].std() for s in self.shapes])
        self.coefficients = rng.choice([-1.0, 1.0], INFORMATIVE) * rng.uniform(0.3, 0.6, INFORMATIVE)
        self.accuracy = self._stable_accuracy() if spec.task != "regression" else None

    # -- one day -------------------------------------------------------------------------------------

    def day(self, d: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(predictions served on day ``d``, their outcomes with ``observed_at``)."""
        spec, change = self.spec, self.spec.change
        rng = np.random.default_rng([spec.seed, d])
        weekday = day_start(d).weekday()
        n = max(1, round(spec.rows_per_day * WEEKDAY_VOLUME[weekday] / WEEKDAY_VOLUME.mean()
                         * np.exp(rng.normal(0, 0.1))))
        keep = (1.0, 1.0)  # the share of (negatives, positives) kept: a prior shift keeps fewer of one
        if change and change.kind == "prior" and d >= change.start_day:
            base = self._positive_share()
            ratio = base * (1 - change.effect) / (change.effect * (1 - base))
            keep = (ratio, 1.0) if ratio <= 1 else (1.0, 1 / ratio)
        pool = n if keep == (1.0, 1.0) else int(np.ceil(n / min(keep) * 1.3)) + 20
        numeric = self._numeric(rng, d, weekday, pool)
        categorical = self._categorical(rng, d, pool)
        score, latent = self._predict(numeric, categorical)
        actual = self._outcomes(rng, d, latent, numeric)
        kept = np.flatnonzero(rng.uniform(size=pool) < np.where(actual == 1, keep[1], keep[0]))[:n]
        numeric, categorical = numeric[kept], [c[kept] for c in categorical]
        score, actual = score[kept], actual[kept]
        n = len(actual)
        served = pd.Timestamp(day_start(d)) + pd.to_timedelta(np.sort(rng.integers(0, 86_400_000, n)), unit="ms")
        ids = np.char.add(f"{spec.name}-{spec.seed}-{d:04d}-", np.arange(n).astype(str))
        frame = pd.DataFrame({"prediction_id": ids, "model": spec.name, "model_version": "v1", "served_at": served,
                              "predicted_value": (score >= 0.5).astype(float) if spec.task == "binary_hard" else score})
        for i in range(spec.numeric):
            frame[f"num_{i:02d}"] = numeric[:, i]
        for i, values in enumerate(categorical):
            frame[f"cat_{i}"] = values
        labelled = rng.uniform(size=n) < spec.label_share
        delay_days = rng.choice(np.arange(1, MAX_LABEL_DELAY_DAYS + 1), n, p=LABEL_DELAY_SHARES)
        delay = pd.to_timedelta(delay_days * 86_400_000 - rng.integers(0, 6 * 3_600_000, n), unit="ms")
        outcomes = pd.DataFrame({"prediction_id": ids, "actual_value": actual.astype(float),
                                 "observed_at": served + delay})[labelled]
        return frame, outcomes.reset_index(drop=True)

    def shift(self, d: int) -> float:
        """The covariate shift on day ``d`` in σ units (0 before the change)."""
        change = self.spec.change
        if not change or change.kind not in ("abrupt", "gradual") or d < change.start_day:
            return 0.0
        if change.kind == "abrupt":
            return change.effect
        return change.effect * min(1.0, (d - change.start_day + 1) / change.ramp_days)

    def _numeric(self, rng, d: int, weekday: int, n: int) -> np.ndarray:
        spec = self.spec
        out = np.empty((n, spec.numeric))
        level = self.seasonal * np.sin(2 * np.pi * (weekday + self.seasonal_phase) / 7) + self.day_effects[d]
        for i, shape in enumerate(self.shapes):
            out[:, i] = _shape(shape, rng.standard_normal(n), rng) + level[i] * self.std[i]
        shift = self.shift(d)
        if shift:
            for feature in spec.shifted_features:
                if feature.startswith("num_"):
                    i = int(feature[4:])
                    out[:, i] += shift * self.std[i]
        return out

    def _categorical(self, rng, d: int, n: int) -> list[np.ndarray]:
        columns = []
        shift = self.shift(d)
        for i, k in enumerate(self.categories):
            shares = 1.0 / np.arange(1, k + 1) ** 1.1
            shares /= shares.sum()
            name = f"cat_{i}"
            if shift and name in self.spec.shifted_features:
                # a categorical "shift" of effect e moves share from the top value to the next ones
                moved = min(shares[0], shift * np.sqrt(shares[0] * (1 - shares[0])))
                shares[0] -= moved
                shares[1:] += moved * shares[1:] / shares[1:].sum()
            values = np.array([f"v{j:02d}" for j in range(k)], dtype=object)
            new = [name_ for name_, start, end in self.newcomers[i] if start <= d < end]
            if new:
                shares = np.concatenate([shares * (1 - 0.002 * len(new)), np.full(len(new), 0.002)])
                values = np.concatenate([values, np.array(new, dtype=object)])
            columns.append(values[rng.choice(len(values), n, p=shares / shares.sum())])
        return columns

    def _latent(self, numeric: np.ndarray, categorical: list[np.ndarray]) -> np.ndarray:
        standard = np.tanh((numeric[:, :INFORMATIVE] - self.mean[:INFORMATIVE]) / self.std[:INFORMATIVE])
        latent = standard @ self.coefficients
        for effects, values in zip(self.category_effects, categorical[:2], strict=False):
            lookup = {f"v{j:02d}": effect for j, effect in enumerate(effects)}  # a new value: no effect
            latent = latent + pd.Series(values).map(lookup).fillna(0.0).to_numpy(float)
        return latent

    def _predict(self, numeric, categorical) -> tuple[np.ndarray, np.ndarray]:
        """(the model's prediction: score or conditional mean, the latent it came from)."""
        latent = self._latent(numeric, categorical)
        if self.spec.task == "regression":
            latent = latent + 0.5
            return np.exp(latent + NOISE_SD ** 2 / 2), latent
        latent = latent * 2.0 - 1.0
        return special.expit(latent), latent

    def _outcomes(self, rng, d: int, latent: np.ndarray, numeric: np.ndarray) -> np.ndarray:
        change = self.spec.change
        active = change is not None and d >= change.start_day
        latent = latent + self.outcome_effect[d]
        if active and change.kind == "concept":
            latent = latent + change.effect * np.tanh((numeric[:, 0] - self.mean[0]) / self.std[0])
        if self.spec.task == "regression":
            return np.exp(latent + rng.normal(0, NOISE_SD, len(latent)))
        actual = (rng.uniform(size=len(latent)) < special.expit(latent)).astype(int)
        if active and change.kind == "performance":
            flip = change.effect / (2 * self.accuracy - 1)
            actual = np.where(rng.uniform(size=len(actual)) < flip, 1 - actual, actual)
        return actual

    def _stable_sample(self, n: int = 100_000):
        rng = np.random.default_rng([self.spec.seed, 0xACC])
        numeric = np.column_stack([_shape(s, rng.standard_normal(n), rng) for s in self.shapes])
        categorical = []
        for k in self.categories:
            shares = 1.0 / np.arange(1, k + 1) ** 1.1
            categorical.append(np.array([f"v{j:02d}" for j in range(k)], dtype=object)[
                rng.choice(k, n, p=shares / shares.sum())])
        return self._predict(numeric, categorical)[0]

    def _stable_accuracy(self) -> float:
        score = self._stable_sample()
        return float(np.mean(np.maximum(score, 1 - score)))

    def _positive_share(self) -> float:
        if not hasattr(self, "_share"):
            self._share = float(np.mean(self._stable_sample()))
        return self._share


def _shape(shape: str, z: np.ndarray, rng) -> np.ndarray:
    """A feature value of the given marginal from a standard normal draw."""
    if shape == "normal":
        return 50.0 + 10.0 * z
    if shape == "lognormal":
        return np.exp(3.0 + z)
    if shape == "pareto":
        return 10.0 * stats.norm.sf(z) ** (-1 / 3.0)
    if shape == "rate":
        return special.expit(-3.5 + 0.6 * z)
    return rng.poisson(np.exp(2.0 + 0.4 * z)).astype(float)


def _ar1(rng, days: int, columns: int, sd: float) -> np.ndarray:
    out = np.zeros((days, columns))
    out[0] = rng.normal(0, sd, columns)
    innovation = sd * np.sqrt(1 - DAY_EFFECT_PHI ** 2)
    for d in range(1, days):
        out[d] = DAY_EFFECT_PHI * out[d - 1] + rng.normal(0, innovation, columns)
    return out


def _newcomers(rng, days: int, categories: list[int]) -> list[list[tuple[str, int, int]]]:
    """Per categorical feature, the new rare values: (value, first day, end day)."""
    out = []
    for i, k in enumerate(categories):
        found = []
        if k >= 20:
            for d in np.flatnonzero(rng.uniform(size=days) < 0.03):
                found.append((f"new_{i}_{d}", int(d), int(d + rng.integers(3, 21))))
        out.append(found)
    return out
