"""The demo's A/B test gets traffic: serving after the test's start as the assignment says.

Why: the demo used to start a test at the data's last day and stop there, so its only look saw the
champion's predictions and none of the challenger's (a sample ratio mismatch of [1000, 0]). Here
each unit of ``days`` more synthetic traffic (the concept shift going on) is served by the arm
``arm_version`` gives it: the champion arm keeps the stale served predictions, the challenger arm
predicts with its registered artifact, loaded as serving code would (from under the artifact root).
The outcomes are recorded, and the weekly conclusion can judge the test.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ..core.ab import arm_version
from ..core.training import predict
from ..loop.lifecycle import load_artifact, model_trusted_types
from .synthetic import Scenario, generate


def serve_ab_test(store, model: str, *, days: int, rows_per_day: int, seed: int, artifact_root: str
                  ) -> tuple[int, datetime | None]:
    """Serve ``days`` of traffic after the start of ``model``'s running test, from the day after the
    last prediction already served (the daily runs after the retrain's window were the champion's
    alone): the rows served and the end of the served days ((0, None) without a running test)."""
    test = store.running_ab_test(model)
    if test is None:
        return 0, None
    spec = store.get_model(model)
    # after what the demo has served already (the days the daily DAG ran after the retrain's window)
    served = store.read_window(model, test.started_at, test.started_at + timedelta(days=366), labelled_only=False,
                               features=False)["served_at"]
    begin = test.started_at if served.empty else max(test.started_at, served.max().ceil("D").to_pydatetime())
    end = begin + timedelta(days=days)
    data = generate(Scenario(days=days, rows_per_day=rows_per_day, seed=seed, end=end, concept_shift_day=0,
                             concept_shift_model=model, models=(model,)))
    rows = data.predictions.assign(prediction_id="ab-" + data.predictions["prediction_id"])
    config = test.config
    units = rows["prediction_id"] if config["unit"] == "prediction" else rows["unit_id"]
    rows["model_version"] = [arm_version(config["seed"], str(unit), test.champion_version, test.challenger_version,
                                         config["traffic_split"]) for unit in units]
    challenger = (rows["model_version"] == test.challenger_version).to_numpy()
    version = next(v for v in store.version_history(model) if v.version == test.challenger_version)
    estimator = load_artifact(version.artifact_uri, root=artifact_root, trusted_types=model_trusted_types(spec))
    kinds = {f: kind for f, (kind, _) in store.feature_registry(model).items()}
    if challenger.any():
        rows.loc[challenger, "predicted_value"] = predict(estimator, rows[challenger], kinds, spec.task_kind)
    report = store.register_predictions(rows)
    if report.rejected:
        raise ValueError(f"demo A/B traffic: {len(report.rejected)} rows rejected, e.g. {report.rejected[:3]}")
    store.record_outcomes(data.outcomes.assign(prediction_id="ab-" + data.outcomes["prediction_id"]))
    return len(rows), end
