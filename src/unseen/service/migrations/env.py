"""Alembic environment of the unseen store: run by :meth:`unseen.service.store.Store.upgrade` with a connection."""

from __future__ import annotations

from alembic import context

from unseen.service.schema import metadata


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "Run the unseen store's migrations with Store(url).upgrade() or "
            "'python -m unseen.service migrate --store URL'."
        )
    context.configure(
        connection=connection, target_metadata=metadata, render_as_batch=connection.dialect.name == "sqlite"
    )
    with context.begin_transaction():
        context.run_migrations()


if hasattr(context, "config"):  # alembic is running the migrations (not a plain import, e.g. by doctest collection)
    run()
