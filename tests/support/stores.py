"""Helpers of the store tests: a day of predictions as the bulk frame, row counts, a migration step down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa
from self_learning.store import FeedbackStore

DAY = datetime(2026, 11, 1, tzinfo=UTC)
NEXT_DAY = DAY + timedelta(days=1)


def prediction_frame(n: int, *, seed: int = 0, start: int = 0) -> pd.DataFrame:
    """``n`` roas_predictor predictions served during ``DAY``, ids ``p<start>``..; mixed feature kinds."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "prediction_id": [f"p{i}" for i in range(start, start + n)],
        "model": "roas_predictor",
        "model_version": "v1",
        "predicted_value": rng.gamma(2, 1.5, n),
        "served_at": pd.Timestamp(DAY) + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s"),
        "spend": rng.lognormal(3, 1, n),
        "ctr": rng.uniform(0, 0.1, n),
        "platform": rng.choice(["meta", "tiktok"], n),
    })


def row_count(store: FeedbackStore, table: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


def downgrade(store: FeedbackStore, revision: str) -> None:
    """Run the store's migrations down to ``revision`` (the tests of a migration's way back)."""
    from alembic import command
    from alembic.config import Config
    from self_learning.store import MIGRATIONS, VERSION_TABLE

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as conn:
        config.attributes.update(connection=conn, version_table=VERSION_TABLE)
        command.downgrade(config, revision)
