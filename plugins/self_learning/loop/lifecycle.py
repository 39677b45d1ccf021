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

from ..core import training
from ..core.ab import (
    ABDecision,
    ABTestConfig,
    ArmComparison,
    SampleRatio,
    compare_arms,
    decide,
    row_losses,
    sample_ratio_mismatch,
)
from ..core.performance import ModelPerformance, compute_performance
from ..core.records import ABTestRecord
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
                "trainer": self.trainer, "scikit_learn": sklearn.__version__}


def train_candidate(store, model: str, *, window_end: datetime, artifact_root: str, training_window_days: int = 30,
                    holdout_share: float = 0.2, margin: float = 0.02, trainer: str | None = None,
                    version: str | None = None, allow_pickle: bool = False) -> Candidate:
    """Train on the labelled outcomes of the window, hold out its latest ``holdout_share`` and score
    candidate and champion there with the same metrics. The champion is the registry's champion
    artifact when there is one (loaded from under ``artifact_root`` only, see ``load_artifact``),
    else the predictions that were actually served."""
    spec = store.get_model(model)
    if isinstance(training_window_days, bool) or not isinstance(training_window_days, int) \
            or training_window_days < 1:
        raise ValueError(f"training_window_days: must be an integer >= 1, got {training_window_days!r}")
    start = window_end - timedelta(days=training_window_days)
    frame = store.read_window(spec.name, start, window_end)
    if len(frame) < MIN_TRAINING_ROWS:
        raise ValueError(f"training window {start:%Y-%m-%d}..{window_end:%Y-%m-%d}: {len(frame)} labelled outcomes "
                         f"of {spec.name!r}; at least {MIN_TRAINING_ROWS} are needed to train")
    kinds = {key: kind for key, (kind, _) in store.feature_registry(spec.name).items()}
    if not kinds:
        raise ValueError(f"model: {spec.name!r} has no stored features to train on")
    trusted = model_trusted_types(spec)
    train, holdout = training.time_holdout(frame, holdout_share=holdout_share)
    factory = training.load_trainer(trainer) if trainer else training.default_trainer
    estimator = training.fit(factory(spec.task_kind, kinds), train, kinds)
    artifact = artifact_bytes(estimator, trusted_types=trusted)  # before scoring: an unloadable candidate fails here
    version = version or version_name(window_end)
    candidate = training.holdout_performance(
        spec.task_kind, holdout, training.predict(estimator, holdout, kinds, spec.task_kind), model_version=version)
    champion_row = store.get_champion(spec.name)
    served, source = holdout["predicted_value"].to_numpy(dtype=float), "served predictions"
    champion_version = champion_row.version if champion_row else "served"
    if champion_row and champion_row.artifact_uri:
        champion_estimator = load_artifact(champion_row.artifact_uri, root=artifact_root, trusted_types=trusted,
                                           allow_pickle=allow_pickle)
        served = training.predict(champion_estimator, holdout, kinds, spec.task_kind)
        source = f"champion {champion_version} artifact"
    champion = training.holdout_performance(spec.task_kind, holdout, served, model_version=champion_version)
    return Candidate(spec.name, version, estimator, training.judge(candidate, champion, margin=margin), candidate,
                     champion, source, (start, window_end), len(train), len(holdout),
                     holdout["served_at"].iloc[0].to_pydatetime(), trainer or "self_learning.training:default_trainer",
                     artifact)


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


def ab_test_model_versions(store, model: str, champion_version: str, challenger_version: str, *,
                           started_at: datetime, config: ABTestConfig | None = None,
                           test_id: str | None = None) -> ABTestRecord:
    """Start a champion-vs-challenger test (both versions registered). ``n_star`` defaults to
    the units the model served in the ``min_days`` before the start, the expected size at the
    first possible decision. Returns the stored test."""
    config = config or ABTestConfig()
    test_id = test_id or f"{model}:{champion_version}-vs-{challenger_version}"
    if config.n_star is None:
        days = max(config.min_days, 1.0)
        counts = store.arm_counts(model, started_at - timedelta(days=days), started_at)
        key = "predictions" if config.unit == "prediction" else "units"
        expected = sum(c[key] for c in counts.values())
        config = dataclasses.replace(config, n_star=float(max(expected, 2 * config.min_outcomes_per_arm)))
    if config.seed is None:
        config = dataclasses.replace(config, seed=test_id)
    return store.start_ab_test(test_id=test_id, model=model, champion_version=champion_version,
                               challenger_version=challenger_version, config=config.to_dict(), started_at=started_at)


@dataclasses.dataclass(frozen=True)
class ABTestResult(Result):
    """One look at a test: metrics per arm, the comparison of their losses, the sample ratio check
    and the decision the guardrails give."""

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


def get_ab_test_results(store, test_id: str, *, as_of: datetime) -> ABTestResult:
    """The test's results over the outcomes of predictions served from its start until ``as_of``
    (no writes). A test without outcomes has status ``insufficient_data``."""
    test = store.get_ab_test(test_id)
    config = ABTestConfig.from_dict(test.config)
    start = test.started_at
    end = as_of.astimezone(UTC)
    if end <= start:
        raise ValueError(f"as_of: {end.isoformat()} is not after the test's start {start.isoformat()}")
    spec = store.get_model(test.model)
    arms = (test.champion_version, test.challenger_version)
    counts = store.arm_counts(spec.name, start, end)
    performances, losses, units = [], [], []
    for version in arms:
        rows = store.read_window(spec.name, start, end, version=version, with_ids=True, features=False)
        actual, predicted = rows["actual_value"].to_numpy(), rows["predicted_value"].to_numpy()
        losses.append(row_losses(spec.task_kind, actual, predicted))
        if config.unit != "prediction":  # a row without a unit id is its own unit
            units.append(rows["unit_id"].astype(object).where(rows["unit_id"].notna(), rows["prediction_id"])
                         .to_numpy())
        performances.append(compute_performance(
            spec.task_kind, actual, predicted, n_predicted=counts.get(version, {}).get("predictions", 0),
            model_version=version, model_type=spec.name))
    key = "predictions" if config.unit == "prediction" else "units"
    sample_ratio = sample_ratio_mismatch([counts.get(v, {}).get(key, 0) for v in arms], config.weights)
    looks = [look for look in ((test.result or {}).get("looks") or [])
             if datetime.fromisoformat(look["as_of"]) < end]
    previous_min_p = min((look["always_valid_p"] for look in looks if look["always_valid_p"] is not None),
                         default=1.0)
    comparison = compare_arms(losses[0], losses[1], champion_units=units[0] if units else None,
                              challenger_units=units[1] if units else None, alpha=config.alpha,
                              n_star=config.n_star, previous_min_p=previous_min_p)
    champion_loss = comparison.champion.mean
    margin = config.margin * champion_loss if champion_loss and math.isfinite(champion_loss) else 0.0
    days = (end - start).total_seconds() / 86_400
    decision = decide(comparison, sample_ratio, days_elapsed=round(days, 3), min_days=config.min_days,
                      max_days=config.max_days, min_outcomes_per_arm=config.min_outcomes_per_arm, margin=margin)
    return ABTestResult(test_id, spec.name, *arms, end, days, *performances, comparison, sample_ratio, decision,
                        comparison.status)


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


TEST_STATUS_BY_ACTION = {"promote": "promoted", "keep_champion": "inconclusive"}


def select_winning_model(store, test_id: str, *, as_of: datetime) -> ABConclusion:
    """Look at a running test and act on the decision: ``promote`` swaps champion and challenger in
    the registry and records an alert; ``keep_champion`` (maximum duration without a winner)
    archives the challenger and closes the test as inconclusive; a sample ratio mismatch raises an
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
            "srm_p_value": result.sample_ratio.p_value,
            "rows": [result.comparison.champion.rows, result.comparison.challenger.rows]}
    looks = [old for old in ((test.result or {}).get("looks") or []) if old["as_of"] < look["as_of"]] + [look]
    details = {"summary": "; ".join(result.decision.reasons), "test_id": test_id,
               "champion_version": result.champion_version, "challenger_version": result.challenger_version,
               "difference": result.comparison.difference, "ci": [result.comparison.ci_low, result.comparison.ci_high]}
    if action == "promote":
        store.promote(model, result.challenger_version)
        # the baseline follows the new champion unless the model's baseline says on_promotion="keep"
        moved = store.baseline_after_promotion(model, result.challenger_version)
        details["baseline"] = moved.to_dict() if moved else "kept"
        store.raise_alert(model=model, alert_type="ab_test", severity=Severity.MEDIUM, cause=f"{test_id}:promoted",
                          window_end=result.as_of, details={**details, "summary": (
                              f"{result.challenger_version} promoted over {result.champion_version}: "
                              + details["summary"])})
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
