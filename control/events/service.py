"""Record events in the caller's transaction: the event row and its outbox notice together."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from control.events import envelope, repository
from control.outbox import repository as outbox

TOPIC = "event"


class Emitter:
    """Collects events during a unit of work and writes them in two statements."""

    def __init__(self, organization_id: uuid.UUID, workspace_id: uuid.UUID) -> None:
        self.organization_id = organization_id
        self.workspace_id = workspace_id
        self.pending: list[tuple[uuid.UUID, uuid.UUID, str, Any, dict[str, Any]]] = []

    def add(self, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        eid, when, env = envelope.build(event_type, self.organization_id, self.workspace_id, data)
        self.pending.append((eid, self.workspace_id, event_type, when, env))
        return env

    async def flush(self, session: AsyncSession) -> None:
        if not self.pending:
            return
        await repository.add_many(session, self.pending)
        await outbox.add_many(
            session, TOPIC, [{"event_id": str(row[0]), "type": row[2]} for row in self.pending]
        )
        self.pending = []


async def emit(
    session: AsyncSession,
    organization_id: uuid.UUID,
    workspace_id: uuid.UUID,
    event_type: str,
    data: dict[str, Any],
) -> dict[str, Any]:
    emitter = Emitter(organization_id, workspace_id)
    env = emitter.add(event_type, data)
    await emitter.flush(session)
    return env
