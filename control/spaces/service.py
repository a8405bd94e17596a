"""Space use cases, and the look-ups the links service uses to file links into spaces."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from control import pagination, text
from control.errors import ApiError
from control.spaces import repository
from control.spaces.models import Space
from control.spaces.schemas import CreateSpace, ListSpaces, SpaceOut, SpacePage, UpdateSpace

NAME_MAX = 64
DESCRIPTION_MAX = 500


def _name(raw: str) -> str:
    return text.clean_name(raw, what="space", max_len=NAME_MAX)


def _description(raw: str | None) -> str | None:
    return text.clean_text(
        raw,
        what="description",
        field="description",
        max_len=DESCRIPTION_MAX,
        allowed=text.MULTILINE,
    )


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
        raise text.name_taken("space", name)
    return to_out(space, 0)


async def get(session: AsyncSession, workspace_id: uuid.UUID, space_id: str) -> SpaceOut:
    row = await repository.get(session, workspace_id, text.parse_id(space_id, "space"))
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
        name_contains=text.search_filter(query.q),
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
    wanted = text.parse_id(space_id, "space")
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
            raise text.name_taken("space", name or "") from None
        if updated is None:
            raise ApiError.not_found("space")
    return await get(session, workspace_id, space_id)


async def delete(session: AsyncSession, workspace_id: uuid.UUID, space_id: str) -> None:
    """The space's links stay, outside any space (the foreign key sets them to NULL)."""
    if not await repository.delete_one(session, workspace_id, text.parse_id(space_id, "space")):
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
        name = text.lookup_name(ref, NAME_MAX)
        if name is not None:
            space = await repository.by_name(session, workspace_id, name)
    if space is None:
        raise ApiError.not_found("space")
    return space


async def names(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """id -> name of the given spaces; ids the caller already scoped to its workspace."""
    if not ids:
        return {}
    return await repository.names(session, ids)
