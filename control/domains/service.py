from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from control.domains import repository
from control.domains.models import Domain
from control.errors import ApiError
from shared.hosts import normalise_host


async def ensure_default(session: AsyncSession, name: str) -> Domain:
    return await repository.upsert_default(session, normalise_host(name))


async def default(session: AsyncSession) -> Domain:
    domain = await repository.get_default(session)
    if domain is None:
        raise ApiError(
            "no_default_domain", "No default domain is configured; run `ricochet migrate`."
        )
    return domain
