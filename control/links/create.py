"""Creating links, one or a thousand, in a handful of statements.

Every item is validated on its own first; then one multi-row INSERT ... ON CONFLICT DO
NOTHING takes all of them, and the few that collide are sorted out afterwards (a taken
slug is reported with the existing link's id, a generated slug that collided is retried
with a fresh one). Tags, revisions, events and projection messages follow in one statement
each, all in the caller's transaction.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from control.db import new_id
from control.domains import service as domains
from control.domains.models import Domain
from control.errors import ApiError
from control.events import envelope
from control.events.service import Emitter
from control.keys.service import Principal
from control.links import passwords, repository, rules, state, views
from control.links.models import Link
from control.links.schemas import BulkResult, ItemError, LinkIn, LinkOut
from control.outbox import repository as outbox
from control.presets import service as presets
from control.settings import ControlSettings
from control.spaces import service as spaces
from control.tags import service as tags

GENERATE_ROUNDS = 6


@dataclass
class _Item:
    index: int
    row: dict[str, Any]
    domain: Domain
    explicit_slug: bool
    tag_names: list[str]
    names: state.Names
    password: str | None = None
    link: Link | None = field(default=None)


class _Lookups:
    """Per-request caches: a 1,000-item bulk mentions few distinct domains, presets, spaces."""

    def __init__(self, session: AsyncSession, workspace_id: uuid.UUID) -> None:
        self.session = session
        self.workspace_id = workspace_id
        self.domains: dict[str | None, Domain | ApiError] = {}
        self.presets: dict[str, Any] = {}
        self.spaces: dict[str, Any] = {}

    async def domain(self, name: str | None) -> Domain:
        if name not in self.domains:
            try:
                self.domains[name] = await domains.for_link(self.session, self.workspace_id, name)
            except ApiError as exc:
                self.domains[name] = exc
        found = self.domains[name]
        if isinstance(found, ApiError):
            raise found
        return found

    async def preset(self, name: str) -> Any:
        if name not in self.presets:
            try:
                self.presets[name] = await presets.resolve(self.session, self.workspace_id, name)
            except ApiError as exc:
                self.presets[name] = exc
        found = self.presets[name]
        if isinstance(found, ApiError):
            raise ApiError(found.code, found.detail, field="utm_preset")
        return found

    async def space(self, ref: str) -> Any:
        if ref not in self.spaces:
            try:
                self.spaces[ref] = await spaces.resolve(self.session, self.workspace_id, ref)
            except ApiError as exc:
                self.spaces[ref] = exc
        found = self.spaces[ref]
        if isinstance(found, ApiError):
            raise ApiError(found.code, found.detail, field="space")
        return found


def explicit_utm(data: Any) -> dict[str, str | None]:
    return {
        name: rules.clean_text(getattr(data, f"utm_{name}"), f"utm_{name}")
        for name in rules.UTM_FIELDS
    }


async def _prepare(index: int, data: LinkIn, principal: Principal, look: _Lookups) -> _Item:
    destination = rules.normalise_destination(data.destination)
    rules.check_expiry(data.expires_at)
    expired_url = (
        rules.normalise_destination(data.expired_url) if data.expired_url is not None else None
    )
    domain = await look.domain(data.domain)
    preset_values: dict[str, str | None] = {}
    preset = None
    if data.utm_preset is not None:
        preset = await look.preset(data.utm_preset)
        preset_values = {n: getattr(preset, n) for n in rules.UTM_FIELDS}
    space = await look.space(data.space) if data.space is not None else None
    tag_names = sorted({tags.normalise_name(t) for t in data.tags})
    routing = rules.normalise_routing(msgspec.to_builtins(data.routing)) if data.routing else {}
    explicit = data.slug is not None
    slug = rules.normalise_slug(data.slug) if data.slug is not None else rules.generate_slug()
    external_id = rules.clean_text(data.external_id, "external_id")
    row = {
        "workspace_id": principal.workspace_id,
        "domain_id": domain.id,
        "slug": slug,
        "destination": destination,
        "redirect_status": data.redirect_status,
        "version": 1,
        "expires_at": data.expires_at,
        "expired_url": expired_url,
        "utm": rules.merge_utm(preset_values, explicit_utm(data)),
        "utm_preset_id": preset.id if preset is not None else None,
        "space_id": space.id if space is not None else None,
        "track_conversions": data.track_conversions,
        "forward_query": data.forward_query,
        "routing": routing,
        "external_id": external_id,
    }
    names = state.Names(
        domain=domain.name,
        tags=tag_names,
        space=space.name if space is not None else None,
        preset=preset.name if preset is not None else None,
    )
    return _Item(index, row, domain, explicit, tag_names, names, password=data.password)


def _error(exc: ApiError) -> ItemError:
    return ItemError(code=exc.code, detail=exc.detail, field=exc.extra.get("field"))


async def create_many(
    session: AsyncSession,
    settings: ControlSettings,
    principal: Principal,
    items: list[LinkIn | ApiError],
    actor: str,
) -> list[BulkResult]:
    """One result per item, in order. Invalid items never stop valid ones."""
    results: dict[int, BulkResult] = {}
    look = _Lookups(session, principal.workspace_id)
    prepared: list[_Item] = []
    for index, data in enumerate(items):
        if isinstance(data, ApiError):
            results[index] = BulkResult(index=index, status="invalid", error=_error(data))
            continue
        try:
            prepared.append(await _prepare(index, data, principal, look))
        except ApiError as exc:
            results[index] = BulkResult(index=index, status="invalid", error=_error(exc))

    hashed = await asyncio.gather(
        *(passwords.hash_password(i.password) for i in prepared if i.password is not None)
    )
    for item, digest in zip([i for i in prepared if i.password is not None], hashed, strict=True):
        item.row["password_hash"] = digest

    tag_ids = await tags.ensure_by_names(
        session, principal.workspace_id, sorted({t for i in prepared for t in i.tag_names})
    )
    created = await _insert(session, principal, prepared, results)
    await _record(session, settings, principal, created, tag_ids, actor, results)
    return [results[i] for i in range(len(items))]


async def _insert(
    session: AsyncSession,
    principal: Principal,
    pending: list[_Item],
    results: dict[int, BulkResult],
) -> list[_Item]:
    created: list[_Item] = []
    for round_ in range(GENERATE_ROUNDS):
        if not pending:
            break
        for item in pending:
            item.row["id"] = new_id()  # time-ordered: "newest first" lists by id
        inserted = {
            link.id: link for link in await repository.insert_new(session, [i.row for i in pending])
        }
        retry: list[_Item] = []
        leftover = [i for i in pending if i.row["id"] not in inserted]
        for item in pending:
            if item.row["id"] in inserted:
                item.link = inserted[item.row["id"]]
                created.append(item)
        if not leftover:
            break
        owners = await repository.live_by_slugs(
            session, [(i.row["domain_id"], i.row["slug"]) for i in leftover]
        )
        externals = await repository.live_by_external_ids(
            session,
            principal.workspace_id,
            [i.row["external_id"] for i in leftover if i.row["external_id"]],
        )
        for item in leftover:
            owner = owners.get((item.row["domain_id"], item.row["slug"]))
            external = externals.get(item.row["external_id"]) if item.row["external_id"] else None
            if owner is not None and item.explicit_slug:
                own = owner[1] == principal.workspace_id
                results[item.index] = BulkResult(
                    index=item.index,
                    status="slug_taken",
                    link_id=str(owner[0]) if own else None,
                    error=_error(ApiError.slug_taken(item.row["slug"], item.domain.name, None)),
                )
            elif owner is None and external is not None:
                err = ApiError(
                    "external_id_taken",
                    "Another link already has this external_id.",
                    field="external_id",
                )
                results[item.index] = BulkResult(
                    index=item.index, status="invalid", link_id=str(external), error=_error(err)
                )
            else:
                # A generated slug collided, or the colliding row vanished meanwhile: retry,
                # generated slugs one character longer every other round.
                if not item.explicit_slug:
                    item.row["slug"] = rules.generate_slug(rules.GENERATED_LENGTH + round_ // 2 + 1)
                retry.append(item)
        pending = retry
    for item in pending:
        err = ApiError("slug_generation_failed", "Could not find a free slug; try again.")
        results[item.index] = BulkResult(index=item.index, status="invalid", error=_error(err))
    return created


async def _record(
    session: AsyncSession,
    settings: ControlSettings,
    principal: Principal,
    created: list[_Item],
    tag_ids: dict[str, uuid.UUID],
    actor: str,
    results: dict[int, BulkResult],
) -> None:
    if not created:
        return
    await repository.add_tags(
        session, [(i.link.id, tag_ids[t]) for i in created if i.link for t in i.tag_names]
    )
    emitter = Emitter(principal.organization_id, principal.workspace_id)
    revisions, projections = [], []
    for item in created:
        link = item.link
        assert link is not None
        after = state.snapshot(link, item.names)
        revisions.append(
            {
                "id": uuid.uuid4(),
                "link_id": link.id,
                "revision": 1,
                "action": "create",
                "actor": actor,
                "before": None,
                "after": after,
            }
        )
        out: LinkOut = views.to_out(settings, link, item.names, clicks=0)
        emitter.add(envelope.LINK_CREATED, state.event_data(link, item.names, out.short_url))
        projections.append(state.upsert_message(link, item.names.domain))
        results[item.index] = BulkResult(index=item.index, status="created", link=out)
    await repository.add_revisions(session, revisions)
    await outbox.add_many(session, state.PROJECTION_TOPIC, projections)
    await emitter.flush(session)
