"""Alembic environment: migrations run synchronously over psycopg 3."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from control.clicks.partitions import NAME as CLICK_PARTITION
from control.db import all_models

config = context.config
target_metadata = all_models()


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Leave the daily partitions of `clicks` out of autogenerate: they are made and
    dropped at run time (control/clicks/partitions.py), not by migrations."""
    return not (type_ == "table" and name is not None and CLICK_PARTITION.match(name))


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "", poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            compare_type=True,
            include_name=include_name,
        )
        with context.begin_transaction():
            # Two `migrate` runs at once (e.g. several pods) must not race each other.
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7460001)")
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
