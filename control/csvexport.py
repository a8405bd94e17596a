"""CSV exports streamed page by page (clicks, conversions): cells as spreadsheets should read
them, and a response that still answers a problem if the first page fails."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from starlette.responses import StreamingResponse

# Cells starting with these run as formulas in spreadsheets (CSV injection).
FORMULA = ("=", "+", "-", "@", "\t", "\r")
Row = Sequence[Any]


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        stamp = value.astimezone(dt.UTC).isoformat(timespec="milliseconds")
        return stamp.replace("+00:00", "Z")
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    text = str(value)
    # Visitors choose UTM values and referrers, integrators order ids: never let a
    # spreadsheet run them.
    return "'" + text if text.startswith(FORMULA) else text


def cells(row: Row) -> list[str]:
    return [cell(v) for v in row]


def encode(
    rows: Iterable[Row],
    columns: Sequence[str] | None = None,
    to_cells: Callable[[Row], list[str]] = cells,
) -> bytes:
    """CSV text of these rows, with a header line when `columns` are given."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if columns is not None:
        writer.writerow(columns)
    writer.writerows(to_cells(row) for row in rows)
    return buffer.getvalue().encode()


async def response(
    pages: AsyncGenerator[Sequence[Row]],
    columns: Sequence[str],
    filename: str,
    to_cells: Callable[[Row], list[str]] = cells,
) -> StreamingResponse:
    """A streamed attachment of every page. The first page is read before the response
    starts, so a failure there still answers as a problem, not a cut-off file."""
    first = await anext(pages)

    async def body() -> AsyncIterator[bytes]:
        try:
            yield encode(first, columns, to_cells)
            async for page in pages:
                yield encode(page, None, to_cells)
        finally:
            await pages.aclose()

    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )
