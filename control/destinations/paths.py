"""Dotted field paths (`data.utm_campaign`) into an event envelope: filters and redaction.

Deliberately simpler than the template language: names of object keys joined by dots, no
indexes or wildcards, so a path means exactly one place and is safe to show back.
"""

from __future__ import annotations

import re
from typing import Any

MAX_PATH = 200
MAX_SEGMENTS = 8
_SEGMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MISSING: Any = object()  # the path leads nowhere (distinct from a null value)


def problem(path: str) -> str | None:
    """Why `path` is not a valid field path, or None when it is."""
    if not path or len(path) > MAX_PATH:
        return f"A field path is 1 to {MAX_PATH} characters."
    segments = path.split(".")
    if len(segments) > MAX_SEGMENTS:
        return f"A field path has at most {MAX_SEGMENTS} parts."
    if not all(_SEGMENT.match(s) for s in segments):
        return f"{path!r} is not a field path: names (letters, digits, _) joined by dots."
    return None


def get(document: Any, path: str) -> Any:
    """The value at `path`, or MISSING."""
    node = document
    for segment in path.split("."):
        if not isinstance(node, dict) or segment not in node:
            return MISSING
        node = node[segment]
    return node


def without(document: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    """A copy of `document` with the fields at `paths` removed; `document` is not changed.

    Only the objects along each path are copied: the rest is shared, never mutated.
    """
    out = dict(document)
    for path in paths:
        *parents, last = path.split(".")
        node = out
        for segment in parents:
            child = node.get(segment)
            if not isinstance(child, dict):
                break
            node[segment] = node = dict(child)
        else:
            node.pop(last, None)
    return out
