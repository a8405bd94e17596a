"""All SQL for the deliveries of one target — a webhook endpoint or a destination — as the
API shows them: one delivery, a page, their attempts, what a recovery replays (and the
replays it makes), health.

`target` is the delivery column naming the kind of target (`Delivery.endpoint_id` or
`Delivery.destination_id`); every query is also scoped to the workspace.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, case, func, select, update
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from control.db import new_id
from control.delivery import inserts
from control.delivery.models import Delivery, DeliveryAttempt

REPLAYABLE = ("dead", "failed")
Target = InstrumentedAttribute[uuid.UUID | None]


def _of(workspace_id: uuid.UUID, target: Target, target_id: uuid.UUID) -> ColumnElement[bool]:
    return and_(target == target_id, Delivery.workspace_id == workspace_id)


async def get(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    target: Target,
    target_id: uuid.UUID,
    delivery_id: uuid.UUID,
) -> Delivery | None:
    result = await session.execute(
        select(Delivery).where(Delivery.id == delivery_id, _of(workspace_id, target, target_id))
    )
    return result.scalar_one_or_none()


async def page(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    target: Target,
    target_id: uuid.UUID,
    *,
    before: uuid.UUID | None,
    limit: int,
) -> list[Delivery]:
    """Newest first (UUIDv7 ids), the cursor being the last id shown."""
    stmt = (
        select(Delivery)
        .where(_of(workspace_id, target, target_id))
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
    session: AsyncSession,
    workspace_id: uuid.UUID,
    target: Target,
    target_id: uuid.UUID,
    since: dt.datetime,
) -> list[Delivery]:
    """Per event, the newest delivery created since `since` (test-sends aside), when it
    ended dead or failed: an event already replayed successfully is not sent again."""
    latest = (
        select(Delivery.id)
        .where(
            _of(workspace_id, target, target_id),
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


async def insert_replays(
    session: AsyncSession,
    target: Target,
    target_id: uuid.UUID,
    replays: list[tuple[Delivery, bytes]],
) -> list[uuid.UUID]:
    """A new pending delivery per (delivery, body): the same event, the given bytes, due now.
    A recovery of thousands is one statement, not one per delivery."""
    rows = [
        {
            "id": new_id(),
            "workspace_id": found.workspace_id,
            target.key: target_id,
            "event_id": found.event_id,
            "event_type": found.event_type,
            "reason": "replay",
            "body": body,
            "status": "pending",
            "due": True,
        }
        for found, body in replays
    ]
    return [delivery_id for delivery_id, _ in await inserts.insert(session, rows)]


@dataclass(frozen=True)
class HealthRow:
    attempts: int
    succeeded: int
    retrying: int
    dead: int
    last_success_at: dt.datetime | None
    last_failure_at: dt.datetime | None


async def health(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    target: Target,
    target_id: uuid.UUID,
    since: dt.datetime,
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
            .where(_of(workspace_id, target, target_id))
        )
    ).one()
    states = (
        await session.execute(
            select(
                func.count().filter(Delivery.status == "retrying"),
                func.count().filter(Delivery.status == "dead"),
            ).where(_of(workspace_id, target, target_id))
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
