"""Spreadsheet-sized link work: CSV import and CSV / JSON Lines export.

The use cases (`import_batch`, `export_pages`) serve both the HTTP routes below and the
`ricochet links import/export` commands, so both behave the same:

- Import creates through the bulk path (`create.create_many`), one transaction per batch:
  a batch commits or not as a whole, and an import stopped half way keeps the batches
  before. Importing a file again creates nothing new: rows whose slug is already a link of
  the workspace come back `already_there` (see `csvio.outcome`).
- Export pages through `service.list_links` (keyset, 200 a page), each page in its own
  short transaction, and writes as it goes: constant memory, no long transaction.
"""

from __future__ import annotations

import datetime as dt
import io
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Annotated, Literal

import msgspec
from msgspec import Meta
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from control.context import authorize
from control.errors import ApiError, Unprocessable, UnsupportedMediaType
from control.http import json_bytes, read_query
from control.idempotency import service as idempotency
from control.keys.service import Principal
from control.links import create, csvio, repository, service, views
from control.links.models import Link
from control.links.schemas import LinkIn, LinkOut, LinkQuery
from control.openapi import Operation
from control.settings import ControlSettings

API_BATCH = 1000
PAGE = 200
MAX_CSV = 10 * 1024 * 1024
CSV_TYPES = ("text/csv", "application/csv")
MEDIA = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
_encoder = msgspec.json.Encoder()

Row = tuple[int, LinkIn | ApiError]


class ContentTooLarge(ApiError):
    status, title = 413, "Content too large"


# -- use cases ------------------------------------------------------------------------


async def import_batch(
    sessions: async_sessionmaker[AsyncSession],
    settings: ControlSettings,
    principal: Principal,
    rows: Sequence[Row],
    actor: str,
    dry_run: bool = False,
) -> list[csvio.RowResult]:
    """Create one batch of parsed rows in one transaction (rolled back for a dry run)."""
    items = [item for _, item in rows]
    async with sessions() as session:
        results = await create.create_many(session, settings, principal, items, actor)
        out = [
            csvio.outcome(number, item, result)
            for (number, item), result in zip(rows, results, strict=True)
        ]
        await _fill_short_urls(session, settings, out)
        if dry_run:
            await session.rollback()
        else:
            await session.commit()
    return out


async def _fill_short_urls(
    session: AsyncSession, settings: ControlSettings, rows: list[csvio.RowResult]
) -> None:
    """The short URL of links that were already there (the bulk path names only their id)."""
    wanted = {uuid.UUID(r.link_id) for r in rows if r.status == "already_there" and r.link_id}
    if not wanted:
        return
    found = (
        await session.execute(select(Link.id, Link.slug, Link.domain_id).where(Link.id.in_(wanted)))
    ).all()
    domains = await repository.domain_names(session, sorted({r.domain_id for r in found}))
    urls = {str(r.id): views.short_url(settings, domains[r.domain_id], r.slug) for r in found}
    for row in rows:
        if row.status == "already_there" and row.link_id in urls:
            row.short_url = urls[row.link_id]


async def export_pages(
    sessions: async_sessionmaker[AsyncSession],
    settings: ControlSettings,
    principal: Principal,
    query: LinkQuery,
) -> AsyncGenerator[list[LinkOut], None]:
    """Every link the query matches, newest first, a page at a time (the first page may be
    empty); each page is read in its own transaction and none is held between pages."""
    query = msgspec.structs.replace(query, limit=PAGE, cursor=None)
    while True:
        async with sessions.begin() as session:
            page = await service.list_links(session, settings, principal, query)
        yield page.data
        if page.next_cursor is None:
            return
        query = msgspec.structs.replace(query, cursor=page.next_cursor)


def encode_page(links: list[LinkOut], fmt: str, header: bool = False) -> bytes:
    if fmt == "jsonl":
        return b"".join(_encoder.encode(link) + b"\n" for link in links)
    rows = [csvio.export_row(link) for link in links]
    return csvio.to_csv([csvio.EXPORT_HEADER, *rows] if header else rows).encode()


# -- HTTP -----------------------------------------------------------------------------


class ExportQuery(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The filters of `GET /api/v1/links`, without paging: every match is exported."""

    format: Literal["csv", "jsonl"] = "csv"
    tag: list[str] = []
    space: str | None = None
    domain: str | None = None
    q: Annotated[str, Meta(max_length=200)] | None = None
    external_id: str | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    archived: Literal["exclude", "include", "only"] = "exclude"

    def link_query(self) -> LinkQuery:
        fields = msgspec.structs.asdict(self)
        del fields["format"]
        return LinkQuery(**fields, limit=PAGE)


async def _read_csv(request: Request) -> str:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in CSV_TYPES:
        raise UnsupportedMediaType(
            "unsupported_media_type", "Send the request body as text/csv (UTF-8)."
        )
    too_large = ContentTooLarge(
        "content_too_large", f"A CSV import is at most {MAX_CSV} bytes; split the file."
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_CSV:
        raise too_large
    body = await request.body()  # kept by the request: Idempotency-Key fingerprints it
    if len(body) > MAX_CSV:
        raise too_large
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unprocessable(
            "invalid_csv", f"The CSV is not UTF-8 text (byte {exc.start} is not)."
        ) from None


async def import_links(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:write")
    text = await _read_csv(request)
    try:
        rows = list(csvio.parse_rows(io.StringIO(text, newline="")))
    except csvio.HeaderError as exc:
        extra = {"columns": exc.columns} if exc.columns else {}
        raise Unprocessable(exc.code, exc.detail, **extra) from None

    async def work(session: AsyncSession) -> tuple[int, bytes, str | None]:
        # Each batch in its own transaction, not in `session`: that one only records the
        # answer for an Idempotency-Key (and holds no connection without one).
        results: list[csvio.RowResult] = []
        for start in range(0, len(rows), API_BATCH):
            results.extend(
                await import_batch(
                    ctx.sessions,
                    ctx.settings,
                    principal,
                    rows[start : start + API_BATCH],
                    service.actor_of(principal),
                )
            )
        return 200, json_bytes(csvio.summarize(results)), None

    return await idempotency.run(ctx, request, principal, work)


async def export_links(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:read")
    query = read_query(request, ExportQuery)
    fmt = query.format
    pages = export_pages(ctx.sessions, ctx.settings, principal, query.link_query())
    # The first page before the response starts: a bad filter still answers as a problem.
    first = await anext(pages)

    async def body() -> AsyncIterator[bytes]:
        try:
            yield encode_page(first, fmt, header=True)
            async for page in pages:
                yield encode_page(page, fmt)
        finally:
            await pages.aclose()

    filename = f"links-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}.{fmt}"
    return StreamingResponse(
        body(),
        media_type=MEDIA[fmt],
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


OPERATIONS = [
    Operation(
        "POST",
        "/api/v1/links/import",
        import_links,
        "Import links from a CSV body (Content-Type: text/csv, UTF-8, at most 10 MB; a "
        "header row names the columns): one result per row, by spreadsheet row number",
        "links:write",
        response=csvio.ImportOut,
        errors=(413, 415, 422),
        request_media_type="text/csv",
    ),
    Operation(
        "GET",
        "/api/v1/links/export",
        export_links,
        "Export every matching link as CSV (format=csv) or JSON Lines (format=jsonl), "
        "streamed as an attachment (filters as for listing links)",
        "links:read",
        errors=(400, 422),
        query=ExportQuery,
        media_types=("text/csv", "application/x-ndjson"),
    ),
]
