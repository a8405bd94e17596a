"""Fan-out to destinations: which enabled destinations want each event, and its body.

Filters are decided here, so an event a destination does not want makes no delivery at
all. The body is mapped here too and stored: every attempt and replay sends those bytes.
An event the mapping fails on gets a delivery that is failed from the start, with the
reason, so the failure shows in the destination's history instead of holding up the relay.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from control.db import new_id
from control.destinations import filters, mapping
from control.destinations import repository as destinations
from control.tags import repository as tags

log = logging.getLogger("ricochet.delivery")
_NOT_DUE: dict[str, Any] = {"due": False}


async def _link_tags(session: AsyncSession, link_ids: set[uuid.UUID]) -> dict[uuid.UUID, set[str]]:
    out: dict[uuid.UUID, set[str]] = {}
    if link_ids:
        for link_id, name in await tags.names_by_link(session, list(link_ids)):
            out.setdefault(link_id, set()).add(name)
    return out


async def delivery_rows(session: AsyncSession, events: Sequence[Any]) -> list[dict[str, Any]]:
    """Rows for `deliveries`, one per (event, destination that wants it); `events` are rows
    with id, workspace_id, type and envelope."""
    if not events:
        return []
    targets = await destinations.enabled_in(session, {e.workspace_id for e in events})
    if not targets:
        return []
    by_workspace: dict[uuid.UUID, list[Any]] = {}
    for target in targets:
        by_workspace.setdefault(target.workspace_id, []).append(target)
    pairs = [
        (event, target)
        for event in events
        for target in by_workspace.get(event.workspace_id, ())
        if event.type in (target.event_types or ())
    ]
    # Tags are looked up now, not taken from the event: the filter means the link's tags.
    wanted = {
        link_id
        for event, target in pairs
        if filters.needs_tags(target.filters or {})
        and (link_id := filters.link_id(event.envelope)) is not None
    }
    tags_of = await _link_tags(session, wanted)
    rows = []
    for event, target in pairs:
        link_id = filters.link_id(event.envelope)
        link_tags = tags_of.get(link_id, set()) if link_id is not None else set()
        if not filters.matches(target.filters or {}, event.envelope, link_tags):
            continue
        rows.append(_row(event, target))
    return rows


def _row(event: Any, target: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": new_id(),
        "workspace_id": event.workspace_id,
        "destination_id": target.id,
        "event_id": event.id,
        "event_type": event.type,
        "reason": "event",
        "last_error": None,
    }
    try:
        body = mapping.body(
            target.kind, target.template, list(target.redact or ()), target.config, event.envelope
        )
    except mapping.MappingError as exc:
        return {**row, "body": b"", "status": "failed", "last_error": str(exc)[:1000], **_NOT_DUE}
    except Exception:
        # A fault of ours must not wedge the relay on this event: record and move on.
        log.exception("mapping event %s for destination %s failed", event.id, target.id)
        error = "mapping failed (internal)"
        return {**row, "body": b"", "status": "failed", "last_error": error, **_NOT_DUE}
    return {**row, "body": body, "status": "pending", "due": True}
