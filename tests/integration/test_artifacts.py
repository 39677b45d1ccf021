"""Model artifacts are loaded only from under the artifact root and never run code on load.

Every "evil" artifact here is a pickle whose unpickling creates a marker file, so a test sees
whether code ran, not only whether an error was raised. Before skops and the root check,
``load_artifact(uri)`` unpickled whatever URI the registry named and created the marker."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io
from self_learning import lifecycle, training
from self_learning.synthetic import Scenario
from support.hostile import write_evil_pickle
from support.scenarios import END, load

KINDS = {"spend": "numeric", "platform": "categorical"}


class UnknownScaler:
    """A type of our own inside an estimator: skops does not trust it by default."""

    def __init__(self, factor: float = 2.0):
        self.factor = factor


@pytest.fixture
def root(tmp_path) -> Path:
    path = tmp_path / "artifacts"
    path.mkdir()
    return path


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "code-ran"


def fitted(task_kind: str, rows: int = 600):
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"spend": rng.gamma(2.0, 50.0, rows), "platform": rng.choice(["meta", "tiktok", "x"], rows),
                          "served_at": pd.date_range("2026-10-01", periods=rows, freq="h", tz="UTC")})
    signal = frame["spend"] / 100 + (frame["platform"] == "tiktok")
    frame["actual_value"] = signal + rng.normal(0, 0.1, rows) if task_kind == "regression" \
        else (signal + rng.normal(0, 0.5, rows) > 1.2).astype(float)
    return training.fit(training.default_trainer(task_kind, KINDS), frame, KINDS), frame


@pytest.mark.parametrize("task_kind", ["regression", "binary_classification"])
def test_default_trainers_round_trip_through_skops_with_exactly_the_default_trusted_types(task_kind, root):
    estimator, frame = fitted(task_kind)
    data = lifecycle.artifact_bytes(estimator)
    assert zipfile.is_zipfile(io.BytesIO(data))  # skops, deflated
    # the list is what these pipelines need, no more: a stale or widened list fails here
    assert set(skops.io.get_untrusted_types(data=data)) == set(lifecycle.DEFAULT_TRUSTED_TYPES)
    path = root / "ctr_predictor" / "r1" / lifecycle.ARTIFACT_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    loaded = lifecycle.load_artifact(f"file://{path}", root=f"file://{root}")
    np.testing.assert_array_equal(training.predict(loaded, frame, KINDS, task_kind),
                                  training.predict(estimator, frame, KINDS, task_kind))
    assert lifecycle.load_artifact(str(path), root=str(root)) is not None  # plain paths are file:// too
    with pytest.raises(ValueError, match=r"artifact_uri: .* not trusted: \[.*TreePredictor"):
        lifecycle.load_artifact(f"file://{path}", root=f"file://{root}", trusted_types=())


def test_a_pickle_under_the_root_is_refused_without_the_opt_in(root, marker):
    uri = write_evil_pickle(root / "m" / "v1" / "model.pkl", marker)
    with pytest.raises(ValueError, match=r"artifact_uri: .* not a skops file; .* allow_pickle=True"):
        lifecycle.load_artifact(uri, root=str(root))
    disguised = write_evil_pickle(root / "m" / "v2" / lifecycle.ARTIFACT_FILE, marker)  # the name does not decide
    with pytest.raises(ValueError, match=r"artifact_uri: .* not a skops file"):
        lifecycle.load_artifact(disguised, root=str(root))
    assert not marker.exists()
    lifecycle.load_artifact(uri, root=str(root), allow_pickle=True)  # the explicit, documented opt-in
    assert marker.exists()  # which is exactly why it is off by default


@pytest.mark.parametrize("where", ["outside", "traversal", "escaped traversal", "sibling prefix", "other scheme"])
def test_a_uri_outside_the_root_is_never_opened_even_with_pickle_allowed(where, root, marker, tmp_path):
    outside = tmp_path / "evil.pkl"
    write_evil_pickle(outside, marker)
    write_evil_pickle(tmp_path / "artifacts-old" / "evil.pkl", marker)
    uri = {"outside": f"file://{outside}", "traversal": f"file://{root}/../evil.pkl",
           "escaped traversal": f"file://{root}/m/%2e%2e/%2E%2E/../evil.pkl",
           "sibling prefix": f"file://{root}-old/evil.pkl", "other scheme": f"s3://{root}/evil.pkl"}[where]
    with pytest.raises(ValueError, match=r"artifact_uri: .* is not under the configured root"):
        lifecycle.load_artifact(uri, root=f"file://{root}", allow_pickle=True)
    assert not marker.exists()


@pytest.mark.parametrize("link", ["file", "folder"])
def test_a_symlink_under_the_root_pointing_outside_is_refused(link, root, marker, tmp_path):
    outside = tmp_path / "elsewhere" / "model.pkl"
    write_evil_pickle(outside, marker)
    (root / "m").mkdir()
    if link == "file":
        (root / "m" / "model.pkl").symlink_to(outside)
    else:
        (root / "m" / "v1").symlink_to(outside.parent, target_is_directory=True)
    uri = f"file://{root}/m/{'model.pkl' if link == 'file' else 'v1/model.pkl'}"
    with pytest.raises(ValueError, match=r"artifact_uri: .* is not under the configured root"):
        lifecycle.load_artifact(uri, root=str(root), allow_pickle=True)
    assert not marker.exists()


def test_a_symlinked_root_itself_is_fine(root, tmp_path):
    """Resolving symlinks applies to the root too (e.g. /tmp -> /private/tmp on macOS)."""
    estimator, _ = fitted("regression", rows=200)
    (root / "m").mkdir()
    (root / "m" / lifecycle.ARTIFACT_FILE).write_bytes(lifecycle.artifact_bytes(estimator))
    alias = tmp_path / "alias"
    alias.symlink_to(root, target_is_directory=True)
    assert lifecycle.load_artifact(f"file://{alias}/m/{lifecycle.ARTIFACT_FILE}", root=f"file://{alias}") is not None


def test_types_a_model_trusts_are_listed_in_its_settings(root):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    estimator = Pipeline([("scale", FunctionTransformer(kw_args={"scaler": UnknownScaler()}))])
    name = f"{__name__}.UnknownScaler"
    with pytest.raises(ValueError, match=rf"trainer: .* does not trust: \['{name}'\]; .*'trusted_types'"):
        lifecycle.artifact_bytes(estimator)
    data = lifecycle.artifact_bytes(estimator, trusted_types=(*lifecycle.DEFAULT_TRUSTED_TYPES, name))
    path = root / "custom" / lifecycle.ARTIFACT_FILE
    path.parent.mkdir()
    path.write_bytes(data)
    with pytest.raises(ValueError, match=rf"artifact_uri: .* not trusted: \['{name}'\]"):
        lifecycle.load_artifact(str(path), root=str(root))
    loaded = lifecycle.load_artifact(str(path), root=str(root), trusted_types=[name])
    assert loaded.steps[0][1].kw_args["scaler"].factor == 2.0

    from self_learning.domain import ModelSpec

    spec = ModelSpec("custom_model", "regression", thresholds={"trusted_types": [name]})
    assert lifecycle.model_trusted_types(spec) == (*lifecycle.DEFAULT_TRUSTED_TYPES, name)
    for bad in ("one.Type", [1], [""], {"a": 1}):
        with pytest.raises(ValueError, match=r"thresholds\.trusted_types: must be a list of type names"):
            lifecycle.model_trusted_types(ModelSpec("custom_model", "regression", thresholds={"trusted_types": bad}))


def evil_champion(store, marker: Path, uri: str) -> None:
    load(store, Scenario(days=12, rows_per_day=40, seed=41, models=("ctr_predictor",)))
    store.register_version("ctr_predictor", "v9", status="archived", artifact_uri=uri)
    store.promote("ctr_predictor", "v9")
    assert store.get_champion("ctr_predictor")["artifact_uri"] == uri


def test_a_champion_registered_outside_the_root_is_never_loaded_by_the_retrain(feedback_db, root, marker, tmp_path):
    evil_champion(feedback_db, marker, write_evil_pickle(tmp_path / "evil.pkl", marker))
    with pytest.raises(ValueError, match=r"artifact_uri: .* is not under the configured root"):
        lifecycle.train_candidate(feedback_db, "ctr_predictor", window_end=END, training_window_days=12,
                                  artifact_root=f"file://{root}", allow_pickle=True)
    assert not marker.exists()


def test_a_champion_cannot_be_re_pointed_at_code(feedback_db, root, marker, tmp_path):
    """A trained champion, then ``register_version`` with its version and another URI: the registry
    refuses the change, the evil file never runs and the champion's own artifact keeps predicting."""
    load(feedback_db, Scenario(days=12, rows_per_day=40, seed=42, models=("ctr_predictor",)))
    first = lifecycle.train_candidate(feedback_db, "ctr_predictor", window_end=END - timedelta(days=1),
                                      training_window_days=11, artifact_root=str(root))
    path = root / "ctr_predictor" / first.version / lifecycle.ARTIFACT_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(first.artifact)
    feedback_db.register_version("ctr_predictor", first.version, status="archived", artifact_uri=f"file://{path}")
    feedback_db.promote("ctr_predictor", first.version)
    evil = write_evil_pickle(tmp_path / "evil.pkl", marker)
    with pytest.raises(ValueError, match=r"^artifact_uri"):
        feedback_db.register_version("ctr_predictor", first.version, artifact_uri=evil)
    assert feedback_db.get_champion("ctr_predictor")["artifact_uri"] == f"file://{path}"
    candidate = lifecycle.train_candidate(feedback_db, "ctr_predictor", window_end=END, training_window_days=12,
                                          artifact_root=str(root))
    assert candidate.champion_source == f"champion {first.version} artifact"
    assert not marker.exists()


def test_the_weekly_importance_step_never_loads_a_champion_outside_the_root(feedback_db, root, marker, tmp_path):
    from airflow.sdk.exceptions import AirflowFailException
    from self_learning.operators import FeatureImportanceOperator

    evil_champion(feedback_db, marker, write_evil_pickle(tmp_path / "evil.pkl", marker))
    operator = FeatureImportanceOperator(task_id="feature_importance", model="ctr_predictor",
                                         artifact_root=f"file://{root}", allow_pickle=True)
    context = {"params": {"models": []}, "data_interval_start": END - timedelta(days=1), "data_interval_end": END}
    with pytest.raises(AirflowFailException, match=r"artifact_uri: .* is not under the configured root"):
        operator.execute(context)  # at once: a retry would read the same row
    assert not marker.exists()


def test_the_weekly_importance_step_loads_a_champion_under_the_root(feedback_db, root, monkeypatch):
    """The same step with the root from the Variable, and a champion trained by the loop."""
    load(feedback_db, Scenario(days=12, rows_per_day=40, seed=43, models=("ctr_predictor",)))
    monkeypatch.setenv("AIRFLOW_VAR_SELF_LEARNING_ARTIFACT_ROOT", f"file://{root}")
    trained = lifecycle.train_candidate(feedback_db, "ctr_predictor", window_end=END, training_window_days=12,
                                        artifact_root=str(root))
    path = root / "ctr_predictor" / trained.version / lifecycle.ARTIFACT_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(trained.artifact)
    feedback_db.register_version("ctr_predictor", trained.version, status="archived", artifact_uri=f"file://{path}")
    feedback_db.promote("ctr_predictor", trained.version)
    from self_learning.operators import FeatureImportanceOperator

    operator = FeatureImportanceOperator(task_id="feature_importance", model="ctr_predictor")
    context = {"params": {"models": []}, "data_interval_start": END - timedelta(days=7), "data_interval_end": END}
    summary = operator.execute(context)
    assert summary["permutation_of"] == trained.version
