"""Fan-out: one delivery per stored event and each enabled receiver that wants it.

Receivers are webhook endpoints (subscribed by event type) and destinations (event type,
then their filters; their body mapped per destination: control/destinations/selection.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control.db import new_id
from control.delivery import inserts
from control.destinations import selection
from control.destinations.mapping import encode_envelope
from control.events.models import Event
from control.webhooks.models import WebhookEndpoint

__all__ = ["create_for_events", "encode_envelope"]


async def create_for_events(
    session: AsyncSession, event_ids: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    """Create the deliveries of these events (idempotent); returns the ids of new ones that
    are due (a destination delivery whose mapping failed is recorded failed, not sent)."""
    if not event_ids:
        return []
    events = (
        await session.execute(
            select(Event.id, Event.workspace_id, Event.type, Event.envelope).where(
                Event.id.in_(list(event_ids))
            )
        )
    ).all()
    if not events:
        return []
    created = await _insert(session, await _endpoint_rows(session, events), "endpoint_id")
    rows = await selection.delivery_rows(session, events)
    created.extend(await _insert(session, rows, "destination_id"))
    return created


async def _endpoint_rows(session: AsyncSession, events: Sequence[Any]) -> list[dict[str, Any]]:
    endpoints = (
        await session.execute(
            select(WebhookEndpoint.id, WebhookEndpoint.workspace_id, WebhookEndpoint.event_types)
            .where(WebhookEndpoint.workspace_id.in_({e.workspace_id for e in events}))
            .where(WebhookEndpoint.enabled.is_(True))
        )
    ).all()
    rows: list[dict[str, Any]] = []
    for event in events:
        body: bytes | None = None
        for endpoint in endpoints:
            if endpoint.workspace_id != event.workspace_id or event.type not in (
                endpoint.event_types or ()
            ):
                continue
            if body is None:
                body = encode_envelope(event.envelope)  # the exact bytes signed and sent
            rows.append(
                {
                    "id": new_id(),
                    "workspace_id": event.workspace_id,
                    "endpoint_id": endpoint.id,
                    "event_id": event.id,
                    "event_type": event.type,
                    "reason": "event",
                    "body": body,
                    "status": "pending",
                    "due": True,
                }
            )
    return rows


async def _insert(
    session: AsyncSession, rows: list[dict[str, Any]], target: str
) -> list[uuid.UUID]:
    """Insert, skipping (event, target) pairs that have their delivery already."""
    made = await inserts.insert(session, rows, skip_existing=target)
    return [delivery_id for delivery_id, status in made if status == "pending"]
