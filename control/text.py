"""Checks on user-given text shared by the named resources (tags, spaces, UTM presets, keys).

Each resource passes its own word ("tag", "space", ...), field and bounds; the rules and the
error codes are the same everywhere, so integrators see one behaviour.
"""

from __future__ import annotations

import unicodedata
import uuid

from control.errors import ApiError, Conflict

# Free text (a description) may hold line breaks and tabs; names and one-line values not.
MULTILINE = frozenset("\n\r\t")


def has_hidden(text: str, allowed: frozenset[str] = frozenset()) -> bool:
    """Whether `text` holds a character outside `allowed` that is not plainly visible."""
    # Category C (controls, bidi overrides, zero width) and line separators: they would make
    # two different names look alike, break a one-line display, or smuggle line breaks into
    # URLs. NUL is among them, which PostgreSQL text cannot hold.
    return any(
        c not in allowed
        and (unicodedata.category(c)[0] == "C" or unicodedata.category(c) in ("Zl", "Zp"))
        for c in text
    )


def clean_name(raw: str, *, what: str, max_len: int, field: str = "name", nfc: bool = True) -> str:
    """The stored form of a `what` name (trimmed, NFC unless `nfc` is False), or 422
    validation_failed on `field`. Names are compared exactly in this form."""
    # API key names are trimmed only, as their schema documents; the others are normalised
    # so that the same name typed on two keyboards is one name.
    name = unicodedata.normalize("NFC", raw).strip() if nfc else raw.strip()
    if not 1 <= len(name) <= max_len:
        raise ApiError.validation(
            f"A {what} name is 1 to {max_len} characters after trimming.", field
        )
    if has_hidden(name):
        raise ApiError.validation(
            f"A {what} name must not contain control or invisible characters.", field
        )
    return name


def lookup_name(raw: str, max_len: int) -> str | None:
    """`raw` in the stored form of a name, or None when no stored name could equal it."""
    name = unicodedata.normalize("NFC", raw).strip()
    # Not looked up at all rather than not found: NUL would upset the driver.
    return name if 1 <= len(name) <= max_len and not has_hidden(name) else None


def clean_text(
    raw: str | None,
    *,
    what: str,
    field: str,
    max_len: int,
    allowed: frozenset[str] = frozenset(),
) -> str | None:
    """Optional free text (trimmed, not normalised): None when blank, else at most `max_len`
    characters with no hidden ones but `allowed`; 422 validation_failed on `field`."""
    text = (raw or "").strip()
    if len(text) > max_len:
        raise ApiError.validation(f"A {what} is at most {max_len} characters.", field)
    if has_hidden(text, allowed):
        raise ApiError.validation(
            f"A {what} must not contain control or invisible characters.", field
        )
    return text or None


def name_taken(what: str, name: str) -> ApiError:
    """409 for a `what` name already used in the workspace (the unique index decided)."""
    return Conflict("name_taken", f"A {what} named {name!r} already exists.", field="name")


def parse_id(raw: str, what: str) -> uuid.UUID:
    """An id from the path; a malformed one is simply no such `what` (404 `what`_not_found)."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ApiError.not_found(what) from None


def search_filter(q: str | None) -> str | None:
    """The `q` substring filter of a list endpoint, None when blank; 400 invalid_query."""
    value = (q or "").strip()
    if has_hidden(value):
        raise ApiError("invalid_query", "`q` must not contain control characters.", field="q")
    return value or None
