"""Fan-out: one delivery per stored event and subscribed, enabled endpoint of its workspace."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from control.db import new_id, table
from control.delivery.models import Delivery
from control.events.models import Event
from control.webhooks.models import WebhookEndpoint

ENVELOPE_ORDER = ("id", "type", "api_version", "created_at", "organization_id", "workspace_id")
CHUNK = 1000  # rows per INSERT: well under PostgreSQL's 65,535 bind parameters


def encode_envelope(envelope: dict[str, Any]) -> bytes:
    """JSON bytes with the envelope's keys in their documented order (JSONB reorders keys)."""
    ordered = {key: envelope[key] for key in ENVELOPE_ORDER if key in envelope}
    ordered.update((k, v) for k, v in envelope.items() if k not in ordered)
    return msgspec.json.encode(ordered)


async def create_for_events(
    session: AsyncSession, event_ids: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    """Create the deliveries of these events (idempotent); returns the ids of new ones."""
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
                    "attempts": 0,
                    "next_attempt_at": func.now(),  # due at once; the reconciler's clock
                }
            )
    created: list[uuid.UUID] = []
    for start in range(0, len(rows), CHUNK):
        statement = (
            insert(table(Delivery))
            .values(rows[start : start + CHUNK])
            .on_conflict_do_nothing(
                index_elements=["event_id", "endpoint_id"], index_where=text("reason = 'event'")
            )
            .returning(table(Delivery).c.id)
        )
        created.extend((await session.execute(statement)).scalars())
    return created
