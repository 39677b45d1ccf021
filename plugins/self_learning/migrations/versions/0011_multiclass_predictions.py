"""Multiclass models (issue 17): the model's class list, the served class with its probability
vector, and the actual class of an outcome.

- ``models.classes``: the class list (JSON), the order of every stored probability vector; it only
  ever grows (a class first served is appended), so a vector stored earlier stays valid.
- ``predictions.predicted_class``: the served class as text (``predicted_label`` stays the integer
  label of binary classifiers: its binary COPY and window reads are unchanged).
- ``predictions.class_probabilities``: P(class) in the model's class order at serving time, packed
  big-endian float8 bytes on PostgreSQL like ``num_features`` (migration 0002: one bytea per row
  costs the server no per-element work), a JSON list on SQLite.
- ``actual_label`` on outcomes, their history and the inbox: the actual class as text. A label
  outside the class list is data (a class the model does not know yet), reported by the metrics.
  ``actual_value`` becomes nullable there: a multiclass outcome is a label and has no number.

All nullable: a regression or binary row carries none of them. The downgrade deletes the outcomes
that carry a label only (no actual_value): the schema before 0011 cannot hold them.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
VECTOR = sa.JSON().with_variant(postgresql.BYTEA(), "postgresql")
LABEL = 128  # core.types.MAX_CLASS_LABEL
OUTCOME_TABLES = ("outcomes", "outcome_history", "outcome_inbox")
# 0001's view, recreated around the change as 0010 does: PostgreSQL expanded ``o.*`` to the columns
# of the day, and SQLite's batch mode rebuilds ``outcomes`` and ``predictions`` under new names,
# which SQLite refuses while a view names the old tables.
ORPHAN_VIEW = ("CREATE VIEW orphan_outcomes AS SELECT o.* FROM outcomes o "
               "WHERE NOT EXISTS (SELECT 1 FROM predictions p WHERE p.prediction_id = o.prediction_id)")


def upgrade() -> None:
    op.execute("DROP VIEW orphan_outcomes")
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("classes", JSON))
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("predicted_class", sa.String(LABEL)))
        batch.add_column(sa.Column("class_probabilities", VECTOR))
    for table in OUTCOME_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("actual_label", sa.String(LABEL)))
            batch.alter_column("actual_value", existing_type=sa.Float(53), nullable=True)
    op.execute(ORPHAN_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW orphan_outcomes")
    for table in OUTCOME_TABLES:
        op.execute(f"DELETE FROM {table} WHERE actual_value IS NULL")
        with op.batch_alter_table(table) as batch:
            batch.drop_column("actual_label")
            batch.alter_column("actual_value", existing_type=sa.Float(53), nullable=False)
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("class_probabilities")
        batch.drop_column("predicted_class")
    with op.batch_alter_table("models") as batch:
        batch.drop_column("classes")
    op.execute(ORPHAN_VIEW)
