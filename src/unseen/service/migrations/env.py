"""Alembic environment of the unseen store: run by :meth:`unseen.service.store.Store.upgrade` with a connection."""

from __future__ import annotations

from alembic import context

from unseen.service.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the store always passes its connection
    raise RuntimeError("Run the unseen store's migrations with Store(url).upgrade() or 'python -m unseen.service migrate'.")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
