"""The internal resolve endpoint: the edge fills a Redis miss from here.

`GET /internal/v1/resolve?host=<host>&slug=<slug>` with `Authorization: Bearer
<RICOCHET_INTERNAL_TOKEN>`. Not part of the public API (no OpenAPI entry), and with no token
configured it does not exist at all: 404 to everyone, for every method.
"""

from __future__ import annotations

import hmac

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from control.context import context
from control.errors import ApiError, Unauthorized
from control.internal import service
from shared.hosts import normalise_host

PATH = "/internal/v1/resolve"
MEDIA_TYPE = "application/msgpack"
# Longer than any stored host or slug: such values cannot match, so skip the query.
_MAX_PARAM = 1024
_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _authenticate(request: Request, expected: str) -> None:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), expected.encode()
    ):
        error = Unauthorized(
            "unauthorized", "Send the internal token as `Authorization: Bearer <token>`."
        )
        error.headers = {"www-authenticate": "Bearer"}
        raise error


def _param(request: Request, name: str) -> str:
    value = request.query_params.get(name, "").strip()
    if not value:
        raise ApiError("invalid_query", "Give both `host` and `slug` query parameters.", field=name)
    return value


def _searchable(value: str) -> bool:
    # PostgreSQL text cannot hold NUL: such a value is simply not a link, not an error.
    return bool(value) and len(value) <= _MAX_PARAM and "\x00" not in value


def routes() -> list[Route]:
    """The internal routes, each app with its own repair throttle."""
    throttle = service.RepairThrottle()

    async def resolve(request: Request) -> Response:
        ctx = context(request)
        expected = ctx.settings.internal_token
        if not expected:
            raise HTTPException(404)  # exactly what an unknown route answers
        if request.method not in ("GET", "HEAD"):
            raise HTTPException(405)
        _authenticate(request, expected)
        host = normalise_host(_param(request, "host"))
        slug = _param(request, "slug").lower()
        if not (_searchable(host) and _searchable(slug)):
            return Response(status_code=404)
        async with ctx.sessions.begin() as session:
            found = await service.resolve(session, throttle, host, slug)
        if found is None:
            return Response(status_code=404)  # empty: the edge caches the miss briefly
        return Response(
            found.body,
            headers={"x-ricochet-key": found.key, "x-ricochet-version": str(found.version)},
            media_type=MEDIA_TYPE,
        )

    # Every method reaches the handler, so that without a token even a POST answers 404,
    # not a 405 that would give the route away.
    return [Route(PATH, resolve, methods=_ALL_METHODS, include_in_schema=False)]
