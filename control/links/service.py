"""Link use cases: validation, slug choice, and the outbox message, in one transaction."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from control.domains import service as domains
from control.errors import ApiError
from control.keys.service import Principal
from control.links import projection, repository, rules
from control.links.models import Link
from control.links.schemas import CreateLink, LinkOut
from control.outbox import repository as outbox
from control.settings import ControlSettings

GENERATE_ATTEMPTS = 8


def short_url(settings: ControlSettings, domain: str, slug: str) -> str:
    port = f":{settings.short_url_port}" if settings.short_url_port else ""
    return f"{settings.short_url_scheme}://{domain}{port}/{slug}"


def to_out(settings: ControlSettings, link: Link, domain: str, clicks: int) -> LinkOut:
    return LinkOut(
        id=str(link.id),
        workspace_id=str(link.workspace_id),
        domain=domain,
        slug=link.slug,
        short_url=short_url(settings, domain, link.slug),
        destination=link.destination,
        redirect_status=link.redirect_status,
        clicks=clicks,
        created_at=link.created_at,
        updated_at=link.updated_at,
    )


async def create(
    session: AsyncSession, settings: ControlSettings, principal: Principal, data: CreateLink
) -> LinkOut:
    destination = rules.normalise_destination(data.destination)
    slug = rules.normalise_slug(data.slug) if data.slug is not None else None
    domain = await domains.default(session)

    link: Link | None = None
    if slug is not None:
        link = await _insert(session, principal, domain.id, slug, destination)
        if link is None:
            existing = await repository.find_by_slug(session, domain.id, slug)
            own = existing is not None and existing.workspace_id == principal.workspace_id
            raise ApiError.slug_taken(
                slug, domain.name, str(existing.id) if own and existing else None
            )
    else:
        # Random slugs collide rarely; each retry also grows the slug once the space looks crowded.
        for attempt in range(GENERATE_ATTEMPTS):
            candidate = rules.generate_slug(rules.GENERATED_LENGTH + attempt // 3)
            link = await _insert(session, principal, domain.id, candidate, destination)
            if link is not None:
                break
        if link is None:
            raise ApiError("slug_generation_failed", "Could not find a free slug; try again.")

    await outbox.add(session, projection.TOPIC, projection.upsert_message(link, domain.name))
    return to_out(settings, link, domain.name, 0)


async def _insert(
    session: AsyncSession, principal: Principal, domain_id: uuid.UUID, slug: str, destination: str
) -> Link | None:
    return await repository.insert_if_free(
        session,
        workspace_id=principal.workspace_id,
        domain_id=domain_id,
        slug=slug,
        destination=destination,
        redirect_status=302,
    )


async def get(
    session: AsyncSession, settings: ControlSettings, principal: Principal, link_id: str
) -> LinkOut:
    try:
        wanted = uuid.UUID(link_id)
    except ValueError:
        raise ApiError.not_found("link") from None
    row = await repository.get_with_stats(session, principal.workspace_id, wanted)
    if row is None:
        raise ApiError.not_found("link")
    link, domain, clicks = row
    return to_out(settings, link, domain, clicks)
