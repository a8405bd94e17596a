"""Tag use cases, and the helpers the links service uses to attach tags by name.

Names are compared exactly once normalised (NFC, trimmed): the unique index decides.
"""

from __future__ import annotations

import re
import unicodedata
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from control import pagination
from control.errors import ApiError, Conflict, Unprocessable
from control.tags import repository
from control.tags.models import Tag
from control.tags.schemas import CreateTag, ListTags, TagOut, TagPage, UpdateTag

NAME_MAX = 64
ENSURE_ATTEMPTS = 3
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


def _clean_name(raw: str) -> str:
    """The stored form of a name; ValueError says what is wrong with it."""
    name = unicodedata.normalize("NFC", raw).strip()
    if not name:
        raise ValueError("A tag name must not be empty.")
    if len(name) > NAME_MAX:
        raise ValueError(f"A tag name is at most {NAME_MAX} characters.")
    if _invisible(name):
        raise ValueError("A tag name must not contain control or invisible characters.")
    return name


def _invisible(text: str) -> bool:
    # Category C (controls, bidi overrides, zero width) and line separators: they would make
    # two different names look alike, or break a one-line display.
    return any(
        unicodedata.category(c)[0] == "C" or unicodedata.category(c) in ("Zl", "Zp") for c in text
    )


def normalise_name(raw: str) -> str:
    """A tag name given on a link; errors point at the link's `tags` field."""
    try:
        return _clean_name(raw)
    except ValueError as exc:
        raise Unprocessable("invalid_tag", f"{exc} Got {raw[:80]!r}.", field="tags") from None


def _name(raw: str) -> str:
    try:
        return _clean_name(raw)
    except ValueError as exc:
        raise ApiError.validation(str(exc), "name") from None


def _color(raw: str) -> str:
    if not _COLOR.fullmatch(raw):
        raise ApiError.validation("A colour is `#rrggbb` in hex.", "color")
    return raw.lower()


def _name_taken(name: str) -> ApiError:
    return Conflict("name_taken", f"A tag named {name!r} already exists.", field="name")


def _parse_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ApiError.not_found("tag") from None


def _filter(q: str | None) -> str | None:
    value = (q or "").strip()
    if _invisible(value):
        raise ApiError("invalid_query", "`q` must not contain control characters.", field="q")
    return value or None


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
        raise _name_taken(name)
    return to_out(tag, 0)


async def get(session: AsyncSession, workspace_id: uuid.UUID, tag_id: str) -> TagOut:
    row = await repository.get(session, workspace_id, _parse_id(tag_id))
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
        name_contains=_filter(query.q),
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
    wanted = _parse_id(tag_id)
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
            raise _name_taken(name or "") from None
        if updated is None:
            raise ApiError.not_found("tag")
    return await get(session, workspace_id, tag_id)


async def delete(session: AsyncSession, workspace_id: uuid.UUID, tag_id: str) -> None:
    if not await repository.delete_one(session, workspace_id, _parse_id(tag_id)):
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
