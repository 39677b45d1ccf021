"""
### Self-learning loop, weekly

For the week that just ended (Monday 00:00 UTC to Monday 00:00 UTC, the run's data interval):
recompute each model's performance over the week with the labels that have arrived since the
daily runs (per version and over all versions) and its feature weights (association with the
real outcome, plus the champion's permutation importance where it has an artifact), look at every
running champion-vs-challenger A/B test and act on it (promote the winner, close at the maximum
duration, alert on a sample ratio mismatch), then assemble the learning report of the week from
the stored results and store it (`learning_reports`, kind `weekly`): performance with the trend of
earlier weeks, error distribution, the features x days drift matrix of the week's daily reports,
systematic error patterns, feature importance with its 90-day trends, retraining
recommendations, A/B conclusions and alerts. The same report is written as a self-contained HTML
page with charts (Variable `self_learning_report_root`, any fsspec URI;
default `file://$AIRFLOW_HOME/self_learning/reports`); the task logs its path.

Every step is an upsert on its natural key: re-running or backfilling a week replaces its results.

Last, `cleanup` deletes what the retention policy lets go, relative to the week's end (JSON
Variable `self_learning_retention_days`, `{"table": days or null}` over the defaults: processed
inbox rows and ingest rejects 30 days, outcome history 365, resolved or suppressed alerts 180,
closed retrain requests, results and learning reports 400; predictions and outcomes are kept).
It is the run's teardown: it runs after the report and the notifications whether they succeeded
or not (once the schema step succeeded), and the run's state is still theirs; a failed clean-up
notifies like a failed run.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, task_group
from airflow.timetables.interval import CronDataIntervalTimetable
from self_learning.notifications import RunFailureNotifier
from self_learning.operators import (
    DEFAULT_ARGS,
    ConcludeABTestsOperator,
    EnsureSchemaOperator,
    FeatureImportanceOperator,
    LearningReportOperator,
    NotifyAlertsOperator,
    PerformanceOperator,
    RetentionOperator,
    SelectModelsOperator,
)
from self_learning.settings import dag_start_date, weekly_params

with DAG(
    dag_id="self_learning_weekly",
    description="Weekly performance with matured labels, A/B conclusions and the learning report",
    schedule=CronDataIntervalTimetable("0 0 * * 1", timezone="UTC"),
    start_date=dag_start_date(),  # 2000-01-01 or $SELF_LEARNING_START_DATE: history replays
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=12),
    default_args=DEFAULT_ARGS,
    tags=["self-learning", "monitoring", "weekly"],
    on_failure_callback=RunFailureNotifier(),
    doc_md=__doc__,
    params=weekly_params(),  # the trigger form, from self_learning.settings
) as dag:
    schema = EnsureSchemaOperator(task_id="ensure_schema")
    models = SelectModelsOperator(task_id="select_models")

    @task_group(group_id="model")
    def per_model(model):
        PerformanceOperator(task_id="performance", model=model)
        FeatureImportanceOperator(task_id="feature_importance", model=model)

    performance = per_model.expand(model=models.output)
    conclusions = ConcludeABTestsOperator(task_id="conclude_ab_tests")
    report = LearningReportOperator(task_id="learning_report", models=models.output, kind="weekly", period_days=7,
                                    report_root="{{ var.value.get('self_learning_report_root', '') }}",
                                    report_conn_id="{{ var.value.get('self_learning_report_conn_id', '') }}")
    notify = NotifyAlertsOperator(task_id="notify_alerts", title="self-learning weekly")
    # A teardown: a failed report or notification must not let the store grow, and must still fail
    # the run (an all_done leaf would turn their failure into a successful run). Deleting only after
    # both keeps what they read in place while they run.
    cleanup = RetentionOperator(task_id="cleanup", on_failure_callback=RunFailureNotifier())
    schema >> models >> performance >> conclusions >> [report, notify] >> cleanup.as_teardown(setups=schema)
