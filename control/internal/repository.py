"""All SQL for the internal paths: the edge's miss fill and the operator's cache rebuild."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from control.domains.models import Domain
from control.links.models import Link

_LIVE = Link.deleted_at.is_(None)
# The edge serves a host when it is the platform's default domain or a verified custom one.
_SERVED = or_(Domain.is_default.is_(True), Domain.status == "verified")


def _links_with_domain() -> Select[Link, str]:
    return select(Link, Domain.name).join(Domain, Domain.id == Link.domain_id).where(_LIVE)


async def find_live(
    session: AsyncSession, host: str, slug: str, *, lock: bool = False
) -> tuple[Link, str] | None:
    """The live link at `host`/`slug` (both normalised) and its domain's name.

    `lock` takes FOR SHARE on the link until the transaction ends: a projection written
    meanwhile then cannot be overtaken by a delete or slug change of the same link (their
    FOR UPDATE waits, so their outbox row follows ours).
    """
    query = _links_with_domain().where(Domain.name == host, _SERVED, Link.slug == slug)
    if lock:
        query = query.with_for_update(read=True, of=Link)
    row = (await session.execute(query)).one_or_none()
    return (row[0], row[1]) if row is not None else None


async def live_links_page(
    session: AsyncSession, after_id: uuid.UUID | None, limit: int, *, lock: bool = False
) -> list[tuple[Link, str]]:
    """Live links of every workspace with id > `after_id`, in id order (keyset pages).

    With `lock`, rows come FOR SHARE (see `find_live`). A row deleted while we waited for its
    lock drops out, so a page may be shorter than `limit` before the end: stop on empty.
    """
    query = _links_with_domain().order_by(Link.id).limit(limit)
    if after_id is not None:
        query = query.where(Link.id > after_id)
    if lock:
        query = query.with_for_update(read=True, of=Link)
    rows = await session.execute(query)
    return [(row[0], row[1]) for row in rows]
