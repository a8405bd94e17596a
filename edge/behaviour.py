"""What a link answers: pure functions from a link record and the visitor to a redirect.

Order of choice for the destination: country rule, then device rule, then a weighted A/B
variant (sticky per visitor id), then the link's own destination. The query the visitor
lands with: the destination's own parameters, overridden by the visitor's forwarded ones
(if the link forwards), overridden by the link's UTM values; then `nim_ct` when conversion
tracking is on. A destination carrying a signature (S3, GCS, CloudFront, Azure SAS, ...) is
never modified at all: adding anything would break it.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import xxhash

from shared.clicks import CLICK_TOKEN_PREFIX
from shared.records import LinkRecord

TOKEN_PARAM = "nim_ct"  # noqa: S105 - a parameter name, not a secret
# Query parameters that mark a URL as signed or otherwise sensitive to any change.
SIGNED_PARAMS = frozenset(
    {
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "awsaccesskeyid",
        "x-goog-signature",
        "x-goog-credential",
        "googleaccessid",
        "signature",
        "policy",
        "key-pair-id",  # CloudFront signed URLs
        "sig",
        "se",
        "sv",
        "sp",  # Azure SAS
        "hmac",
        "x-signature",
        "integrity",
        "checksum",
    }
)


class Choice(NamedTuple):
    url: str
    variant: int  # index into record.variants, -1 when no variant was involved


def choose(record: LinkRecord, country: str, platform: str, visitor_id: str) -> Choice:
    if record.countries and country:
        url = record.countries.get(country)
        if url:
            return Choice(url, -1)
    if record.devices:
        url = record.devices.get(platform)
        if url:
            return Choice(url, -1)
    if record.variants:
        return Choice(*pick_variant(record, visitor_id))
    return Choice(record.destination, -1)


def pick_variant(record: LinkRecord, visitor_id: str) -> tuple[str, int]:
    """Weighted and sticky: the same visitor id always lands on the same variant."""
    variants = record.variants or [(record.destination, 1)]
    total = sum(weight for _, weight in variants)
    point = xxhash.xxh3_64_intdigest(f"{record.link_id}:{visitor_id}".encode()) % total
    for index, (url, weight) in enumerate(variants):
        if point < weight:
            return url, index
        point -= weight
    return variants[-1][0], len(variants) - 1


def is_signed(params: list[tuple[str, str]]) -> bool:
    return any(name.lower() in SIGNED_PARAMS for name, _ in params)


def needs_rewrite(record: LinkRecord, forwarded: list[tuple[str, str]]) -> bool:
    return bool(record.utm or record.track_conversions or (record.forward_query and forwarded))


def finish(
    url: str, record: LinkRecord, forwarded: list[tuple[str, str]], click_id: str
) -> tuple[str, bool]:
    """The final Location and whether the click token went into it."""
    if not needs_rewrite(record, forwarded):
        return url, False
    if record.forward_query and forwarded:
        return rewrite(url, record, forwarded, click_id)  # depends on this visitor's query
    key = (record.link_id, record.version, url)
    memo = _LOCATIONS.get(key)
    if memo is None:
        memo = _template(url, record)
        if memo is None:
            return rewrite(url, record, forwarded, click_id)
        if len(_LOCATIONS) >= LOCATIONS_KEPT:
            del _LOCATIONS[next(iter(_LOCATIONS))]
        _LOCATIONS[key] = memo
    head, tail = memo
    if tail is None:
        return head, False
    return head + click_id + tail, True


# Parsing and re-encoding a destination's query per redirect cost more than the rest of the
# redirect together. For a visitor query that does not matter, the result depends only on
# the link's version and the chosen URL: keep it, as text around the click id's place.
LOCATIONS_KEPT = 20_000
_LOCATIONS: dict[tuple[str, int, str], tuple[str, str | None]] = {}
# A stand-in click id: letters, so URL encoding leaves it as is, as it leaves a hex id.
_PLACE = "CLICKIDPLACEHOLDERQZX"


def _template(url: str, record: LinkRecord) -> tuple[str, str | None] | None:
    """(head, tail): the Location is head + click id + tail; tail None when no id goes in.
    None when that cannot be said (the destination itself holds the stand-in)."""
    if _PLACE in url:
        return None
    location, tracked = rewrite(url, record, [], _PLACE)
    if not tracked:
        return location, None
    head, _, tail = location.partition(_PLACE)
    return head, tail


def rewrite(
    url: str, record: LinkRecord, forwarded: list[tuple[str, str]], click_id: str
) -> tuple[str, bool]:
    """`finish` done the long way: parse, merge, encode."""
    parts = urlsplit(url)
    own = parse_qsl(parts.query, keep_blank_values=True)
    if is_signed(own):
        return url, False
    merged: dict[str, str] = dict(own)
    if record.forward_query:
        merged.update(forwarded)
    for name, value in (record.utm or {}).items():
        merged[f"utm_{name}"] = value
    tracked = record.track_conversions
    if tracked:
        merged[TOKEN_PARAM] = CLICK_TOKEN_PREFIX + click_id
    query = urlencode(list(merged.items()))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment)), tracked


def forwarded_params(query_string: bytes) -> tuple[list[tuple[str, str]], bool]:
    """The visitor's query parameters minus `qr`, and whether `qr=1` marked a QR scan."""
    if not query_string:
        return [], False
    params = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    qr = any(name == "qr" and value == "1" for name, value in params)
    return [(n, v) for n, v in params if n != "qr"], qr


def expired(record: LinkRecord, now_ms: int) -> bool:
    return record.expires_at_ms != 0 and now_ms >= record.expires_at_ms
