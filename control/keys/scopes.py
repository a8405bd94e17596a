"""API key scopes: `<resource>:<read|write>`; write implies read.

`moderation:write` (take links down) is never part of a key's default scopes: it must be
asked for explicitly.
"""

from __future__ import annotations

RESOURCES = ("links", "domains", "webhooks", "analytics", "conversions", "keys")
DEFAULT_SCOPES = tuple(f"{r}:{a}" for r in RESOURCES for a in ("read", "write"))
MODERATION = "moderation:write"
ALL_SCOPES = (*DEFAULT_SCOPES, MODERATION)


def grants(held: list[str] | tuple[str, ...], wanted: str) -> bool:
    if wanted in held:
        return True
    resource, _, action = wanted.partition(":")
    return action == "read" and f"{resource}:write" in held


def unknown(scopes: list[str]) -> list[str]:
    return [s for s in scopes if s not in ALL_SCOPES]
