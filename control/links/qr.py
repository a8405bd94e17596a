"""QR codes of short links: options, validation and rendering (segno). Pure functions.

The code encodes the short URL with `?qr=1` appended, so the edge records scans as QR
touches. The ETag is derived from the encoded text and the options alone, so a client's
cached image stays valid until the short URL or the options change, and a conditional
request can be answered without rendering anything.
"""

from __future__ import annotations

import hashlib
import io
from typing import Annotated, Literal

import msgspec
import segno
from msgspec import Meta

from control.errors import Unprocessable

# Bump when the rendering below changes its bytes for the same inputs (strong ETags
# promise byte-identical images). segno's own version is part of the ETag for the same reason.
RENDER_VERSION = 1
# WCAG 2.x non-text contrast (SC 1.4.11): below 3:1 a scanner's binarizer may not
# tell dark modules from light ones.
MIN_CONTRAST = 3.0
MEDIA_TYPES = {"svg": "image/svg+xml", "png": "image/png"}

Colour = Annotated[
    str,
    Meta(
        pattern=r"^#?[0-9A-Fa-f]{6}$",
        description='A hex colour, "#rrggbb" or "rrggbb" (send "#" as %23).',
    ),
]


class QrQuery(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    format: Literal["svg", "png"] = "svg"
    size: Annotated[int, Meta(ge=1, le=50, description="Pixels per module.")] = 10
    margin: Annotated[int, Meta(ge=0, le=20, description="Quiet zone, in modules.")] = 4
    fg: Colour = "#000000"
    bg: Colour = "#ffffff"
    ecc: Annotated[
        Literal["L", "M", "Q", "H"],
        Meta(description="Error correction: L 7%, M 15%, Q 25%, H 30% of the code."),
    ] = "M"


class Qr(msgspec.Struct, frozen=True):
    body: bytes
    media_type: str
    etag: str


def payload(short_url: str) -> str:
    """What the code encodes: the short URL marked as a QR scan."""
    return short_url + ("&" if "?" in short_url else "?") + "qr=1"


def normalise(options: QrQuery) -> QrQuery:
    """Colours as lower-case `#rrggbb`; refuses colours a scanner cannot tell apart."""
    fg, bg = _hex(options.fg), _hex(options.bg)
    if fg == bg:
        raise Unprocessable(
            "invalid_colour",
            f"fg and bg are the same colour ({fg}): the code would be invisible.",
            field="fg",
        )
    ratio = contrast(fg, bg)
    if ratio < MIN_CONTRAST:
        raise Unprocessable(
            "invalid_colour",
            f"fg {fg} on bg {bg} has a contrast ratio of {ratio:.2f}:1; "
            f"a QR code needs at least {MIN_CONTRAST:g}:1 to scan reliably.",
            field="fg",
        )
    return msgspec.structs.replace(options, fg=fg, bg=bg)


def etag(short_url: str, options: QrQuery) -> str:
    """A strong ETag: sha256 of what is encoded and how it is drawn (options normalised)."""
    key = msgspec.json.encode(
        [
            RENDER_VERSION,
            segno.__version__,
            payload(short_url),
            options.format,
            options.size,
            options.margin,
            _hex(options.fg),
            _hex(options.bg),
            options.ecc,
        ]
    )
    return f'"{hashlib.sha256(key).hexdigest()}"'


def render(short_url: str, options: QrQuery) -> Qr:
    """The QR code of `short_url` + `?qr=1` as SVG or PNG bytes, with its media type and ETag."""
    options = normalise(options)
    # boost_error=False: the level asked for is the level drawn (segno would otherwise
    # raise it silently whenever the symbol size allows).
    code = segno.make_qr(payload(short_url), error=options.ecc, boost_error=False)
    out = io.BytesIO()
    if options.format == "svg":
        # unit="px" writes width/height and a viewBox, so the image scales when embedded.
        code.save(
            out,
            kind="svg",
            scale=options.size,
            border=options.margin,
            dark=options.fg,
            light=options.bg,
            xmldecl=True,
            unit="px",
        )
    else:
        code.save(
            out,
            kind="png",
            scale=options.size,
            border=options.margin,
            dark=options.fg,
            light=options.bg,
        )
    return Qr(out.getvalue(), MEDIA_TYPES[options.format], etag(short_url, options))


def contrast(a: str, b: str) -> float:
    """The WCAG contrast ratio of two `#rrggbb` colours, from 1 (same) to 21."""
    la, lb = _luminance(a), _luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def _hex(colour: str) -> str:
    return "#" + colour.removeprefix("#").lower()


def _luminance(colour: str) -> float:
    def channel(i: int) -> float:
        c = int(colour[i : i + 2], 16) / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5)
