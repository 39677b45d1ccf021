"""A baseline's calibration, cached with it (issue 15).

The sequential monitor standardises each day's statistics against the baseline's own day-to-day
spread (its empirical null): 30 baseline days compared with the rest of the baseline, for every
check. The baseline does not move between runs, so neither does that calibration; recomputing it
was most of a daily run's monitoring time (6.9 s of it at 50 features x 2,000 rows/day, 1.8 s
with the calibration given). ``calibration_key`` says what it was computed for (the baseline's
dates, the monitor's settings and the calibration's version); a baseline set anew clears both.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("model_baselines") as batch:
        batch.add_column(sa.Column("calibration_key", sa.String(128)))
        batch.add_column(sa.Column("calibration", JSON))


def downgrade() -> None:
    with op.batch_alter_table("model_baselines") as batch:
        batch.drop_column("calibration")
        batch.drop_column("calibration_key")
