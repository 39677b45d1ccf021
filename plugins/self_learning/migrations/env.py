"""Alembic environment of the feedback store, run by ``FeedbackStore.ensure_schema``.

The store passes the connection and the version table's name (its own, so the feedback store
may share a database with Airflow's metadata, which has an ``alembic_version`` of its own).
"""

from alembic import context

attributes = context.config.attributes
context.configure(connection=attributes["connection"], version_table=attributes["version_table"],
                  transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
