"""Links as the API shows them, with the names they refer to looked up in batches."""

from __future__ import annotations

import uuid

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from control.links import repository, state
from control.links.models import Link
from control.links.schemas import LinkOut, Routing, Utm
from control.presets import service as presets
from control.settings import ControlSettings
from control.spaces import service as spaces
from control.tags import service as tags


def short_url(settings: ControlSettings, domain: str, slug: str) -> str:
    port = f":{settings.short_url_port}" if settings.short_url_port else ""
    return f"{settings.short_url_scheme}://{domain}{port}/{slug}"


def to_out(settings: ControlSettings, link: Link, names: state.Names, clicks: int) -> LinkOut:
    return LinkOut(
        id=str(link.id),
        workspace_id=str(link.workspace_id),
        domain=names.domain,
        domain_id=str(link.domain_id),
        slug=link.slug,
        short_url=short_url(settings, names.domain, link.slug),
        qr_url=f"/api/v1/links/{link.id}/qr",
        destination=link.destination,
        redirect_status=link.redirect_status,
        expires_at=link.expires_at,
        expired_url=link.expired_url,
        has_password=link.password_hash is not None,
        utm=msgspec.convert(link.utm or {}, Utm),
        utm_preset=names.preset,
        tags=list(names.tags),
        space=names.space,
        space_id=str(link.space_id) if link.space_id else None,
        track_conversions=link.track_conversions,
        forward_query=link.forward_query,
        routing=msgspec.convert(link.routing or {}, Routing),
        external_id=link.external_id,
        archived=link.archived_at is not None,
        archived_at=link.archived_at,
        taken_down=link.taken_down_at is not None,
        takedown_reason=link.takedown_reason,
        version=link.version,
        clicks=clicks,
        created_at=link.created_at,
        updated_at=link.updated_at,
    )


async def names_for(session: AsyncSession, links: list[Link]) -> dict[uuid.UUID, state.Names]:
    """Domain, tag, space and preset names for many links in four queries."""
    ids = [link.id for link in links]
    domain_names = await repository.domain_names(session, sorted({x.domain_id for x in links}))
    tag_names = await tags.names_for_links(session, ids)
    space_names = await spaces.names(session, sorted({x.space_id for x in links if x.space_id}))
    preset_rows = await presets.by_ids(
        session, sorted({x.utm_preset_id for x in links if x.utm_preset_id})
    )
    return {
        link.id: state.Names(
            domain=domain_names.get(link.domain_id, ""),
            tags=tag_names.get(link.id, []),
            space=space_names.get(link.space_id) if link.space_id else None,
            preset=preset_rows[link.utm_preset_id].name
            if link.utm_preset_id in preset_rows
            else None,
        )
        for link in links
    }


async def render(
    session: AsyncSession, settings: ControlSettings, links: list[Link]
) -> list[LinkOut]:
    names = await names_for(session, links)
    clicks = await repository.clicks(session, [link.id for link in links])
    return [to_out(settings, link, names[link.id], clicks.get(link.id, 0)) for link in links]
