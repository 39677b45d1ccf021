"""Airflow hook for the feedback store: connection handling only; SQL lives in ``store``."""

from __future__ import annotations

import sqlalchemy as sa
from airflow.providers.postgres.hooks.postgres import PostgresHook

from .store import FeedbackStore
from .store.urls import SUPPORTED

STORE_CONN_TYPES = ("postgres", "postgresql", "sqlite")

LIBPQ_OPTIONS = {
    "sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword", "sslcrl", "connect_timeout", "options",
    "application_name", "target_session_attrs", "keepalives", "keepalives_idle", "keepalives_interval",
    "keepalives_count", "gssencmode", "channel_binding",
}


class FeedbackStoreHook(PostgresHook):
    """A ``PostgresHook`` on the ``feedback_db`` connection that hands out a ``FeedbackStore``.

    A connection of type ``sqlite`` (host = the database file path) gives the embedded store,
    e.g. ``AIRFLOW_CONN_FEEDBACK_DB='sqlite:////abs/path/feedback.db'``.
    """

    default_conn_name = "feedback_db"
    hook_name = "Self-learning feedback store"

    def __init__(self, feedback_conn_id: str = default_conn_name, **kwargs):
        super().__init__(postgres_conn_id=feedback_conn_id, **kwargs)

    def get_store(self) -> FeedbackStore:
        return FeedbackStore.from_url(self.store_url())

    def store_url(self) -> str | sa.URL:
        """The SQLAlchemy URL of the store behind the connection."""
        connection = self.get_connection(self.postgres_conn_id)
        if connection.conn_type and connection.conn_type not in STORE_CONN_TYPES:  # not read as PostgreSQL
            raise ValueError(f"{self.postgres_conn_id}: a {connection.conn_type!r} connection; the feedback store "
                             f"runs on {SUPPORTED} (connection type postgres or sqlite)")
        if connection.conn_type == "sqlite":
            path = connection.host or connection.schema
            if not path:
                raise ValueError(f"{self.postgres_conn_id}: a sqlite connection needs the database path as host")
            return f"sqlite:///{path}"
        url = self.sqlalchemy_url
        # PostgresHook keeps only extra["sqlalchemy_query"]; libpq options such as sslmode matter too.
        options = {k: str(v) for k, v in connection.extra_dejson.items() if k in LIBPQ_OPTIONS}
        return url.update_query_dict(options) if options else url
