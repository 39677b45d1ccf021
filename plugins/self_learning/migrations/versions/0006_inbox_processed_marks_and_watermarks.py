"""Outcomes are pulled by what has not been processed, not by the run's interval.

- ``outcome_inbox.processed_at``: set when a daily run recorded the row; a partial index on the
  unprocessed rows keeps the pull's scan to what is waiting however large the inbox grows;
- ``outcome_source_watermarks``: per outcome source other than the inbox, the end of the last
  pulled interval;
- indexes on the timestamps the weekly retention deletes by (``ingest_rejects.rejected_at``,
  ``outcome_history.replaced_at``, ``alerts.window_end``).

Rows already in the inbox: a row counts as processed when its prediction's outcome was recorded
at or after the row arrived (that is what the interval pull did); the others, e.g. those that
arrived on days without a run, stay unprocessed and are recorded by the next run.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UNPROCESSED = sa.text("processed_at IS NULL")
RETENTION_INDEXES = (("ix_ingest_rejects_rejected_at", "ingest_rejects", "rejected_at"),
                     ("ix_outcome_history_replaced_at", "outcome_history", "replaced_at"),
                     ("ix_alerts_window_end", "alerts", "window_end"))


def upgrade() -> None:
    with op.batch_alter_table("outcome_inbox") as table:
        table.add_column(sa.Column("processed_at", sa.DateTime(timezone=True)))
    op.execute(
        "UPDATE outcome_inbox SET processed_at = (SELECT o.recorded_at FROM outcomes o "
        "WHERE o.prediction_id = outcome_inbox.prediction_id AND o.recorded_at >= outcome_inbox.received_at) "
        "WHERE EXISTS (SELECT 1 FROM outcomes o WHERE o.prediction_id = outcome_inbox.prediction_id "
        "AND o.recorded_at >= outcome_inbox.received_at)")
    op.create_index("ix_outcome_inbox_unprocessed", "outcome_inbox", ["received_at", "id"],
                    postgresql_where=UNPROCESSED, sqlite_where=UNPROCESSED)
    op.create_table(
        "outcome_source_watermarks",
        sa.Column("source", sa.String(512), primary_key=True),
        sa.Column("pulled_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("CURRENT_TIMESTAMP")),
    )
    for name, table, column in RETENTION_INDEXES:
        op.create_index(name, table, [column])


def downgrade() -> None:
    for name, table, _ in RETENTION_INDEXES:
        op.drop_index(name, table_name=table)
    op.drop_table("outcome_source_watermarks")
    op.drop_index("ix_outcome_inbox_unprocessed", table_name="outcome_inbox")
    with op.batch_alter_table("outcome_inbox") as table:
        table.drop_column("processed_at")
