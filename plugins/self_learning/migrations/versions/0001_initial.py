"""Initial feedback-store schema: predictions, outcomes, results, registry.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
FLOAT_ARRAY = sa.JSON().with_variant(postgresql.ARRAY(sa.Float(53)), "postgresql")
NOW = sa.text("CURRENT_TIMESTAMP")


def _timestamp(name: str, nullable: bool = False, default: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=NOW if default else None)


def _surrogate_id() -> sa.Column:
    # SQLite autoincrements only an INTEGER PRIMARY KEY
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True)


def _window_result(name: str, *key: sa.Column, columns: tuple = ()) -> None:
    """A result table keyed by (model, model_version, window_start, window_end, kind)."""
    op.create_table(
        name,
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        _timestamp("window_start"),
        _timestamp("window_end"),
        sa.Column("kind", sa.String(64), nullable=False),
        *key,
        *columns,
        sa.Column("result", JSON, nullable=False),
        _timestamp("computed_at", default=True),
        sa.PrimaryKeyConstraint("model", "model_version", "window_start", "window_end", "kind",
                                *[c.name for c in key]),
    )


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "models",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("task_kind", sa.String(32), nullable=False),
        sa.Column("feature_schema", JSON, nullable=False),
        sa.Column("thresholds", JSON, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        _timestamp("created_at", default=True),
        _timestamp("updated_at", default=True),
    )
    # Feature keys per model. Numeric features are stored as a float8[] in key order (binary COPY,
    # no float text on the way in or out); categorical ones as a JSON object.
    op.create_table(
        "model_features",
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("feature", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("model", "feature"),
        sa.UniqueConstraint("model", "kind", "position", name="uq_model_features_position"),
    )
    op.create_table(
        "predictions",
        sa.Column("prediction_id", sa.String(128), primary_key=True),
        # A cheap row key for reads that fetch one window in two streams (PostgreSQL only).
        sa.Column("row_id", sa.BigInteger, *([sa.Identity(cache=1000)] if postgres else [])),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("predicted_value", sa.Float(53), nullable=False),
        sa.Column("predicted_label", sa.Integer),
        sa.Column("num_features", FLOAT_ARRAY, nullable=False),
        sa.Column("cat_features", JSON, nullable=False),
        sa.Column("unit_id", sa.String(256)),
        _timestamp("served_at", default=True),
        _timestamp("ingested_at", default=True),
    )
    # Window reads filter on model and a served_at range (measured: bench/ingest_bench.py).
    op.create_index("ix_predictions_model_served_at", "predictions", ["model", "served_at"])
    # No foreign key to predictions: an outcome may arrive before its prediction (an orphan) and
    # is joined when the prediction lands.
    op.create_table(
        "outcomes",
        sa.Column("prediction_id", sa.String(128), primary_key=True),
        sa.Column("actual_value", sa.Float(53), nullable=False),
        _timestamp("observed_at", default=True),
        _timestamp("recorded_at", default=True),
        sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
    )
    op.create_table(
        "outcome_history",
        _surrogate_id(),
        sa.Column("prediction_id", sa.String(128), nullable=False, index=True),
        sa.Column("actual_value", sa.Float(53), nullable=False),
        _timestamp("observed_at"),
        _timestamp("recorded_at"),
        sa.Column("revision", sa.Integer, nullable=False),
        _timestamp("replaced_at", default=True),
    )
    op.execute(
        "CREATE VIEW orphan_outcomes AS SELECT o.* FROM outcomes o "
        "WHERE NOT EXISTS (SELECT 1 FROM predictions p WHERE p.prediction_id = o.prediction_id)"
    )
    op.create_table(
        "outcome_inbox",
        _surrogate_id(),
        sa.Column("prediction_id", sa.String(128), nullable=False),
        sa.Column("actual_value", sa.Float(53), nullable=False),
        _timestamp("observed_at", default=True),
        _timestamp("received_at", default=True),
    )
    op.create_index("ix_outcome_inbox_received_at", "outcome_inbox", ["received_at"])
    op.create_table(
        "ingest_rejects",
        _surrogate_id(),
        sa.Column("record_kind", sa.String(32), nullable=False),
        sa.Column("row_number", sa.Integer),
        sa.Column("prediction_id", sa.String(128)),
        sa.Column("field", sa.String(256)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("payload", JSON),
        _timestamp("rejected_at", default=True),
    )
    _window_result("performance_snapshots", columns=(
        sa.Column("sample_count", sa.Integer, nullable=False),
        sa.Column("label_coverage", sa.Float(53)),
        sa.Column("provisional", sa.Boolean, nullable=False),
        *(sa.Column(metric, sa.Float(53)) for metric in ("mae", "rmse", "r2", "mape", "wape", "roc_auc", "log_loss")),
    ))
    _window_result("drift_reports", columns=(
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("affected_features", JSON, nullable=False),
    ))
    _window_result("error_analyses")
    _window_result("feature_importance", sa.Column("feature", sa.String(256), nullable=False))
    op.create_table(
        "alerts",
        _surrogate_id(),
        sa.Column("dedupe_key", sa.String(512), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("alert_type", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="open"),
        sa.Column("details", JSON, nullable=False),
        _timestamp("window_end"),
        _timestamp("created_at", default=True),
        _timestamp("updated_at", default=True),
        sa.UniqueConstraint("dedupe_key", "window_end", name="uq_alerts_dedupe_window"),
    )
    op.create_table(
        "retrain_requests",
        sa.Column("request_id", sa.String(256), primary_key=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("reasons", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="requested"),
        _timestamp("window_end"),
        sa.Column("result_version", sa.String(128)),
        _timestamp("requested_at", default=True),
        _timestamp("updated_at", default=True),
    )
    op.create_table(
        "model_versions",
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("artifact_uri", sa.Text),
        _timestamp("training_window_start", nullable=True),
        _timestamp("training_window_end", nullable=True),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("created_by", sa.String(256)),
        _timestamp("created_at", default=True),
        sa.PrimaryKeyConstraint("model", "version"),
    )
    op.create_table(
        "ab_tests",
        sa.Column("test_id", sa.String(128), primary_key=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("champion_version", sa.String(128), nullable=False),
        sa.Column("challenger_version", sa.String(128), nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="running"),
        sa.Column("result", JSON),
        _timestamp("started_at", default=True),
        _timestamp("ended_at", nullable=True),
    )
    op.create_table(
        "learning_reports",
        _timestamp("period_start"),
        _timestamp("period_end"),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("report", JSON, nullable=False),
        sa.Column("artifact_uri", sa.Text),
        _timestamp("computed_at", default=True),
        sa.PrimaryKeyConstraint("period_start", "period_end", "kind"),
    )
