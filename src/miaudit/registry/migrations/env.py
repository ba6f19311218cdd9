"""Alembic environment of the miaudit registry.

:meth:`miaudit.registry.Registry.upgrade` runs the migrations on its own connection (passed
in ``config.attributes["connection"]``, inside a locked transaction). The ``alembic``
command line works too, with ``-x url=...`` or ``sqlalchemy.url`` in its ini file.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from miaudit.registry.schema import VERSION_TABLE, Base

config = context.config
target_metadata = Base.metadata


def _configure(**kwargs) -> None:
    context.configure(target_metadata=target_metadata, version_table=VERSION_TABLE,
                      render_as_batch=True, compare_type=True, **kwargs)


def run_migrations_offline() -> None:
    """Write the SQL to stdout (``alembic upgrade head --sql``)."""
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url")
    _configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the caller's connection, or on one opened from the URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url")
    engine = create_engine(url)
    with engine.connect() as conn:
        _configure(connection=conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
