"""Destination use cases: create, change, list and remove them.

Settings are validated here and secrets encrypted; sending is the delivery engine's
(control/delivery), and deliveries are control/destinations/deliveries.py.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec
from cryptography.fernet import InvalidToken
from sqlalchemy.ext.asyncio import AsyncSession

from control import pagination, text
from control.destinations import (
    catalogue,
    config,
    crypto,
    filters,
    headers,
    outbound,
    paths,
    presets,
    repository,
    templates,
)
from control.destinations.models import Destination
from control.destinations.schemas import (
    CreateDestination,
    DestinationOut,
    DestinationPage,
    Filters,
    ListDestinations,
    PresetList,
    PresetOut,
    UpdateDestination,
)
from control.errors import ApiError, Conflict, Unprocessable
from control.settings import ControlSettings
from control.webhooks import secrets as signing
from control.webhooks import service as webhooks


def destination_id(raw: str) -> uuid.UUID:
    return text.parse_id(raw, "destination")


def clean_event_types(raw: list[str]) -> list[str]:
    wanted = list(dict.fromkeys(raw))
    bad = [t for t in wanted if t not in catalogue.EVENT_TYPES]
    if bad:
        raise Unprocessable(
            "unknown_event_type",
            f"Unknown event types: {', '.join(bad)[:200]}. "
            f"Known: {', '.join(catalogue.EVENT_TYPES)}.",
            field="event_types",
        )
    return wanted


def clean_redact(raw: list[str]) -> list[str]:
    for i, path in enumerate(raw):
        problem = paths.problem(path)
        if problem:
            raise Unprocessable("invalid_redaction", problem, field=f"redact[{i}]")
    return list(dict.fromkeys(raw))


def clean_template(kind: str, raw: Any) -> Any:
    """The template as stored, checked merged over the kind's default; 422 invalid_template
    naming the place (`template.events[0].name`) and the expression."""
    if raw is None:
        return None
    if presets.KINDS[kind].template is not None and not isinstance(raw, dict):
        raise Unprocessable(
            "invalid_template",
            "A vendor template is an object merged over the default mapping.",
            field="template",
        )
    try:
        templates.compile_template(raw)
        templates.compile_template(presets.effective_template(kind, raw))
    except templates.TemplateError as exc:
        raise Unprocessable("invalid_template", exc.message, field=exc.path) from None
    return raw


def _kind(raw: str, allowed: tuple[str, ...]) -> str:
    if raw not in allowed:
        raise Unprocessable(
            "invalid_kind", f"Kinds: {', '.join(allowed)}.", field="kind", kinds=list(allowed)
        )
    return raw


def _secrets(settings: ControlSettings, row: Destination) -> crypto.Secrets | None:
    try:
        return crypto.unseal(settings, row.secrets_encrypted)
    except InvalidToken:  # RICOCHET_SECRET_KEY changed since: set them again
        return None


def to_out(settings: ControlSettings, row: Destination) -> DestinationOut:
    sealed = _secrets(settings, row)
    masked = None
    if row.secret_encrypted is not None:
        try:
            masked = signing.mask(crypto.decrypt(settings, row.secret_encrypted))
        except InvalidToken:
            masked = signing.mask("????")
    return DestinationOut(
        id=str(row.id),
        kind=row.kind,
        description=row.description,
        event_types=list(row.event_types),
        url=outbound.display_url(row.kind, row.url, row.config),
        config=dict(row.config),
        secret_fields=sorted(sealed.values) if sealed else [],
        header_names=list(sealed.headers) if sealed else [],
        filters=msgspec.convert(row.filters or {}, Filters),
        redact=list(row.redact or ()),
        template=row.template,
        signed=row.secret_encrypted is not None,
        secret_masked=masked,
        previous_secret_expires_at=row.previous_secret_expires_at,
        installation_id=str(row.installation_id) if row.installation_id else None,
        enabled=row.enabled,
        disabled_reason=row.disabled_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def create(
    session: AsyncSession,
    settings: ControlSettings,
    workspace_id: uuid.UUID,
    data: CreateDestination,
    *,
    kinds: tuple[str, ...] = presets.CREATABLE,
    installation_id: uuid.UUID | None = None,
) -> tuple[Destination, str | None]:
    """The new destination and, for signed kinds, its plaintext signing secret (never seen
    again)."""
    kind = _kind(data.kind, kinds)
    spec = presets.KINDS[kind]
    if spec.url and data.url is None:
        raise Unprocessable("invalid_url", f"A {kind} destination needs a url.", field="url")
    if not spec.url and data.url is not None:
        raise Unprocessable(
            "invalid_url", f"A {kind} destination sends to its vendor; no url.", field="url"
        )
    if data.headers and not spec.headers:
        raise Unprocessable(
            "invalid_header", f"A {kind} destination takes no custom headers.", field="headers"
        )
    cfg, secret_values = config.clean(settings, kind, data.config or {}, {}, {})
    sealed = crypto.Secrets(headers=headers.clean(data.headers or {}), values=secret_values)
    plaintext = signing.new_secret() if spec.signed else None
    row = await repository.insert_destination(
        session,
        {
            "workspace_id": workspace_id,
            "kind": kind,
            "description": webhooks.clean_description(data.description),
            "url": webhooks.clean_url(data.url, settings) if data.url is not None else None,
            "event_types": clean_event_types(data.event_types),
            "filters": filters.clean(data.filters) if data.filters is not None else {},
            "redact": clean_redact(data.redact or []),
            "template": clean_template(kind, data.template),
            "config": cfg,
            "secrets_encrypted": crypto.seal(settings, sealed),
            "secret_encrypted": crypto.encrypt(settings, plaintext) if plaintext else None,
            "installation_id": installation_id,
            "enabled": data.enabled,
        },
    )
    return row, plaintext


async def get_row(session: AsyncSession, workspace_id: uuid.UUID, raw_id: str) -> Destination:
    row = await repository.get(session, workspace_id, destination_id(raw_id))
    if row is None:
        raise ApiError.not_found("destination")
    return row


async def page(
    session: AsyncSession,
    settings: ControlSettings,
    workspace_id: uuid.UUID,
    query: ListDestinations,
) -> DestinationPage:
    rows = await repository.page(
        session,
        workspace_id,
        after=pagination.decode(query.cursor),
        limit=query.limit + 1,
        kind=query.kind,
    )
    shown = rows[: query.limit]
    return DestinationPage(
        data=[to_out(settings, r) for r in shown],
        next_cursor=pagination.encode(shown[-1].id) if len(rows) > query.limit else None,
    )


async def update(
    session: AsyncSession,
    settings: ControlSettings,
    workspace_id: uuid.UUID,
    raw_id: str,
    data: UpdateDestination,
) -> DestinationOut:
    row = await get_row(session, workspace_id, raw_id)
    spec = presets.KINDS[row.kind]
    values: dict[str, object] = {}
    if isinstance(data.event_types, list):
        values["event_types"] = clean_event_types(data.event_types)
    if data.description is None or isinstance(data.description, str):
        values["description"] = webhooks.clean_description(data.description)
    if isinstance(data.url, str):
        if not spec.url:
            raise Unprocessable("invalid_url", f"A {row.kind} destination has no url.", field="url")
        values["url"] = webhooks.clean_url(data.url, settings)
    if isinstance(data.filters, Filters):
        values["filters"] = filters.clean(data.filters)
    if isinstance(data.redact, list):
        values["redact"] = clean_redact(data.redact)
    if data.template is None or isinstance(data.template, dict | list):
        values["template"] = clean_template(row.kind, data.template)
    if isinstance(data.enabled, bool):
        values["enabled"] = data.enabled
        if data.enabled:
            values["disabled_reason"] = None
    if isinstance(data.headers, dict) or isinstance(data.config, dict):
        sealed = _secrets(settings, row) or crypto.Secrets()
        if isinstance(data.headers, dict):
            if data.headers and not spec.headers:
                raise Unprocessable(
                    "invalid_header",
                    f"A {row.kind} destination takes no custom headers.",
                    field="headers",
                )
            sealed.headers = headers.clean(data.headers)
        if isinstance(data.config, dict):
            values["config"], sealed.values = config.clean(
                settings, row.kind, data.config, dict(row.config), sealed.values
            )
        values["secrets_encrypted"] = crypto.seal(settings, sealed)
    if values:
        updated = await repository.update_destination(session, workspace_id, row.id, values)
        if updated is None:  # deleted meanwhile
            raise ApiError.not_found("destination")
        row = updated
    return to_out(settings, row)


async def delete(session: AsyncSession, workspace_id: uuid.UUID, raw_id: str) -> None:
    if not await repository.delete_destination(session, workspace_id, destination_id(raw_id)):
        raise ApiError.not_found("destination")


async def rotate(
    session: AsyncSession,
    settings: ControlSettings,
    workspace_id: uuid.UUID,
    raw_id: str,
    overlap_s: int,
) -> tuple[Destination, str]:
    """A new signing secret; the old one keeps signing for `overlap_s` (0: not at all)."""
    row = await get_row(session, workspace_id, raw_id)
    if row.secret_encrypted is None:
        raise Conflict("not_signed", f"A {row.kind} destination has no signing secret.")
    plaintext = signing.new_secret()
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=overlap_s) if overlap_s else None
    rotated = await repository.rotate_secret(
        session, workspace_id, row.id, crypto.encrypt(settings, plaintext), expires
    )
    if rotated is None:  # deleted meanwhile
        raise ApiError.not_found("destination")
    return rotated, plaintext


def presets_out() -> PresetList:
    return PresetList(
        data=[
            PresetOut(
                kind=k.name,
                title=k.title,
                url=outbound.display_url(k.name, None, {}) if k.origin else None,
                config=list(k.config),
                required_config=list(k.required_config),
                secret_fields=list(k.secrets),
                has_url=k.url,
                headers=k.headers,
                signed=k.signed,
                template=k.template,
            )
            for k in presets.KINDS.values()
        ]
    )
