"""Links as spreadsheet rows: CSV in (one `LinkIn` or one problem per row) and CSV out.

Pure: no I/O beyond the iterables it is given. The `ricochet links import/export` commands
and the `/api/v1/links/import|export` routes share it, so both read and write the same files.

Reading
-------
- A header row names the columns: case, surrounding spaces, and space or hyphen for
  underscore do not matter (`UTM Source` is `utm_source`). UTF-8, with or without a BOM.
- `destination` is required; every other column of `COLUMNS` is optional. A column not in
  `COLUMNS` stops the whole file before any row is read (`UnknownColumns`), except the
  read-only columns an export carries (`READ_ONLY`), which are ignored, so an exported file
  imports as it is.
- Row numbers are spreadsheet row numbers: the header is row 1, the first data row row 2.
  Blank rows (no cell with a value) are skipped but still counted.
- An empty cell means "not given" (the API's default). `tags`: names separated by `|` or
  `;` (not `,`: that separates cells). `expires_at`: an RFC 3339 time with a zone
  (`2027-01-31T18:00:00+01:00`), or a date `YYYY-MM-DD`, which means the end of that day in
  UTC (the link works through that whole day, it expires at 00:00 UTC the next day).
  `track_conversions` / `forward_query`: true/false, 1/0, yes/no. `redirect_status`: 301,
  302, 307 or 308.
- Every row is checked with the same pure rules the API applies (destination, slug, tags,
  UTM values, expiry), and a slug (per domain) or external_id given twice in one file makes
  the later row invalid. What needs the database (domain, space, preset, taken slugs) is
  checked when the row is created.

Writing
-------
`EXPORT_HEADER` and `export_row`. Cells that a spreadsheet would run as a formula (starting
with = + - @, tab or CR) get a leading `'`; reading removes it again.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

import msgspec

from control.csvexport import FORMULA
from control.errors import ApiError, Unprocessable
from control.links import rules
from control.links.schemas import BulkResult, ItemError, LinkIn, LinkOut
from control.tags.service import normalise_name as normalise_tag

# What a row may say, in the order an import template lists them.
COLUMNS = (
    "destination",
    "slug",
    "domain",
    "tags",
    "space",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "utm_preset",
    "expires_at",
    "expired_url",
    "external_id",
    "redirect_status",
    "track_conversions",
    "forward_query",
)
# In an export, not settable by an import: ignored when read.
READ_ONLY = ("id", "short_url", "clicks", "created_at", "archived")
EXPORT_HEADER = (
    "id",
    "short_url",
    "slug",
    "domain",
    "destination",
    "tags",
    "space",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "external_id",
    "clicks",
    "created_at",
    "archived",
    "expires_at",
)
RESULT_HEADER = ("row", "status", "short_url", "link_id", "error_code", "error_detail")

TAG_SEPARATOR = re.compile(r"[|;]")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_FLAGS = ("track_conversions", "forward_query")

Status = Literal["created", "already_there", "invalid"]


class HeaderError(ValueError):
    """The file as a whole cannot be read: nothing in it is imported."""

    def __init__(self, code: str, detail: str, columns: Sequence[str] = ()) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.columns = list(columns)


class UnknownColumns(HeaderError):
    def __init__(self, columns: Sequence[str]) -> None:
        names = ", ".join(repr(c) for c in columns)
        super().__init__(
            "unknown_columns",
            f"Unknown columns: {names}. Known columns: {', '.join(COLUMNS)}.",
            columns,
        )


class RowResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    row: int  # spreadsheet row number: the header is row 1
    status: Status
    link_id: str | None = None
    short_url: str | None = None
    error: ItemError | None = None


class ImportOut(msgspec.Struct, kw_only=True):
    """`already_there`: the row's slug already is a link of this workspace (or, for a row
    without a slug, its external_id is), so a second import of a file creates nothing."""

    created: int
    already_there: int
    invalid: int
    rows: list[RowResult]


# -- reading --------------------------------------------------------------------------


def _column_name(raw: str) -> str:
    name = raw.strip().lstrip("\ufeff").strip().lower()
    return re.sub(r"[\s-]+", "_", name)


def _header(cells: list[str]) -> list[str | None]:
    names = [_column_name(c) or None for c in cells]
    present = [n for n in names if n is not None]
    if not present:
        raise HeaderError(
            "missing_header", "The first row must name the columns, e.g. destination,slug,tags."
        )
    unknown = [n for n in dict.fromkeys(present) if n not in COLUMNS and n not in READ_ONLY]
    if unknown:
        raise UnknownColumns(unknown)
    twice = sorted({n for n in present if present.count(n) > 1})
    if twice:
        raise HeaderError(
            "duplicate_columns", f"Columns named more than once: {', '.join(twice)}.", twice
        )
    if "destination" not in present:
        raise HeaderError(
            "missing_columns", "The header has no destination column.", ["destination"]
        )
    return names


def parse_rows(lines: Iterable[str]) -> Iterator[tuple[int, LinkIn | ApiError]]:
    """(spreadsheet row number, the link or what is wrong with the row), row by row.

    The header is read at once: a bad header raises `HeaderError` (`UnknownColumns` for
    unknown names) from this call, before any row is read. Give it lines with their
    newlines (a file opened with `newline=""`, or `io.StringIO(text, newline="")`), so
    quoted cells may span lines. Memory grows only with the slugs and external ids seen.
    """
    reader = csv.reader(lines)
    try:
        first = next(reader, None)
    except csv.Error as exc:
        raise HeaderError("invalid_csv", f"Row 1 is not valid CSV: {exc}.") from None
    if first is None:
        raise HeaderError("empty_csv", "The file is empty: it needs a header row and data rows.")
    return _rows(reader, _header(first))


def _rows(reader: Any, columns: list[str | None]) -> Iterator[tuple[int, LinkIn | ApiError]]:
    slugs: dict[tuple[str, str], int] = {}
    externals: dict[str, int] = {}
    number = 1
    while True:
        number += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield number, Unprocessable("invalid_csv", f"Not valid CSV: {exc}.")
            continue
        item = _row(cells, columns)
        if item is None:
            continue
        if isinstance(item, LinkIn):
            item = _once_per_file(item, number, slugs, externals)
        yield number, item


def _row(cells: list[str], columns: list[str | None]) -> LinkIn | ApiError | None:
    values: dict[str, str] = {}
    stray = False
    for index, cell in enumerate(cells):
        text = _unescape(cell.strip())
        if not text:
            continue
        name = columns[index] if index < len(columns) else None
        if name is None:
            stray = True
        elif name not in READ_ONLY:
            values[name] = text
    if not values and not stray:
        return None  # a blank row
    if stray:
        return Unprocessable(
            "unnamed_column", "The row has a value in a column the header does not name."
        )
    try:
        return _link(values)
    except ApiError as exc:
        return exc


def _link(values: dict[str, str]) -> LinkIn:
    data: dict[str, Any] = {}
    for name, text in values.items():
        if "\x00" in text:
            raise ApiError.validation(f"{name} contains a NUL character.", name)
        if name == "tags":
            data[name] = [t.strip() for t in TAG_SEPARATOR.split(text) if t.strip()]
        elif name == "expires_at":
            data[name] = parse_expiry(text)
        elif name in _FLAGS:
            data[name] = _flag(name, text)
        elif name == "redirect_status":
            data[name] = _status(text)
        else:
            data[name] = text
    if "destination" not in data:
        raise ApiError.invalid_destination("The destination is empty.")
    try:
        link = msgspec.convert(data, LinkIn)
    except msgspec.ValidationError as exc:
        text, _, where = str(exc).rpartition(" - at `$.")
        if not text:
            text, where = str(exc), ""
        column = re.split(r"[.\[]", where.rstrip("`"))[0] or None
        raise ApiError.validation(f"{column}: {text}" if column else text, column) from None
    _check(link)
    return link


def _check(link: LinkIn) -> None:
    """The rules `create_many` applies that need no database, so they fail before it runs."""
    rules.normalise_destination(link.destination)
    if link.expired_url is not None:
        try:
            rules.normalise_destination(link.expired_url)
        except ApiError as exc:  # the rule speaks of `destination`
            raise Unprocessable(
                exc.code, f"expired_url: {exc.detail}", field="expired_url"
            ) from None
    if link.slug is not None:
        rules.normalise_slug(link.slug)
    for tag in link.tags:
        normalise_tag(tag)
    for name in rules.UTM_FIELDS:
        rules.clean_text(getattr(link, f"utm_{name}"), f"utm_{name}")
    rules.clean_text(link.external_id, "external_id")
    rules.check_expiry(link.expires_at)


def _once_per_file(
    link: LinkIn, number: int, slugs: dict[tuple[str, str], int], externals: dict[str, int]
) -> LinkIn | ApiError:
    slug_key = None
    if link.slug is not None:
        domain = (link.domain or "").strip().lower().rstrip(".")
        slug_key = (domain, rules.normalise_slug(link.slug))
        if slug_key in slugs:
            where = f" on {domain}" if domain else ""
            return Unprocessable(
                "duplicate_slug",
                f"Row {slugs[slug_key]} already uses the slug {slug_key[1]!r}{where}.",
                field="slug",
            )
    external = rules.clean_text(link.external_id, "external_id")
    if external is not None:
        if external in externals:
            return Unprocessable(
                "duplicate_external_id",
                f"Row {externals[external]} already uses the external_id {external!r}.",
                field="external_id",
            )
        externals[external] = number
    if slug_key is not None:
        slugs[slug_key] = number
    return link


def parse_expiry(text: str) -> dt.datetime:
    """RFC 3339 with a zone, or `YYYY-MM-DD`: the end of that day in UTC."""
    if _DATE.match(text):
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            raise ApiError.validation(
                f"expires_at: {text!r} is not a date.", "expires_at"
            ) from None
        return dt.datetime.combine(day, dt.time(), dt.UTC) + dt.timedelta(days=1)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ApiError.validation(
            f"expires_at: {text[:40]!r} is neither a date (2027-01-31) nor a time with a zone "
            "(2027-01-31T18:00:00Z).",
            "expires_at",
        ) from None
    if when.tzinfo is None:
        raise ApiError.validation(
            "expires_at needs a time zone, e.g. 2027-01-01T00:00:00Z (or give just a date).",
            "expires_at",
        )
    return when


def _flag(name: str, text: str) -> bool:
    value = text.lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ApiError.validation(f"{name} is true or false (also 1/0, yes/no), not {text!r}.", name)


def _status(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ApiError.validation(
            f"redirect_status is 301, 302, 307 or 308, not {text[:20]!r}.", "redirect_status"
        ) from None


def _unescape(text: str) -> str:
    return text[1:] if len(text) > 1 and text[0] == "'" and text[1] in FORMULA else text


# -- outcomes ---------------------------------------------------------------------------


def outcome(number: int, item: LinkIn | ApiError, result: BulkResult) -> RowResult:
    """A bulk result as an import row: a slug this workspace already has is already there;
    so is an external_id it already has, for a row without a slug (that id is its key)."""
    if result.status == "created" and result.link is not None:
        return RowResult(
            row=number, status="created", link_id=result.link.id, short_url=result.link.short_url
        )
    if result.status == "slug_taken" and result.link_id is not None:
        return RowResult(row=number, status="already_there", link_id=result.link_id)
    if (
        result.error is not None
        and result.error.code == "external_id_taken"
        and result.link_id is not None
        and isinstance(item, LinkIn)
        and item.slug is None
    ):
        return RowResult(row=number, status="already_there", link_id=result.link_id)
    error = result.error or ItemError(code="invalid", detail="The row could not be imported.")
    return RowResult(row=number, status="invalid", error=error)


def summarize(rows: list[RowResult]) -> ImportOut:
    counts = {s: sum(r.status == s for r in rows) for s in ("created", "already_there", "invalid")}
    return ImportOut(
        created=counts["created"],
        already_there=counts["already_there"],
        invalid=counts["invalid"],
        rows=rows,
    )


def describe(result: RowResult) -> str:
    """`row 17: invalid_destination: The destination has no host.`"""
    if result.error is None:
        return f"row {result.row}: {result.status}"
    return f"row {result.row}: {result.error.code}: {result.error.detail}"


def result_row(result: RowResult) -> list[str]:
    error = result.error
    return [
        str(result.row),
        result.status,
        result.short_url or "",
        result.link_id or "",
        error.code if error else "",
        error.detail if error else "",
    ]


# -- writing ----------------------------------------------------------------------------


def _time(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _escape(text: str) -> str:
    return "'" + text if text.startswith(FORMULA) else text


def export_row(link: LinkOut) -> list[str]:
    """The cells of one link, in `EXPORT_HEADER` order."""
    utm = link.utm
    cells = [
        link.id,
        link.short_url,
        link.slug,
        link.domain,
        link.destination,
        "|".join(link.tags),
        link.space or "",
        utm.source or "",
        utm.medium or "",
        utm.campaign or "",
        utm.term or "",
        utm.content or "",
        link.external_id or "",
        str(link.clicks),
        _time(link.created_at),
        "true" if link.archived else "false",
        _time(link.expires_at),
    ]
    return [_escape(c) for c in cells]


def to_csv(rows: Iterable[Sequence[str]]) -> str:
    """Rows as CSV text (RFC 4180: CRLF line ends, quotes where needed)."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()
