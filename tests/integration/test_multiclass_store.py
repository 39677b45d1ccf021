"""Multiclass models through the store (migration 0011) on PostgreSQL and SQLite: the class list
registered with the model and extended when a new class is served, predictions served singly and
in bulk with their class probabilities, outcomes as class labels (every outcome path), and a window
read back into ``ClassPredictions`` whose metrics equal sklearn's on the same rows."""

from __future__ import annotations

import logging
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from self_learning.core.multiclass import window_class_predictions
from self_learning.core.performance import multiclass_performance
from self_learning.core.types import ModelSpec, TaskKind
from sklearn.metrics import accuracy_score, f1_score, log_loss
from support.stores import DAY, NEXT_DAY, downgrade, prediction_frame, row_count

MODEL = "hook_types"
CLASSES = ("question", "statistic", "story")


@pytest.fixture
def multiclass(store):
    store.register_model(ModelSpec(MODEL, TaskKind.MULTICLASS_CLASSIFICATION,
                                   {"spend": "numeric", "platform": "categorical"}, classes=CLASSES))
    return store


def class_frame(n: int, *, seed: int = 0, start: int = 0) -> pd.DataFrame:
    """``n`` bulk rows of MODEL served during DAY: one proba_<class> column per class, the served class."""
    rng = np.random.default_rng(seed)
    probabilities = rng.dirichlet([2.0, 1.0, 1.0], n)
    frame = pd.DataFrame({"prediction_id": [f"m{i}" for i in range(start, start + n)], "model": MODEL,
                          "served_at": pd.Timestamp(DAY) + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s"),
                          "spend": rng.lognormal(3, 1, n), "platform": rng.choice(["meta", "tiktok"], n)})
    for j, label in enumerate(CLASSES):
        frame[f"proba_{label}"] = probabilities[:, j]
    frame["predicted_label"] = np.asarray(CLASSES, dtype=object)[probabilities.argmax(axis=1)]
    return frame


def test_the_class_list_is_registered_with_the_model(multiclass):
    spec = multiclass.get_model(MODEL)
    assert (spec.task_kind, spec.classes) == (TaskKind.MULTICLASS_CLASSIFICATION, CLASSES)
    # re-registering with a shorter list keeps the stored one (vectors are stored in its order)
    multiclass.register_model(ModelSpec(MODEL, TaskKind.MULTICLASS_CLASSIFICATION, classes=("story", "offer")))
    assert multiclass.get_model(MODEL).classes == (*CLASSES, "offer")
    assert multiclass.get_model("roas_predictor").classes is None


def test_a_window_of_served_classes_scores_as_sklearn(multiclass):
    frame = class_frame(1_200)  # > THREADED_COPY_ROWS: PostgreSQL's threaded COPY path too
    report = multiclass.register_predictions(frame)
    assert (report.inserted, report.rejected) == (1_200, [])
    single = multiclass.register_prediction(MODEL, features={"spend": 2.0}, predicted_label="story",
                                            probabilities={"question": 0.5, "story": 0.5},
                                            served_at=DAY + timedelta(hours=3))
    argmax = multiclass.register_prediction(MODEL, features={"spend": 1.0}, served_at=DAY + timedelta(hours=4),
                                            probabilities={"question": 0.2, "statistic": 0.7, "story": 0.1})
    rng = np.random.default_rng(1)
    actual = np.where(rng.random(1_200) < 0.6, frame["predicted_label"], rng.choice(CLASSES, 1_200))
    outcomes = pd.DataFrame({"prediction_id": frame["prediction_id"], "actual_label": actual})
    assert multiclass.record_outcomes(outcomes.iloc[:1_000]).inserted == 1_000
    assert multiclass.enqueue_outcomes(outcomes.iloc[1_000:].assign(received_at=DAY + timedelta(hours=23))
                                       ).rejected == []
    assert multiclass.pull_outcome_inbox(NEXT_DAY).inserted == 200
    assert multiclass.record_outcome(single, actual_label="question") == "recorded"
    assert multiclass.record_outcome(argmax, actual_label="statistic") == "recorded"

    window = multiclass.read_window(MODEL, DAY, NEXT_DAY, with_ids=True)
    assert [c for c in window.columns if c.startswith("proba_")] == [f"proba_{c}" for c in CLASSES]
    assert window.columns[window.columns.get_loc("business_value") + 1] == "actual_label"
    rows = window.set_index("prediction_id")
    assert rows.at[single, "predicted_label"] == "story" and rows.at[single, "predicted_value"] == 0.5
    assert rows.at[argmax, "predicted_label"] == "statistic" and rows.at[argmax, "predicted_value"] == 0.7
    assert rows.at[single, "proba_statistic"] == 0.0 and np.isnan(rows.at[single, "actual_value"])
    bulk = rows.loc[frame["prediction_id"]]
    np.testing.assert_array_equal(bulk[[f"proba_{c}" for c in CLASSES]].to_numpy(),
                                  frame[[f"proba_{c}" for c in CLASSES]].to_numpy())

    labels, predicted = window_class_predictions(window, CLASSES)
    assert len(labels) == 1_202 and list(predicted.classes) == list(CLASSES)
    performance = multiclass_performance(labels, predicted)
    served = predicted.predicted_labels
    assert performance.accuracy == pytest.approx(accuracy_score(labels, served))
    assert performance.macro_f1 == pytest.approx(f1_score(labels, served, average="macro"))
    assert performance.log_loss == pytest.approx(log_loss(labels, predicted.probabilities, labels=list(CLASSES)))
    # unlabelled rows are read too, and left out by the helper
    unlabelled = multiclass.register_prediction(MODEL, features={}, served_at=DAY + timedelta(hours=5),
                                                probabilities={"story": 1.0})
    everything = multiclass.read_window(MODEL, DAY, NEXT_DAY, labelled_only=False, with_ids=True)
    assert everything.set_index("prediction_id").at[unlabelled, "actual_label"] is None
    assert len(window_class_predictions(everything, CLASSES)[0]) == 1_202


def test_a_class_first_served_extends_the_list_with_a_warning(multiclass, caplog):
    old = multiclass.register_prediction(MODEL, features={}, served_at=DAY + timedelta(hours=1),
                                         probabilities={"question": 0.6, "statistic": 0.3, "story": 0.1})
    with caplog.at_level(logging.WARNING):
        new = multiclass.register_prediction(MODEL, features={}, served_at=DAY + timedelta(hours=2),
                                             predicted_label="offer", probabilities={"offer": 0.8, "story": 0.2})
    assert "outside its class list: ['offer']" in caplog.text
    assert multiclass.get_model(MODEL).classes == (*CLASSES, "offer")
    frame = class_frame(5).assign(proba_list=0.0)  # a bulk frame naming another new class
    assert not multiclass.register_predictions(frame).rejected
    assert multiclass.get_model(MODEL).classes == (*CLASSES, "offer", "list")
    for pid, label in ((old, "question"), (new, "offer")):
        multiclass.record_outcome(pid, actual_label=label)
    multiclass.record_outcome("m0", actual_label="poll")  # outside the list: stored, reported by the metrics
    window = multiclass.read_window(MODEL, DAY, NEXT_DAY, with_ids=True).set_index("prediction_id")
    # the vector stored before the extension reads with 0 for the appended classes
    assert window.loc[old, ["proba_question", "proba_offer", "proba_list"]].tolist() == [0.6, 0.0, 0.0]
    assert window.loc[new, ["proba_story", "proba_offer"]].tolist() == [0.2, 0.8]
    labels, predicted = window_class_predictions(window, multiclass.get_model(MODEL).classes)
    assert multiclass_performance(labels, predicted).unknown_actual == {"poll": 1}
    # a re-send of the old row is unchanged though the list grew since
    assert multiclass.register_prediction(MODEL, features={}, prediction_id=old, served_at=DAY + timedelta(hours=1),
                                          probabilities={"question": 0.6, "statistic": 0.3, "story": 0.1}) == old


@pytest.mark.parametrize(("probabilities", "field", "reason"), [
    ({"question": -0.1, "story": 1.1}, "probabilities.question", "must be non-negative"),
    ({"question": 0.5, "story": 0.4}, "probabilities", "sum to 0.9, not 1"),
    ({"question": "0.5", "story": 0.5}, "probabilities.question", "must be a number"),
    ({"question": float("nan"), "story": 1.0}, "probabilities.question", "must be finite"),
    ([0.5, 0.5], "probabilities", "must be a mapping"),
])
def test_bad_probabilities_are_refused_naming_the_field(multiclass, probabilities, field, reason):
    with pytest.raises(ValueError, match=f"^{field}: {reason}"):
        multiclass.register_prediction(MODEL, features={}, probabilities=probabilities)
    assert row_count(multiclass, "predictions") == 0


def test_bad_bulk_rows_are_rejected_naming_the_field_and_the_rest_land(multiclass):
    frame = class_frame(6)
    frame.loc[1, "proba_story"] = -0.2
    frame.loc[2, "proba_question"] += 0.3
    frame.loc[3, "predicted_value"] = 0.123
    frame.loc[[4, 5], ["proba_question", "proba_statistic", "proba_story"]] = np.nan  # no probabilities
    frame.loc[5, "predicted_label"] = None
    roas = prediction_frame(2).assign(proba_story=[1.0, np.nan])  # another kind's row with one
    report = multiclass.register_predictions(pd.concat([frame, roas], ignore_index=True))
    assert [(e.row, e.field) for e in report.rejected] == [
        (1, "proba_story"), (2, "probabilities"), (3, "predicted_value"), (4, "predicted_label"), (5, "probabilities"),
        (6, "probabilities")]
    assert "is a regression model" in report.rejected[-1].reason
    assert report.inserted == 2 and row_count(multiclass, "predictions") == 2
    with pytest.raises(ValueError, match=r"^probabilities: required"):
        multiclass.register_prediction(MODEL, 0.5, {}, predicted_label=1)


def test_label_outcomes_through_corrections_and_validation(multiclass):
    pid = multiclass.register_prediction(MODEL, features={}, probabilities={"story": 1.0},
                                         served_at=DAY + timedelta(hours=1))
    assert multiclass.record_outcome(pid, actual_label="story") == "recorded"
    assert multiclass.record_outcome(pid, actual_label="story") == "unchanged"
    assert multiclass.record_outcome(pid, actual_label="question") == "corrected"
    (old,) = multiclass.outcome_history_of(pid)
    assert (old["actual_label"], old["actual_value"]) == ("story", None)
    with pytest.raises(ValueError, match=r"^actual_value: is required"):
        multiclass.record_outcome(pid)
    report = multiclass.record_outcomes([{"prediction_id": "a", "actual_label": "x" * 200},
                                         {"prediction_id": "b", "actual_label": {"no": 1}},
                                         {"prediction_id": "c", "actual_label": 3}])
    assert [(e.row, e.field) for e in report.rejected] == [(0, "actual_label"), (1, "actual_label")]
    assert report.inserted == 1  # code 3 is the class "3"
    repeated = multiclass.record_outcomes([{"prediction_id": "r", "actual_label": "story"},
                                           {"prediction_id": "r", "actual_label": "offer"}])
    assert [(e.row, e.field) for e in repeated.rejected] == [(1, "actual_label")]


def test_binary_and_regression_rows_are_unchanged(multiclass):
    frame = prediction_frame(10)
    assert not multiclass.register_predictions(frame).rejected
    pid = multiclass.register_prediction("hook_classifier", 0.8, {"spend": 1.0}, predicted_label=1,
                                         served_at=DAY + timedelta(hours=1))
    multiclass.record_outcome(pid, 1.0)
    window = multiclass.read_window("hook_classifier", DAY, NEXT_DAY)
    assert window["predicted_label"].dtype == "Int64" and window["predicted_label"].tolist() == [1]
    assert not any(c.startswith("proba_") or c == "actual_label" for c in window.columns)
    with multiclass.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM predictions WHERE predicted_class IS NOT NULL "
                                    "OR class_probabilities IS NOT NULL")).scalar_one() == 0


def test_migration_0011_goes_down_and_up(multiclass):
    pid = multiclass.register_prediction(MODEL, features={}, probabilities={"story": 1.0},
                                         served_at=DAY + timedelta(hours=1))
    multiclass.record_outcome(pid, actual_label="story")
    frame = prediction_frame(3)
    multiclass.register_predictions(frame)
    multiclass.record_outcomes(pd.DataFrame({"prediction_id": frame["prediction_id"], "actual_value": 2.0}))
    downgrade(multiclass, "0010")
    inspector = sa.inspect(multiclass.engine)
    assert "classes" not in {c["name"] for c in inspector.get_columns("models")}
    assert not {"predicted_class", "class_probabilities"} & {c["name"] for c in inspector.get_columns("predictions")}
    for table in ("outcomes", "outcome_history", "outcome_inbox"):
        assert "actual_label" not in {c["name"] for c in inspector.get_columns(table)}
    # the label-only outcome could not stay; the others did, and the view still works
    assert row_count(multiclass, "outcomes") == 3 and multiclass.count_orphan_outcomes() == 0
    assert multiclass.ensure_schema() == "0012"
    assert multiclass.count_orphan_outcomes() == 0
