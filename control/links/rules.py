"""What a destination and a slug may be. Pure functions: the rules are unit-tested alone.

Slugs are case-insensitive: they are stored and matched lower-case, because short links
are read aloud, printed and typed from posters, where case is lost.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from urllib.parse import quote, urlsplit, urlunsplit

from control.errors import ApiError
from shared.slugs import SLUG_MAX, SLUG_RE

MAX_DESTINATION = 2048
# Paths the edge or the product needs, and words that invite phishing look-alikes.
RESERVED = frozenset(
    {
        "_",
        "api",
        "admin",
        "app",
        "assets",
        "dashboard",
        "favicon.ico",
        "health",
        "help",
        "login",
        "logout",
        "metrics",
        "robots.txt",
        "settings",
        "signin",
        "signup",
        "static",
        "status",
        "support",
        "www",
        "account",
        "billing",
        "oauth",
        "auth",
        "qr",
    }
)
# Generated slugs avoid look-alike characters (0/o, 1/l/i).
GENERATED_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
GENERATED_LENGTH = 7

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EXPLICIT_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_HOST_PORT = re.compile(r"^[^:/?#]+:\d+(?:[/?#]|$)")
_HOST = re.compile(
    r"^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
)


def normalise_destination(raw: str) -> str:
    """Trim, add `https://` when no scheme is given, allow only http(s) to a real host."""
    value = raw.strip()
    if not value:
        raise ApiError.invalid_destination("The destination is empty.")
    if _CONTROL.search(value):
        raise ApiError.invalid_destination("The destination contains control characters.")
    if any(ch.isspace() for ch in value):
        raise ApiError.invalid_destination("The destination contains white space.")
    if _EXPLICIT_SCHEME.match(value) and not _HOST_PORT.match(value):
        scheme = value.split(":", 1)[0].lower()
        if scheme not in ("http", "https"):
            raise ApiError.invalid_destination(
                f"Only http and https destinations are allowed, not {scheme}:."
            )
    else:
        value = "https://" + value.lstrip("/")
    try:
        parts = urlsplit(value)
        host = (parts.hostname or "").rstrip(".")
        port = parts.port  # raises on a malformed port
    except ValueError as exc:
        raise ApiError.invalid_destination(f"The destination is not a valid URL ({exc}).") from None
    if not host:
        raise ApiError.invalid_destination("The destination has no host.")
    if port == 0:
        raise ApiError.invalid_destination("The destination port 0 is not valid.")
    if parts.netloc.rsplit("@", 1)[-1].startswith("[") and ":" not in host:
        # `[v1.x]` (IPvFuture) would otherwise lose its brackets and become a host name.
        raise ApiError.invalid_destination(f"The destination host {host!r} is not valid.")
    if parts.username is not None or parts.password is not None:
        # `https://bank.com@evil.example/` reads as bank.com to people: refuse it.
        raise ApiError.invalid_destination("The destination must not carry credentials.")
    host = _ascii_host(host)
    netloc = host + (f":{port}" if port is not None else "")
    normalised = urlunsplit(
        (
            parts.scheme.lower(),
            netloc,
            _ascii(parts.path),
            _ascii(parts.query),
            _ascii(parts.fragment),
        )
    )
    if len(normalised) > MAX_DESTINATION:
        raise ApiError.invalid_destination(
            f"The destination is longer than {MAX_DESTINATION} characters."
        )
    return normalised


def normalise_slug(raw: str) -> str:
    if not raw.isascii():  # before lower(): it maps e.g. U+212A KELVIN SIGN to "k"
        raise ApiError.invalid_slug("A slug uses a-z, 0-9, '-' and '_' only.")
    slug = raw.strip().lower()
    if not slug:
        raise ApiError.invalid_slug("The slug is empty.")
    if len(slug) > SLUG_MAX:
        raise ApiError.invalid_slug(f"The slug is longer than {SLUG_MAX} characters.")
    if slug in RESERVED:
        raise ApiError.slug_reserved(slug)
    if not SLUG_RE.match(slug):
        raise ApiError.invalid_slug(
            "A slug uses a-z, 0-9, '-' and '_', and starts and ends with a letter or digit."
        )
    return slug


def generate_slug(length: int = GENERATED_LENGTH) -> str:
    return "".join(secrets.choice(GENERATED_ALPHABET) for _ in range(length))


def _ascii_host(host: str) -> str:
    if ":" in host:  # IPv6 literal
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ApiError.invalid_destination(
                f"The destination host {host!r} is not valid."
            ) from None
        return f"[{host}]"
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ApiError.invalid_destination(f"The destination host {host!r} is not valid.") from None
    if not _HOST.match(ascii_host):
        raise ApiError.invalid_destination(f"The destination host {host!r} is not valid.")
    return ascii_host


def _ascii(part: str) -> str:
    """Percent-encode what a Location header cannot carry, keep existing escapes as they are."""
    return quote(part, safe="/%:@!$&'()*+,;=-._~?#[]")


UTM_FIELDS = ("source", "medium", "campaign", "term", "content")


def clean_text(value: str | None, field: str, code: str = "validation_failed") -> str | None:
    """Trimmed; None when empty; control characters refused."""
    if value is None:
        return None
    text = value.strip()
    if _CONTROL.search(text):
        raise ApiError(code, f"{field} contains control characters.", field=field)
    return text or None


def merge_utm(preset: dict[str, str | None], explicit: dict[str, str | None]) -> dict[str, str]:
    """Preset values, overridden field by field by explicit ones; empty values dropped."""
    merged: dict[str, str] = {}
    for name in UTM_FIELDS:
        value = explicit.get(name)
        if value is None:
            value = preset.get(name)
        if value:
            merged[name] = value
    return merged


def check_expiry(expires_at: object) -> None:
    import datetime as dt

    if isinstance(expires_at, dt.datetime) and expires_at.tzinfo is None:
        raise ApiError.validation(
            "expires_at needs a time zone, e.g. 2027-01-01T00:00:00Z.", "expires_at"
        )


def normalise_routing(routing: dict[str, object]) -> dict[str, object]:
    """Normalise every destination in a routing rule set; drop empty sections."""
    out: dict[str, object] = {}
    countries = routing.get("countries") or {}
    assert isinstance(countries, dict)
    if countries:
        out["countries"] = {
            str(code).upper(): _routed(url, f"routing.countries.{code}")
            for code, url in countries.items()
        }
    devices = routing.get("devices") or {}
    assert isinstance(devices, dict)
    if devices:
        out["devices"] = {
            name: _routed(url, f"routing.devices.{name}") for name, url in devices.items()
        }
    variants = routing.get("variants") or []
    assert isinstance(variants, list)
    if variants:
        out["variants"] = [
            {
                "destination": _routed(v["destination"], f"routing.variants[{i}]"),
                "weight": int(v.get("weight", 1)),
            }
            for i, v in enumerate(variants)
        ]
    return out


def _routed(url: object, field: str) -> str:
    try:
        return normalise_destination(str(url))
    except ApiError as exc:
        exc.extra["field"] = field
        raise
