"""Installation tokens and the REST hooks they manage (Zapier's convention, also fitting
Make's and n8n's webhook triggers): subscribe with a target URL and an event type, answer
an id, unsubscribe by that id, and list recent events as samples.

A hook is a destination of the installation's platform kind, so it is filtered, signed,
retried, dead-lettered and replayed like any other. A token can reach only its own hooks;
revoking it stops them (they stay listed, disabled, with their history).
"""

from __future__ import annotations

import uuid

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from control import pagination, text
from control.destinations import mapping, presets, samples
from control.destinations import repository as destinations
from control.destinations import service as destination_service
from control.destinations.hooks import repository, tokens
from control.destinations.hooks.schemas import (
    NAME_MAX,
    CreateInstallationToken,
    HookCreated,
    HookOut,
    HookPage,
    InstallationTokenOut,
    ListHooks,
    Samples,
    Subscribe,
)
from control.destinations.models import Destination, InstallationToken
from control.destinations.schemas import CreateDestination, Filters
from control.errors import ApiError, Conflict, Forbidden, Unauthorized, Unprocessable
from control.events import repository as events
from control.keys import format as key_format
from control.keys import scopes as key_scopes
from control.keys.service import Principal, bearer_token
from control.settings import ControlSettings

MAX_HOOKS = 100  # per installation: a runaway client cannot fan every event out forever


class Installation(msgspec.Struct, frozen=True):
    token_id: uuid.UUID
    workspace_id: uuid.UUID
    organization_id: uuid.UUID
    platform: str
    scopes: tuple[str, ...]

    def require(self, scope: str) -> None:
        if not key_scopes.grants(self.scopes, scope):
            raise Forbidden(
                "insufficient_scope", f"This installation token lacks {scope!r}.", scope=scope
            )

    def principal(self) -> Principal:
        """For the layers that key their records by workspace (Idempotency-Key)."""
        return Principal(self.token_id, self.workspace_id, self.organization_id, self.scopes)


def to_out(row: InstallationToken) -> InstallationTokenOut:
    return InstallationTokenOut(
        id=str(row.id),
        platform=row.platform,
        name=row.name,
        prefix=row.prefix,
        scopes=list(row.scopes),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def _scopes(asked: list[str] | None) -> list[str]:
    wanted = list(dict.fromkeys(asked or tokens.SCOPES))
    bad = [s for s in wanted if s not in tokens.SCOPES]
    if bad:
        raise Unprocessable(
            "unknown_scope",
            f"Unknown scopes: {', '.join(bad)[:200]}. Known: {', '.join(tokens.SCOPES)}.",
            field="scopes",
        )
    return wanted


async def create_token(
    session: AsyncSession, secret_key: str, workspace_id: uuid.UUID, data: CreateInstallationToken
) -> tuple[InstallationToken, str]:
    """The new token row and its plaintext, which is never seen again."""
    if data.platform not in presets.HOOK_KINDS:
        raise Unprocessable(
            "invalid_platform",
            f"Platforms: {', '.join(presets.HOOK_KINDS)}.",
            field="platform",
        )
    name = text.clean_name(data.name, what="token", max_len=NAME_MAX)
    plaintext = tokens.generate()
    row = await repository.insert_token(
        session,
        workspace_id=workspace_id,
        platform=data.platform,
        name=name,
        prefix=tokens.display_prefix(plaintext),
        token_hash=key_format.digest(secret_key, plaintext),
        scopes=_scopes(data.scopes),
    )
    return row, plaintext


async def revoke_token(session: AsyncSession, workspace_id: uuid.UUID, raw_id: str) -> None:
    token_id = text.parse_id(raw_id, "installation_token")
    if not await repository.revoke(session, workspace_id, token_id):
        raise ApiError.not_found("installation_token")
    await destinations.disable_installation(session, token_id, "installation token revoked")


async def authenticate(session: AsyncSession, secret_key: str, header: str | None) -> Installation:
    token = bearer_token(header)
    invalid = Unauthorized(
        "invalid_installation_token", "The installation token is unknown, malformed or revoked."
    )
    if not tokens.well_formed(token):
        raise invalid
    found = await repository.find_active(session, key_format.digest(secret_key, token))
    if found is None:
        raise invalid
    await repository.touch(session, found.token_id)
    return Installation(
        found.token_id, found.workspace_id, found.organization_id, found.platform, found.scopes
    )


def hook_out(row: Destination) -> HookOut:
    return HookOut(
        id=str(row.id),
        target_url=row.url or "",
        event=row.event_types[0] if row.event_types else "",
        filters=msgspec.convert(row.filters or {}, Filters),
        enabled=row.enabled,
        disabled_reason=row.disabled_reason,
        created_at=row.created_at,
    )


async def subscribe(
    session: AsyncSession, settings: ControlSettings, who: Installation, data: Subscribe
) -> HookCreated:
    if await repository.hook_count(session, who.token_id) >= MAX_HOOKS:
        raise Conflict(
            "too_many_hooks",
            f"An installation has at most {MAX_HOOKS} hooks; unsubscribe some first.",
        )
    create = CreateDestination(
        kind=who.platform,
        event_types=[data.event],
        url=data.target_url,
        filters=data.filters,
        redact=data.redact,
        template=data.template,
        description=f"{who.platform} REST hook",
    )
    try:
        row, secret = await destination_service.create(
            session,
            settings,
            who.workspace_id,
            create,
            kinds=(who.platform,),
            installation_id=who.token_id,
        )
    except ApiError as exc:
        # The subscribe body names these fields differently from a destination's.
        renamed = {"url": "target_url", "event_types": "event"}
        field = exc.extra.get("field")
        if field in renamed:
            exc.extra["field"] = renamed[field]
        raise
    return HookCreated(**msgspec.structs.asdict(hook_out(row)), secret=secret)


async def _own_hook(session: AsyncSession, who: Installation, raw_id: str) -> Destination:
    row = await destinations.get(session, who.workspace_id, text.parse_id(raw_id, "hook"))
    if row is None or row.installation_id != who.token_id:
        raise ApiError.not_found("hook")
    return row


async def hook(session: AsyncSession, who: Installation, raw_id: str) -> HookOut:
    return hook_out(await _own_hook(session, who, raw_id))


async def unsubscribe(session: AsyncSession, who: Installation, raw_id: str) -> None:
    row = await _own_hook(session, who, raw_id)
    await destinations.delete_destination(session, who.workspace_id, row.id, who.token_id)


async def hooks(session: AsyncSession, who: Installation, query: ListHooks) -> HookPage:
    rows = await destinations.page(
        session,
        who.workspace_id,
        after=pagination.decode(query.cursor),
        limit=query.limit + 1,
        installation_id=who.token_id,
    )
    shown = rows[: query.limit]
    return HookPage(
        data=[hook_out(r) for r in shown],
        next_cursor=pagination.encode(shown[-1].id) if len(rows) > query.limit else None,
    )


async def sample_events(
    session: AsyncSession, who: Installation, event_type: str, limit: int
) -> Samples:
    """Zapier's perform list: recent real events of the type, else one synthetic."""
    destination_service.clean_event_types([event_type])
    found = await events.page(
        session, who.workspace_id, types=[event_type], before=None, limit=limit
    )
    if not found:
        _, env = samples.envelope_of(event_type, who.organization_id, who.workspace_id)
        found = [env]
    return Samples(data=[mapping.ordered(env) for env in found])
