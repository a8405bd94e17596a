"""All SQL for webhook endpoints and the API's view of their deliveries."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Mapping

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from control.db import new_id
from control.webhooks.models import WebhookEndpoint


async def insert_endpoint(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    *,
    url: str,
    event_types: list[str],
    description: str | None,
    enabled: bool,
    secret_encrypted: str,
) -> WebhookEndpoint:
    result = await session.execute(
        insert(WebhookEndpoint)
        .values(
            id=new_id(),
            workspace_id=workspace_id,
            url=url,
            event_types=event_types,
            description=description,
            enabled=enabled,
            secret_encrypted=secret_encrypted,
        )
        .returning(WebhookEndpoint)
    )
    return result.scalar_one()


async def get_endpoint(
    session: AsyncSession, workspace_id: uuid.UUID, endpoint_id: uuid.UUID
) -> WebhookEndpoint | None:
    result = await session.execute(
        select(WebhookEndpoint).where(
            WebhookEndpoint.id == endpoint_id, WebhookEndpoint.workspace_id == workspace_id
        )
    )
    return result.scalar_one_or_none()


async def page_endpoints(
    session: AsyncSession, workspace_id: uuid.UUID, *, after: uuid.UUID | None, limit: int
) -> list[WebhookEndpoint]:
    """Oldest first: ids are UUIDv7, so id order is creation order and a stable cursor."""
    stmt = (
        select(WebhookEndpoint)
        .where(WebhookEndpoint.workspace_id == workspace_id)
        .order_by(WebhookEndpoint.id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(WebhookEndpoint.id > after)
    return list((await session.execute(stmt)).scalars().all())


async def update_endpoint(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    values: Mapping[str, object],
) -> WebhookEndpoint | None:
    result = await session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.workspace_id == workspace_id)
        .values(**values, updated_at=func.now())
        .returning(WebhookEndpoint)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none()


async def rotate_secret(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    new_secret_encrypted: str,
    previous_expires_at: dt.datetime | None,
) -> WebhookEndpoint | None:
    """The current secret becomes the previous one (SET sees the row's old values)."""
    result = await session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.workspace_id == workspace_id)
        .values(
            previous_secret_encrypted=(
                WebhookEndpoint.secret_encrypted if previous_expires_at is not None else None
            ),
            previous_secret_expires_at=previous_expires_at,
            secret_encrypted=new_secret_encrypted,
            updated_at=func.now(),
        )
        .returning(WebhookEndpoint)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none()


async def delete_endpoint(
    session: AsyncSession, workspace_id: uuid.UUID, endpoint_id: uuid.UUID
) -> bool:
    result = await session.execute(
        delete(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.workspace_id == workspace_id)
        .returning(WebhookEndpoint.id)
    )
    return result.scalar_one_or_none() is not None


async def subscribed_workspaces(
    conn: AsyncConnection, workspace_ids: Collection[uuid.UUID], event_types: Collection[str]
) -> set[uuid.UUID]:
    """Those of these workspaces with an enabled endpoint subscribed to any of these types."""
    if not workspace_ids or not event_types:
        return set()
    rows = await conn.execute(
        select(WebhookEndpoint.workspace_id)
        .distinct()
        .where(WebhookEndpoint.workspace_id.in_(list(workspace_ids)))
        .where(WebhookEndpoint.enabled.is_(True))
        # A postgresql ARRAY literal: the column's generic ARRAY type has no `&&` operator.
        .where(postgresql.array(list(event_types)).overlap(WebhookEndpoint.event_types))
    )
    return set(rows.scalars())
