"""UTM preset use cases, and the look-ups the links service uses to apply presets."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from control import pagination, text
from control.errors import ApiError, Unprocessable
from control.presets import repository
from control.presets.models import UtmPreset
from control.presets.repository import UTM_FIELDS
from control.presets.schemas import (
    CreateUtmPreset,
    ListUtmPresets,
    UpdateUtmPreset,
    UtmPresetOut,
    UtmPresetPage,
)

NAME_MAX = 64
VALUE_MAX = 256


def _name(raw: str) -> str:
    return text.clean_name(raw, what="UTM preset", max_len=NAME_MAX)


def _utm(raw: str | None, field: str) -> str | None:
    return text.clean_text(raw, what="UTM value", field=field, max_len=VALUE_MAX)


def _require_one(values: Iterable[str | None]) -> None:
    if not any(values):
        raise Unprocessable(
            "utm_required",
            f"A preset sets at least one of {', '.join(UTM_FIELDS)}.",
        )


def to_out(preset: UtmPreset) -> UtmPresetOut:
    return UtmPresetOut(
        id=str(preset.id),
        name=preset.name,
        source=preset.source,
        medium=preset.medium,
        campaign=preset.campaign,
        term=preset.term,
        content=preset.content,
        created_at=preset.created_at,
        updated_at=preset.updated_at,
    )


async def create(
    session: AsyncSession, workspace_id: uuid.UUID, data: CreateUtmPreset
) -> UtmPresetOut:
    name = _name(data.name)
    utm = {f: _utm(getattr(data, f), f) for f in UTM_FIELDS}
    _require_one(utm.values())
    preset = await repository.insert_if_free(session, workspace_id, name, utm)
    if preset is None:
        raise text.name_taken("UTM preset", name)
    return to_out(preset)


async def get(session: AsyncSession, workspace_id: uuid.UUID, preset_id: str) -> UtmPresetOut:
    preset = await repository.get(session, workspace_id, text.parse_id(preset_id, "utm_preset"))
    if preset is None:
        raise ApiError.not_found("utm_preset")
    return to_out(preset)


async def page(
    session: AsyncSession, workspace_id: uuid.UUID, query: ListUtmPresets
) -> UtmPresetPage:
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
    return UtmPresetPage(
        data=[to_out(preset) for preset in shown],
        next_cursor=pagination.encode(shown[-1].id) if more else None,
    )


async def update(
    session: AsyncSession, workspace_id: uuid.UUID, preset_id: str, data: UpdateUtmPreset
) -> UtmPresetOut:
    wanted = text.parse_id(preset_id, "utm_preset")
    values: dict[str, object] = {}
    name: str | None = None
    if isinstance(data.name, str):
        values["name"] = name = _name(data.name)
    utm: dict[str, str | None] = {}
    for field in UTM_FIELDS:
        given = getattr(data, field)
        if given is None or isinstance(given, str):
            utm[field] = _utm(given, field)
    if utm:
        # Locked, so that two PATCHes clearing different values cannot leave none.
        current = await repository.utm_for_update(session, workspace_id, wanted)
        if current is None:
            raise ApiError.not_found("utm_preset")
        _require_one({**current, **utm}.values())
    if not values and not utm:
        return await get(session, workspace_id, preset_id)
    try:
        updated = await repository.update_fields(session, workspace_id, wanted, {**values, **utm})
    except repository.NameTaken:
        raise text.name_taken("UTM preset", name or "") from None
    if updated is None:
        raise ApiError.not_found("utm_preset")
    return to_out(updated)


async def delete(session: AsyncSession, workspace_id: uuid.UUID, preset_id: str) -> None:
    """Links that used the preset keep their own UTM values (the foreign key is set NULL)."""
    if not await repository.delete_one(
        session, workspace_id, text.parse_id(preset_id, "utm_preset")
    ):
        raise ApiError.not_found("utm_preset")


async def resolve(session: AsyncSession, workspace_id: uuid.UUID, name: str) -> UtmPreset:
    """A preset of the workspace by name."""
    wanted = text.lookup_name(name, NAME_MAX)
    preset = None if wanted is None else await repository.by_name(session, workspace_id, wanted)
    if preset is None:
        raise ApiError.not_found("utm_preset")
    return preset


async def by_ids(session: AsyncSession, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, UtmPreset]:
    """id -> preset; ids the caller already scoped to its workspace."""
    wanted = list(ids)
    if not wanted:
        return {}
    return {preset.id: preset for preset in await repository.by_ids(session, wanted)}
