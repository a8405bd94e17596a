"""Database engine, session factory and the declarative base every model shares."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import cast

from sqlalchemy import DateTime, MetaData, Table, func
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.ids import uuid7

# Stable constraint names so Alembic migrations can refer to them.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def table(model: type[Base]) -> Table:
    """A model's Core table: bulk inserts through it skip the ORM's per-object work."""
    return cast(Table, model.__table__)


def new_id() -> uuid.UUID:
    return uuid7()


def id_column() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, default=new_id)


def created_column() -> Mapped[dt.datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


def create_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def all_models() -> MetaData:
    """Import every model module so the metadata is complete (for Alembic)."""
    from control.clicks import models as _clicks
    from control.conversions import models as _conversions
    from control.delivery import models as _delivery
    from control.destinations import models as _destinations
    from control.domains import models as _domains
    from control.events import models as _events
    from control.idempotency import models as _idempotency
    from control.keys import models as _keys
    from control.links import models as _links
    from control.outbox import models as _outbox
    from control.presets import models as _presets
    from control.spaces import models as _spaces
    from control.tags import models as _tags
    from control.webhooks import models as _webhooks
    from control.workspaces import models as _workspaces

    del _clicks, _domains, _events, _idempotency, _keys, _links, _outbox
    del _presets, _spaces, _tags, _workspaces, _delivery, _webhooks, _conversions, _destinations
    return Base.metadata
