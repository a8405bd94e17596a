"""Who listens: whether a workspace has any receiver for an event type.

Click and scan events are written only for workspaces that have a subscriber (an event
row per click would otherwise cost every workspace storage and relay work for nothing).
Every kind of receiver that can subscribe to an event type answers here.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy.ext.asyncio import AsyncConnection

from control.destinations import repository as destinations
from control.webhooks import repository as webhooks


async def subscribed_workspaces(
    conn: AsyncConnection, workspace_ids: Collection[uuid.UUID], event_types: Collection[str]
) -> set[uuid.UUID]:
    """Those of these workspaces with an enabled receiver of any of these event types.

    Destination filters are not applied here (they need the event): a workspace whose only
    destination filters every click out still gets the events, and fan-out drops them.
    """
    found = await webhooks.subscribed_workspaces(conn, workspace_ids, event_types)
    rest = set(workspace_ids) - found
    if rest:
        found |= await destinations.subscribed_workspaces(conn, rest, event_types)
    return found
