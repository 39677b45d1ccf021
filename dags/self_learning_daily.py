"""
### Self-learning loop, daily

For the day that just ended (the run's data interval): pull the outcomes that arrived and join
them to their predictions, then for every model in parallel: a `profile` step (each complete day
the monitor reads profiled once - mergeable summaries in `day_profiles` - and a day's labelled
profile rebuilt when late outcomes arrive for it; the analysis does not read them yet), one
`analyse` step (performance per
version over the current window, feature / prediction / concept drift against the reference
window, error analysis, all stored in one transaction so a model's day appears whole or not at
all), alerts (deduplicated with a cooldown) and the retrain decision, which triggers
`self_learning_retrain` when it says yes. New alerts go to the notification channels, a one-page
daily summary (the learning report of the day, kind `daily`, with the metrics' trend over the last
14 days) is stored and written as HTML next to the weekly reports, and a summary of the run is
logged at the end.

Everything is stored in the feedback store (connection `feedback_db`) and upserted on natural
keys: re-running or backfilling an interval replaces its results. For a manual run, set
`window_end` to analyse the window ending then.

Outcome source: the store's `outcome_inbox` table (every row not processed yet and received
before the window end, so days without a run are picked up by the next one), or any SQL query on
any Airflow connection (Variables `self_learning_outcome_conn_id` and `self_learning_outcome_sql`;
the query returns `prediction_id, actual_value[, observed_at]` with `:start` bound to the end of
the last pulled interval of that source, at most 90 days back, and `:end` to the interval end),
or the CSV files under a prefix (Variable `self_learning_outcome_uri`, any fsspec URI), each read
by the run whose window holds its modification time.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, task_group
from airflow.timetables.interval import CronDataIntervalTimetable
from self_learning.notifications import RunFailureNotifier
from self_learning.operators import (
    DEFAULT_ARGS,
    AlertOperator,
    AnalyseModelOperator,
    EnsureSchemaOperator,
    LearningReportOperator,
    NotifyAlertsOperator,
    ProfileDaysOperator,
    PullOutcomesOperator,
    RetrainDecisionOperator,
    RetrainTriggerOperator,
    RunSummaryOperator,
    SelectModelsOperator,
)
from self_learning.settings import dag_start_date, daily_params

with DAG(
    dag_id="self_learning_daily",
    description="Outcomes -> per model: performance, drift, errors -> alerts -> retrain decision",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=dag_start_date(),  # 2000-01-01 or $SELF_LEARNING_START_DATE: history replays
    catchup=False,
    max_active_runs=2,
    dagrun_timeout=timedelta(hours=6),
    default_args=DEFAULT_ARGS,
    tags=["self-learning", "monitoring", "daily"],
    on_failure_callback=RunFailureNotifier(),
    doc_md=__doc__,
    params=daily_params(),  # the trigger form, from self_learning.settings
) as dag:
    schema = EnsureSchemaOperator(task_id="ensure_schema")
    outcomes = PullOutcomesOperator(
        task_id="pull_outcomes",
        source_conn_id="{{ var.value.get('self_learning_outcome_conn_id', '') }}",
        source_sql="{{ var.value.get('self_learning_outcome_sql', '') }}",
        source_uri="{{ var.value.get('self_learning_outcome_uri', '') }}",
    )
    models = SelectModelsOperator(task_id="select_models")

    @task_group(group_id="model")
    def per_model(model):
        # the model's day profiles: new days built once, days with late labels rebuilt, backfill bounded;
        # beside the analysis, not before it: it does not read them yet, so a failed profile step must
        # not hold back the model's day
        ProfileDaysOperator(task_id="profile", model=model)
        # performance, drift and error analysis in one task: one read of the window, one transaction
        analyse = AnalyseModelOperator(task_id="analyse", model=model)
        alerts = AlertOperator(task_id="alerts", model=model)
        decision = RetrainDecisionOperator(task_id="retrain_decision", model=model)
        trigger = RetrainTriggerOperator(task_id="trigger_retrain", decision=decision.output, pool="default_pool")
        analyse >> alerts >> decision >> trigger

    analysed = per_model.expand(model=models.output)
    # all_done: a skipped retrain trigger (no retrain needed) or one failed model must not hold back
    # the other models' notifications and the summary
    notify = NotifyAlertsOperator(task_id="notify_alerts", trigger_rule="all_done")
    daily_summary = LearningReportOperator(
        task_id="daily_summary", models=models.output, kind="daily", period_days=1, trend_periods=14,
        trigger_rule="all_done",
        title="Daily summary", report_root="{{ var.value.get('self_learning_report_root', '') }}",
        report_conn_id="{{ var.value.get('self_learning_report_conn_id', '') }}")
    summary = RunSummaryOperator(task_id="run_summary", models=models.output, trigger_rule="all_done")
    schema >> outcomes >> models >> analysed >> [notify, daily_summary] >> summary
