"""Pinned baselines and day statistics (issue 15).

- ``model_baselines``: one row per model, the period its drift and degradation are measured
  against ([start, end) in UTC), where it came from (default / explicit / champion_training /
  promotion) and whether a promotion moves it (move / keep). Deleted with its model.
- ``day_statistics``: one statistic per (model, check, UTC day), the input of the sequential
  monitor; a re-run of a day replaces its row. Read by model and a range of days, so indexed on
  (model, day); the retention deletes by day alone, so ``day`` is indexed too.

No data is migrated: a model without a stored baseline gets its default one (the first 30 days of
its served data) pinned by the first daily run that sees them complete.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
NOW = sa.text("CURRENT_TIMESTAMP")


def _timestamp(name: str, nullable: bool = False, default: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=NOW if default else None)


def upgrade() -> None:
    op.create_table(
        "model_baselines",
        sa.Column("model", sa.String(128), sa.ForeignKey("models.name", ondelete="CASCADE"), primary_key=True),
        _timestamp("start"),
        _timestamp("end"),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("on_promotion", sa.String(16), nullable=False, server_default="move"),
        _timestamp("set_at", default=True),
        sa.Column("set_by", sa.String(256), nullable=False),
        sa.Column("note", sa.Text),
        sa.CheckConstraint('"end" > start', name="ck_model_baselines_period"),
        sa.CheckConstraint("source IN ('default', 'explicit', 'champion_training', 'promotion')",
                           name="ck_model_baselines_source"),
        sa.CheckConstraint("on_promotion IN ('move', 'keep')", name="ck_model_baselines_on_promotion"),
    )
    op.create_table(
        "day_statistics",
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("check", sa.String(300), nullable=False),
        _timestamp("day"),
        sa.Column("family", sa.String(64), nullable=False),
        sa.Column("z", sa.Float(53)),
        sa.Column("raw_z", sa.Float(53)),
        sa.Column("effect", sa.Float(53)),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("details", JSON, nullable=False),
        _timestamp("window_end"),
        _timestamp("computed_at", default=True),
        sa.PrimaryKeyConstraint("model", "check", "day"),
    )
    op.create_index("ix_day_statistics_model_day", "day_statistics", ["model", "day"])
    op.create_index("ix_day_statistics_day", "day_statistics", ["day"])


def downgrade() -> None:
    op.drop_index("ix_day_statistics_day", table_name="day_statistics")
    op.drop_index("ix_day_statistics_model_day", table_name="day_statistics")
    op.drop_table("day_statistics")
    op.drop_table("model_baselines")
