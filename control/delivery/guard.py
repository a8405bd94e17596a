"""Outbound HTTP for webhook delivery, guarded against server-side request forgery.

A receiver URL is customer input, so every connection is checked where it is made. The
HTTP client is aiohttp (docs/adr/0011-batched-delivery.md: several times less CPU per
request than httpx2, whose pool re-examined every connection on every request). Its
connector is given a resolver that resolves the host itself and refuses the connection if
ANY address the name resolves to is private, loopback, link-local, multicast, reserved or
unspecified (IPv4 inside IPv6 -- mapped, NAT64, 6to4 -- is judged by its IPv4 address); the
connector then connects to those very addresses (no second DNS lookup, so DNS rebinding
between check and connect is impossible), and a socket factory checks each address once
more as the socket is made: an IP-literal host, which needs no resolver, is judged there.
Legacy numeric spellings (`2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`) are refused
outright by aiohttp as not canonical. The URL keeps its host name, so TLS SNI and
certificate validation use the original name. Redirects are never followed, proxies from
the environment are ignored (they would bypass the check), at most
`delivery_max_response_bytes` of a response body are read, and a whole attempt ends after
`attempt_deadline_s` (a receiver dribbling bytes cannot hold a worker).

Only https is allowed, and plain http only with `allow_private_destinations` (tests, dev).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from control.settings import ControlSettings

USER_AGENT = "Ricochet-Webhooks/1"
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits are IPv4

# (host, port) -> the addresses to try, in order. Tests give their own to map names.
Resolver = Callable[[str, int], Awaitable[list[str]]]


class Refused(Exception):
    """The destination is not allowed; nothing was sent."""


class SendError(Exception):
    """No answer: the connection failed or broke (retried by the engine)."""


class Timeout(SendError):
    """No answer in time."""


class _RefusedAddress(OSError):
    """Raised by the socket factory; aiohttp wraps it, `post` turns it into Refused."""


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


def check_url(settings: ControlSettings, url: str) -> URL:
    """The URL as aiohttp will read it, or Refused if its scheme is not allowed or it has no
    host (the address checks happen at connect)."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        raise Refused(f"the URL is not valid: {exc}") from exc
    allowed = ("https", "http") if settings.allow_private_destinations else ("https",)
    if parsed.scheme not in allowed:
        raise Refused(f"scheme {parsed.scheme or '(none)'!r} is not allowed")
    if not parsed.host:
        raise Refused("the URL has no host")
    return parsed


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


class _GuardedResolver(AbstractResolver):
    """aiohttp's resolver: every address of the name, or Refused if any is not public."""

    def __init__(self, allow_private: bool, resolver: Resolver) -> None:
        self.allow_private = allow_private
        self.resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await resolve(host, port, self.allow_private, self.resolver)
        results: list[ResolveResult] = []
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            results.append(
                {
                    "hostname": host,  # SNI and certificate checks use the name
                    "host": address,
                    "port": port,
                    "family": socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
            )
        return results

    async def close(self) -> None:
        return None


def _socket_factory(allow_private: bool) -> Callable[[tuple], socket.socket]:  # type: ignore[type-arg]
    """The last check, on the address the socket is about to connect to."""

    def make(addr_info: tuple) -> socket.socket:  # type: ignore[type-arg]
        family, type_, proto, _, address = addr_info
        if not allow_private and _forbidden(str(address[0])):
            raise _RefusedAddress(f"{address[0]} is not a public address")
        return socket.socket(family=family, type=type_, proto=proto)

    return make


def ssl_context(settings: ControlSettings) -> ssl.SSLContext:
    """Certificates verified against the URL's host name; the system's CAs, or only those in
    RICOCHET_DELIVERY_CA_BUNDLE (never SSL_CERT_FILE & co: configuration is read once)."""
    if settings.delivery_ca_bundle:
        return ssl.create_default_context(cafile=settings.delivery_ca_bundle)
    return ssl.create_default_context()


def client(
    settings: ControlSettings,
    max_connections: int = 200,
    resolver: Resolver = system_resolver,
) -> aiohttp.ClientSession:
    """The HTTP client every delivery goes through (one per process and event loop; make it
    on that loop)."""
    allow = settings.allow_private_destinations
    connector = aiohttp.TCPConnector(
        limit=max_connections,
        resolver=_GuardedResolver(allow, resolver),
        ssl=ssl_context(settings),
        keepalive_timeout=30.0,
        socket_factory=_socket_factory(allow),
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(
            total=None,
            sock_connect=settings.delivery_connect_timeout_s,
            sock_read=settings.delivery_read_timeout_s,
        ),
        headers={"user-agent": USER_AGENT},
        # The excerpt stores the bytes as they came: ask for them uncompressed.
        skip_auto_headers=("accept-encoding",),
        auto_decompress=False,
        trust_env=False,
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
    http: aiohttp.ClientSession,
    settings: ControlSettings,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
) -> Response:
    """POST `body`; raises Refused, or SendError (Timeout) when no answer came."""
    target = check_url(settings, url)
    deadline = attempt_deadline_s(settings)
    try:
        async with asyncio.timeout(deadline):
            return await _post(http, settings, target, body, headers)
    except aiohttp.InvalidURL as exc:
        raise Refused(f"the URL is not valid: {exc}") from exc
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, _RefusedAddress):
            raise Refused(str(exc.os_error)) from exc
        raise SendError(_describe(exc)) from exc
    except aiohttp.ServerTimeoutError as exc:  # connect or read timeout
        raise Timeout(_describe(exc)) from exc
    except TimeoutError as exc:
        raise Timeout(f"the attempt took longer than {deadline:g} s") from exc
    except aiohttp.ClientError as exc:
        raise SendError(_describe(exc)) from exc
    except ValueError as exc:  # aiohttp refuses to write it (say, a header value with CR/LF)
        raise Refused(f"the request is not valid: {exc}") from exc


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


async def _post(
    http: aiohttp.ClientSession,
    settings: ControlSettings,
    url: URL,
    body: bytes,
    headers: Mapping[str, str],
) -> Response:
    limit = settings.delivery_max_response_bytes
    async with http.post(url, data=body, headers=dict(headers), allow_redirects=False) as response:
        chunks: list[bytes] = []
        size = 0
        while size < limit:
            chunk = await response.content.read(limit - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return Response(response.status, b"".join(chunks))
