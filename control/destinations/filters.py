"""Which events a destination wants, decided at fan-out so no delivery is made for the rest.

Every filter given must hold (AND); within one filter, any listed value will do (OR). An
event that lacks the field a filter looks at does not pass it (a lifecycle event has no
touch type, so a touch-type filter lets only clicks and scans through), except for `ne`,
`not_in` and `not_exists`, which a missing field satisfies.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from control.destinations import paths
from control.destinations.schemas import Condition, Filters
from control.errors import Unprocessable

TOUCH_TYPES = ("link", "qr")
MAX_VALUES = 100
MAX_CONDITIONS = 20
MAX_TEXT = 500
SCALAR_OPS = frozenset({"eq", "ne"})
LIST_OPS = frozenset({"in", "not_in"})
TEXT_OPS = frozenset({"prefix", "suffix", "contains"})
NUMBER_OPS = frozenset({"gt", "gte", "lt", "lte"})
PRESENCE_OPS = frozenset({"exists", "not_exists"})
OPS = SCALAR_OPS | LIST_OPS | TEXT_OPS | NUMBER_OPS | PRESENCE_OPS


def _invalid(field: str, detail: str) -> Unprocessable:
    return Unprocessable("invalid_filter", detail, field=field)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _ids(raw: list[str], field: str, what: str) -> list[str]:
    out = []
    for i, item in enumerate(raw):
        try:
            out.append(str(uuid.UUID(item)))
        except ValueError:
            raise _invalid(f"{field}[{i}]", f"{item[:60]!r} is not a {what} id.") from None
    return list(dict.fromkeys(out))


def _condition(c: Condition, field: str) -> dict[str, Any]:
    problem = paths.problem(c.field)
    if problem:
        raise _invalid(f"{field}.field", problem)
    if c.op not in OPS:
        raise _invalid(f"{field}.op", f"Unknown op {c.op!r}; one of {', '.join(sorted(OPS))}.")
    value = c.value
    if c.op in PRESENCE_OPS:
        if value is not None:
            raise _invalid(f"{field}.value", f"`{c.op}` takes no value.")
        return {"field": c.field, "op": c.op}
    if c.op in SCALAR_OPS and not _scalar(value):
        raise _invalid(f"{field}.value", f"`{c.op}` compares with a string, number, bool or null.")
    if c.op in LIST_OPS and not (
        isinstance(value, list) and 1 <= len(value) <= MAX_VALUES and all(map(_scalar, value))
    ):
        raise _invalid(
            f"{field}.value", f"`{c.op}` takes a list of 1 to {MAX_VALUES} strings or numbers."
        )
    if c.op in TEXT_OPS and not (isinstance(value, str) and value):
        raise _invalid(f"{field}.value", f"`{c.op}` takes a non-empty string.")
    if c.op in NUMBER_OPS and (not isinstance(value, int | float) or isinstance(value, bool)):
        raise _invalid(f"{field}.value", f"`{c.op}` takes a number.")
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise _invalid(f"{field}.value", f"A value is at most {MAX_TEXT} characters.")
    return {"field": c.field, "op": c.op, "value": value}


def clean(raw: Filters, field: str = "filters") -> dict[str, Any]:
    """The stored form (only the filters given); 422 invalid_filter naming the bad place."""
    out: dict[str, Any] = {}
    if raw.touch_types is not None:
        bad = [t for t in raw.touch_types if t not in TOUCH_TYPES]
        if bad:
            raise _invalid(f"{field}.touch_types", f"Touch types are {' and '.join(TOUCH_TYPES)}.")
        out["touch_types"] = list(dict.fromkeys(raw.touch_types))
    if raw.domain_ids is not None:
        out["domain_ids"] = _ids(raw.domain_ids, f"{field}.domain_ids", "domain")
    if raw.link_ids is not None:
        out["link_ids"] = _ids(raw.link_ids, f"{field}.link_ids", "link")
    if raw.tags is not None:
        names = [t.strip() for t in raw.tags]
        if any(not n or len(n) > MAX_TEXT for n in names):
            raise _invalid(f"{field}.tags", "Tag names are not empty.")
        out["tags"] = list(dict.fromkeys(names))
    if raw.conditions:
        if len(raw.conditions) > MAX_CONDITIONS:
            raise _invalid(f"{field}.conditions", f"At most {MAX_CONDITIONS} conditions.")
        out["conditions"] = [
            _condition(c, f"{field}.conditions[{i}]") for i, c in enumerate(raw.conditions)
        ]
    return out


def needs_tags(filters: dict[str, Any]) -> bool:
    return bool(filters.get("tags"))


def link_id(envelope: dict[str, Any]) -> uuid.UUID | None:
    """The link an event is about, when it names one (click, scan, link lifecycle, an
    attributed conversion)."""
    value = paths.get(envelope, "data.link_id")
    if not isinstance(value, str):
        value = paths.get(envelope, "data.attribution.link_id")
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _holds(condition: dict[str, Any], envelope: dict[str, Any]) -> bool:
    op = condition["op"]
    actual = paths.get(envelope, condition["field"])
    if op == "exists":
        return actual is not paths.MISSING and actual is not None
    if op == "not_exists":
        return actual is paths.MISSING or actual is None
    if actual is paths.MISSING:
        return op in ("ne", "not_in")
    value = condition["value"]
    if op in SCALAR_OPS:
        equal = _same(actual, value)
        return equal if op == "eq" else not equal
    if op in LIST_OPS:
        found = any(_same(actual, v) for v in value)
        return found if op == "in" else not found
    if op in TEXT_OPS:
        if not isinstance(actual, str):
            return False
        if op == "prefix":
            return actual.startswith(value)
        if op == "suffix":
            return actual.endswith(value)
        return value in actual
    if not isinstance(actual, int | float) or isinstance(actual, bool):
        return False
    return bool(
        {
            "gt": actual > value,
            "gte": actual >= value,
            "lt": actual < value,
            "lte": actual <= value,
        }[op]
    )


def _same(a: Any, b: Any) -> bool:
    # JSON semantics: true is not 1, and 1 is 1.0.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)


def matches(
    filters: dict[str, Any], envelope: dict[str, Any], tags: Collection[str] | None = None
) -> bool:
    """Whether the event passes; `tags` are the names of its link's tags (when asked for)."""
    for key, field in (("touch_types", "data.touch_type"), ("domain_ids", "data.domain_id")):
        wanted = filters.get(key)
        if wanted is not None and paths.get(envelope, field) not in wanted:
            return False
    wanted_links = filters.get("link_ids")
    if wanted_links is not None:
        about = link_id(envelope)
        if about is None or str(about) not in wanted_links:
            return False
    wanted_tags = filters.get("tags")
    if wanted_tags is not None and not set(wanted_tags) & set(tags or ()):
        return False
    return all(_holds(c, envelope) for c in filters.get("conditions", ()))
