"""The task-kind registry and the drift-check registry of the core."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from self_learning.core.drift import CheckOutcome, detect_feature_drift, register_check
from self_learning.core.drift import checks as drift_checks
from self_learning.core.tasks import (
    STORED_METRICS,
    TaskSpec,
    is_hard_label,
    register_task_kind,
    row_losses,
    selected_models,
    task_kinds,
    task_spec,
)
from sklearn.metrics import log_loss


def test_every_task_kind_names_stored_metrics_and_a_primary_loss():
    assert set(task_kinds()) == {"regression", "binary_classification", "multiclass_classification"}
    assert task_spec("multiclass_classification").primary_metric == "log_loss"
    assert task_spec("regression").primary_metric == "mae"
    assert task_spec("binary_classification").primary_metric == "log_loss"
    for spec in task_kinds().values():
        assert set(spec.metric_names) <= set(STORED_METRICS)


def test_an_unknown_task_kind_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"^task_kind: 'multiclass' .*binary_classification.*regression"):
        task_spec("multiclass")
    with pytest.raises(ValueError, match=r"^kind: task kind 'regression' is already registered"):
        register_task_kind(task_spec("regression"))
    with pytest.raises(ValueError, match=r"^metric_names: "):
        TaskSpec("x", "mae", ("accuracy_at_k",), *[None] * 4)


def test_the_mean_row_loss_is_the_reported_log_loss_even_at_0_and_1():
    y = np.array([1.0, 0.0, 1.0, 0.0])
    p = np.array([1.0, 0.0, 0.0, 0.3])  # one confidently wrong prediction
    losses = task_spec("binary_classification").row_loss(y, p)
    assert np.isfinite(losses).all()
    assert losses.mean() == pytest.approx(log_loss(y, p), rel=1e-12)


def test_a_registered_check_joins_the_correction(monkeypatch):
    monkeypatch.setattr(drift_checks, "_CHECKS", {k: dict(v) for k, v in drift_checks._CHECKS.items()})

    @register_check("always_drifts", kinds=("numeric",))
    def always_drifts(sample):
        return CheckOutcome(1e-9, "effect_size", 0.6, sample.thresholds.wasserstein)

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=200)})
    report = detect_feature_drift(frame, frame)
    assert report.statistical_tests["features"]["x"]["checks"]["always_drifts"]["severity"] == "critical"
    assert report.statistical_tests["summary"]["checks"] == 2
    with pytest.raises(ValueError, match=r"^name: drift check 'always_drifts' is already registered"):
        register_check("always_drifts", kinds=("numeric",))(always_drifts)
    with pytest.raises(ValueError, match=r"^kinds: "):
        register_check("x", kinds=("text",))


def test_hard_labels_get_the_0_1_loss():
    y = np.array([1.0, 0.0, 1.0, 0.0])
    labels = np.array([1.0, 1.0, 1.0, 0.0])
    assert is_hard_label(labels) and not is_hard_label([0.2, 1.0]) and not is_hard_label([])
    assert row_losses("binary_classification", y, labels).tolist() == [0.0, 1.0, 0.0, 0.0]
    logs = row_losses("binary_classification", y, labels, hard_labels=False)  # forced: the clipped log loss
    assert logs.mean() == pytest.approx(log_loss(y, labels), rel=1e-12)
    with pytest.raises(ValueError, match=r"^predicted: hard_labels=True needs predictions of exactly 0 or 1"):
        row_losses("binary_classification", y, [0.5] * 4, hard_labels=True)
    assert row_losses("regression", [1.0, 0.0], [0.0, 0.0]).tolist() == [1.0, 0.0]  # regression unchanged


def test_a_run_leaves_out_models_of_a_kind_the_dags_do_not_monitor_yet_and_says_so(monkeypatch):
    import dataclasses

    from self_learning.core import tasks
    from self_learning.core.types import ModelSpec

    models = [ModelSpec("roas", "regression"), ModelSpec("hooks", "multiclass_classification", classes=("a", "b")),
              ModelSpec("ctr", "binary_classification")]
    assert selected_models(models) == (["roas", "hooks", "ctr"], [])  # multiclass models are monitored (issue 17)
    kind = "multiclass_classification"  # a kind the steps do not handle yet, as multiclass was before
    monkeypatch.setitem(tasks._TASKS, kind, dataclasses.replace(tasks._TASKS[kind], monitored=False))
    chosen, left_out = selected_models(models)
    assert chosen == ["roas", "ctr"]
    assert left_out == ["hooks: multiclass_classification models are not monitored by the DAGs yet"]
    assert selected_models(models, ["ctr", "roas", "ctr"]) == (["ctr", "roas"], [])
    with pytest.raises(ValueError, match=r"params\.models: \['hooks \(multiclass_classification\)'\] are not "):
        selected_models(models, ["hooks"])
    with pytest.raises(ValueError, match=r"params\.models: not registered: \['nope'\]"):
        selected_models(models, ["nope"])
