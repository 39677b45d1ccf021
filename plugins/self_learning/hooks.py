"""Airflow hook for the feedback store: connection handling only; SQL lives in ``store``."""

from __future__ import annotations

from airflow.providers.postgres.hooks.postgres import PostgresHook

from .store import FeedbackStore


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
        connection = self.get_connection(self.postgres_conn_id)
        if connection.conn_type == "sqlite":
            path = connection.host or connection.schema
            if not path:
                raise ValueError(f"{self.postgres_conn_id}: a sqlite connection needs the database path as host")
            return FeedbackStore.from_url(f"sqlite:///{path}")
        return FeedbackStore.from_url(self.sqlalchemy_url)
