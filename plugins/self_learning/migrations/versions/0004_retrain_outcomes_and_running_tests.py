"""Retrain requests record their causes and outcome; at most one running A/B test per model.

- ``retrain_requests.causes``: the signals behind a request (``feature_drift``, ``concept_drift``,
  ``mape``...), so the daily run does not ask again for a cause already being handled;
- ``retrain_requests.detail``: what the retrain run did (candidate and champion numbers, the
  version, the A/B test it started, or the error);
- a partial unique index: one ``running`` A/B test per model (PostgreSQL and SQLite).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("retrain_requests") as table:
        table.add_column(sa.Column("causes", JSON))
        table.add_column(sa.Column("detail", JSON))
    running = sa.text("status = 'running'")
    op.create_index("uq_ab_tests_running", "ab_tests", ["model"], unique=True,
                    postgresql_where=running, sqlite_where=running)


def downgrade() -> None:
    op.drop_index("uq_ab_tests_running", table_name="ab_tests")
    with op.batch_alter_table("retrain_requests") as table:
        table.drop_column("detail")
        table.drop_column("causes")
