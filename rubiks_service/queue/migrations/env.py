"""Alembic environment of the job queue: run programmatically by `queue.schema.upgrade`, which
hands over an open connection. The version table has the queue's own name, so the queue can share
a database with MLflow (whose migrations use Alembic's default `alembic_version`)."""
from alembic import context

from rubiks_service.queue.schema import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
