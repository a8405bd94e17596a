"""Prove control of a custom domain: the owner publishes a TXT record we ask them for.

The record is `_ricochet-challenge.<domain>` with the value `ricochet-verification=<token>`.
Look-ups go through a `TxtResolver`, so tests (and air-gapped installs) can pass their own.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

CHALLENGE_PREFIX = "_ricochet-challenge."
VALUE_PREFIX = "ricochet-verification="


class TxtResolver(Protocol):
    async def txt(self, name: str) -> list[str]:
        """All TXT strings at `name`; [] when there are none. Raise LookupError on failure."""
        ...


class DnsResolver:
    """TXT look-ups over DNS with dnspython's async resolver."""

    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout

    async def txt(self, name: str) -> list[str]:
        import dns.asyncresolver
        import dns.exception
        import dns.resolver

        try:
            answer = await asyncio.wait_for(dns.asyncresolver.resolve(name, "TXT"), self.timeout)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.DNSException, TimeoutError) as exc:
            raise LookupError(f"DNS look-up of {name} failed: {exc.__class__.__name__}") from exc
        return [b"".join(record.strings).decode(errors="replace") for record in answer]


def dns_resolver() -> TxtResolver:
    return DnsResolver()


def challenge_name(domain: str) -> str:
    return CHALLENGE_PREFIX + domain


def expected_value(token: str) -> str:
    return VALUE_PREFIX + token
