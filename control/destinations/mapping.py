"""The body a destination gets for an event: redact, then map, then encode. Done once, at
fan-out; the bytes are stored on the delivery and every attempt and replay sends them."""

from __future__ import annotations

from typing import Any

import msgspec

from control.destinations import paths, presets, templates

ENVELOPE_ORDER = ("id", "type", "api_version", "created_at", "organization_id", "workspace_id")
MAX_BODY = 262_144


class MappingError(ValueError):
    """This event could not be mapped for this destination; nothing is sent."""


def ordered(envelope: dict[str, Any]) -> dict[str, Any]:
    """The envelope with its keys in their documented order (JSONB reorders keys)."""
    out = {key: envelope[key] for key in ENVELOPE_ORDER if key in envelope}
    out.update((k, v) for k, v in envelope.items() if k not in out)
    return out


def encode_envelope(envelope: dict[str, Any]) -> bytes:
    return msgspec.json.encode(ordered(envelope))


def render(
    kind: str,
    template: Any,
    redact: list[str],
    config: dict[str, Any],
    envelope: dict[str, Any],
) -> tuple[Any, bool]:
    """The JSON value to send and whether it is the (redacted) envelope; MappingError."""
    redacted = paths.without(envelope, redact) if redact else envelope
    effective = presets.effective_template(kind, template)
    if effective is None:
        return redacted, True
    try:
        compiled = templates.compile_template(effective)
        out = templates.render(compiled, redacted)
    except (templates.TemplateError, templates.RenderError) as exc:
        raise MappingError(f"mapping failed: {exc}") from None
    return presets.finish(kind, config, out), False


def body(
    kind: str,
    template: Any,
    redact: list[str],
    config: dict[str, Any],
    envelope: dict[str, Any],
) -> bytes:
    value, whole = render(kind, template, redact, config, envelope)
    data = encode_envelope(value) if whole else msgspec.json.encode(value)
    if len(data) > MAX_BODY:
        raise MappingError(f"mapping failed: the body is over {MAX_BODY} bytes")
    return data
