"""At most one champion version per model (a partial unique index, PostgreSQL and SQLite).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    champion = sa.text("status = 'champion'")
    op.create_index("uq_model_versions_champion", "model_versions", ["model"], unique=True,
                    postgresql_where=champion, sqlite_where=champion)


def downgrade() -> None:
    op.drop_index("uq_model_versions_champion", table_name="model_versions")
