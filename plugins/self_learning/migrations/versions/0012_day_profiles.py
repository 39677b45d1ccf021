"""Daily profiles (issue 18) and the index that finds the days late labels changed.

- ``day_profiles``: one row per (model, model_version, UTC day, labelled): the day's profile
  (``core/profiles.py``) as its versioned bytes (``format``: ``core.profiles.PROFILE_FORMAT``), its
  row count and when it was built. ``labelled`` tells the profile of the labelled rows (rebuilt
  when late labels arrive) from the one of every served row (final once the day has ended).
  Upserted on that key: a rebuild replaces the row. Read by model and a range of days, so indexed
  on (model, day); retention would delete by ``day``, so ``day`` is indexed too.
- ``ix_outcomes_recorded_at``: outcomes recorded or corrected since a time (``recorded_at`` is set
  on both) name the days whose labelled profile must be rebuilt; without the index that question
  scans every stored outcome, which is what a day's work must not do (reads cost O(window)).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

NOW = sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.create_table(
        "day_profiles",
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("labelled", sa.Boolean, nullable=False),
        sa.Column("format", sa.Integer, nullable=False),
        sa.Column("row_count", sa.BigInteger, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("model", "model_version", "day", "labelled"),
    )
    op.create_index("ix_day_profiles_model_day", "day_profiles", ["model", "day"])
    op.create_index("ix_day_profiles_day", "day_profiles", ["day"])
    op.create_index("ix_outcomes_recorded_at", "outcomes", ["recorded_at"])


def downgrade() -> None:
    op.drop_index("ix_outcomes_recorded_at", table_name="outcomes")
    op.drop_index("ix_day_profiles_day", table_name="day_profiles")
    op.drop_index("ix_day_profiles_model_day", table_name="day_profiles")
    op.drop_table("day_profiles")
