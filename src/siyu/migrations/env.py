"""Alembic environment: uses the engine handed over by :mod:`siyu.migrate`, or SIYU settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from siyu.all_models import metadata

config = context.config


def _engine() -> Engine:
    engine = config.attributes.get("engine")
    if engine is not None:
        assert isinstance(engine, Engine)
        return engine
    from siyu.config import load_settings
    from siyu.db import create_db_engine

    return create_db_engine(load_settings().resolved_database_url)


def run_migrations_online() -> None:
    engine = _engine()
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run `siyu db upgrade`")
run_migrations_online()
