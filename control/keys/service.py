"""Issue and check workspace API keys."""

from __future__ import annotations

import uuid

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from control.errors import ApiError, Forbidden, Unauthorized
from control.keys import format, repository, scopes
from control.keys.models import ApiKey


class Principal(msgspec.Struct, frozen=True):
    key_id: uuid.UUID
    workspace_id: uuid.UUID
    organization_id: uuid.UUID
    scopes: tuple[str, ...]

    def require(self, scope: str) -> None:
        if not scopes.grants(self.scopes, scope):
            raise Forbidden.scope(scope)


async def create(
    session: AsyncSession,
    secret_key: str,
    workspace_id: uuid.UUID,
    name: str,
    key_scopes: list[str] | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key; returns the row and the plaintext key, which is never seen again."""
    wanted = list(key_scopes or scopes.DEFAULT_SCOPES)
    bad = scopes.unknown(wanted)
    if bad:
        raise ApiError.validation(f"Unknown scopes: {', '.join(bad)}", "scopes")
    plaintext = format.generate()
    row = await repository.insert(
        session,
        workspace_id,
        name,
        format.display_prefix(plaintext),
        format.digest(secret_key, plaintext),
        wanted,
    )
    return row, plaintext


def bearer_token(header: str | None) -> str:
    if not header:
        raise Unauthorized.missing()
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized.missing()
    return token.strip()


async def authenticate(session: AsyncSession, secret_key: str, header: str | None) -> Principal:
    token = bearer_token(header)
    if not format.well_formed(token):
        raise Unauthorized.invalid()
    found = await repository.find_active(session, format.digest(secret_key, token))
    if found is None:
        raise Unauthorized.invalid()
    key_id, workspace_id, organization_id, held = found
    await repository.touch(session, key_id)
    return Principal(key_id, workspace_id, organization_id, tuple(held))


async def key_is_active(session: AsyncSession, secret_key: str, plaintext: str) -> bool:
    if not format.well_formed(plaintext):
        return False
    return await repository.find_active(session, format.digest(secret_key, plaintext)) is not None
