"""All SQL for organizations and workspaces."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control.workspaces.models import Organization, Workspace


async def insert_organization(session: AsyncSession, name: str) -> Organization:
    org = Organization(name=name)
    session.add(org)
    await session.flush()
    return org


async def insert_workspace(
    session: AsyncSession, organization_id: uuid.UUID, name: str
) -> Workspace:
    workspace = Workspace(organization_id=organization_id, name=name)
    session.add(workspace)
    await session.flush()
    return workspace


async def get(session: AsyncSession, workspace_id: uuid.UUID) -> Workspace | None:
    return await session.get(Workspace, workspace_id)


async def find_by_name(session: AsyncSession, name: str) -> Workspace | None:
    result = await session.execute(
        select(Workspace).where(Workspace.name == name).order_by(Workspace.created_at).limit(1)
    )
    return result.scalar_one_or_none()
