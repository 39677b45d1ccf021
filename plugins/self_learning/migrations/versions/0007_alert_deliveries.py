"""Alert delivery per channel: a notification retried after one channel failed is not sent again
to the channels that already took it.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_deliveries",
        sa.Column("alert_id", sa.BigInteger, primary_key=True),
        sa.Column("channel", sa.String(512), primary_key=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), server_default=sa.func.current_timestamp()),
    )


def downgrade() -> None:
    op.drop_table("alert_deliveries")
