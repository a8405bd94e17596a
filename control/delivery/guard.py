"""Outbound HTTP for webhook delivery, guarded against server-side request forgery.

A receiver URL is customer input, so every connection is checked where it is made: a custom
httpcore2 network backend resolves the host itself, refuses the connection if ANY address
it resolves to is private, loopback, link-local, multicast, reserved or unspecified, and then
connects to the very address it checked (no second DNS lookup, so DNS rebinding between
check and connect is impossible). The URL keeps its host name, so TLS SNI and certificate
validation use the original name as usual. Redirects are never followed, proxies from the
environment are ignored (they would bypass the check), and at most
`delivery_max_response_bytes` of a response body are read.

Only https is allowed, and plain http only with `allow_private_destinations` (tests, dev).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore2
import httpx2

from control.settings import ControlSettings

USER_AGENT = "Ricochet-Webhooks/1"


class Refused(Exception):
    """The destination is not allowed; nothing was sent."""


def _forbidden(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def check_url(settings: ControlSettings, url: str) -> None:
    """Refuse a URL whose scheme is not allowed (the address check happens at connect)."""
    parts = urlsplit(url)
    allowed = ("https", "http") if settings.allow_private_destinations else ("https",)
    if parts.scheme not in allowed:
        raise Refused(f"scheme {parts.scheme or '(none)'!r} is not allowed")
    if not parts.hostname:
        raise Refused("the URL has no host")


async def resolve(host: str, port: int, allow_private: bool) -> list[str]:
    """Every address `host` resolves to, or Refused if any of them is not public."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise OSError(f"{host} resolves to no address")
    if not allow_private:
        bad = [a for a in addresses if _forbidden(a)]
        if bad:
            raise Refused(f"{host} resolves to a non-public address ({', '.join(bad)})")
    return addresses


class GuardedBackend(httpcore2.AsyncNetworkBackend):
    """Resolves and checks the host, then connects to a checked address."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self.inner = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore2 interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        try:
            addresses = await asyncio.wait_for(
                resolve(host, port, self.allow_private), timeout=timeout
            )
        except (OSError, TimeoutError) as exc:
            raise httpcore2.ConnectError(f"cannot resolve {host}: {exc}") from exc
        last: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore2 interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        raise Refused("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class _Transport(httpx2.AsyncHTTPTransport):
    def __init__(self, settings: ControlSettings, max_connections: int) -> None:
        super().__init__(trust_env=False)
        # Same pool httpx2 builds, with the guarded backend in place of the default one.
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(trust_env=False),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
            network_backend=GuardedBackend(settings.allow_private_destinations),
        )


def client(settings: ControlSettings, max_connections: int = 200) -> httpx2.AsyncClient:
    """The HTTP client every delivery goes through (one per process and event loop)."""
    timeout = httpx2.Timeout(
        connect=settings.delivery_connect_timeout_s,
        read=settings.delivery_read_timeout_s,
        write=settings.delivery_read_timeout_s,
        pool=settings.delivery_read_timeout_s,
    )
    return httpx2.AsyncClient(
        transport=_Transport(settings, max_connections),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": USER_AGENT},
    )


@dataclass(frozen=True)
class Response:
    status_code: int
    body: bytes  # at most delivery_max_response_bytes


async def post(
    http: httpx2.AsyncClient,
    settings: ControlSettings,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
) -> Response:
    """POST `body`; raises Refused, or httpx2.HTTPError on a network failure or timeout."""
    check_url(settings, url)
    limit = settings.delivery_max_response_bytes
    async with http.stream("POST", url, content=body, headers=dict(headers)) as response:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_raw():
            chunks.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
        return Response(response.status_code, b"".join(chunks)[:limit])
