"""An outcome's business value (issue 16): what the outcome was worth, e.g. the unit's revenue.

An A/B test may be judged on it (primary metric ``business_value``: higher is better) or guard it;
the loss and accuracy of a prediction say nothing about what it earned. Optional (NULL: the outcome
carries none), on the outcome, its history (a correction keeps the value it replaced) and the inbox
the daily DAG pulls outcomes from.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TABLES = ("outcomes", "outcome_history", "outcome_inbox")
# 0001's view, recreated around the change: PostgreSQL expanded ``o.*`` to the columns of the day
# (and will not drop a column a view uses), and SQLite's batch mode rebuilds ``outcomes`` under a
# new name, which SQLite refuses while a view names the old table.
ORPHAN_VIEW = ("CREATE VIEW orphan_outcomes AS SELECT o.* FROM outcomes o "
               "WHERE NOT EXISTS (SELECT 1 FROM predictions p WHERE p.prediction_id = o.prediction_id)")


def upgrade() -> None:
    op.execute("DROP VIEW orphan_outcomes")
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("business_value", sa.Float(53)))
    op.execute(ORPHAN_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW orphan_outcomes")
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("business_value")
    op.execute(ORPHAN_VIEW)
