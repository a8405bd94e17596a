"""Tag use cases, and the helpers the links service uses to attach tags by name.

Names are compared exactly once normalised (NFC, trimmed): the unique index decides.
"""

from __future__ import annotations

import re
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from control import pagination, text
from control.errors import ApiError, Conflict, Unprocessable
from control.tags import repository
from control.tags.models import Tag
from control.tags.schemas import CreateTag, ListTags, TagOut, TagPage, UpdateTag

NAME_MAX = 64
ENSURE_ATTEMPTS = 3
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


def normalise_name(raw: str) -> str:
    """A tag name given on a link; errors point at the link's `tags` field."""
    try:
        return _name(raw)
    except ApiError as exc:
        raise Unprocessable("invalid_tag", f"{exc} Got {raw[:80]!r}.", field="tags") from None


def _name(raw: str) -> str:
    return text.clean_name(raw, what="tag", max_len=NAME_MAX)


def _color(raw: str) -> str:
    if not _COLOR.fullmatch(raw):
        raise ApiError.validation("A colour is `#rrggbb` in hex.", "color")
    return raw.lower()


def to_out(tag: Tag, link_count: int) -> TagOut:
    return TagOut(
        id=str(tag.id),
        name=tag.name,
        color=tag.color,
        link_count=link_count,
        created_at=tag.created_at,
    )


async def create(session: AsyncSession, workspace_id: uuid.UUID, data: CreateTag) -> TagOut:
    name = _name(data.name)
    color = _color(data.color) if data.color is not None else None
    tag = await repository.insert_if_free(session, workspace_id, name, color)
    if tag is None:
        raise text.name_taken("tag", name)
    return to_out(tag, 0)


async def get(session: AsyncSession, workspace_id: uuid.UUID, tag_id: str) -> TagOut:
    row = await repository.get(session, workspace_id, text.parse_id(tag_id, "tag"))
    if row is None:
        raise ApiError.not_found("tag")
    return to_out(*row)


async def page(session: AsyncSession, workspace_id: uuid.UUID, query: ListTags) -> TagPage:
    after = pagination.decode(query.cursor)
    # One row more than asked tells whether another page exists, so the last cursor is null.
    rows = await repository.page(
        session,
        workspace_id,
        after=after,
        limit=query.limit + 1,
        name_contains=text.search_filter(query.q),
    )
    shown = rows[: query.limit]
    more = len(rows) > query.limit
    return TagPage(
        data=[to_out(tag, count) for tag, count in shown],
        next_cursor=pagination.encode(shown[-1][0].id) if more else None,
    )


async def update(
    session: AsyncSession, workspace_id: uuid.UUID, tag_id: str, data: UpdateTag
) -> TagOut:
    wanted = text.parse_id(tag_id, "tag")
    values: dict[str, object] = {}
    name: str | None = None
    if isinstance(data.name, str):
        values["name"] = name = _name(data.name)
    if data.color is None or isinstance(data.color, str):
        values["color"] = None if data.color is None else _color(data.color)
    if values:
        try:
            updated = await repository.update_fields(session, workspace_id, wanted, values)
        except repository.NameTaken:
            raise text.name_taken("tag", name or "") from None
        if updated is None:
            raise ApiError.not_found("tag")
    return await get(session, workspace_id, tag_id)


async def delete(session: AsyncSession, workspace_id: uuid.UUID, tag_id: str) -> None:
    if not await repository.delete_one(session, workspace_id, text.parse_id(tag_id, "tag")):
        raise ApiError.not_found("tag")


async def ensure_by_names(
    session: AsyncSession, workspace_id: uuid.UUID, names: list[str]
) -> dict[str, uuid.UUID]:
    """name -> id for every name (normalised, deduplicated), creating the missing tags.

    Concurrent callers may create the same names: ON CONFLICT DO NOTHING lets both pass and
    the SELECT then sees the committed rows. A tag deleted between the two statements is
    simply created again on the next round.
    """
    found: dict[str, uuid.UUID] = {}
    missing = list(names)
    for _ in range(ENSURE_ATTEMPTS):
        if not missing:
            break
        await repository.insert_missing(session, workspace_id, missing)
        found.update(await repository.ids_by_name(session, workspace_id, missing))
        missing = [n for n in names if n not in found]
    if missing:
        raise Conflict("tags_changed", "Tags changed while the request ran; try again.")
    return found


async def names_for_links(
    session: AsyncSession, link_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[str]]:
    """Sorted tag names of each link; every given link has an entry, maybe empty."""
    result: dict[uuid.UUID, list[str]] = {link_id: [] for link_id in link_ids}
    if not link_ids:
        return result
    for link_id, name in await repository.names_by_link(session, link_ids):
        result.setdefault(link_id, []).append(name)
    for names in result.values():
        names.sort()
    return result
