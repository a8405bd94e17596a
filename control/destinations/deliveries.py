"""Deliveries of a destination as the API shows them, and the deliveries the API makes:
test-sends, replays and recoveries. Previews map an event without sending it."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from control import pagination
from control.delivery import history, inserts
from control.delivery.models import Delivery, DeliveryAttempt
from control.destinations import filters, mapping, samples
from control.destinations.models import Destination
from control.destinations.schemas import (
    DestinationDeliveryOut,
    DestinationDeliveryPage,
    Preview,
    PreviewOut,
)
from control.destinations.service import clean_event_types, get_row
from control.errors import ApiError, Conflict, Unprocessable
from control.events import envelope
from control.events import repository as events
from control.tags import repository as tags
from control.webhooks import service as webhooks
from control.webhooks.schemas import Health, ListDeliveries

HEALTH_WINDOW = dt.timedelta(hours=24)
TEST_MESSAGE = "This is a test event from Ricochet: your destination is reachable."


async def _with_attempts(
    session: AsyncSession, rows: list[Delivery]
) -> list[DestinationDeliveryOut]:
    by_delivery: dict[uuid.UUID, list[DeliveryAttempt]] = {r.id: [] for r in rows}
    for attempt in await history.attempts_of(session, list(by_delivery)):
        by_delivery[attempt.delivery_id].append(attempt)
    return [
        DestinationDeliveryOut(
            id=str(d.id),
            destination_id=str(d.destination_id),
            event_id=envelope.event_id_text(d.event_id),
            event_type=d.event_type,
            reason=d.reason,
            status=d.status,
            attempt_count=d.attempts,
            next_attempt_at=d.next_attempt_at,
            last_status_code=d.last_status_code,
            last_error=d.last_error,
            created_at=d.created_at,
            updated_at=d.updated_at,
            attempts=[webhooks.attempt_out(a) for a in by_delivery[d.id]],
        )
        for d in rows
    ]


async def page(
    session: AsyncSession, workspace_id: uuid.UUID, raw_id: str, query: ListDeliveries
) -> DestinationDeliveryPage:
    row = await get_row(session, workspace_id, raw_id)
    rows = await history.page(
        session,
        workspace_id,
        Delivery.destination_id,
        row.id,
        before=pagination.decode(query.cursor),
        limit=query.limit + 1,
    )
    shown = rows[: query.limit]
    return DestinationDeliveryPage(
        data=await _with_attempts(session, shown),
        next_cursor=pagination.encode(shown[-1].id) if len(rows) > query.limit else None,
    )


async def _delivery_row(
    session: AsyncSession, workspace_id: uuid.UUID, raw_id: str, raw_delivery_id: str
) -> tuple[Destination, Delivery]:
    row = await get_row(session, workspace_id, raw_id)
    found = await history.get(
        session,
        workspace_id,
        Delivery.destination_id,
        row.id,
        webhooks.delivery_id(raw_delivery_id),
    )
    if found is None:
        raise ApiError.not_found("delivery")
    return row, found


async def delivery(
    session: AsyncSession, workspace_id: uuid.UUID, raw_id: str, raw_delivery_id: str
) -> DestinationDeliveryOut:
    _, found = await _delivery_row(session, workspace_id, raw_id, raw_delivery_id)
    return (await _with_attempts(session, [found]))[0]


def _mapping_failed(exc: mapping.MappingError) -> ApiError:
    return Unprocessable("mapping_failed", str(exc), field="template")


def _body(row: Destination, env: dict[str, Any]) -> bytes:
    return mapping.body(row.kind, row.template, list(row.redact or ()), row.config, env)


async def create_test_delivery(
    session: AsyncSession,
    organization_id: uuid.UUID,
    workspace_id: uuid.UUID,
    raw_id: str,
    event_type: str | None,
) -> uuid.UUID:
    """A pending test delivery of a synthetic event, mapped like a real one (filters aside)."""
    row = await get_row(session, workspace_id, raw_id)
    wanted = event_type or envelope.WEBHOOK_TEST
    extra = None
    if wanted == envelope.WEBHOOK_TEST:
        extra = {"destination_id": str(row.id), "message": TEST_MESSAGE}
    else:
        clean_event_types([wanted])
    event_id, env = samples.envelope_of(wanted, organization_id, workspace_id, extra)
    try:
        body = _body(row, env)
    except mapping.MappingError as exc:
        raise _mapping_failed(exc) from None
    return await inserts.insert_pending(
        session,
        workspace_id=workspace_id,
        destination_id=row.id,
        event_id=event_id,
        event_type=wanted,
        reason="test",
        body=body,
    )


async def preview(
    session: AsyncSession,
    organization_id: uuid.UUID,
    workspace_id: uuid.UUID,
    raw_id: str,
    data: Preview,
) -> PreviewOut:
    """What the destination would be sent for a stored or synthetic event; nothing is sent."""
    row = await get_row(session, workspace_id, raw_id)
    if data.event_id is not None:
        eid = envelope.parse_event_id(data.event_id)
        env = await events.get(session, workspace_id, eid) if eid else None
        if env is None:
            raise ApiError.not_found("event")
    else:
        wanted = data.event_type or envelope.LINK_CLICKED
        clean_event_types([wanted])
        _, env = samples.envelope_of(wanted, organization_id, workspace_id)
    link = filters.link_id(env)
    link_tags: set[str] = set()
    if link is not None and filters.needs_tags(row.filters or {}):
        link_tags = {name for _, name in await tags.names_by_link(session, [link])}
    passes = env["type"] in row.event_types and filters.matches(row.filters or {}, env, link_tags)
    try:
        body, _ = mapping.render(row.kind, row.template, list(row.redact or ()), row.config, env)
    except mapping.MappingError as exc:
        raise _mapping_failed(exc) from None
    return PreviewOut(event=env, passes_filters=passes, body=body)


async def _replay_body(session: AsyncSession, row: Destination, found: Delivery) -> bytes | None:
    """What a replay of `found` sends: the very same bytes. A delivery whose mapping failed
    has none: it is mapped again from the stored event, with the destination as it is now
    (None if that fails again or the event is gone)."""
    if found.body:
        return found.body
    env = await events.get(session, found.workspace_id, found.event_id)
    if env is None:
        return None
    try:
        return _body(row, env)
    except mapping.MappingError:
        return None


async def _replay_row(session: AsyncSession, row: Destination, found: Delivery) -> uuid.UUID | None:
    body = await _replay_body(session, row, found)
    if body is None:
        return None
    replays = [(found, body)]
    (made,) = await history.insert_replays(session, Delivery.destination_id, row.id, replays)
    return made


async def replay(
    session: AsyncSession, workspace_id: uuid.UUID, raw_id: str, raw_delivery_id: str
) -> DestinationDeliveryOut:
    """A new pending delivery of a dead or failed one; the caller enqueues it after commit."""
    row, found = await _delivery_row(session, workspace_id, raw_id, raw_delivery_id)
    if found.status not in history.REPLAYABLE:
        raise Conflict(
            "not_replayable",
            f"Only dead or failed deliveries can be replayed; this one is {found.status}.",
        )
    new_id = await _replay_row(session, row, found)
    if new_id is None:
        raise Unprocessable(
            "mapping_failed",
            "The event cannot be mapped for this destination (see the delivery's error), "
            "or it is no longer stored.",
            field="template",
        )
    return await delivery(session, workspace_id, raw_id, str(new_id))


async def recover(
    session: AsyncSession, workspace_id: uuid.UUID, raw_id: str, since: dt.datetime
) -> list[uuid.UUID]:
    """Replays of every event whose latest delivery since `since` is dead or failed."""
    row = await get_row(session, workspace_id, raw_id)
    found = await history.latest_replayable_since(
        session, workspace_id, Delivery.destination_id, row.id, since
    )
    replays = []
    for d in found:
        body = await _replay_body(session, row, d)
        if body is not None:
            replays.append((d, body))
    return await history.insert_replays(session, Delivery.destination_id, row.id, replays)


async def health(session: AsyncSession, workspace_id: uuid.UUID, raw_id: str) -> Health:
    row = await get_row(session, workspace_id, raw_id)
    since = dt.datetime.now(dt.UTC) - HEALTH_WINDOW
    return webhooks.health_out(
        await history.health(session, workspace_id, Delivery.destination_id, row.id, since)
    )
