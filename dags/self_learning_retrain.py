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

from datetime import timedelta

from airflow.sdk import DAG
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
from self_learning.settings import dag_start_date, retrain_params

with DAG(
    dag_id="self_learning_retrain",
    description="Train a candidate, judge it against the champion, register it, start an A/B test",
    schedule=None,
    start_date=dag_start_date(),  # 2000-01-01 or $SELF_LEARNING_START_DATE: history replays
    catchup=False,
    max_active_runs=2,
    dagrun_timeout=timedelta(hours=12),
    default_args=DEFAULT_ARGS,
    tags=["self-learning", "retraining"],
    on_failure_callback=RunFailureNotifier(),
    doc_md=__doc__,
    params=retrain_params(),  # the trigger form, from self_learning.settings
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
