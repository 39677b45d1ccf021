"""The loop's decisions on top of the store: a retrained candidate against the champion, then a
champion-vs-challenger A/B test that promotes the winner.

Plain functions of a ``FeedbackStore`` and the statistics, without Airflow: the operators call them,
and so can a notebook or a serving team's own scheduler. The seed's API names are kept:
``ab_test_model_versions``, ``get_ab_test_results``, ``select_winning_model``.

Artifacts are scikit-learn estimators saved with skops (``model.skops``), a format that rebuilds
objects from a list of allowed types instead of running code as unpickling does. The operators
write them through Airflow's ``ObjectStoragePath`` under the configured artifact root, and
``load_artifact`` reads them back with fsspec alone, as serving code would, but only from under that
root (after resolving ``..``, percent-escapes and, for local files, symlinks) and only when every
type in the file is trusted: skops' defaults (scikit-learn, numpy, scipy), the few more the default
trainers need (``DEFAULT_TRUSTED_TYPES``), and those a model lists in its settings
(``thresholds["trusted_types"]``, for a dotted-path trainer producing other types). A registry row
is no longer a way to run code in a worker: a champion re-pointed at ``/tmp/evil.pkl`` is refused.
Pickle files (the format before skops) load only with ``allow_pickle=True``, which is unsafe
wherever someone else can write to the artifact storage.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
import zipfile
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from ..core import training
from ..core.ab import (
    DEFAULT_GUARDRAILS,
    ABDecision,
    ABTestConfig,
    ArmComparison,
    GuardrailCheck,
    SampleRatio,
    decide,
    parse_guardrails,
    sample_ratio_mismatch,
)
from ..core.ab_metrics import (
    arms_hard_labels,
    clustered_auc_variance,
    compare_metric,
    guardrail,
    metric_losses,
    primary_metric,
)
from ..core.ab_plan import ABTestPlan, cuped, plan_ab_test, plan_from_spread
from ..core.degradation import delong_auc_variance
from ..core.performance import ModelPerformance, compute_performance
from ..core.records import ABTestRecord
from ..core.tasks import task_spec
from ..core.types import Result, Severity, Status
from .locations import resolved_under_root

MIN_TRAINING_ROWS = 100
ARTIFACT_FILE = "model.skops"
# What skops 0.16 does not trust by default in the fitted default trainers of scikit-learn 1.9
# (``skops.io.get_untrusted_types`` on both, regression and binary): the boosted trees and the
# ``partial(check_array, ...)`` they keep. ``functools.partial`` is safe to trust: skops checks the
# function it wraps on its own, so only a partial of a trusted function loads.
DEFAULT_TRUSTED_TYPES = ("functools.partial", "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
                         "sklearn.utils.validation.check_array")
ZIP_MAGIC = b"PK\x03\x04"  # a skops file is a zip archive; anything else is taken for a pickle


def version_name(window_end: datetime) -> str:
    """The version a retrain of the window ending at ``window_end`` registers (a re-run of the same
    retrain registers the same version again)."""
    return f"r{window_end.astimezone(UTC):%Y%m%dT%H%M}Z"


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A trained candidate and its verdict against the champion on the same time-based holdout;
    ``artifact`` is the estimator in skops format, checked to load back with the model's trusted types."""

    model: str
    version: str
    estimator: Any
    verdict: training.Verdict
    candidate: ModelPerformance
    champion: ModelPerformance | None
    champion_source: str
    training_window: tuple[datetime, datetime]
    training_rows: int
    holdout_rows: int
    holdout_start: datetime
    trainer: str
    artifact: bytes = dataclasses.field(default=b"", repr=False)
    notes: tuple[str, ...] = ()  # training rows left out and why (``training.class_training_rows``)

    def metrics(self) -> dict[str, Any]:
        """What the registry stores with the version; ``training_start`` / ``training_end`` are the
        window it was trained and held out on, the baseline a promotion moves to."""
        import sklearn

        return {"training_start": self.training_window[0].isoformat(),
                "training_end": self.training_window[1].isoformat(),
                "verdict": self.verdict.to_dict(), "holdout": self.candidate.to_dict(),
                "champion_holdout": self.champion.to_dict() if self.champion else None,
                "champion_source": self.champion_source, "training_rows": self.training_rows,
                "holdout_rows": self.holdout_rows, "holdout_start": self.holdout_start.isoformat(),
                "trainer": self.trainer, "scikit_learn": sklearn.__version__, "notes": list(self.notes)}


def train_candidate(store, model: str, *, window_end: datetime, artifact_root: str, training_window_days: int = 30,
                    holdout_share: float = 0.2, margin: float = 0.02, trainer: str | None = None,
                    version: str | None = None, allow_pickle: bool = False) -> Candidate:
    """Train on the labelled outcomes of the window, hold out its latest ``holdout_share`` and score
    candidate and champion there with the same metrics. A window that cannot give a candidate
    (fewer than ``MIN_TRAINING_ROWS``; a multiclass window of fewer than two usable classes, see
    ``training.class_training_rows``) raises ``training.NotTrainable`` naming the reason. The
    champion is the registry's champion artifact when there is one (loaded from under
    ``artifact_root`` only, see ``load_artifact``), else the predictions that were actually served."""
    spec = store.get_model(model)
    if isinstance(training_window_days, bool) or not isinstance(training_window_days, int) \
            or training_window_days < 1:
        raise ValueError(f"training_window_days: must be an integer >= 1, got {training_window_days!r}")
    start = window_end - timedelta(days=training_window_days)
    frame = store.read_window(spec.name, start, window_end)
    if len(frame) < MIN_TRAINING_ROWS:
        raise training.NotTrainable(f"training window {start:%Y-%m-%d}..{window_end:%Y-%m-%d}: {len(frame)} labelled "
                                    f"outcomes of {spec.name!r}; at least {MIN_TRAINING_ROWS} are needed to train")
    kinds = {key: kind for key, (kind, _) in store.feature_registry(spec.name).items()}
    if not kinds:
        raise ValueError(f"model: {spec.name!r} has no stored features to train on")
    trusted = model_trusted_types(spec)
    train, holdout = training.time_holdout(frame, holdout_share=holdout_share)
    factory = training.load_trainer(trainer) if trainer else training.default_trainer
    task = task_spec(spec.task_kind)
    notes: tuple[str, ...] = ()
    if spec.classes is not None:
        train, notes = training.class_training_rows(train, spec.classes, target=task.target)
    estimator = training.fit(factory(spec.task_kind, kinds), train, kinds, target=task.target)
    artifact = artifact_bytes(estimator, trusted_types=trusted)  # before scoring: an unloadable candidate fails here
    version = version or version_name(window_end)
    candidate = training.holdout_performance(
        spec.task_kind, holdout, _on_model_classes(spec, training.predict(estimator, holdout, kinds, spec.task_kind)),
        model_version=version)
    champion_row = store.get_champion(spec.name)
    served, source = task.window_rows(holdout, spec.classes)[1], "served predictions"
    champion_version = champion_row.version if champion_row else "served"
    if champion_row and champion_row.artifact_uri:
        champion_estimator = load_artifact(champion_row.artifact_uri, root=artifact_root, trusted_types=trusted,
                                           allow_pickle=allow_pickle)
        served = _on_model_classes(spec, training.predict(champion_estimator, holdout, kinds, spec.task_kind))
        source = f"champion {champion_version} artifact"
    champion = training.holdout_performance(spec.task_kind, holdout, served, model_version=champion_version)
    return Candidate(spec.name, version, estimator, training.judge(candidate, champion, margin=margin), candidate,
                     champion, source, (start, window_end), len(train), len(holdout),
                     holdout["served_at"].iloc[0].to_pydatetime(), trainer or "self_learning.training:default_trainer",
                     artifact, notes)


def _on_model_classes(spec, predicted):
    """A multiclass estimator's predictions over the model's class list: a fitted model knows only the
    classes of its training rows, and scored on its own list a holdout row of another class would be
    left out, so candidate and champion would be judged on different rows. Other kinds: unchanged."""
    return predicted.with_classes(spec.classes) if spec.classes is not None else predicted


# -- artifacts ------------------------------------------------------------------------------------


class UntrustedArtifact(ValueError):
    """An artifact that is not loaded or not written: outside the root, a pickle without the
    opt-in, or holding untrusted types. No retry changes that, so the operators fail at once."""


def model_trusted_types(spec) -> tuple[str, ...]:
    """The types a model's artifacts may hold beyond skops' defaults: ``DEFAULT_TRUSTED_TYPES`` and
    the model's ``thresholds["trusted_types"]`` (full names such as ``"mypackage.trees.Booster"``)."""
    extra = spec.thresholds.get("trusted_types") or []
    if isinstance(extra, str) or not isinstance(extra, list | tuple) \
            or not all(isinstance(name, str) and name for name in extra):
        raise ValueError(f"thresholds.trusted_types: must be a list of type names, got {extra!r}")
    return tuple(dict.fromkeys((*DEFAULT_TRUSTED_TYPES, *extra)))


def artifact_bytes(estimator, *, trusted_types: Iterable[str] = DEFAULT_TRUSTED_TYPES) -> bytes:
    """The estimator in skops format (deflated: 0.25 MB against 1.05 MB stored for a default
    trainer fitted on 2,000 rows; 55 ms). Raises ``ValueError`` when it holds types outside
    ``trusted_types`` and skops' defaults, which ``load_artifact`` would refuse later: the retrain
    fails at once instead of at the next load of the champion."""
    import skops.io

    data = skops.io.dumps(estimator, compression=zipfile.ZIP_DEFLATED, compresslevel=6)
    untrusted = sorted(set(skops.io.get_untrusted_types(data=data)) - set(trusted_types))
    if untrusted:
        raise UntrustedArtifact(f"trainer: the estimator holds types skops does not trust: {untrusted}; list the "
                                "ones you trust under the model's thresholds 'trusted_types'")
    return data


def load_artifact(uri: str, *, root: str, trusted_types: Iterable[str] = DEFAULT_TRUSTED_TYPES,
                  allow_pickle: bool = False):
    """A model artifact by URI (``file://``, ``s3://``... anything fsspec opens), only from under
    ``root``, symlinks resolved (see ``locations``). A skops file loads when every type it holds is trusted
    (skops' defaults plus ``trusted_types``); anything else is taken for a pickle and loads only with
    ``allow_pickle=True`` (unpickling runs whatever code the file names: never on shared storage).
    ``UntrustedArtifact`` (a ``ValueError``) naming ``artifact_uri`` otherwise."""
    import fsspec

    try:
        location = resolved_under_root("artifact_uri", uri, root)
    except ValueError as error:
        raise UntrustedArtifact(str(error)) from None
    with fsspec.open(location, "rb") as handle:
        data = handle.read()
    if data.startswith(ZIP_MAGIC):
        import skops.io

        untrusted = sorted(set(skops.io.get_untrusted_types(data=data)) - set(trusted_types))
        if untrusted:
            raise UntrustedArtifact(f"artifact_uri: {uri!r} holds types that are not trusted: {untrusted} (a model "
                                    "lists the ones it trusts under its thresholds 'trusted_types')")
        return skops.io.loads(data, trusted=list(trusted_types))
    if not allow_pickle:
        raise UntrustedArtifact(f"artifact_uri: {uri!r} is not a skops file; loading a pickle runs code and "
                                "needs allow_pickle=True (the Variable self_learning_allow_pickle_artifacts)")
    return pickle.loads(data)  # explicitly allowed: the operator trusts everyone who can write under the root


def served_champion(store, model: str, *, start: datetime, end: datetime) -> str:
    """The registry's champion version; before the first promotion, the version that served most
    predictions in [start, end) is registered as the champion it has been."""
    champion = store.get_champion(model)
    if champion is not None:
        return champion.version
    served = store.count_predictions_by_version(model, start, end)
    if not served:
        raise ValueError(f"model: {model!r} has no champion in the registry and served no predictions in "
                         f"{start:%Y-%m-%d}..{end:%Y-%m-%d} to take it from")
    version = max(sorted(served), key=served.get)
    store.register_version(model, version, status="archived", created_by="served before the registry (bootstrap)",
                           metrics={"served_predictions": served[version]})
    store.promote(model, version)
    return version


# -- A/B tests ------------------------------------------------------------------------------------


PLAN_LOOKBACK_DAYS = 28  # the champion's recent outcomes a plan (and CUPED's pre-period) is taken from


def judged_on(task_kind, config: ABTestConfig, *, hard_labels: bool = False) -> tuple[str, list[tuple[str, float]]]:
    """The test's primary metric and guardrails ``(metric, margin)`` for the model's task kind
    (``hard_labels``: the arms serve hard labels, see ``ab_metrics.primary_metric``); ``ValueError``
    naming ``primary_metric`` or ``guardrails`` when the kind has not the metric."""
    metric = primary_metric(task_kind, config.primary_metric, hard_labels=hard_labels)
    wanted = DEFAULT_GUARDRAILS[str(getattr(task_kind, "value", task_kind))] if config.guardrails is None \
        else config.guardrails
    return metric, parse_guardrails(wanted, task_kind=str(getattr(task_kind, "value", task_kind)),
                                    primary_metric=metric)


def labelled_rows(spec, rows) -> tuple:
    """(actual, predicted) of a window's labelled rows in the shapes the metrics take: float arrays
    of ``actual_value`` / ``predicted_value``, or a multiclass model's class labels (``actual_label``)
    and ``ClassPredictions`` over its class list (``TaskSpec.window_rows``)."""
    actual, predicted = task_spec(spec.task_kind).window_rows(rows, spec.classes)
    return tuple(np.asarray(v) if isinstance(v, pd.Series) else v for v in (actual, predicted))


def _unit_ids(rows):
    """The randomisation unit of each row; a row without a unit id is its own unit."""
    return rows["unit_id"].astype(object).where(rows["unit_id"].notna(), rows["prediction_id"]).to_numpy()


def _pre_period_covariate(spec, metric: str, history, units) -> dict[Any, float]:
    """Each unit's mean loss on ``metric`` in ``history`` (the champion before the test): CUPED's covariate."""
    loss = metric_losses(metric, spec.task_kind, *labelled_rows(spec, history))
    return pd.Series(loss).groupby(pd.Series(units)).mean().to_dict()


def plan_test(store, spec, config: ABTestConfig, *, champion_version: str, started_at: datetime) -> ABTestPlan | None:
    """The test's plan from the champion's labelled outcomes of the ``PLAN_LOOKBACK_DAYS`` before
    the start (the model's, before any version was registered as champion); traffic per day is
    the rows (or distinct units) over the days they span. With randomisation units, the second half
    of that period is planned with each unit's loss in the first half as CUPED's covariate, and a
    plan needing more units than served in the whole period says it cannot be reached. None
    when there are fewer than 2 units or (ROC AUC) fewer than 2 rows of a class."""
    start = started_at - timedelta(days=PLAN_LOOKBACK_DAYS)
    rows = store.read_window(spec.name, start, started_at, version=champion_version, with_ids=True, features=False)
    if len(rows) < 2:
        rows = store.read_window(spec.name, start, started_at, with_ids=True, features=False)
    if len(rows) < 2:
        return None
    actual, predicted = labelled_rows(spec, rows)
    metric, _ = judged_on(spec.task_kind, config, hard_labels=bool(arms_hard_labels(spec.task_kind, predicted)))
    units = None if config.unit == "prediction" else _unit_ids(rows)
    first = rows["served_at"].iloc[0].to_pydatetime()
    days = min(PLAN_LOOKBACK_DAYS, max(1.0, (started_at - first).total_seconds() / 86_400))
    per_day = (len(rows) if units is None else len(set(units))) / days
    options = dict(mde=config.mde, power=config.power, alpha=config.alpha, traffic_split=config.traffic_split,
                   margin=config.margin, units_per_day=per_day, max_days=config.max_days,
                   available_units=None if units is None else len(set(units)))
    try:
        if metric == "roc_auc" and units is None:
            auc, variance = delong_auc_variance(actual, predicted)
            return plan_from_spread(1.0 - auc, math.sqrt(variance * len(rows)), **options)
        if metric == "roc_auc":  # per unit: the clustered variance, times the units it was measured on
            auc, variance, clusters = clustered_auc_variance(actual, predicted, units)
            return plan_from_spread(1.0 - auc, math.sqrt(variance * clusters), **options)
        if metric == "business_value":  # planned on the value (its relative effect), rows that carry one
            carried = rows["business_value"].notna().to_numpy()
            plan = plan_ab_test(rows["business_value"].to_numpy()[carried],
                                units=None if units is None else units[carried], **options)
            return dataclasses.replace(plan, effect="higher business value")
        loss = metric_losses(metric, spec.task_kind, actual, predicted)
        middle = started_at - timedelta(days=days / 2)
        later = (rows["served_at"] >= middle).to_numpy()
        if units is None or later.all() or not later.any():
            return plan_ab_test(loss, units=units, **options)
        covariate_of = _pre_period_covariate(spec, metric, rows[~later], units[~later])
        covariate = [covariate_of.get(unit, math.nan) for unit in units[later]]
        return plan_ab_test(loss[later], units=units[later], covariate=covariate, **options)
    except ValueError:  # no spread or no positive mean loss: nothing to plan with
        return None


def ab_test_model_versions(store, model: str, champion_version: str, challenger_version: str, *,
                           started_at: datetime, config: ABTestConfig | None = None,
                           test_id: str | None = None) -> ABTestRecord:
    """Start a champion-vs-challenger test (both versions registered) with its plan (``plan_test``),
    stored with the test's config under ``plan``. ``n_star`` defaults to the planned size; without
    a plan, to the units served in the ``min_days`` before the start. Returns the stored test."""
    config = config or ABTestConfig()
    try:
        spec = store.get_model(model)
    except KeyError:
        raise ValueError(f"model: {model!r} is not registered") from None
    judged_on(spec.task_kind, config)  # a metric the task kind has not is refused before anything is stored
    test_id = test_id or f"{model}:{champion_version}-vs-{challenger_version}"
    plan = plan_test(store, spec, config, champion_version=champion_version, started_at=started_at)
    if config.n_star is None and plan is not None:
        config = dataclasses.replace(config, n_star=plan.n_star)
    elif config.n_star is None:
        days = max(config.min_days, 1.0)
        counts = store.arm_counts(model, started_at - timedelta(days=days), started_at)
        key = "predictions" if config.unit == "prediction" else "units"
        expected = sum(c[key] for c in counts.values())
        config = dataclasses.replace(config, n_star=float(max(expected, 2 * config.min_outcomes_per_arm)))
    if config.seed is None:
        config = dataclasses.replace(config, seed=test_id)
    stored = {**config.to_dict(), "plan": plan.to_dict() if plan else None,
              "plan_summary": plan.summary() if plan else "no plan: too few recent outcomes of the champion"}
    return store.start_ab_test(test_id=test_id, model=model, champion_version=champion_version,
                               challenger_version=challenger_version, config=stored, started_at=started_at)


@dataclasses.dataclass(frozen=True)
class ABTestResult(Result):
    """One look at a test: metrics per arm, the comparison of the primary metric, the guardrails,
    the sample ratio check and the decision; ``plan`` as stored at the start."""

    test_id: str
    model: str
    champion_version: str
    challenger_version: str
    as_of: datetime
    days_elapsed: float
    champion: ModelPerformance
    challenger: ModelPerformance
    comparison: ArmComparison
    sample_ratio: SampleRatio
    decision: ABDecision
    status: Status = Status.OK
    metric: str = ""
    guardrails: list[GuardrailCheck] = dataclasses.field(default_factory=list)
    plan: dict[str, Any] | None = None
    variance_reduction: str | None = None


def _cuped_adjuster(store, spec, test, config, metric, arm_units):
    """CUPED on the primary metric with each unit's loss under the champion in the
    ``PLAN_LOOKBACK_DAYS`` before the test (None when the plan found no covariate or the metric is
    not a mean per row)."""
    plan = test.config.get("plan") or {}
    if config.unit == "prediction" or metric in ("roc_auc", "business_value") \
            or plan.get("covariate_correlation") is None:
        return None
    start = test.started_at
    history = store.read_window(spec.name, start - timedelta(days=PLAN_LOOKBACK_DAYS), start,
                                version=test.champion_version, with_ids=True, features=False)
    if len(history) < 3:
        return None
    covariate_of = _pre_period_covariate(spec, metric, history, _unit_ids(history))
    covariates = [[covariate_of.get(unit, math.nan) for unit in units] for units in arm_units]

    def adjust(champion_loss, challenger_loss):
        fitted = cuped(champion_loss, challenger_loss, *covariates)
        return fitted.champion, fitted.challenger

    return adjust


def get_ab_test_results(store, test_id: str, *, as_of: datetime) -> ABTestResult:
    """The test's results over the outcomes of predictions served from its traffic's start until
    ``as_of`` (no writes). A test without outcomes has status ``insufficient_data``.

    The traffic starts with the challenger's first prediction at or after the test's start (its
    ``started_at`` is the retrain's window end): serving code picks the test up when it next reads
    the registry, and the champion's predictions before that were never assigned. Counted from
    ``started_at`` they read as a sample ratio mismatch (the demo's two days served before its
    retrain ran: [4527, 3473] against 50/50). A challenger that never served keeps ``started_at``,
    so its absence is the mismatch it is."""
    test = store.get_ab_test(test_id)
    config = ABTestConfig.from_dict(test.config)
    end = as_of.astimezone(UTC)
    if end <= test.started_at:
        raise ValueError(f"as_of: {end.isoformat()} is not after the test's start {test.started_at.isoformat()}")
    spec = store.get_model(test.model)
    served = store.read_window(spec.name, test.started_at, end, version=test.challenger_version,
                               labelled_only=False, features=False)["served_at"]
    start = served.min().to_pydatetime() if len(served) else test.started_at
    arms = (test.champion_version, test.challenger_version)
    counts = store.arm_counts(spec.name, start, end)
    performances, data, units, values = [], [], [], []
    for version in arms:
        rows = store.read_window(spec.name, start, end, version=version, with_ids=True, features=False)
        actual, predicted = labelled_rows(spec, rows)
        data.append((actual, predicted))
        values.append(rows["business_value"].to_numpy(dtype=float, na_value=math.nan))
        if config.unit != "prediction":
            units.append(_unit_ids(rows))
        performances.append(compute_performance(
            spec.task_kind, actual, predicted, n_predicted=counts.get(version, {}).get("predictions", 0),
            model_version=version, model_type=spec.name))
    metric, guardrails = judged_on(spec.task_kind, config,
                                   hard_labels=bool(arms_hard_labels(spec.task_kind, *(p for _, p in data))))
    key = "predictions" if config.unit == "prediction" else "units"
    sample_ratio = sample_ratio_mismatch([counts.get(v, {}).get(key, 0) for v in arms], config.weights)
    looks = [look for look in ((test.result or {}).get("looks") or [])
             if datetime.fromisoformat(look["as_of"]) < end]

    def running_min(name: str | None) -> float:
        values = [look["always_valid_p"] if name is None else (look.get("guardrails") or {}).get(name, {}).get("p")
                  for look in looks]
        return min((v for v in values if v is not None), default=1.0)

    adjust = _cuped_adjuster(store, spec, test, config, metric, units) if units else None
    options = dict(champion_units=units[0] if units else None, challenger_units=units[1] if units else None,
                   values=tuple(values), alpha=config.alpha, n_star=config.n_star)
    comparison = compare_metric(metric, spec.task_kind, *data, adjust=adjust, previous_min_p=running_min(None),
                                **options)
    checks = [guardrail(name, margin, spec.task_kind, *data, previous_min_p=running_min(name), **options)
              for name, margin in guardrails]
    champion_loss = comparison.champion.mean
    # (abs: a CUPED-adjusted mean loss is the raw one up to noise, which could cross 0 for a tiny loss)
    margin = config.margin * abs(champion_loss) if champion_loss and math.isfinite(champion_loss) else 0.0
    days = (end - start).total_seconds() / 86_400
    plan = test.config.get("plan")
    decision = decide(comparison, sample_ratio, days_elapsed=round(days, 3), min_days=config.min_days,
                      max_days=config.max_days, min_outcomes_per_arm=config.min_outcomes_per_arm, margin=margin,
                      planned_units=plan["units_per_arm"] if plan else None, guardrails=checks)
    reduction = f"CUPED on each unit's loss under the champion before the test ({plan['size_reduction']:.0%} " \
                "smaller planned size)" if adjust is not None else None
    return ABTestResult(test_id, spec.name, *arms, end, days, *performances, comparison, sample_ratio, decision,
                        comparison.status, metric, checks, plan, reduction)


@dataclasses.dataclass(frozen=True)
class ABConclusion(Result):
    """What a look did: the test's status after it, the action and the champion after it."""

    test_id: str
    model: str
    test_status: str
    action: str
    champion_version: str
    reasons: list[str]
    as_of: datetime
    result: dict[str, Any] | None


TEST_STATUS_BY_ACTION = {"promote": "promoted", "keep_champion": "inconclusive", "stop_for_harm": "stopped"}


def select_winning_model(store, test_id: str, *, as_of: datetime) -> ABConclusion:
    """Look at a running test and act on the decision: ``promote`` swaps champion and challenger in
    the registry and records an alert; ``stop_for_harm`` keeps the champion, archives the
    challenger, closes the test as ``stopped`` and raises a high-severity alert; ``keep_champion``
    (planned size or maximum duration without a winner) archives the challenger and closes the
    test as inconclusive; a sample ratio mismatch raises an
    alert and never promotes. A promotion moves the model's baseline to the new champion's training
    window unless the baseline says ``on_promotion="keep"``. Each look is stored (a re-run of the
    same look replaces it) with the running minimum of the always-valid p-value. A closed test is
    reported as it ended."""
    test = store.get_ab_test(test_id)
    model = test.model
    if not test.running:
        latest = (test.result or {}).get("latest")
        champion = store.get_champion(model)
        return ABConclusion(test_id, model, test.status, "closed", champion.version if champion else "",
                            [f"the test ended {test.ended_at:%Y-%m-%d} as {test.status}"],
                            as_of.astimezone(UTC), latest)
    result = get_ab_test_results(store, test_id, as_of=as_of)
    action = result.decision.action
    status = TEST_STATUS_BY_ACTION.get(action, "running")
    if action == "unhealthy" and result.days_elapsed >= ABTestConfig.from_dict(test.config).max_days:
        status = "inconclusive"
    look = {"as_of": result.as_of.isoformat(), "action": action, "difference": result.comparison.difference,
            "ci_low": result.comparison.ci_low, "ci_high": result.comparison.ci_high,
            "always_valid_p": result.comparison.always_valid_p, "welch_p_value": result.comparison.welch_p_value,
            "srm_p_value": result.sample_ratio.p_value, "metric": result.metric,
            "rows": [result.comparison.champion.rows, result.comparison.challenger.rows],
            "units": [result.comparison.champion.n, result.comparison.challenger.n],
            "guardrails": {g.metric: {"difference": g.comparison.difference, "ci_low": g.comparison.ci_low,
                                      "ci_high": g.comparison.ci_high, "allowed": g.allowed,
                                      "p": g.comparison.always_valid_p, "skipped": g.skipped}
                           for g in result.guardrails}}
    looks = [old for old in ((test.result or {}).get("looks") or []) if old["as_of"] < look["as_of"]] + [look]
    details = {"summary": "; ".join(result.decision.reasons), "test_id": test_id,
               "champion_version": result.champion_version, "challenger_version": result.challenger_version,
               "metric": result.metric, "difference": result.comparison.difference,
               "ci": [result.comparison.ci_low, result.comparison.ci_high],
               "plan": test.config.get("plan_summary")}
    if action == "promote":
        store.promote(model, result.challenger_version)
        # the baseline follows the new champion unless the model's baseline says on_promotion="keep"
        moved = store.baseline_after_promotion(model, result.challenger_version)
        details["baseline"] = moved.to_dict() if moved else "kept"
        store.raise_alert(model=model, alert_type="ab_test", severity=Severity.MEDIUM, cause=f"{test_id}:promoted",
                          window_end=result.as_of, details={**details, "summary": (
                              f"{result.challenger_version} promoted over {result.champion_version}: "
                              + details["summary"])})
    elif action == "stop_for_harm":
        store.set_version_status(model, result.challenger_version, "archived")
        store.raise_alert(model=model, alert_type="ab_test", severity=Severity.HIGH,
                          cause=f"{test_id}:stopped_for_harm", window_end=result.as_of, details={
                              **details, "summary": f"{result.challenger_version} stopped for harm, "
                                                    f"{result.champion_version} stays champion: {details['summary']}"})
    elif status == "inconclusive":
        store.set_version_status(model, result.challenger_version, "archived")
        store.raise_alert(model=model, alert_type="ab_test", severity=Severity.LOW, cause=f"{test_id}:inconclusive",
                          window_end=result.as_of, details=details)
    if action == "unhealthy":
        store.raise_alert(model=model, alert_type="ab_test", severity=Severity.HIGH,
                          cause=f"{test_id}:sample_ratio_mismatch", window_end=result.as_of, details=details)
    stored = {"latest": result.to_dict(), "looks": looks,
              "running_min_p": result.comparison.running_min_p}
    store.update_ab_test(test_id, result=stored, status=status, ended_at=None if status == "running" else result.as_of)
    champion = store.get_champion(model)
    return ABConclusion(test_id, model, status, action, champion.version if champion else "",
                        result.decision.reasons, result.as_of, stored["latest"])


def conclude_ab_tests(store, *, as_of: datetime, models: list[str] | None = None) -> list[ABConclusion]:
    """``select_winning_model`` for every running test (of ``models``, if given) started before ``as_of``."""
    wanted = set(models or ())
    return [select_winning_model(store, test.test_id, as_of=as_of)
            for test in store.list_ab_tests(status="running")
            if (not wanted or test.model in wanted) and test.started_at < as_of]
