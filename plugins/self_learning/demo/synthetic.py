"""A synthetic but realistic ad-campaign feedback data set, deterministic for a seed.

Used by ``make demo``, the DAG tests and the benchmarks. Every row is one prediction for one ad
on one day, with the features ad-prediction models are served with (spend, impressions, CPM, CTR,
audience size, platform, creative type, hook type, day of week) and a real outcome that arrives
after a label delay (ROAS after conversions settle, 1-7 days; CTR the next day; the classifiers'
labels after 1-4 days); a few outcomes never arrive.

The true outcome depends on the features and the served prediction is a good estimate of it,
so a stable scenario has no drift. Two changes can be injected at a known day:

- feature drift: ``audience_size`` grows 2.2x and ``hook_type`` shifts towards humour, for every
  model served with those features; the models stay right (covariate shift only);
- a concept shift in one model: the relation between features and outcome changes (the true
  value drops by ``concept_shift_factor``) while features and predictions stay as they were.

``Scenario(multiclass_hooks=True)`` serves ``hook_classifier`` as a multiclass model instead (issue
17; ``make demo`` turns it on; off by default, where tests of the binary hook classifier use the
stream): it picks one of ``HOOK_CLASSES`` for
an ad, served with one ``proba_<class>`` column per class and the most probable class as
``predicted_label``; its outcomes are ``actual_label``. The feature drift also makes ``offer``
(``DRIFTING_HOOK_CLASS``) more prevalent, in the truth and in the served probabilities alike (the
model stays right; the predicted-class distribution moves); its concept shift replaces the actual
class by a uniformly drawn one for a ``1 - concept_shift_factor`` share of the rows (accuracy drops).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from ..core.types import ModelSpec, ModelType, TaskKind

PLATFORMS = {"meta": 0.45, "tiktok": 0.25, "google": 0.20, "youtube": 0.10}
PLATFORM_CPM = {"meta": 11.0, "tiktok": 7.0, "google": 14.0, "youtube": 9.0}
PLATFORM_ROAS = {"meta": 0.10, "tiktok": -0.05, "google": 0.15, "youtube": -0.10}
CREATIVES = {"video": 0.45, "image": 0.35, "carousel": 0.20}
CREATIVE_CTR = {"video": 0.012, "image": 0.009, "carousel": 0.011}
HOOKS = {"question": 0.25, "testimonial": 0.20, "problem_solution": 0.25, "humor": 0.15, "statistic": 0.15}
DRIFTED_HOOKS = {"question": 0.15, "testimonial": 0.12, "problem_solution": 0.15, "humor": 0.48, "statistic": 0.10}
HOOK_EFFECT = {"question": 0.2, "testimonial": 0.4, "problem_solution": 0.3, "humor": 0.1, "statistic": -0.1}
AUDIENCE_GROWTH = 2.2
DRIFTED_FEATURES = ("audience_size", "hook_type")

NUMERIC = ("spend", "impressions", "cpm", "ctr", "audience_size")
CATEGORICAL = ("platform", "creative_type", "hook_type", "day_of_week")
MODEL_FEATURES: dict[str, tuple[str, ...]] = {
    ModelType.ROAS_PREDICTOR: ("spend", "impressions", "cpm", "ctr", "audience_size", "platform", "creative_type",
                               "day_of_week"),
    ModelType.CTR_PREDICTOR: ("cpm", "audience_size", "platform", "creative_type", "hook_type", "day_of_week"),
    ModelType.HOOK_CLASSIFIER: ("hook_type", "creative_type", "platform", "audience_size", "spend"),
    ModelType.VISUAL_PATTERN: ("creative_type", "platform", "ctr", "cpm"),
}
MODEL_VERSIONS: dict[str, dict[str, float]] = {  # traffic share per served version
    ModelType.ROAS_PREDICTOR: {"v3": 1.0},
    ModelType.CTR_PREDICTOR: {"v5": 1.0},
    ModelType.HOOK_CLASSIFIER: {"v1": 0.8, "v2": 0.2},
    ModelType.VISUAL_PATTERN: {"v2": 1.0},
}
LABEL_DELAY_DAYS = {  # (minimum, mean of the extra Poisson days)
    ModelType.ROAS_PREDICTOR: (1, 2.0),
    ModelType.CTR_PREDICTOR: (1, 0.2),
    ModelType.HOOK_CLASSIFIER: (1, 1.0),
    ModelType.VISUAL_PATTERN: (1, 1.0),
}
# The multiclass hook classifier (``Scenario.multiclass_hooks``): its classes, how each depends on
# the ad (a logit per class: base, video creative, log spend / 150, log audience / 400k) and the
# class whose logit rises by ``DRIFTING_HOOK_LIFT`` from the feature drift day.
HOOK_CLASSES = ("question", "statistic", "story", "offer", "testimonial")
HOOK_CLASS_LOGITS = {"question": (0.6, 0.0, 0.0, 0.8), "statistic": (0.0, -1.5, 1.2, 0.0),
                     "story": (-0.4, 2.4, 0.0, -0.6), "offer": (-0.6, 0.0, -1.5, 0.0),
                     "testimonial": (-0.8, 0.8, 0.6, 1.0)}
DRIFTING_HOOK_CLASS = "offer"
DRIFTING_HOOK_LIFT = 1.3
DEFAULT_END = datetime(2026, 11, 1, tzinfo=UTC)
CAMPAIGNS = 500


@dataclasses.dataclass(frozen=True)
class Scenario:
    """What to generate: ``days`` of traffic ending (exclusive) at ``end``, ``rows_per_day`` per model.

    ``feature_drift_day`` / ``concept_shift_day`` are day indexes (0 = first day) from which the
    change applies; None leaves the data stable.
    """

    days: int = 60
    rows_per_day: int = 400
    end: datetime = DEFAULT_END
    seed: int = 7
    models: tuple[str, ...] = tuple(MODEL_FEATURES)
    feature_drift_day: int | None = None
    concept_shift_day: int | None = None
    concept_shift_model: str = ModelType.CTR_PREDICTOR.value
    concept_shift_factor: float = 0.6
    missing_label_share: float = 0.03
    multiclass_hooks: bool = False

    def __post_init__(self):
        if self.days < 1 or self.rows_per_day < 1:
            raise ValueError(f"days, rows_per_day: must be >= 1, got {self.days}, {self.rows_per_day}")
        unknown = set(self.models) - set(MODEL_FEATURES)
        if unknown:
            raise ValueError(f"models: no synthetic generator for {sorted(unknown)}; known: {sorted(MODEL_FEATURES)}")
        for field in ("feature_drift_day", "concept_shift_day"):
            day = getattr(self, field)
            if day is not None and not 0 <= day < self.days:
                raise ValueError(f"{field}: must be within 0..{self.days - 1}, got {day}")

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)

    def day_start(self, day: int) -> datetime:
        return self.start + timedelta(days=day)


@dataclasses.dataclass(frozen=True)
class SyntheticFeedback:
    """Predictions (the bulk-ingest frame: reserved columns + one per feature; a multiclass model's
    rows one ``proba_<class>`` column per class), their outcomes (prediction_id, actual_value or a
    multiclass model's actual_label, observed_at, received_at) and the model specs."""

    scenario: Scenario
    models: tuple[ModelSpec, ...]
    predictions: pd.DataFrame
    outcomes: pd.DataFrame

    def outcomes_received(self, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """Outcomes that reach the outcome source in [start, end)."""
        received = self.outcomes["received_at"]
        mask = np.ones(len(received), dtype=bool)
        if start is not None:
            mask &= (received >= pd.Timestamp(start)).to_numpy()
        if end is not None:
            mask &= (received < pd.Timestamp(end)).to_numpy()
        return self.outcomes[mask].reset_index(drop=True)


def generate(scenario: Scenario = Scenario()) -> SyntheticFeedback:
    """The data set of ``scenario``; the same scenario always gives the same rows."""
    rng = np.random.default_rng(scenario.seed)
    frames, outcomes, specs = [], [], []
    for model in scenario.models:
        features = MODEL_FEATURES[model]
        multiclass = _is_multiclass(scenario, str(model))
        task_kind = TaskKind.REGRESSION if model in (ModelType.ROAS_PREDICTOR, ModelType.CTR_PREDICTOR) \
            else TaskKind.MULTICLASS_CLASSIFICATION if multiclass else TaskKind.BINARY_CLASSIFICATION
        specs.append(ModelSpec(str(model), task_kind,
                               {f: "numeric" if f in NUMERIC else "categorical" for f in features},
                               classes=HOOK_CLASSES if multiclass else None))
        rows = _model_rows(rng, scenario, str(model))
        served = ["predicted_label", *(f"proba_{c}" for c in HOOK_CLASSES)] if multiclass \
            else ["predicted_value", "predicted_label"]
        frames.append(rows[["prediction_id", "model", "model_version", *served, "unit_id", "served_at", *features]])
        outcomes.append(_outcomes(rng, scenario, str(model), rows))
    return SyntheticFeedback(scenario, tuple(specs), pd.concat(frames, ignore_index=True),
                             pd.concat(outcomes, ignore_index=True))


def _model_rows(rng: np.random.Generator, scenario: Scenario, model: str) -> pd.DataFrame:
    n = scenario.days * scenario.rows_per_day
    day = np.repeat(np.arange(scenario.days), scenario.rows_per_day)
    seconds = rng.integers(0, 86_400, size=n)
    served_at = pd.Timestamp(scenario.start) + pd.to_timedelta(day, unit="D") + pd.to_timedelta(seconds, unit="s")
    drifted = (day >= scenario.feature_drift_day) if scenario.feature_drift_day is not None else np.zeros(n, bool)

    platform = _choice(rng, PLATFORMS, n)
    creative = _choice(rng, CREATIVES, n)
    hook = np.where(drifted, _choice(rng, DRIFTED_HOOKS, n), _choice(rng, HOOKS, n))
    spend = rng.lognormal(np.log(150.0), 0.9, n)
    cpm = np.vectorize(PLATFORM_CPM.get)(platform) * rng.lognormal(0.0, 0.35, n)
    impressions = np.round(spend / cpm * 1000.0)
    ctr = np.vectorize(CREATIVE_CTR.get)(creative) * rng.lognormal(0.0, 0.3, n)
    audience = rng.lognormal(np.log(400_000.0), 0.9, n) * np.where(drifted, AUDIENCE_GROWTH, 1.0)
    frame = pd.DataFrame({
        "spend": spend.round(2), "impressions": impressions, "cpm": cpm.round(3), "ctr": ctr.round(5),
        "audience_size": audience.round(), "platform": platform, "creative_type": creative, "hook_type": hook,
        "day_of_week": served_at.day_name().to_numpy(),
    })
    versions = MODEL_VERSIONS[model]
    if _is_multiclass(scenario, model):
        truth, probabilities = _hook_classes(rng, frame, drifted)
        for j, name in enumerate(HOOK_CLASSES):
            frame[f"proba_{name}"] = probabilities[:, j]
        label = np.asarray(HOOK_CLASSES, dtype=object)[probabilities.argmax(axis=1)]
        frame["model_version"] = _choice(rng, versions, n)
        frame["predicted_label"] = label
        frame["actual_value"] = truth
        return _identified(rng, frame, model, day, served_at)
    truth, predicted, label = _outcome_model(rng, model, frame)
    frame["model_version"] = _choice(rng, versions, n)
    frame["predicted_value"] = predicted
    frame["predicted_label"] = pd.array(label, dtype="Int64") if label is not None else pd.NA
    frame["actual_value"] = truth
    return _identified(rng, frame, model, day, served_at)


def _identified(rng, frame: pd.DataFrame, model: str, day: np.ndarray, served_at) -> pd.DataFrame:
    n = len(frame)
    frame["served_at"] = served_at
    frame["model"] = model
    frame["prediction_id"] = [f"{model}-{d:03d}-{i:06d}" for d, i in zip(day, np.arange(n), strict=True)]
    frame["unit_id"] = np.char.add("campaign-", rng.integers(0, CAMPAIGNS, n).astype(str))
    return frame


def _is_multiclass(scenario: Scenario, model: str) -> bool:
    return scenario.multiclass_hooks and model == ModelType.HOOK_CLASSIFIER


def _hook_classes(rng, f: pd.DataFrame, drifted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(actual class labels, served probabilities in ``HOOK_CLASSES`` order) of the multiclass hook
    classifier: the true class is drawn from a softmax of per-class logits of the ad; the model
    serves the same softmax with small noise on the logits (a good, not perfect, model). From the
    drift day ``DRIFTING_HOOK_CLASS``'s logit rises by ``DRIFTING_HOOK_LIFT`` in both."""
    n = len(f)
    terms = np.column_stack([np.ones(n), (f["creative_type"].to_numpy() == "video").astype(float),
                             np.log(f["spend"].to_numpy() / 150.0), np.log(f["audience_size"].to_numpy() / 400_000.0)])
    logits = terms @ np.array([HOOK_CLASS_LOGITS[c] for c in HOOK_CLASSES]).T
    logits[:, HOOK_CLASSES.index(DRIFTING_HOOK_CLASS)] += np.where(drifted, DRIFTING_HOOK_LIFT, 0.0)
    truth = _softmax(logits)
    actual = np.asarray(HOOK_CLASSES, dtype=object)[
        (rng.random((n, 1)) > truth.cumsum(axis=1)).sum(axis=1).clip(max=len(HOOK_CLASSES) - 1)]
    served = _softmax(logits + rng.normal(0.0, 0.15, logits.shape)).round(5)
    served[:, -1] = 1.0 - served[:, :-1].sum(axis=1)  # rounded rows still sum to 1
    return actual, served.clip(min=0.0)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _outcome_model(rng, model: str, f: pd.DataFrame):
    """(actual outcome, served prediction, predicted label or None) of one model."""
    n = len(f)
    weekend = f["day_of_week"].isin(["Saturday", "Sunday"]).to_numpy()
    log_audience = np.log(f["audience_size"].to_numpy() / 400_000.0)
    if model == ModelType.ROAS_PREDICTOR:
        mu = (0.7 + 0.3 * np.log(f["ctr"].to_numpy() / 0.01) + 0.03 * log_audience
              - 0.25 * np.log(f["cpm"].to_numpy() / 10.0) + np.vectorize(PLATFORM_ROAS.get)(f["platform"].to_numpy())
              + np.where(f["creative_type"].to_numpy() == "video", 0.1, 0.0) + np.where(weekend, -0.08, 0.0))
        sigma = 0.3
        mean = np.exp(mu + sigma**2 / 2)  # the conditional mean a good regressor serves
        actual = np.exp(mu + rng.normal(0.0, sigma, n))
        predicted = mean * rng.lognormal(0.0, 0.05, n)
        return actual.round(4), predicted.round(4), None
    if model == ModelType.CTR_PREDICTOR:
        base = (np.vectorize(CREATIVE_CTR.get)(f["creative_type"].to_numpy())
                * np.exp(0.3 * np.vectorize(HOOK_EFFECT.get)(f["hook_type"].to_numpy()) - 0.01 * log_audience))
        actual = base * rng.lognormal(-0.25**2 / 2, 0.25, n)
        predicted = base * rng.lognormal(0.0, 0.05, n)
        return actual.round(6), predicted.round(6), None
    hook = np.vectorize(HOOK_EFFECT.get)(f["hook_type"].to_numpy())
    video = (f["creative_type"].to_numpy() == "video").astype(float)
    if model == ModelType.HOOK_CLASSIFIER:
        logit = -1.2 + 6.0 * hook + 1.2 * video + 0.05 * log_audience
    else:  # visual pattern: does the creative's visual pattern beat the account's median
        logit = -0.3 + 1.5 * video - 1.0 * (f["creative_type"].to_numpy() == "image") \
            + 300.0 * (f["ctr"].to_numpy() - 0.011) - 0.1 * (f["cpm"].to_numpy() - 10.0)
    p = 1.0 / (1.0 + np.exp(-logit))
    actual = (rng.random(n) < p).astype(float)
    score = 1.0 / (1.0 + np.exp(-(logit + rng.normal(0.0, 0.25, n))))
    return actual, score.round(5), (score >= 0.5).astype(np.int64)


def _outcomes(rng, scenario: Scenario, model: str, rows: pd.DataFrame) -> pd.DataFrame:
    actual = rows.pop("actual_value").to_numpy()
    n = len(rows)
    shifted = scenario.concept_shift_day is not None and model == scenario.concept_shift_model
    if shifted:
        day = ((rows["served_at"] - pd.Timestamp(scenario.start)) // pd.Timedelta(days=1)).to_numpy()
        after = day >= scenario.concept_shift_day
        if model in (ModelType.ROAS_PREDICTOR, ModelType.CTR_PREDICTOR):
            actual = np.where(after, actual * scenario.concept_shift_factor, actual)
        elif _is_multiclass(scenario, model):  # the actual class is a random one for part of the traffic
            redrawn = after & (rng.random(n) < 1.0 - scenario.concept_shift_factor)
            actual = np.where(redrawn, np.asarray(HOOK_CLASSES, dtype=object)[rng.integers(0, len(HOOK_CLASSES), n)],
                              actual)
        else:  # a classifier's labels flip for part of the traffic
            flip = after & (rng.random(n) < 1.0 - scenario.concept_shift_factor)
            actual = np.where(flip, 1.0 - actual, actual)
    minimum, extra = LABEL_DELAY_DAYS[model]
    delay = pd.to_timedelta(minimum + rng.poisson(extra, n), unit="D") + pd.to_timedelta(
        rng.integers(0, 86_400, n), unit="s")
    observed = rows["served_at"] + delay
    received = observed + pd.to_timedelta(rng.integers(0, 6 * 3600, n), unit="s")
    keep = rng.random(n) >= scenario.missing_label_share
    outcome = "actual_label" if _is_multiclass(scenario, model) else "actual_value"
    return pd.DataFrame({"prediction_id": rows["prediction_id"], outcome: actual,
                         "observed_at": observed, "received_at": received})[keep].reset_index(drop=True)


def _choice(rng: np.random.Generator, shares: dict[str, float], n: int) -> np.ndarray:
    names = np.array(list(shares))
    weights = np.fromiter(shares.values(), dtype=float)
    return names[rng.choice(len(names), size=n, p=weights / weights.sum())]
