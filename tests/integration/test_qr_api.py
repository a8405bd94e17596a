"""A link's QR code: drawn by the API, read back by a real decoder, scanned at the edge."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest
import redis
import zxingcpp
from starlette.testclient import TestClient

from control.relay.service import Relay
from control.settings import ControlSettings
from edge.app import create_app as create_edge
from edge.settings import EdgeSettings
from shared.clicks import BATCH_FIELD, ClickEvent, decode_batch
from shared.keys import click_streams
from tests.integration.conftest import Seed, resources, run

LINKS = "/api/v1/links"
SVG = "{http://www.w3.org/2000/svg}svg"


def _create(api: TestClient, seed: Seed, **body: object) -> dict[str, Any]:
    body.setdefault("destination", "https://brand.example/launch")
    response = api.post(LINKS, json=body, headers=seed.alice.auth)
    assert response.status_code == 201, response.text
    link: dict[str, Any] = response.json()
    return link


def _qr(api: TestClient, seed: Seed, link: dict[str, Any], **params: str | int) -> Any:
    response = api.get(link["qr_url"], params=params, headers=seed.alice.auth)
    assert response.status_code == 200, response.text
    return response


def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    return body


# -- reading the images back --------------------------------------------------------------


def _png_pixels(data: bytes) -> tuple[int, int, bytes]:
    """(width, height, 8-bit luminance) of a non-interlaced greyscale or palette PNG.

    Enough PNG for what segno writes (1-bit greyscale, or a 1-bit palette when coloured),
    so the decoder needs neither Pillow nor numpy.
    """
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, palette = 8, b"", b""
    width = height = depth = colour_type = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert colour_type in (0, 3), colour_type
            assert interlace == 0
        elif kind == b"PLTE":
            palette = body
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = (width * depth + 7) // 8
    prev = bytearray(stride)
    grey = bytearray()
    for y in range(height):
        start = y * (stride + 1)
        filter_type, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):  # bytes per pixel is 1 for depths <= 8
            left, up = line[i - 1] if i else 0, prev[i]
            upleft = prev[i - 1] if i else 0
            if filter_type == 1:
                line[i] = (line[i] + left) & 0xFF
            elif filter_type == 2:
                line[i] = (line[i] + up) & 0xFF
            elif filter_type == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif filter_type == 4:
                p = left + up - upleft
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - upleft)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else upleft
                line[i] = (line[i] + pred) & 0xFF
        prev = line
        per_byte, mask = 8 // depth, (1 << depth) - 1
        for x in range(width):
            shift = (per_byte - 1 - x % per_byte) * depth
            value = (line[x // per_byte] >> shift) & mask
            if colour_type == 3:
                r, g, b = palette[value * 3 : value * 3 + 3]
                grey.append((299 * r + 587 * g + 114 * b) // 1000)
            else:
                grey.append(value * 255 // mask)
    return width, height, bytes(grey)


def _decode(png: bytes) -> zxingcpp.Barcode:
    width, height, pixels = _png_pixels(png)
    found = zxingcpp.read_barcodes(
        memoryview(pixels).cast("B", (height, width)),
        formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode),
    )
    assert len(found) == 1, found
    return found[0]


def _svg(text: str) -> ElementTree.Element:
    assert text.startswith('<?xml version="1.0" encoding="utf-8"?>')
    root = ElementTree.fromstring(text)  # noqa: S314 (our own output, not untrusted XML)
    assert root.tag == SVG
    return root


def _modules(svg: ElementTree.Element, size: int, margin: int) -> int:
    """The symbol's modules per side, from the viewBox of an SVG drawn at `size`."""
    _, _, width, height = (int(v) for v in svg.attrib["viewBox"].split())
    assert width == height
    return width // size - 2 * margin


# -- the code encodes the short URL and scans as a QR touch --------------------------------


def _events(settings: ControlSettings) -> list[ClickEvent]:
    client = redis.Redis.from_url(settings.redis_url)
    try:
        return [
            e
            for stream in click_streams(4)
            for _, fields in client.xrange(stream)
            for e in decode_batch(fields[BATCH_FIELD])
        ]
    finally:
        client.close()


def _relay(settings: ControlSettings) -> None:
    async def go() -> None:
        async with resources(settings) as (engine, store):
            await Relay(settings, engine, store).drain()

    run(go())


def test_a_png_decodes_to_the_short_url_and_following_it_records_a_qr_scan(
    api: TestClient, seed: Seed, control_settings: ControlSettings, tmp_path: Path
) -> None:
    link = _create(api, seed, slug="poster")
    assert link["qr_url"] == f"{LINKS}/{link['id']}/qr"

    response = _qr(api, seed, link, format="png")

    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"] == 'inline; filename="poster.png"'
    scanned = _decode(response.content).text
    assert scanned == f"{link['short_url']}?qr=1" == "http://sho.rt/poster?qr=1"

    _relay(control_settings)
    edge_settings = EdgeSettings(
        redis_url=control_settings.redis_url,
        default_domain="sho.rt",
        capture_flush_ms=10,
        spool_dir=str(tmp_path / "spool"),
        edge_secret="s" * 40,
    )
    url = urlsplit(scanned)
    with TestClient(
        create_edge(edge_settings), base_url=f"http://{url.netloc}", follow_redirects=False
    ) as edge:
        visit = edge.get(f"{url.path}?{url.query}")

    assert visit.status_code == 302
    assert visit.headers["location"] == "https://brand.example/launch"
    [event] = _events(control_settings)
    assert event.touch == "qr"
    assert event.link_id == link["id"]


def test_the_default_is_an_svg_of_the_same_code(api: TestClient, seed: Seed) -> None:
    link = _create(api, seed, slug="svg-default")

    response = _qr(api, seed, link)

    assert response.headers["content-type"] == "image/svg+xml"
    assert response.headers["content-disposition"] == 'inline; filename="svg-default.svg"'
    assert response.headers["cache-control"] == "private, max-age=86400"
    svg = _svg(response.text)
    assert (svg.attrib["width"], svg.attrib["height"]) == (
        svg.attrib["viewBox"].split()[2] + "px",
        svg.attrib["viewBox"].split()[3] + "px",
    )
    modules = _modules(svg, 10, 4)
    png = _qr(api, seed, link, format="png").content
    assert _png_pixels(png)[0] == (modules + 8) * 10  # the same symbol, drawn as PNG
    assert _decode(png).text == f"{link['short_url']}?qr=1"


# -- options -----------------------------------------------------------------------------


def test_size_and_margin_set_the_image_dimensions(api: TestClient, seed: Seed) -> None:
    link = _create(api, seed, slug="sized")
    modules = _modules(_svg(_qr(api, seed, link).text), 10, 4)

    for size, margin in ((1, 4), (3, 0), (10, 4), (25, 20)):
        png = _qr(api, seed, link, format="png", size=size, margin=margin).content
        width, height, _ = _png_pixels(png)
        assert width == height == (modules + 2 * margin) * size

    # A small code with a quiet zone still scans.
    assert _decode(_qr(api, seed, link, format="png", size=3, margin=2).content).text.endswith(
        "/sized?qr=1"
    )


def test_colours_are_drawn(api: TestClient, seed: Seed) -> None:
    link = _create(api, seed, slug="brand")

    # "#" goes as %23 in a query string; both spellings are accepted, any case.
    svg = _qr(api, seed, link, fg="#1A2B3C", bg="f0e68c").text

    assert 'stroke="#1a2b3c"' in svg
    assert 'fill="#f0e68c"' in svg
    png = _qr(api, seed, link, format="png", fg="1a2b3c", bg="#F0E68C").content
    assert b"PLTE" in png
    assert _decode(png).text == f"{link['short_url']}?qr=1"


def test_ecc_level_is_drawn_as_asked(api: TestClient, seed: Seed) -> None:
    link = _create(api, seed, slug="ecc-levels-for-a-somewhat-longer-slug")

    sizes = {ecc: _modules(_svg(_qr(api, seed, link, ecc=ecc).text), 10, 4) for ecc in "LMQH"}
    levels = {ecc: _decode(_qr(api, seed, link, format="png", ecc=ecc).content) for ecc in "LMQH"}

    assert sizes["L"] <= sizes["M"] <= sizes["Q"] <= sizes["H"]
    assert sizes["H"] > sizes["L"]  # more redundancy needs a bigger symbol
    assert {ecc: b.ec_level for ecc, b in levels.items()} == {e: e for e in "LMQH"}
    assert {b.text for b in levels.values()} == {f"{link['short_url']}?qr=1"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"format": "gif"}, "format"),
        ({"size": "0"}, "size"),
        ({"size": "51"}, "size"),
        ({"size": "big"}, "size"),
        ({"margin": "-1"}, "margin"),
        ({"margin": "21"}, "margin"),
        ({"fg": "red"}, "fg"),
        ({"fg": "#12345"}, "fg"),
        ({"bg": "#1234567"}, "bg"),
        ({"fg": "#12345g"}, "fg"),
        ({"ecc": "X"}, "ecc"),
        ({"ecc": "h"}, "ecc"),
        ({"colour": "#000000"}, "colour"),
    ],
)
def test_bad_options_are_a_400_problem(
    api: TestClient, seed: Seed, params: dict[str, str], field: str
) -> None:
    link = _create(api, seed)

    response = api.get(link["qr_url"], params=params, headers=seed.alice.auth)

    assert _problem(response, 400, "invalid_query")["field"] == field


@pytest.mark.parametrize(
    ("fg", "bg"),
    [("#000000", "#000000"), ("abcdef", "#ABCDEF"), ("#777777", "#888888"), ("#ffff00", "#ffffff")],
)
def test_colours_a_scanner_cannot_tell_apart_are_refused(
    api: TestClient, seed: Seed, fg: str, bg: str
) -> None:
    link = _create(api, seed)

    response = api.get(link["qr_url"], params={"fg": fg, "bg": bg}, headers=seed.alice.auth)

    body = _problem(response, 422, "invalid_colour")
    assert body["field"] == "fg"


def test_light_on_dark_with_enough_contrast_is_drawn(api: TestClient, seed: Seed) -> None:
    link = _create(api, seed, slug="inverted")

    png = _qr(api, seed, link, format="png", fg="#ffffff", bg="#000000").content

    assert _decode(png).text == f"{link['short_url']}?qr=1"  # zxing tries inverted codes


# -- caching -------------------------------------------------------------------------------


def test_etag_is_stable_and_changes_with_options(api: TestClient, seed: Seed) -> None:
    link = _create(api, seed, slug="cached")

    first = _qr(api, seed, link)
    again = _qr(api, seed, link)
    spelled = _qr(api, seed, link, fg="000000", bg="#FFFFFF", size=10, margin=4, ecc="M")
    others = {
        _qr(api, seed, link, **option).headers["etag"]
        for option in (
            {"format": "png"},
            {"size": 11},
            {"margin": 3},
            {"fg": "#000001"},
            {"bg": "#fffffe"},
            {"ecc": "H"},
        )
    }

    etag = first.headers["etag"]
    assert etag.startswith('"')  # strong: no W/ prefix
    assert etag.endswith('"')
    assert again.headers["etag"] == spelled.headers["etag"] == etag
    assert again.content == first.content
    assert len(others) == 6
    assert etag not in others


def test_etag_changes_when_the_short_url_does(api: TestClient, seed: Seed) -> None:
    a = _qr(api, seed, _create(api, seed, slug="one")).headers["etag"]
    b = _qr(api, seed, _create(api, seed, slug="two")).headers["etag"]

    assert a != b


def test_if_none_match_answers_304_without_a_body(api: TestClient, seed: Seed) -> None:
    link = _create(api, seed, slug="conditional")
    etag = _qr(api, seed, link, format="png").headers["etag"]

    for header in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        response = api.get(
            link["qr_url"],
            params={"format": "png"},
            headers={**seed.alice.auth, "if-none-match": header},
        )
        assert response.status_code == 304, header
        assert response.content == b""
        assert response.headers["etag"] == etag
        assert response.headers["cache-control"] == "private, max-age=86400"

    other = api.get(
        link["qr_url"],  # an SVG's ETag does not match the PNG's
        params={"format": "svg"},
        headers={**seed.alice.auth, "if-none-match": etag},
    )
    assert other.status_code == 200
    assert other.headers["etag"] != etag


# -- who may see it --------------------------------------------------------------------------


def test_another_workspaces_or_an_unknown_link_is_not_found(api: TestClient, seed: Seed) -> None:
    link = _create(api, seed)

    _problem(api.get(link["qr_url"], headers=seed.bob.auth), 404, "link_not_found")
    for link_id in ("00000000-0000-4000-8000-000000000000", "not-a-uuid"):
        response = api.get(f"{LINKS}/{link_id}/qr", headers=seed.alice.auth)
        _problem(response, 404, "link_not_found")
    # A conditional request cannot probe another workspace's links either.
    response = api.get(link["qr_url"], headers={**seed.bob.auth, "if-none-match": "*"})
    _problem(response, 404, "link_not_found")


def test_a_deleted_link_has_no_qr_code(api: TestClient, seed: Seed) -> None:
    link = _create(api, seed)
    assert api.delete(f"{LINKS}/{link['id']}", headers=seed.alice.auth).status_code == 204

    _problem(api.get(link["qr_url"], headers=seed.alice.auth), 404, "link_not_found")


def test_needs_links_read_and_a_key(api: TestClient, seed: Seed) -> None:
    link = _create(api, seed)
    created = api.post(
        "/api/v1/api-keys",
        json={"name": "keys only", "scopes": ["keys:read"]},
        headers=seed.alice.auth,
    )
    assert created.status_code == 201, created.text
    narrow = {"authorization": f"Bearer {created.json()['key']}"}

    _problem(api.get(link["qr_url"], headers=narrow), 403, "insufficient_scope")
    _problem(api.get(link["qr_url"]), 401, "unauthorized")


def test_the_openapi_document_declares_the_images(api: TestClient) -> None:
    operation = api.get("/api/v1/openapi.json").json()["paths"]["/api/v1/links/{link_id}/qr"]["get"]

    assert set(operation["responses"]["200"]["content"]) == {"image/svg+xml", "image/png"}
    params = {p["name"]: p for p in operation["parameters"]}
    assert set(params) == {"link_id", "format", "size", "margin", "fg", "bg", "ecc"}
    assert params["size"]["schema"]["minimum"] == 1
    assert params["size"]["schema"]["maximum"] == 50
    assert set(params["ecc"]["schema"]["enum"]) == {"L", "M", "Q", "H"}
    assert {"400", "401", "403", "404", "422"} <= set(operation["responses"])
