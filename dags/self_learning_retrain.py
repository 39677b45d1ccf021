"""
### Self-learning loop, retrain

Retrains one model and puts the result to the test. Triggered by `self_learning_daily` when its
retrain decision says yes (conf: `model`, `reason`, `request_id`, `window_end`), or by hand from
this form.

1. `claim_request` marks the retrain request running (a manual run records one).
2. `train_candidate` trains on the labelled outcomes of the training window with the model's
   trainer (default: HistGradientBoosting over the stored features; a model may name its own
   trainer by dotted path in its settings, `trainer`), scores candidate and champion on the same
   time-based holdout, writes the artifact (Variable `self_learning_artifact_root`, any fsspec URI)
   and registers the version: `challenger` if it beats the champion by the margin, `rejected`
   with the numbers otherwise. A model with `trainer_dag_id` in its settings is trained by that
   DAG instead (`delegate_training` triggers it).
3. `start_ab_test` starts champion vs challenger for an accepted candidate; the weekly run's A/B
   conclusion promotes the winner.
4. `finish_request` marks the request done (with the version) or failed, so the daily run does
   not ask again for the same cause.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, Param
from self_learning.notifications import RunFailureNotifier
from self_learning.operators import (
    DEFAULT_ARGS,
    ClaimRetrainRequestOperator,
    DelegateTrainingOperator,
    EnsureSchemaOperator,
    FinishRetrainRequestOperator,
    StartABTestOperator,
    TrainCandidateOperator,
)

DEFAULT_MODELS = ["roas_predictor", "ctr_predictor", "hook_classifier", "visual_pattern"]

with DAG(
    dag_id="self_learning_retrain",
    description="Train a candidate, judge it against the champion, register it, start an A/B test",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=2,
    dagrun_timeout=timedelta(hours=12),
    default_args=DEFAULT_ARGS,
    tags=["self-learning", "retraining"],
    on_failure_callback=RunFailureNotifier(),
    doc_md=__doc__,
    params={
        "model": Param("ctr_predictor", type="string", examples=DEFAULT_MODELS, minLength=1, title="Model",
                       description="A registered model (the list shows the default ones; any registered name works)."),
        "training_window_days": Param(30, type="integer", minimum=1, maximum=3660, title="Training window (days)",
                                      description="Labelled outcomes of this many days before the window end."),
        "reason": Param("manual retrain", type="string", title="Reason",
                        description="Why this retrain runs; stored with the request."),
        "request_id": Param(None, type=["null", "string"], title="Retrain request id",
                            description="Set by the daily run; empty for a manual run."),
        "window_end": Param(None, type=["null", "string"], format="date-time", title="Window end",
                            description="Train on the window ending here (UTC); empty = the last complete day."),
        "holdout_share": Param(0.2, type="number", exclusiveMinimum=0, exclusiveMaximum=1, title="Holdout share",
                               description="The latest share of the window that candidate and champion are "
                                           "scored on."),
        "margin": Param(0.02, type="number", minimum=0, maximum=1, title="Margin to beat the champion",
                        description="Relative improvement of the primary loss (MAE or log loss) the candidate "
                                    "needs to be tested against the champion."),
        "ab_traffic_split": Param(0.5, type="number", exclusiveMinimum=0, exclusiveMaximum=1,
                                  title="A/B: challenger share",
                                  description="Share of units served by the challenger."),
        "ab_unit": Param("prediction", enum=["prediction", "campaign", "account"], title="A/B: randomisation unit",
                         description="What is assigned to an arm; campaign / account use the stored unit_id."),
        "ab_min_days": Param(7, type="number", minimum=0, title="A/B: minimum days",
                             description="No decision before this many days (weekday effects)."),
        "ab_max_days": Param(28, type="number", minimum=0, title="A/B: maximum days",
                             description="Without a winner by then, keep the champion (inconclusive)."),
        "ab_min_outcomes_per_arm": Param(150, type="integer", minimum=2, title="A/B: minimum outcomes per arm"),
        "ab_margin": Param(0.0, type="number", minimum=0, maximum=1, title="A/B: practical margin",
                           description="Promote only if the challenger's loss is lower by at least this share of "
                                       "the champion's, with the always-valid confidence."),
        "ab_alpha": Param(0.05, type="number", exclusiveMinimum=0, exclusiveMaximum=0.5, title="A/B: α",
                          description="Error rate of the always-valid confidence sequence."),
    },
) as dag:
    schema = EnsureSchemaOperator(task_id="ensure_schema")
    claim = ClaimRetrainRequestOperator(task_id="claim_request")
    delegate = DelegateTrainingOperator(task_id="delegate_training")
    train = TrainCandidateOperator(task_id="train_candidate",
                                   artifact_root="{{ var.value.get('self_learning_artifact_root', '') }}",
                                   artifact_conn_id="{{ var.value.get('self_learning_artifact_conn_id', '') }}")
    ab_test = StartABTestOperator(task_id="start_ab_test", candidate=train.output)
    finish = FinishRetrainRequestOperator(task_id="finish_request", candidate=train.output, ab_test=ab_test.output,
                                          trigger_rule="all_done", retries=0)
    schema >> claim >> [delegate, train]
    train >> ab_test >> finish
    delegate >> finish
