"""Alembic environment: the URL comes from the caller or BETASCOPE_DATABASE_URL.

On Postgres the upgrade holds an advisory lock, so several API replicas
starting together upgrade once, one after another. SQLite uses batch mode,
since it cannot ALTER most things in place.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, event, pool, text

from api.db.models import Base

config = context.config
target_metadata = Base.metadata
LOCK_ID = 0x62657461  # "beta"


def _url() -> str:
    url = config.attributes.get("database_url")
    if url:
        return str(url)
    from api.settings import Settings

    return Settings().database_url


def run_migrations_offline() -> None:
    url = _url()
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = _url()
    engine = create_engine(url, poolclass=pool.NullPool)
    postgres = engine.dialect.name == "postgresql"
    if not postgres:  # a new database gets the service's page size before its first table
        from api.db.session import new_page_size

        event.listen(engine, "connect", lambda conn, _: new_page_size(conn.cursor()))
    with engine.connect() as connection:
        if postgres:
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_ID})
            connection.commit()
        try:
            context.configure(connection=connection, target_metadata=target_metadata,
                              render_as_batch=not postgres, compare_type=True)
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if postgres:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_ID})
                connection.commit()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
