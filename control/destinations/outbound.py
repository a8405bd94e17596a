"""Where a destination's request goes and with which headers, decided at send time.

Secrets enter here and nowhere else on the way out: vendor keys become an Authorization
header or (GA4, whose API wants it so) a query parameter of the URL, which is never stored;
the body was mapped and stored at fan-out without them.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from control.destinations import crypto, presets
from control.destinations.crypto import Secrets

if TYPE_CHECKING:
    from control.destinations.models import Destination
    from control.settings import ControlSettings


@dataclass(frozen=True)
class Request:
    url: str
    headers: dict[str, str]
    hidden: tuple[str, ...]  # secret values to keep out of any error text
    signing: tuple[str, ...] = ()  # secrets to sign with (X-Nim-Signature), newest first


class _Placeholders(dict[str, Any]):
    """Leaves a setting not given as its {name} (the presets list shows URL patterns)."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _vendor_url(kind: presets.Kind, config: dict[str, Any]) -> str:
    origin = (config.get("base_url") or kind.origin or "").rstrip("/")
    return origin + kind.path.format_map(_Placeholders({**kind.defaults, **config}))


def display_url(kind: str, url: str | None, config: dict[str, Any]) -> str | None:
    """The request URL without secrets, for the API (a Slack webhook URL is a secret)."""
    spec = presets.KINDS[kind]
    if spec.url:
        return url
    if spec.origin is None:
        return None
    if kind == presets.GA4:
        query = urlencode({"measurement_id": config.get("measurement_id", "")})
        return f"{_vendor_url(spec, config)}?{query}"
    return _vendor_url(spec, config)


def build(kind: str, url: str | None, config: dict[str, Any], secrets: Secrets) -> Request:
    spec = presets.KINDS[kind]
    values = secrets.values
    headers: dict[str, str] = {}
    if spec.url:
        assert url is not None
        headers.update(secrets.headers)
        target = url
    elif kind == presets.SLACK:
        target = values["webhook_url"]
    elif kind == presets.SEGMENT:
        # Segment's HTTP API: the write key is the Basic user name, with no password.
        token = base64.b64encode(f"{values['write_key']}:".encode()).decode()
        headers["authorization"] = f"Basic {token}"
        target = _vendor_url(spec, config)
    elif kind == presets.GA4:
        query = urlencode(
            {"measurement_id": config["measurement_id"], "api_secret": values["api_secret"]}
        )
        target = f"{_vendor_url(spec, config)}?{query}"
    elif kind == presets.META_CAPI:
        headers["authorization"] = f"Bearer {values['access_token']}"
        target = _vendor_url(spec, config)
    else:  # pragma: no cover - every kind is handled above
        raise ValueError(f"unknown destination kind {kind!r}")
    hidden = tuple(v for v in (*values.values(), *secrets.headers.values()) if len(v) >= 4)
    return Request(target, headers, hidden)


def prepare(settings: ControlSettings, destination: Destination, now: dt.datetime) -> Request:
    """The request for an attempt; raises cryptography's InvalidToken when the secrets were
    encrypted under another RICOCHET_SECRET_KEY."""
    secrets = crypto.unseal(settings, destination.secrets_encrypted)
    request = build(destination.kind, destination.url, destination.config, secrets)
    signing = tuple(crypto.signing_secrets(settings, destination, now))
    return Request(request.url, request.headers, request.hidden, signing)


def scrub(text: str | None, hidden: tuple[str, ...]) -> str | None:
    """`text` with any secret value in it replaced (an error may quote a URL)."""
    if text is None:
        return None
    for value in hidden:
        text = text.replace(value, "***")
    return text
