"""All SQL for webhook endpoints and the API's view of their deliveries."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from sqlalchemy import and_, case, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from control.db import new_id
from control.delivery.models import Delivery, DeliveryAttempt
from control.webhooks.models import WebhookEndpoint

REPLAYABLE = ("dead", "failed")


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


async def insert_delivery(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    event_id: uuid.UUID,
    event_type: str,
    reason: str,
    body: bytes,
) -> uuid.UUID:
    result = await session.execute(
        insert(Delivery)
        .values(
            id=new_id(),
            workspace_id=workspace_id,
            endpoint_id=endpoint_id,
            event_id=event_id,
            event_type=event_type,
            reason=reason,
            body=body,
            status="pending",
            attempts=0,
            next_attempt_at=func.now(),
        )
        .returning(Delivery.id)
    )
    return result.scalar_one()


async def get_delivery(
    session: AsyncSession, workspace_id: uuid.UUID, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> Delivery | None:
    result = await session.execute(
        select(Delivery).where(
            Delivery.id == delivery_id,
            Delivery.endpoint_id == endpoint_id,
            Delivery.workspace_id == workspace_id,
        )
    )
    return result.scalar_one_or_none()


async def page_deliveries(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    *,
    before: uuid.UUID | None,
    limit: int,
) -> list[Delivery]:
    """Newest first (UUIDv7 ids), the cursor being the last id shown."""
    stmt = (
        select(Delivery)
        .where(Delivery.endpoint_id == endpoint_id, Delivery.workspace_id == workspace_id)
        .order_by(Delivery.id.desc())
        .limit(limit)
    )
    if before is not None:
        stmt = stmt.where(Delivery.id < before)
    return list((await session.execute(stmt)).scalars().all())


async def attempts_of(
    session: AsyncSession, delivery_ids: list[uuid.UUID]
) -> list[DeliveryAttempt]:
    if not delivery_ids:
        return []
    result = await session.execute(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id.in_(delivery_ids))
        .order_by(DeliveryAttempt.delivery_id, DeliveryAttempt.number)
    )
    return list(result.scalars().all())


async def latest_replayable_since(
    session: AsyncSession, workspace_id: uuid.UUID, endpoint_id: uuid.UUID, since: dt.datetime
) -> list[Delivery]:
    """Per event, the newest delivery created since `since` (test-sends aside), when it
    ended dead or failed: an event already replayed successfully is not sent again."""
    latest = (
        select(Delivery.id)
        .where(
            Delivery.endpoint_id == endpoint_id,
            Delivery.workspace_id == workspace_id,
            Delivery.created_at >= since,
            Delivery.reason != "test",
        )
        .order_by(Delivery.event_id, Delivery.created_at.desc(), Delivery.id.desc())
        .ext(distinct_on(Delivery.event_id))
        .subquery()
    )
    result = await session.execute(
        select(Delivery)
        .where(Delivery.id.in_(select(latest.c.id)), Delivery.status.in_(REPLAYABLE))
        .order_by(Delivery.id)
    )
    return list(result.scalars().all())


@dataclass(frozen=True)
class HealthRow:
    attempts: int
    succeeded: int
    retrying: int
    dead: int
    last_success_at: dt.datetime | None
    last_failure_at: dt.datetime | None


async def health(
    session: AsyncSession, workspace_id: uuid.UUID, endpoint_id: uuid.UUID, since: dt.datetime
) -> HealthRow:
    ok = and_(DeliveryAttempt.status_code >= 200, DeliveryAttempt.status_code < 300)
    attempts = (
        await session.execute(
            select(
                func.count().filter(DeliveryAttempt.attempted_at >= since),
                func.count().filter(DeliveryAttempt.attempted_at >= since, ok),
                func.max(case((ok, DeliveryAttempt.attempted_at))),
                func.max(case((ok, None), else_=DeliveryAttempt.attempted_at)),
            )
            .select_from(DeliveryAttempt)
            .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
            .where(Delivery.endpoint_id == endpoint_id, Delivery.workspace_id == workspace_id)
        )
    ).one()
    states = (
        await session.execute(
            select(
                func.count().filter(Delivery.status == "retrying"),
                func.count().filter(Delivery.status == "dead"),
            ).where(Delivery.endpoint_id == endpoint_id, Delivery.workspace_id == workspace_id)
        )
    ).one()
    return HealthRow(
        attempts=attempts[0],
        succeeded=attempts[1],
        retrying=states[0],
        dead=states[1],
        last_success_at=attempts[2],
        last_failure_at=attempts[3],
    )


async def end_retries(session: AsyncSession, delivery_id: uuid.UUID) -> None:
    """A test-send is one attempt: a retryable outcome ends it as failed, not retrying."""
    await session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.status == "retrying")
        .values(status="failed", next_attempt_at=None, updated_at=func.now())
    )


async def last_attempt(session: AsyncSession, delivery_id: uuid.UUID) -> DeliveryAttempt | None:
    result = await session.execute(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id == delivery_id)
        .order_by(DeliveryAttempt.number.desc())
        .limit(1)
    )
    return result.scalar_one_or_none()


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
