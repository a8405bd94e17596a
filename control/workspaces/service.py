from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from control.workspaces import repository
from control.workspaces.models import Workspace


async def create(session: AsyncSession, name: str, organization: str | None = None) -> Workspace:
    """A workspace in an organization of its own (named after it unless told otherwise)."""
    org = await repository.insert_organization(session, organization or name)
    return await repository.insert_workspace(session, org.id, name)
