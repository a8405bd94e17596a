"""HTTP handler of a link's QR code: authorize, read options, find the link, render or 304."""

from __future__ import annotations

import asyncio
import re

from starlette.requests import Request
from starlette.responses import Response

from control.context import authorize
from control.http import read_query
from control.links import qr, service
from control.openapi import Operation

CACHE_CONTROL = "private, max-age=86400"
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9_-]")


def _not_modified(request: Request, etag: str) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 13.1.2): W/ is ignored."""
    raw = request.headers.get("if-none-match")
    if raw is None:
        return False
    tags = [t.strip().removeprefix("W/") for t in raw.split(",")]
    return "*" in tags or etag in tags


async def link_qr(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:read")
    options = qr.normalise(read_query(request, qr.QrQuery))
    async with ctx.sessions.begin() as session:
        link = await service.get(session, ctx.settings, principal, request.path_params["link_id"])
    etag = qr.etag(link.short_url, options)
    headers = {"etag": etag, "cache-control": CACHE_CONTROL}
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    # A large PNG takes tens of milliseconds: keep it off the event loop.
    image = await asyncio.to_thread(qr.render, link.short_url, options)
    filename = _UNSAFE_FILENAME.sub("_", link.slug) or "qr"
    headers["content-disposition"] = f'inline; filename="{filename}.{options.format}"'
    return Response(image.body, headers=headers, media_type=image.media_type)


OPERATIONS = [
    Operation(
        "GET",
        "/api/v1/links/{link_id}/qr",
        link_qr,
        "A QR code of the short URL + ?qr=1, as SVG or PNG (binary, not JSON; "
        "ETag + If-None-Match answer 304)",
        "links:read",
        errors=(400, 404, 422),
        params={"link_id": "The link's id."},
        query=qr.QrQuery,
        media_types=tuple(qr.MEDIA_TYPES.values()),
    ),
]
