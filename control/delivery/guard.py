"""Outbound HTTP for webhook delivery, guarded against server-side request forgery.

A receiver URL is customer input, so every connection is checked where it is made: a custom
httpcore2 network backend resolves the host itself, refuses the connection if ANY address
it resolves to is private, loopback, link-local, multicast, reserved or unspecified (IPv4
inside IPv6 — mapped, NAT64, 6to4 — is judged by its IPv4 address), and then connects to
the very address it checked (no second DNS lookup, so DNS rebinding between check and
connect is impossible). Numeric host spellings (`2130706433`, `0177.0.0.1`, `0x7f.1`,
`127.1`) need no special case: they resolve to the address they mean, which is checked.
The URL keeps its host name, so TLS SNI and certificate validation use the original name.
Redirects are never followed, proxies from the environment are ignored (they would bypass
the check), at most `delivery_max_response_bytes` of a response body are read, and a whole
attempt ends after `attempt_deadline_s` (a receiver dribbling bytes cannot hold a worker).

Only https is allowed, and plain http only with `allow_private_destinations` (tests, dev).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore2
import httpx2

from control.settings import ControlSettings

USER_AGENT = "Ricochet-Webhooks/1"
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits are IPv4

# (host, port) -> the addresses to try, in order. Tests give their own to map names.
Resolver = Callable[[str, int], Awaitable[list[str]]]


class Refused(Exception):
    """The destination is not allowed; nothing was sent."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def _forbidden(address: str) -> bool:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return _forbidden(str(embedded))  # where the packets end up is what counts
        if ip.is_site_local:  # fec0::/10: deprecated, yet still routed inside some networks
            return True
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


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def resolve(
    host: str, port: int, allow_private: bool, resolver: Resolver = system_resolver
) -> list[str]:
    """Every address `host` resolves to, or Refused if any of them is not public."""
    name = host.rstrip(".").lower()
    if not allow_private and (name == "localhost" or name.endswith(".localhost")):
        raise Refused(f"{host} is a loopback name")  # RFC 6761, whatever DNS says
    addresses = await resolver(host, port)
    if not addresses:
        raise OSError(f"{host} resolves to no address")
    if not allow_private:
        bad = [a for a in addresses if _forbidden(a)]
        if bad:
            raise Refused(f"{host} resolves to a non-public address ({', '.join(bad)})")
    return addresses


class GuardedBackend(httpcore2.AsyncNetworkBackend):
    """Resolves and checks the host, then connects to a checked address."""

    def __init__(self, allow_private: bool, resolver: Resolver = system_resolver) -> None:
        self.allow_private = allow_private
        self.resolver = resolver
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
                resolve(host, port, self.allow_private, self.resolver), timeout=timeout
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


def ssl_context(settings: ControlSettings) -> ssl.SSLContext:
    """Certificates verified against the URL's host name; the system's CAs, or only those in
    RICOCHET_DELIVERY_CA_BUNDLE (never SSL_CERT_FILE & co: configuration is read once)."""
    if settings.delivery_ca_bundle:
        return ssl.create_default_context(cafile=settings.delivery_ca_bundle)
    return httpx2.create_ssl_context(trust_env=False)


class _Transport(httpx2.AsyncHTTPTransport):
    def __init__(self, settings: ControlSettings, max_connections: int, resolver: Resolver) -> None:
        context = ssl_context(settings)
        super().__init__(verify=context, trust_env=False)
        # httpx2 has no public way to choose the network backend: swap in the pool it would
        # build, with the guarded backend. Fail loudly should a new httpx2 stop using `_pool`
        # (a silent miss would send unchecked; the SSRF tests would catch it too).
        if not isinstance(getattr(self, "_pool", None), httpcore2.AsyncConnectionPool):
            raise RuntimeError("httpx2.AsyncHTTPTransport no longer keeps its pool in _pool")
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=context,
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
            http1=True,
            http2=False,
            retries=0,
            network_backend=GuardedBackend(settings.allow_private_destinations, resolver),
        )


def client(
    settings: ControlSettings,
    max_connections: int = 200,
    resolver: Resolver = system_resolver,
) -> httpx2.AsyncClient:
    """The HTTP client every delivery goes through (one per process and event loop)."""
    timeout = httpx2.Timeout(
        connect=settings.delivery_connect_timeout_s,
        read=settings.delivery_read_timeout_s,
        write=settings.delivery_read_timeout_s,
        pool=settings.delivery_read_timeout_s,
    )
    return httpx2.AsyncClient(
        transport=_Transport(settings, max_connections, resolver),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": USER_AGENT},
    )


def attempt_deadline_s(settings: ControlSettings) -> float:
    """The longest one attempt may take, all phases together (the engine's claim lasts
    longer than this, so a live attempt is never sent twice)."""
    return settings.delivery_connect_timeout_s + 2 * settings.delivery_read_timeout_s


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
    deadline = attempt_deadline_s(settings)
    try:
        async with asyncio.timeout(deadline):
            return await _post(http, settings, url, body, headers)
    except httpx2.InvalidURL as exc:  # not an HTTPError: it would escape the engine
        raise Refused(f"the URL is not valid: {exc}") from exc
    except TimeoutError as exc:
        raise httpx2.ReadTimeout(f"the attempt took longer than {deadline:g} s") from exc


async def _post(
    http: httpx2.AsyncClient,
    settings: ControlSettings,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
) -> Response:
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
