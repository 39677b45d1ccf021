"""
### Self-learning loop, daily

For the day that just ended (the run's data interval): pull the outcomes that arrived and join
them to their predictions, then for every model in parallel: one `analyse` step (performance per
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
the last pulled interval of that source, at most 90 days back, and `:end` to the interval end).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, Param, task_group
from airflow.timetables.interval import CronDataIntervalTimetable
from self_learning.notifications import RunFailureNotifier
from self_learning.operators import (
    DEFAULT_ARGS,
    AlertOperator,
    AnalyseModelOperator,
    EnsureSchemaOperator,
    LearningReportOperator,
    NotifyAlertsOperator,
    PullOutcomesOperator,
    RetrainDecisionOperator,
    RetrainTriggerOperator,
    RunSummaryOperator,
    SelectModelsOperator,
)

SEVERITIES = ["low", "medium", "high", "critical"]

with DAG(
    dag_id="self_learning_daily",
    description="Outcomes -> per model: performance, drift, errors -> alerts -> retrain decision",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=2,
    dagrun_timeout=timedelta(hours=6),
    default_args=DEFAULT_ARGS,
    tags=["self-learning", "monitoring", "daily"],
    on_failure_callback=RunFailureNotifier(),
    doc_md=__doc__,
    params={
        "models": Param([], type="array", items={"type": "string"}, title="Models",
                        description="Model names to analyse; empty = every active model."),
        "current_window_days": Param(7, type="integer", minimum=1, maximum=366, title="Current window (days)",
                                     description="Days ending at the interval end that are analysed."),
        "reference_window_days": Param(30, type="integer", minimum=1, maximum=3660,
                                       title="Reference window (days)",
                                       description="Days before the current window that drift is measured against."),
        "alpha": Param(0.05, type="number", exclusiveMinimum=0, exclusiveMaximum=0.5, title="Significance level",
                       description="False discovery rate of the drift checks (Benjamini-Hochberg) and α of the "
                                   "other tests."),
        "min_label_coverage": Param(0.8, type="number", minimum=0, maximum=1, title="Minimum label coverage",
                                    description="Below this share of labelled predictions, metrics are provisional."),
        "alert_cooldown_days": Param(3, type="number", minimum=0, maximum=365, title="Alert cooldown (days)",
                                     description="The same cause does not alert again at the same or lower "
                                                 "severity within this many days."),
        "feature_drift_severity": Param("high", enum=SEVERITIES, title="Retrain on feature drift from",
                                        description="Feature drift at or above this severity triggers a retrain."),
        "concept_drift_severity": Param("medium", enum=SEVERITIES, title="Retrain on concept drift from",
                                        description="Concept drift at or above this severity triggers a retrain."),
        "max_mape": Param(30.0, type=["null", "number"], minimum=0, title="Retrain above MAPE (%)",
                          description="Regressors: retrain when MAPE exceeds this; empty = never."),
        "max_log_loss": Param(None, type=["null", "number"], minimum=0, title="Retrain above log loss",
                              description="Classifiers: retrain when log loss exceeds this; empty = never."),
        "min_roc_auc": Param(None, type=["null", "number"], minimum=0, maximum=1, title="Retrain below ROC AUC",
                             description="Classifiers: retrain when ROC AUC falls below this; empty = never."),
        "min_labelled_outcomes": Param(100, type="integer", minimum=1, title="Minimum labelled outcomes",
                                       description="Never retrain on fewer labelled outcomes in the window."),
        "retrain_cooldown_days": Param(7, type="number", minimum=0, maximum=365, title="Retrain cooldown (days)",
                                       description="No new retrain request for causes a request of this many days "
                                                   "already covers (pending, or done for the same causes)."),
        "notification_cooldown_days": Param(7, type="number", minimum=0, maximum=365,
                                            title="Notification cooldown (days)",
                                            description="At most one notification per model and cause in this "
                                                        "many days (channels: Variable "
                                                        "self_learning_notification_channels)."),
        "window_end": Param(None, type=["null", "string"], format="date-time", title="Window end (manual runs)",
                            description="Analyse the window ending at this UTC time instead of the run's data "
                                        "interval end, e.g. 2026-11-01T00:00:00+00:00."),
    },
) as dag:
    schema = EnsureSchemaOperator(task_id="ensure_schema")
    outcomes = PullOutcomesOperator(
        task_id="pull_outcomes",
        source_conn_id="{{ var.value.get('self_learning_outcome_conn_id', '') }}",
        source_sql="{{ var.value.get('self_learning_outcome_sql', '') }}",
    )
    models = SelectModelsOperator(task_id="select_models")

    @task_group(group_id="model")
    def per_model(model):
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
