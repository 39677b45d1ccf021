"""The feedback store's tables and the constants that name their values."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from ..core.tasks import STORED_METRICS
from ..core.types import DEFAULT_MAX_FEATURES, MAX_CLASS_LABEL

DEFAULT_VERSION = "unversioned"
ALL_VERSIONS = "*"  # model_version of results computed over every version of a model
# Feature values one row may carry; the model's registry holds at most its own cap (``feature_cap``).
MAX_FEATURES = DEFAULT_MAX_FEATURES
# served_at / observed_at / received_at outside [start, end) are rejected as implausible: year 1 or
# 9999, 1970-01-01 (an epoch of 0) and microseconds read as seconds are input bugs, not data.
PLAUSIBLE_TIMESTAMPS = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))
# A quarantined row's payload is kept whole up to this many bytes of JSON, else cut with a marker:
# one 1 MB row used to be stored whole in ingest_rejects.
MAX_REJECT_PAYLOAD_BYTES = 4096
ANALYZE_AFTER_ROWS = 50_000
MAX_KEY_LENGTH = 256
MAX_TEXT_LENGTH = 1024
MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
VERSION_TABLE = "self_learning_alembic_version"
RESERVED = ("prediction_id", "model", "model_version", "predicted_value", "predicted_label", "unit_id", "served_at")
WINDOW_COLUMNS = (*RESERVED[:1], "model_version", "served_at", "predicted_value", "predicted_label", "unit_id",
                  "actual_value", "observed_at", "business_value")
# Columns of the outcome a window read returns (the rest are the prediction's); business_value is
# optional (migration 0010: NULL / NaN when the outcome carries none); actual_label only in a
# multiclass model's windows (migration 0011).
OUTCOME_WINDOW_COLUMNS = ("actual_value", "observed_at", "business_value", "actual_label")

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# Numeric features: packed big-endian float8 bytes on PostgreSQL (migration 0002), a JSON list on SQLite.
_VECTOR = sa.JSON().with_variant(postgresql.BYTEA(), "postgresql")
# Class probabilities (migration 0011): as the numeric features, NULL (not JSON null) on rows without.
_PROBABILITIES = sa.JSON(none_as_null=True).with_variant(postgresql.BYTEA(), "postgresql")
_TS = sa.DateTime(timezone=True)

metadata = sa.MetaData()
models = sa.Table(
    "models", metadata,
    sa.Column("name", sa.String(128), primary_key=True), sa.Column("task_kind", sa.String(32)),
    sa.Column("feature_schema", _JSON), sa.Column("thresholds", _JSON), sa.Column("active", sa.Boolean),
    sa.Column("created_at", _TS), sa.Column("updated_at", _TS),
    sa.Column("classes", _JSON),  # a multiclass model's class list (migration 0011), appended to only
)
model_features = sa.Table(
    "model_features", metadata,
    sa.Column("model", sa.String(128), primary_key=True), sa.Column("feature", sa.String(256), primary_key=True),
    sa.Column("kind", sa.String(16)), sa.Column("position", sa.Integer),
)
predictions = sa.Table(
    "predictions", metadata,
    sa.Column("prediction_id", sa.String(128), primary_key=True), sa.Column("row_id", sa.BigInteger),
    sa.Column("model", sa.String(128)), sa.Column("model_version", sa.String(128)),
    sa.Column("predicted_value", sa.Float(53)),
    sa.Column("predicted_label", sa.Integer), sa.Column("num_features", _VECTOR),
    sa.Column("cat_features", _JSON), sa.Column("unit_id", sa.String(256)), sa.Column("served_at", _TS),
    sa.Column("ingested_at", _TS),
    # A multiclass prediction (migration 0011): the served class and P(class) in the model's class
    # order at serving time (packed like num_features on PostgreSQL, a JSON list on SQLite).
    sa.Column("predicted_class", sa.String(MAX_CLASS_LABEL)), sa.Column("class_probabilities", _PROBABILITIES),
)
outcomes = sa.Table(
    "outcomes", metadata,
    sa.Column("prediction_id", sa.String(128), primary_key=True), sa.Column("actual_value", sa.Float(53)),
    sa.Column("observed_at", _TS), sa.Column("recorded_at", _TS), sa.Column("revision", sa.Integer),
    sa.Column("business_value", sa.Float(53)), sa.Column("actual_label", sa.String(MAX_CLASS_LABEL)),
)
outcome_history = sa.Table(
    "outcome_history", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True), sa.Column("prediction_id", sa.String(128)),
    sa.Column("actual_value", sa.Float(53)), sa.Column("observed_at", _TS), sa.Column("recorded_at", _TS),
    sa.Column("revision", sa.Integer), sa.Column("replaced_at", _TS), sa.Column("business_value", sa.Float(53)),
    sa.Column("actual_label", sa.String(MAX_CLASS_LABEL)),
)
outcome_inbox = sa.Table(
    "outcome_inbox", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True), sa.Column("prediction_id", sa.String(128)),
    sa.Column("actual_value", sa.Float(53)), sa.Column("observed_at", _TS), sa.Column("received_at", _TS),
    sa.Column("business_value", sa.Float(53)), sa.Column("actual_label", sa.String(MAX_CLASS_LABEL)),
)
alerts = sa.Table(
    "alerts", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True), sa.Column("dedupe_key", sa.String(512)),
    sa.Column("model", sa.String(128)), sa.Column("alert_type", sa.String(64)), sa.Column("severity", sa.String(16)),
    sa.Column("status", sa.String(16)), sa.Column("details", _JSON), sa.Column("window_end", _TS),
    sa.Column("created_at", _TS), sa.Column("updated_at", _TS), sa.Column("notified_at", _TS),
)
# Channels that already took an alert the run has not finished notifying: a retry after one channel
# failed sends only to the others (rows go when the alert is marked notified).
alert_deliveries = sa.Table(
    "alert_deliveries", metadata,
    sa.Column("alert_id", sa.BigInteger, primary_key=True), sa.Column("channel", sa.String(512), primary_key=True),
    sa.Column("delivered_at", _TS),
)
# open -> acknowledged -> resolved (or open -> resolved); suppressed: a repeat within the cooldown
ALERT_TRANSITIONS = {"open": ("acknowledged", "resolved"), "acknowledged": ("resolved",),
                     "suppressed": ("acknowledged", "resolved"), "resolved": ()}
retrain_requests = sa.Table(
    "retrain_requests", metadata,
    sa.Column("request_id", sa.String(256), primary_key=True), sa.Column("model", sa.String(128)),
    sa.Column("reasons", _JSON), sa.Column("status", sa.String(16)), sa.Column("window_end", _TS),
    sa.Column("result_version", sa.String(128)), sa.Column("requested_at", _TS), sa.Column("updated_at", _TS),
    sa.Column("causes", _JSON), sa.Column("detail", _JSON),
)
RETRAIN_STATUSES = ("requested", "running", "done", "failed", "delegated")
model_versions = sa.Table(
    "model_versions", metadata,
    sa.Column("model", sa.String(128), primary_key=True), sa.Column("version", sa.String(128), primary_key=True),
    sa.Column("status", sa.String(16)), sa.Column("artifact_uri", sa.Text),
    sa.Column("training_window_start", _TS), sa.Column("training_window_end", _TS), sa.Column("metrics", _JSON),
    sa.Column("created_by", sa.String(256)), sa.Column("created_at", _TS),
)
VERSION_STATUSES = ("champion", "challenger", "archived", "rejected")
ab_tests = sa.Table(
    "ab_tests", metadata,
    sa.Column("test_id", sa.String(128), primary_key=True), sa.Column("model", sa.String(128)),
    sa.Column("champion_version", sa.String(128)), sa.Column("challenger_version", sa.String(128)),
    sa.Column("config", _JSON), sa.Column("status", sa.String(16)), sa.Column("result", _JSON),
    sa.Column("started_at", _TS), sa.Column("ended_at", _TS),
)
AB_TEST_STATUSES = ("running", "promoted", "inconclusive", "stopped")
learning_reports = sa.Table(
    "learning_reports", metadata,
    sa.Column("period_start", _TS, primary_key=True), sa.Column("period_end", _TS, primary_key=True),
    sa.Column("kind", sa.String(64), primary_key=True), sa.Column("report", _JSON), sa.Column("artifact_uri", sa.Text),
    sa.Column("computed_at", _TS),
)
# A model's pinned baseline (core/baselines.py): one row per model, moved only by a user, the
# champion's training window or a promotion (migration 0008).
model_baselines = sa.Table(
    "model_baselines", metadata,
    sa.Column("model", sa.String(128), primary_key=True), sa.Column("start", _TS), sa.Column("end", _TS),
    sa.Column("source", sa.String(32)), sa.Column("on_promotion", sa.String(16)), sa.Column("set_at", _TS),
    sa.Column("set_by", sa.String(256)), sa.Column("note", sa.Text), sa.Column("calibration_key", sa.String(128)),
    sa.Column("calibration", _JSON),
)
# One statistic per model, check and UTC day (the sequential monitor's input), upserted on that key.
day_statistics = sa.Table(
    "day_statistics", metadata,
    sa.Column("model", sa.String(128), primary_key=True), sa.Column("check", sa.String(300), primary_key=True),
    sa.Column("day", _TS, primary_key=True), sa.Column("family", sa.String(64)), sa.Column("z", sa.Float(53)),
    sa.Column("raw_z", sa.Float(53)), sa.Column("effect", sa.Float(53)), sa.Column("n", sa.BigInteger),
    sa.Column("status", sa.String(32)), sa.Column("details", _JSON), sa.Column("window_end", _TS),
    sa.Column("computed_at", _TS),
)
# One day's profile per (model, version, UTC day, labelled) as ``core.profiles``' bytes (migration 0012).
day_profiles = sa.Table(
    "day_profiles", metadata,
    sa.Column("model", sa.String(128), primary_key=True), sa.Column("model_version", sa.String(128), primary_key=True),
    sa.Column("day", _TS, primary_key=True), sa.Column("labelled", sa.Boolean, primary_key=True),
    sa.Column("format", sa.Integer), sa.Column("row_count", sa.BigInteger), sa.Column("payload", sa.LargeBinary),
    sa.Column("built_at", _TS),
)
ingest_rejects = sa.Table(
    "ingest_rejects", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True), sa.Column("record_kind", sa.String(32)),
    sa.Column("row_number", sa.Integer), sa.Column("prediction_id", sa.String(128)),
    sa.Column("field", sa.String(256)), sa.Column("reason", sa.Text), sa.Column("payload", _JSON),
    sa.Column("rejected_at", _TS),
)


def _window_table(name: str, *extra: sa.Column) -> sa.Table:
    return sa.Table(
        name, metadata,
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("model_version", sa.String(128), primary_key=True),
        sa.Column("window_start", _TS, primary_key=True), sa.Column("window_end", _TS, primary_key=True),
        sa.Column("kind", sa.String(64), primary_key=True), *extra,
        sa.Column("result", _JSON), sa.Column("computed_at", _TS),
    )


performance_snapshots = _window_table(
    "performance_snapshots", sa.Column("sample_count", sa.Integer), sa.Column("label_coverage", sa.Float(53)),
    sa.Column("provisional", sa.Boolean),
    *(sa.Column(m, sa.Float(53)) for m in STORED_METRICS),
)
drift_reports = _window_table(
    "drift_reports", sa.Column("severity", sa.String(16)), sa.Column("status", sa.String(32)),
    sa.Column("affected_features", _JSON),
)
error_analyses = _window_table("error_analyses")
feature_importance = _window_table("feature_importance", sa.Column("feature", sa.String(256), primary_key=True))
RESULT_TABLES = {t.name: t for t in (performance_snapshots, drift_reports, error_analyses, feature_importance)}

