"""The synthetic generator's multiclass hook classifier (``Scenario(multiclass_hooks=True)``): the
bulk frame and outcomes a multiclass model is served and labelled with, the drifting class's
prevalence rising from the feature drift day, and the default scenario left as it was."""

from __future__ import annotations

import numpy as np
from self_learning.core.types import TaskKind
from self_learning.synthetic import DRIFTING_HOOK_CLASS, HOOK_CLASSES, Scenario, generate

MODEL = "hook_classifier"


def scenario(**changes) -> Scenario:
    return Scenario(days=20, rows_per_day=400, models=(MODEL, "roas_predictor"), multiclass_hooks=True, **changes)


def test_the_hook_classifier_is_served_as_a_multiclass_model():
    data = generate(scenario())
    spec = {s.name: s for s in data.models}[MODEL]
    assert (spec.task_kind, spec.classes) == (TaskKind.MULTICLASS_CLASSIFICATION, HOOK_CLASSES)
    rows = data.predictions[data.predictions["model"] == MODEL]
    probabilities = rows[[f"proba_{c}" for c in HOOK_CLASSES]].to_numpy()
    assert (probabilities >= 0).all() and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-9)
    assert (rows["predicted_label"].to_numpy() == np.asarray(HOOK_CLASSES)[probabilities.argmax(axis=1)]).all()
    assert rows["predicted_value"].isna().all()
    outcomes = data.outcomes.set_index("prediction_id")
    labelled = outcomes.loc[outcomes.index.isin(rows["prediction_id"])]
    assert labelled["actual_label"].isin(HOOK_CLASSES).all() and labelled["actual_value"].isna().all()
    joined = rows.set_index("prediction_id").join(labelled["actual_label"], how="inner")
    assert 0.45 < (joined["actual_label"] == joined["predicted_label"]).mean() < 0.75  # a useful, imperfect model
    # the other models are unchanged
    assert generate(scenario()).predictions.equals(data.predictions)
    assert {s.name: s.task_kind for s in generate(Scenario(days=2)).models}[MODEL] is TaskKind.BINARY_CLASSIFICATION


def test_the_drifting_class_becomes_more_prevalent_and_a_concept_shift_costs_accuracy():
    def by_period(data):
        rows = data.predictions[data.predictions["model"] == MODEL].merge(data.outcomes, on="prediction_id")
        late = rows["served_at"] >= rows["served_at"].min().normalize() + np.timedelta64(10, "D")
        return rows[~late], rows[late]

    before, after = by_period(generate(scenario(feature_drift_day=10)))
    for column in ("actual_label", "predicted_label"):
        assert (after[column] == DRIFTING_HOOK_CLASS).mean() > (before[column] == DRIFTING_HOOK_CLASS).mean() + 0.08
    before, after = by_period(generate(scenario(concept_shift_day=10, concept_shift_model=MODEL)))
    accuracy = [(part["actual_label"] == part["predicted_label"]).mean() for part in (before, after)]
    assert accuracy[1] < accuracy[0] - 0.1
