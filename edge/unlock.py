"""The password form's POST: a capped body, an attempt reserved before the slow check.

Order matters. The body is refused by its declared length before anything else and read
with the same cap as it streams in, so no request makes the edge hold more than
`password.MAX_FORM_BYTES` of it. The attempt is counted before argon2 runs (edge/password.py),
so concurrent guesses cannot outrun the limit; only then is the hash checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from edge import pages, password, visitor
from edge.resolve import Unavailable
from shared.hosts import normalise_host

if TYPE_CHECKING:
    from edge.app import EdgeState

_NO_STORE = {"cache-control": "private, no-store"}


class TooLarge(Exception):
    pass


async def read_capped(request: Request, cap: int) -> bytes:
    """The body, read as it streams in; `TooLarge` as soon as it would pass `cap`."""
    body = b""
    async for chunk in request.stream():
        if len(body) + len(chunk) > cap:
            raise TooLarge
        body += chunk
    return body


def _page(body: bytes, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status, media_type="text/html", headers={**_NO_STORE, **(headers or {})})


async def password_post(request: Request) -> Response:
    """The password form posts here; success answers 303 back to the link with a cookie."""
    st: EdgeState = request.state.edge
    length = request.headers.get("content-length")
    if length is not None and not length.strip().isdigit():
        return _page(pages.BAD_REQUEST, 400)
    if length is not None and int(length) > password.MAX_FORM_BYTES:
        st.counters.bodies_refused += 1
        # Closing: the rest of that body is not worth reading to keep the connection.
        return _page(pages.TOO_LARGE, 413, {"connection": "close"})
    slug = request.path_params["slug"].lower()
    host = normalise_host(request.headers.get("host", ""))
    try:
        record = await st.resolver.resolve(host, slug)
    except Unavailable:
        return _page(pages.UNAVAILABLE, 503)
    if record is None or not record.password_hash or record.taken_down:
        return _page(pages.NOT_FOUND, 404)
    try:
        body = await read_capped(request, password.MAX_FORM_BYTES)
    except TooLarge:
        st.counters.bodies_refused += 1
        return _page(pages.TOO_LARGE, 413, {"connection": "close"})
    except ClientDisconnect:
        return _page(pages.BAD_REQUEST, 400)

    trusted = visitor.proxies(st.settings.trusted_proxies)
    peer = request.client.host if request.client else None
    raw = trusted.client(peer, request.headers.get("x-forwarded-for")) if trusted else peer
    # Normalised, so "::ffff:a.b.c.d" counts as the IPv4 address it is, not as an IPv6 /64.
    ip = (visitor.clean_ip(raw) if raw else None) or "unknown"
    reservation = await st.attempts.reserve(record.link_id, ip)
    if reservation is None:
        st.counters.password_limited += 1
        return _page(pages.TOO_MANY, 429, {"retry-after": str(password.ATTEMPT_WINDOW_S)})
    given = password.password_from_form(body)
    if given is not None:
        st.counters.password_checks += 1
    if given is None or not await password.check(record, given):
        return _page(pages.password_form(request.url.path, wrong=True), 403)

    await st.attempts.refund(reservation)
    name, value = password.make_cookie(st.secret, record)
    response = Response(status_code=303, headers={"location": request.url.path, **_NO_STORE})
    response.set_cookie(
        name,
        value,
        max_age=password.COOKIE_TTL_S,
        path=request.url.path,
        httponly=True,
        samesite="lax",
        secure=visitor.is_https(
            request.scope.get("scheme", "http"),
            peer,
            request.headers.get("x-forwarded-proto"),
            trusted,
        ),
    )
    return response
