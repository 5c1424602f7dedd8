"""Alembic environment: migrations run on the connection `cert_authority.store.db.migrate` passes in."""

from alembic import context
from sqlmodel import SQLModel

import cert_authority.store.models  # noqa: F401  (registers the tables on SQLModel.metadata)

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
