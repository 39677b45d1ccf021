"""Airflow operators of the feedback loop: thin steps that read a window from the store, call the
statistics and write the results.

Windows come only from the run: the ``window_end`` param if given, else the run's data interval
end, else (a manual run without a logical date) its ``run_after`` floored to midnight UTC - never
from the clock at execution time. Every write is an upsert on a natural key, so a re-run of an
interval leaves exactly one row per result, and XCom carries only small summaries.

The DAG files import this module at parse time, so it imports Airflow only; the store (pandas,
SQLAlchemy) and the statistics (scipy, scikit-learn) are imported when a task runs.
"""

from __future__ import annotations

from ..settings import AB_PARAMS, MODEL_OVERRIDABLE, MODEL_RETRAIN_SETTINGS, SEVERITIES, RetrainSettings, RunSettings
from .common import (
    ARTIFACT_ROOT_VARIABLE,
    DB_POOL,
    DEFAULT_ARGS,
    FEEDBACK_CONN_ID,
    REPORT_ROOT_VARIABLE,
    RETRAIN_DAG_ID,
    EnsureSchemaOperator,
    FeedbackStoreOperator,
    InvalidParams,
    ModelStepOperator,
    run_interval,
    run_settings,
    storage_path,
    trigger_once,
)
from .daily import (
    AlertOperator,
    AnalyseModelOperator,
    DriftOperator,
    ErrorAnalysisOperator,
    PerformanceOperator,
    RetrainDecisionOperator,
    RetrainTriggerOperator,
    RunSummaryOperator,
    SelectModelsOperator,
    findings_of,
)
from .maintenance import RetentionOperator
from .outcomes import PullOutcomesOperator
from .profiles import ProfileDaysOperator
from .retrain import (
    ClaimRetrainRequestOperator,
    DelegateTrainingOperator,
    FinishRetrainRequestOperator,
    RetrainStepOperator,
    StartABTestOperator,
    TrainCandidateOperator,
    retrain_settings,
)
from .weekly import ConcludeABTestsOperator, FeatureImportanceOperator, LearningReportOperator, NotifyAlertsOperator

__all__ = [
    "AB_PARAMS",
    "ARTIFACT_ROOT_VARIABLE",
    "DB_POOL",
    "DEFAULT_ARGS",
    "FEEDBACK_CONN_ID",
    "MODEL_OVERRIDABLE",
    "MODEL_RETRAIN_SETTINGS",
    "REPORT_ROOT_VARIABLE",
    "RETRAIN_DAG_ID",
    "SEVERITIES",
    "SYSTEMATIC_ERROR_LADDER",
    "AlertOperator",
    "AnalyseModelOperator",
    "ClaimRetrainRequestOperator",
    "ConcludeABTestsOperator",
    "DelegateTrainingOperator",
    "DriftOperator",
    "EnsureSchemaOperator",
    "ErrorAnalysisOperator",
    "FeatureImportanceOperator",
    "FeedbackStoreOperator",
    "FinishRetrainRequestOperator",
    "InvalidParams",
    "LearningReportOperator",
    "ModelStepOperator",
    "NotifyAlertsOperator",
    "PerformanceOperator",
    "ProfileDaysOperator",
    "PullOutcomesOperator",
    "RetentionOperator",
    "RetrainDecisionOperator",
    "RetrainSettings",
    "RetrainStepOperator",
    "RetrainTriggerOperator",
    "RunSettings",
    "RunSummaryOperator",
    "SelectModelsOperator",
    "StartABTestOperator",
    "TrainCandidateOperator",
    "findings_of",
    "retrain_settings",
    "run_interval",
    "run_settings",
    "storage_path",
    "trigger_once",
]


def __getattr__(name: str):
    """Names of the statistics kept importable from here, loaded on first use: the DAG files import
    this package at parse time, which must not import the statistics (numpy)."""
    if name == "SYSTEMATIC_ERROR_LADDER":
        from ..core.alerts import SYSTEMATIC_ERROR_LADDER

        return SYSTEMATIC_ERROR_LADDER
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
