"""An outcome cannot be observed long before its prediction was served (issue 13, item 7).

More than a day earlier (the day is clock-skew tolerance) is an input bug: the row is rejected
naming ``observed_at``, the stored value is untouched, the good rows of the batch still land.
Only a stored prediction can be checked; an orphan is kept as before.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from self_learning.store import FeedbackStore

SERVED = datetime(2026, 11, 10, 12, tzinfo=UTC)


@pytest.fixture
def store(store) -> FeedbackStore:
    """conftest's store (PostgreSQL and SQLite) with two served predictions."""
    feedback = store
    for pid in ("served", "corrected"):
        feedback.register_prediction("roas_predictor", 1.0, {"spend": 1.0}, prediction_id=pid, served_at=SERVED)
    return feedback


def _actual(store: FeedbackStore, pid: str):
    with store.engine.connect() as conn:
        return conn.execute(sa.text("SELECT actual_value FROM outcomes WHERE prediction_id = :p"), {"p": pid}).scalar()


def test_an_outcome_observed_days_before_its_prediction_is_rejected(store):
    with pytest.raises(ValueError, match=r"^observed_at: 2026-10-11T12:00:00\+00:00 is more than a day before "
                                         r"the prediction was served \(2026-11-10T12:00:00\+00:00\)"):
        store.record_outcome("served", 2.0, observed_at=SERVED - timedelta(days=30))
    assert _actual(store, "served") is None
    # Within the tolerance (clock skew) and orphans (nothing to check against) are kept.
    assert store.record_outcome("served", 2.0, observed_at=SERVED - timedelta(hours=23)) == "recorded"
    assert store.record_outcome("orphan", 3.0, observed_at=SERVED - timedelta(days=300)) == "recorded"


def test_bulk_rejects_name_the_input_row_and_leave_stored_values_alone(store):
    store.record_outcome("corrected", 1.0, observed_at=SERVED + timedelta(hours=1))
    report = store.record_outcomes(pd.DataFrame({
        "prediction_id": ["orphan", "served", "served", "corrected"],
        "actual_value": [1.0, 2.0, 2.0, 9.0],
        "observed_at": [SERVED, SERVED - timedelta(days=3), SERVED - timedelta(days=3), SERVED - timedelta(days=2)],
    }), quarantine=True)
    assert [(e.row, e.prediction_id, e.field) for e in report.rejected] == [(1, "served", "observed_at"),
                                                                           (3, "corrected", "observed_at")]
    assert (report.inserted, report.corrected, report.unchanged) == (1, 0, 0)  # only the orphan
    assert _actual(store, "served") is None
    assert _actual(store, "corrected") == 1.0  # a correction with an impossible time corrects nothing
    assert store.outcome_history_of("corrected") == []
    with store.engine.connect() as conn:
        quarantined = conn.execute(sa.text("SELECT row_number, field FROM ingest_rejects ORDER BY row_number")).all()
    assert [tuple(row) for row in quarantined] == [(1, "observed_at"), (3, "observed_at")]


def test_callers_without_an_error_list_still_get_counts(store):
    clean = pd.DataFrame({"prediction_id": ["served", "orphan"], "actual_value": [2.0, 3.0],
                          "observed_at": pd.to_datetime([SERVED - timedelta(days=5), SERVED], utc=True)})
    with store.engine.begin() as conn:
        assert store._write_outcomes(conn, clean) == {"inserted": 1, "corrected": 0, "unchanged": 0}
    assert _actual(store, "served") is None and _actual(store, "orphan") == 3.0
