"""Alembic environment of the feedback store (run through ``store.ensure_schema``).

The version table has its own name so that the feedback store may share a database with
Airflow's metadata (which has its own ``alembic_version``).
"""

from alembic import context

VERSION_TABLE = "self_learning_alembic_version"

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
