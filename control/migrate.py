"""Apply the Alembic migrations that ship inside the `control` package."""

from __future__ import annotations

from alembic import command
from alembic.config import Config


def alembic_config(libpq_url: str) -> Config:
    _, _, rest = libpq_url.partition("://")
    cfg = Config()
    cfg.set_main_option("script_location", "control:migrations")
    cfg.set_main_option("sqlalchemy.url", f"postgresql+psycopg://{rest}")
    return cfg


def upgrade(libpq_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(libpq_url), revision)
