"""Domain use cases: add, list, verify by DNS TXT, delete, and the choice of a link's domain."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control import pagination, text
from control.domains import repository
from control.domains.models import Domain
from control.domains.schemas import DomainList, DomainOut, Verification
from control.domains.verify import TxtResolver, challenge_name, expected_value
from control.errors import ApiError, Conflict, Unprocessable
from control.events import envelope
from control.events import service as events
from control.keys.service import Principal
from shared.hosts import normalise_host

MAX_NAME = 253
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# Anything that makes the text more than a host name: ports, IPv6 brackets, URLs, userinfo.
_NOT_A_HOST = re.compile(r"[\s:/\\\[\]@?#]")

NOT_FOUND = "TXT record not found"
MISMATCH = "TXT record does not match"


async def ensure_default(session: AsyncSession, name: str) -> Domain:
    return await repository.upsert_default(session, normalise_host(name))


async def default(session: AsyncSession) -> Domain:
    domain = await repository.get_default(session)
    if domain is None:
        raise ApiError(
            "no_default_domain", "No default domain is configured; run `ricochet migrate`."
        )
    return domain


def canonical_name(raw: str) -> str | None:
    """The stored form of a custom domain name (lower-case ASCII, IDN as punycode), or None
    when it is not a plausible registrable host name."""
    text = raw.strip()
    if not text or _NOT_A_HOST.search(text):
        return None
    host = normalise_host(text)
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if len(host) > MAX_NAME:
        return None
    labels = host.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    # Every real TLD starts with a letter; this also rules out IPv4 in all its spellings
    # (1.2.3.4, 0x7f.1, ...), which browsers would read as addresses, not names.
    if not labels[-1][0].isalpha():
        return None
    if labels[-1] == "localhost":
        return None
    return host


def invalid_domain(raw: str) -> ApiError:
    return Unprocessable(
        "invalid_domain",
        f"{raw[:100]!r} is not a valid domain name: use a host name such as go.brand.com, "
        "without scheme, port or path.",
        field="name",
    )


def to_out(domain: Domain) -> DomainOut:
    token = None if domain.is_default else domain.verification_token
    return DomainOut(
        id=str(domain.id),
        name=domain.name,
        status=domain.status,
        is_default=domain.is_default,
        verification=Verification(
            type="TXT", name=challenge_name(domain.name), value=expected_value(token)
        )
        if token is not None
        else None,
        verified_at=domain.verified_at,
        checked_at=domain.checked_at,
        failure_reason=domain.failure_reason,
        created_at=domain.created_at,
    )


async def _owned(
    session: AsyncSession,
    principal: Principal,
    domain_id: str,
    *,
    lock: repository.Lock | None = None,
) -> Domain:
    domain = await repository.get_owned(
        session, principal.workspace_id, text.parse_id(domain_id, "domain"), lock=lock
    )
    if domain is None:
        raise ApiError.not_found("domain")
    return domain


async def create(session: AsyncSession, principal: Principal, raw_name: str) -> DomainOut:
    name = canonical_name(raw_name)
    if name is None:
        raise invalid_domain(raw_name)
    domain = await repository.insert_if_free(
        session, principal.workspace_id, name, secrets.token_urlsafe(24)
    )
    if domain is None:
        # Whose it is stays private: the name alone is all the caller learns.
        raise Conflict(
            "domain_taken", f"The domain {name} is already registered.", field="name", name=name
        )
    return to_out(domain)


async def get(session: AsyncSession, principal: Principal, domain_id: str) -> DomainOut:
    return to_out(await _owned(session, principal, domain_id))


async def list_page(
    session: AsyncSession, principal: Principal, cursor: str | None, limit: int
) -> DomainList:
    """The platform default first, then the workspace's own domains in id order. The default
    domain's id as a cursor means "the custom domains from the start"."""
    after = pagination.decode(cursor)
    items: list[Domain] = []
    platform = await repository.get_default(session)
    if platform is not None and after is None:
        items.append(platform)
    elif platform is not None and after == platform.id:
        after = None
    remaining = limit - len(items)
    if remaining > 0:
        items += await repository.page_owned(session, principal.workspace_id, after, remaining)
    return DomainList(
        data=[to_out(d) for d in items],
        next_cursor=pagination.next_cursor([d.id for d in items], limit),
    )


async def check(resolver: TxtResolver, name: str, token: str | None) -> tuple[str, str | None]:
    """(status, failure reason) from the TXT records published for `name` right now."""
    try:
        values = await resolver.txt(challenge_name(name))
    except LookupError as exc:
        return "failed", str(exc) or "DNS look-up failed"
    if token is not None and expected_value(token) in values:
        return "verified", None
    return "failed", MISMATCH if values else NOT_FOUND


async def verify(
    sessions: async_sessionmaker[AsyncSession],
    resolver: TxtResolver,
    principal: Principal,
    domain_id: str,
) -> DomainOut:
    """Two short transactions around the DNS look-up, so no transaction waits on the network.
    The write re-reads the row under lock: the status it changes from is the current one, so
    concurrent checks emit one event per real change."""
    async with sessions.begin() as session:
        domain = await _owned(session, principal, domain_id)
        name, token = domain.name, domain.verification_token

    status, reason = await check(resolver, name, token)
    now = dt.datetime.now(dt.UTC)

    async with sessions.begin() as session:
        domain = await _owned(session, principal, domain_id, lock="no_key_update")
        previous = domain.status
        domain.status = status
        domain.checked_at = now
        domain.failure_reason = reason
        if status != "verified":
            domain.verified_at = None
        elif previous != "verified" or domain.verified_at is None:
            domain.verified_at = now
        if status != previous:
            await events.emit(
                session,
                principal.organization_id,
                principal.workspace_id,
                envelope.DOMAIN_VERIFICATION_UPDATED,
                {
                    "domain_id": str(domain.id),
                    "domain_name": domain.name,
                    "status": status,
                    "previous_status": previous,
                    "verified_at": _timestamp(domain.verified_at),
                    "failure_reason": reason,
                },
            )
    return to_out(domain)


def _timestamp(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else None


async def delete(session: AsyncSession, principal: Principal, domain_id: str) -> None:
    # The row lock orders this against a link being created on the domain (see find_by_name).
    domain = await _owned(session, principal, domain_id, lock="update")
    if await repository.has_live_links(session, domain.id):
        raise Conflict(
            "domain_in_use",
            f"Links still use {domain.name}; delete or move them first.",
            name=domain.name,
        )
    await repository.delete_with_dead_links(session, domain.id)


async def for_link(session: AsyncSession, workspace_id: uuid.UUID, name: str | None) -> Domain:
    """The domain a link of `workspace_id` goes on: the default, or a verified custom one."""
    if name is None:
        return await default(session)
    host = canonical_name(name)
    domain = await repository.find_by_name(session, host) if host else None
    if domain is not None and domain.is_default:
        return domain
    if domain is None or domain.workspace_id != workspace_id:
        raise Unprocessable(
            "unknown_domain", f"No domain {name[:100]!r} in this workspace.", field="domain"
        )
    if domain.status != "verified":
        raise Unprocessable(
            "domain_not_verified",
            f"The domain {domain.name} is {domain.status}; verify it before adding links.",
            field="domain",
        )
    return domain
