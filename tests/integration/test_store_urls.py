"""Database URLs the store refuses, and how (issue 20: ``mysql://`` gave "No module named 'MySQLdb'")."""

from __future__ import annotations

import pytest
from self_learning.store import FeedbackStore


@pytest.mark.parametrize("url", ["mysql://svc:secret@db/feedback", "mssql+pyodbc://svc:secret@db/feedback",
                                 "oracle://svc:secret@db"])
def test_another_database_is_refused_naming_the_field_and_what_is_supported(url):
    with pytest.raises(ValueError, match=r"^url: the feedback store runs on PostgreSQL or SQLite only") as error:
        FeedbackStore.from_url(url)
    assert "secret" not in str(error.value)
    assert url.split(":")[0].split("+")[0] in str(error.value)


def test_text_that_is_no_url_is_refused_naming_the_field():
    with pytest.raises(ValueError, match=r"^url: not a database URL; .*PostgreSQL or SQLite only"):
        FeedbackStore.from_url("feedback.db")


def test_postgres_and_sqlite_urls_still_open(tmp_path):
    assert FeedbackStore.from_url(f"sqlite:///{tmp_path / 'f.db'}").dialect is not None
    # no server needed to build the engine; the alias postgres:// and an explicit driver are PostgreSQL
    for url in ("postgres://u@h/db", "postgresql://u@h/db", "postgresql+psycopg://u@h/db"):
        assert FeedbackStore.from_url(url).is_postgres


def test_a_feedback_db_connection_of_another_type_is_refused(monkeypatch):
    from self_learning.hooks import FeedbackStoreHook

    monkeypatch.setenv("AIRFLOW_CONN_FEEDBACK_DB", "mysql://svc:secret@db:3306/feedback")
    with pytest.raises(ValueError, match=r"^feedback_db: a 'mysql' connection; .*PostgreSQL or SQLite only") as error:
        FeedbackStoreHook().get_store()
    assert "secret" not in str(error.value)
