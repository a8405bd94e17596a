"""Link use cases beyond creation: read, list, change, roll back, archive, delete, take down.

Every change bumps the version, records a revision (before/after), emits its lifecycle
event and queues the projection change, all in the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control.domains import service as domains
from control.errors import ApiError, Conflict, PreconditionFailed
from control.events import envelope
from control.events.service import Emitter
from control.keys.service import Principal
from control.links import create, passwords, repository, rules, state, views
from control.links.models import Link
from control.links.schemas import (
    Availability,
    BulkResult,
    LinkIn,
    LinkOut,
    LinkPage,
    LinkPatch,
    LinkQuery,
    Revision,
)
from control.outbox import repository as outbox
from control.pagination import decode as decode_cursor
from control.pagination import next_cursor
from control.presets import service as presets
from control.settings import ControlSettings
from control.spaces import service as spaces
from control.tags import service as tags
from shared.keys import link_key


def actor_of(principal: Principal) -> str:
    return f"key:{principal.key_id}"


def parse_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ApiError.not_found("link") from None


async def create_one(
    session: AsyncSession, settings: ControlSettings, principal: Principal, data: LinkIn
) -> LinkOut:
    [result] = await create.create_many(session, settings, principal, [data], actor_of(principal))
    return _single(result)


def _single(result: BulkResult) -> LinkOut:
    if result.link is not None:
        return result.link
    assert result.error is not None
    if result.status == "slug_taken":
        error = Conflict("slug_taken", result.error.detail)
        if result.link_id:
            error.extra["link_id"] = result.link_id
        raise error
    extra = {"field": result.error.field} if result.error.field else {}
    if result.link_id:
        extra["link_id"] = result.link_id
    failure = ApiError(result.error.code, result.error.detail, **extra)
    failure.status = 409 if result.error.code == "external_id_taken" else 422
    raise failure


async def _live(
    session: AsyncSession, principal: Principal, raw_id: str, lock: bool = False
) -> Link:
    link = await repository.get_live(session, principal.workspace_id, parse_id(raw_id), lock=lock)
    if link is None:
        raise ApiError.not_found("link")
    return link


async def get(
    session: AsyncSession, settings: ControlSettings, principal: Principal, raw_id: str
) -> LinkOut:
    link = await _live(session, principal, raw_id)
    [out] = await views.render(session, settings, [link])
    return out


async def list_links(
    session: AsyncSession, settings: ControlSettings, principal: Principal, query: LinkQuery
) -> LinkPage:
    ws = principal.workspace_id
    tag_ids: list[uuid.UUID] = []
    if query.tag:
        found = await repository.tag_ids_by_name(
            session, ws, [tags.normalise_name(t) for t in query.tag]
        )
        if len(found) < len(set(query.tag)):
            return LinkPage(data=[], next_cursor=None)  # an unknown tag matches nothing
        tag_ids = list(found.values())
    space_id = None
    if query.space is not None:
        try:
            space_id = (await spaces.resolve(session, ws, query.space)).id
        except ApiError as exc:
            if exc.code != "space_not_found":
                raise
            return LinkPage(data=[], next_cursor=None)  # an unknown space matches nothing
    domain_id = None
    if query.domain is not None:
        domain_id = (await domains.for_link(session, ws, query.domain)).id
    links = await repository.page(
        session,
        ws,
        before=decode_cursor(query.cursor),
        limit=query.limit,
        tag_ids=tag_ids,
        space_id=space_id,
        domain_id=domain_id,
        text=query.q,
        external_id=query.external_id,
        created_after=query.created_after,
        created_before=query.created_before,
        archived=query.archived,
    )
    data = await views.render(session, settings, links)
    return LinkPage(data=data, next_cursor=next_cursor([x.id for x in links], query.limit))


async def availability(
    session: AsyncSession, principal: Principal, slug_raw: str, domain_name: str | None
) -> Availability:
    domain = await domains.for_link(session, principal.workspace_id, domain_name)
    try:
        slug = rules.normalise_slug(slug_raw)
    except ApiError as exc:
        return Availability(
            domain=domain.name,
            slug=slug_raw,
            available=False,
            reason="reserved" if exc.code == "slug_reserved" else "invalid",
            detail=exc.detail,
        )
    taken = await repository.live_by_slugs(session, [(domain.id, slug)])
    if taken:
        return Availability(domain=domain.name, slug=slug, available=False, reason="taken")
    return Availability(domain=domain.name, slug=slug, available=True)


class _Change:
    """One change to one link: snapshot before, apply, then revision + event + projection."""

    def __init__(
        self,
        session: AsyncSession,
        settings: ControlSettings,
        link: Link,
        organization_id: uuid.UUID,
        actor: str,
    ) -> None:
        self.session = session
        self.settings = settings
        self.link = link
        self.organization_id = organization_id
        self.actor = actor

    async def begin(self) -> None:
        self.names_before = (await views.names_for(self.session, [self.link]))[self.link.id]
        self.before = state.snapshot(self.link, self.names_before)
        self.old_key = link_key(self.names_before.domain, self.link.slug)

    async def commit(
        self,
        action: str,
        event_type: str = envelope.LINK_UPDATED,
        extra: dict[str, Any] | None = None,
        delete: bool = False,
    ) -> LinkOut | None:
        link = self.link
        repository.touch(link)
        try:
            async with self.session.begin_nested():
                await self.session.flush()
        except IntegrityError:
            # Lost a race for a slug or external id after our own check said it was free.
            raise Conflict(
                "conflict", "Another change took this slug or external_id first; retry."
            ) from None
        names = (await views.names_for(self.session, [link]))[link.id]
        after = state.snapshot(link, names)
        await repository.add_revisions(
            self.session,
            [
                {
                    "id": uuid.uuid4(),
                    "link_id": link.id,
                    "revision": link.version,
                    "action": action,
                    "actor": self.actor,
                    "before": self.before,
                    "after": None if delete else after,
                }
            ],
        )
        out = views.to_out(self.settings, link, names, clicks=0)
        data = state.event_data(link, names, out.short_url)
        data.update(
            {
                "before": state.public(self.before),
                "after": state.public(after),
                "changes": state.changed(self.before, after),
                **(extra or {}),
            }
        )
        emitter = Emitter(self.organization_id, link.workspace_id)
        emitter.add(event_type, data)
        await emitter.flush(self.session)
        message = (
            state.delete_message(link, self.names_before.domain)
            if delete
            else state.upsert_message(link, names.domain, self.old_key)
        )
        await outbox.add_many(self.session, state.PROJECTION_TOPIC, [message])
        if delete:
            return None
        [rendered] = await views.render(self.session, self.settings, [link])
        return rendered


def _check_version(link: Link, if_match: int | None) -> None:
    if if_match is not None and link.version != if_match:
        raise PreconditionFailed(
            "version_mismatch",
            f"The link is at version {link.version}, not {if_match}; re-read it and retry.",
            version=link.version,
        )


async def update(
    session: AsyncSession,
    settings: ControlSettings,
    principal: Principal,
    raw_id: str,
    patch: LinkPatch,
    if_match: int | None = None,
) -> LinkOut:
    link = await _live(session, principal, raw_id, lock=True)
    _check_version(link, if_match)
    change = _Change(session, settings, link, principal.organization_id, actor_of(principal))
    await change.begin()
    # No autoflush while applying: a clash must surface at the guarded flush in commit().
    with session.no_autoflush:
        await _apply(session, principal, link, patch)
        after_names = (await views.names_for(session, [link]))[link.id]
        unchanged = state.snapshot(link, after_names) == change.before
    if unchanged and patch.password is msgspec.UNSET:
        [out] = await views.render(session, settings, [link])
        return out  # nothing changed: no revision, no event
    only_archive = [
        f for f in patch.__struct_fields__ if getattr(patch, f) is not msgspec.UNSET
    ] == ["archived"]
    action = ("archive" if link.archived_at else "unarchive") if only_archive else "update"
    committed = await change.commit(action)
    assert committed is not None
    return committed


async def _apply(session: AsyncSession, principal: Principal, link: Link, patch: LinkPatch) -> None:
    unset = msgspec.UNSET
    ws = principal.workspace_id
    if patch.destination is not unset:
        link.destination = rules.normalise_destination(patch.destination)
    if patch.domain is not unset:
        link.domain_id = (await domains.for_link(session, ws, patch.domain)).id
    if patch.slug is not unset:
        link.slug = rules.normalise_slug(patch.slug)
    if patch.slug is not unset or patch.domain is not unset:
        owners = await repository.live_by_slugs(session, [(link.domain_id, link.slug)])
        owner = owners.get((link.domain_id, link.slug))
        if owner is not None and owner[0] != link.id:
            domain_name = (await repository.domain_names(session, [link.domain_id]))[link.domain_id]
            raise ApiError.slug_taken(
                link.slug, domain_name, str(owner[0]) if owner[1] == ws else None
            )
    if patch.redirect_status is not unset:
        link.redirect_status = patch.redirect_status
    if patch.expires_at is not unset:
        rules.check_expiry(patch.expires_at)
        link.expires_at = patch.expires_at
    if patch.expired_url is not unset:
        link.expired_url = (
            rules.normalise_destination(patch.expired_url)
            if patch.expired_url is not None
            else None
        )
    if patch.password is not unset:
        link.password_hash = (
            await passwords.hash_password(patch.password) if patch.password is not None else None
        )
    await _apply_utm(session, ws, link, patch)
    if patch.tags is not unset:
        names = sorted({tags.normalise_name(t) for t in patch.tags})
        ids = await tags.ensure_by_names(session, ws, names)
        await repository.replace_tags(session, link.id, [ids[n] for n in names])
    if patch.space is not unset:
        link.space_id = (await spaces.resolve(session, ws, patch.space)).id if patch.space else None
    if patch.track_conversions is not unset:
        link.track_conversions = patch.track_conversions
    if patch.forward_query is not unset:
        link.forward_query = patch.forward_query
    if patch.routing is not unset:
        link.routing = (
            rules.normalise_routing(msgspec.to_builtins(patch.routing))
            if patch.routing is not None
            else {}
        )
    if patch.external_id is not unset:
        external = rules.clean_text(patch.external_id, "external_id")
        if external is not None and external != link.external_id:
            taken = await repository.live_by_external_ids(session, ws, [external])
            if taken:
                raise Conflict(
                    "external_id_taken",
                    "Another link already has this external_id.",
                    field="external_id",
                    link_id=str(taken[external]),
                )
        link.external_id = external
    if patch.archived is not unset:
        if patch.archived and link.archived_at is None:
            link.archived_at = dt.datetime.now(dt.UTC)
        elif not patch.archived:
            link.archived_at = None


async def _apply_utm(session: AsyncSession, ws: uuid.UUID, link: Link, patch: LinkPatch) -> None:
    """A new preset replaces the base values; explicit utm_* fields then win, null removes."""
    unset = msgspec.UNSET
    utm: dict[str, str | None] = dict(link.utm or {})
    if patch.utm_preset is not unset:
        if patch.utm_preset is None:
            link.utm_preset_id = None
        else:
            preset = await presets.resolve(session, ws, patch.utm_preset)
            link.utm_preset_id = preset.id
            utm = {n: getattr(preset, n) for n in rules.UTM_FIELDS}
    touched = False
    for name in rules.UTM_FIELDS:
        value = getattr(patch, f"utm_{name}")
        if value is not unset:
            touched = True
            utm[name] = rules.clean_text(value, f"utm_{name}")
    if touched or patch.utm_preset is not unset:
        link.utm = {k: v for k, v in utm.items() if v}


async def delete(
    session: AsyncSession, settings: ControlSettings, principal: Principal, raw_id: str
) -> None:
    link = await _live(session, principal, raw_id, lock=True)
    change = _Change(session, settings, link, principal.organization_id, actor_of(principal))
    await change.begin()
    link.deleted_at = dt.datetime.now(dt.UTC)
    await change.commit("delete", extra={"deleted": True}, delete=True)


async def history(session: AsyncSession, principal: Principal, raw_id: str) -> list[Revision]:
    link = await _live(session, principal, raw_id)
    return [
        Revision(
            revision=r.revision,
            action=r.action,
            actor=r.actor,
            created_at=r.created_at,
            before=r.before,
            after=r.after,
            changes=state.changed(r.before, r.after),
        )
        for r in await repository.revisions(session, link.id)
    ]


async def rollback(
    session: AsyncSession,
    settings: ControlSettings,
    principal: Principal,
    raw_id: str,
    number: int,
) -> LinkOut:
    link = await _live(session, principal, raw_id, lock=True)
    target = await repository.revision(session, link.id, number)
    if target is None or target.after is None:
        raise ApiError(
            "revision_not_found",
            f"This link has no revision {number} to restore.",
            field="revision",
        )
    change = _Change(session, settings, link, principal.organization_id, actor_of(principal))
    await change.begin()
    old = target.after
    link.destination = old["destination"]
    link.redirect_status = old["redirect_status"]
    link.expires_at = dt.datetime.fromisoformat(old["expires_at"]) if old["expires_at"] else None
    link.expired_url = old["expired_url"]
    link.utm = dict(old["utm"])
    link.routing = dict(old["routing"])
    link.forward_query = old["forward_query"]
    link.track_conversions = old["track_conversions"]
    if state.snapshot(link, change.names_before) == change.before:
        raise ApiError(
            "nothing_to_roll_back",
            f"The link already behaves as in revision {number}.",
            field="revision",
        )
    committed = await change.commit("rollback", extra={"rolled_back_to": number})
    assert committed is not None
    return committed


async def set_takedown(
    session: AsyncSession,
    settings: ControlSettings,
    link: Link,
    organization_id: uuid.UUID,
    actor: str,
    reason: str | None,
) -> LinkOut:
    """Take a link down (reason given) or restore it (reason None). Emits
    `link.takedown_updated`, never `link.updated`: moderation is its own stream."""
    taking_down = reason is not None
    if taking_down == (link.taken_down_at is not None) and link.takedown_reason == reason:
        [out] = await views.render(session, settings, [link])
        return out
    change = _Change(session, settings, link, organization_id, actor)
    await change.begin()
    link.taken_down_at = dt.datetime.now(dt.UTC) if taking_down else None
    link.takedown_reason = reason
    committed = await change.commit(
        "takedown" if taking_down else "restore",
        event_type=envelope.LINK_TAKEDOWN_UPDATED,
        extra={"taken_down": taking_down, "reason": reason},
    )
    assert committed is not None
    return committed


async def takedown_by_key(
    session: AsyncSession,
    settings: ControlSettings,
    principal: Principal,
    raw_id: str,
    reason: str | None,
) -> LinkOut:
    link = await _live(session, principal, raw_id, lock=True)
    return await set_takedown(
        session, settings, link, principal.organization_id, actor_of(principal), reason
    )
