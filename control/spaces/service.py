"""Space use cases, and the look-ups the links service uses to file links into spaces."""

from __future__ import annotations

import unicodedata
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from control import pagination
from control.errors import ApiError, Conflict
from control.spaces import repository
from control.spaces.models import Space
from control.spaces.schemas import CreateSpace, ListSpaces, SpaceOut, SpacePage, UpdateSpace

NAME_MAX = 64
DESCRIPTION_MAX = 500
_TEXT_BREAKS = frozenset("\n\r\t")


def _hidden(text: str, allowed: frozenset[str] = frozenset()) -> bool:
    # Category C (controls, bidi overrides, zero width) and line separators: they would make
    # two different names look alike, or break a one-line display.
    return any(
        c not in allowed
        and (unicodedata.category(c)[0] == "C" or unicodedata.category(c) in ("Zl", "Zp"))
        for c in text
    )


def _name(raw: str) -> str:
    name = unicodedata.normalize("NFC", raw).strip()
    if not 1 <= len(name) <= NAME_MAX:
        raise ApiError.validation(f"A space name is 1 to {NAME_MAX} characters.", "name")
    if _hidden(name):
        raise ApiError.validation(
            "A space name must not contain control or invisible characters.", "name"
        )
    return name


def _description(raw: str | None) -> str | None:
    text = (raw or "").strip()
    if len(text) > DESCRIPTION_MAX:
        raise ApiError.validation(
            f"A description is at most {DESCRIPTION_MAX} characters.", "description"
        )
    if _hidden(text, _TEXT_BREAKS):
        raise ApiError.validation(
            "A description must not contain control or invisible characters.", "description"
        )
    return text or None


def _name_taken(name: str) -> ApiError:
    return Conflict("name_taken", f"A space named {name!r} already exists.", field="name")


def _parse_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ApiError.not_found("space") from None


def _filter(q: str | None) -> str | None:
    value = (q or "").strip()
    if _hidden(value):
        raise ApiError("invalid_query", "`q` must not contain control characters.", field="q")
    return value or None


def to_out(space: Space, link_count: int) -> SpaceOut:
    return SpaceOut(
        id=str(space.id),
        name=space.name,
        description=space.description,
        link_count=link_count,
        created_at=space.created_at,
    )


async def create(session: AsyncSession, workspace_id: uuid.UUID, data: CreateSpace) -> SpaceOut:
    name = _name(data.name)
    space = await repository.insert_if_free(
        session, workspace_id, name, _description(data.description)
    )
    if space is None:
        raise _name_taken(name)
    return to_out(space, 0)


async def get(session: AsyncSession, workspace_id: uuid.UUID, space_id: str) -> SpaceOut:
    row = await repository.get(session, workspace_id, _parse_id(space_id))
    if row is None:
        raise ApiError.not_found("space")
    return to_out(*row)


async def page(session: AsyncSession, workspace_id: uuid.UUID, query: ListSpaces) -> SpacePage:
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
    return SpacePage(
        data=[to_out(space, count) for space, count in shown],
        next_cursor=pagination.encode(shown[-1][0].id) if more else None,
    )


async def update(
    session: AsyncSession, workspace_id: uuid.UUID, space_id: str, data: UpdateSpace
) -> SpaceOut:
    wanted = _parse_id(space_id)
    values: dict[str, object] = {}
    name: str | None = None
    if isinstance(data.name, str):
        values["name"] = name = _name(data.name)
    if data.description is None or isinstance(data.description, str):
        values["description"] = _description(data.description)
    if values:
        try:
            updated = await repository.update_fields(session, workspace_id, wanted, values)
        except repository.NameTaken:
            raise _name_taken(name or "") from None
        if updated is None:
            raise ApiError.not_found("space")
    return await get(session, workspace_id, space_id)


async def delete(session: AsyncSession, workspace_id: uuid.UUID, space_id: str) -> None:
    """The space's links stay, outside any space (the foreign key sets them to NULL)."""
    if not await repository.delete_one(session, workspace_id, _parse_id(space_id)):
        raise ApiError.not_found("space")


async def resolve(session: AsyncSession, workspace_id: uuid.UUID, ref: str) -> Space:
    """A space of the workspace by id or, failing that, by name."""
    try:
        space_id: uuid.UUID | None = uuid.UUID(ref)
    except ValueError:
        space_id = None
    space = None
    if space_id is not None:
        space = await repository.by_id(session, workspace_id, space_id)
    if space is None:
        name = unicodedata.normalize("NFC", ref).strip()
        # A name that could never be stored is not looked up (NUL would upset the driver).
        if name and not _hidden(name):
            space = await repository.by_name(session, workspace_id, name)
    if space is None:
        raise ApiError.not_found("space")
    return space


async def names(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """id -> name of the given spaces; ids the caller already scoped to its workspace."""
    if not ids:
        return {}
    return await repository.names(session, ids)
