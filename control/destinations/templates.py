"""Payload templates: JSON whose string leaves are JMESPath expressions over the envelope.

A template is data, never code: objects and arrays give the body its shape, each string
is a JMESPath expression evaluated against the (redacted) event envelope, and numbers,
booleans and null are constants. A constant string is a JMESPath literal (`'text'`). An
object key whose expression yields null is left out, so optional fields stay optional.

JMESPath is a query language with no way to run code, but a few of its forms can build
a value exponentially larger than the expression (`{a:x,b:x}.{a:[a,b],b:[a,b]}...` doubles
at each step). Templates are evaluated in the relay for every event, so such forms are
refused when the template is saved: an expression may not build from a value it built
itself (a `[...]` or `{...}` on both sides of `.`, `[*]`, `[?]` or `|`), and `map()` is not
available. Taking parts of a built value (`[a, b, c][?@]`) is fine. What remains grows at
most linearly with the expression.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import jmespath
import msgspec
from jmespath import exceptions as jp_errors
from jmespath import functions as jp_functions
from jmespath import visitor as jp_visitor

MAX_TEMPLATE_BYTES = 16_384
MAX_DEPTH = 8
MAX_LEAVES = 200
MAX_EXPRESSION = 1000
MAX_NODES = 200
MAX_KEY = 100

# Nodes whose left child is navigated into.
_NAVIGATING = frozenset(
    {
        "subexpression",
        "index_expression",
        "projection",
        "value_projection",
        "filter_projection",
        "flatten",
        "pipe",
    }
)
# Nodes that build a new value holding their inputs several times over.
_BUILDING = frozenset({"multi_select_list", "multi_select_dict"})
_NODES = (
    _NAVIGATING
    | _BUILDING
    | {
        "function_expression",
        "field",
        "index",
        "slice",
        "literal",
        "current",
        "identity",
        "or_expression",
        "and_expression",
        "not_expression",
        "comparator",
        "expref",
        "key_val_pair",
    }
)


class TemplateError(ValueError):
    """A template that cannot be saved; `path` is where in it (`body.events[0].name`)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


class RenderError(ValueError):
    """An expression failed on this event (say `join` given a number)."""


def _rfc3339(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


_F = TypeVar("_F", bound=Callable[..., Any])


def _signature(*arguments: dict[str, Any]) -> Callable[[_F], _F]:
    decorate: Callable[[_F], _F] = jp_functions.signature(*arguments)
    return decorate


class _Functions(jp_functions.Functions):  # type: ignore[misc]
    """Pure helpers vendors need (hashing, epoch times); each returns null for null."""

    @_signature({"types": ["string", "null"]})
    def _func_lower(self, s: str | None) -> str | None:
        return None if s is None else s.lower()

    @_signature({"types": ["string", "null"]})
    def _func_upper(self, s: str | None) -> str | None:
        return None if s is None else s.upper()

    @_signature({"types": ["string", "null"]})
    def _func_trim(self, s: str | None) -> str | None:
        return None if s is None else s.strip()

    @_signature({"types": ["string", "null"]}, {"types": ["string"]}, {"types": ["string"]})
    def _func_replace(self, s: str | None, old: str, new: str) -> str | None:
        return None if s is None or not old else s.replace(old, new)

    @_signature({"types": ["string", "null"]}, {"types": ["number"]})
    def _func_truncate(self, s: str | None, n: float) -> str | None:
        return None if s is None else s[: max(0, int(n))]

    @_signature({"types": ["string", "null"]})
    def _func_slack_escape(self, s: str | None) -> str | None:
        """Slack's mrkdwn control characters as entities: visitor-controlled text (a UTM
        value) must not become a mention or a link."""
        if s is None:
            return None
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    @_signature({"types": ["string", "number", "null"]})
    def _func_sha256(self, s: str | float | None) -> str | None:
        """Hex SHA-256 of the UTF-8 text (Meta wants customer data hashed this way)."""
        if s is None:
            return None
        text = s if isinstance(s, str) else msgspec.json.encode(s).decode()
        return hashlib.sha256(text.encode()).hexdigest()

    @_signature({"types": ["string", "null"]})
    def _func_unix_seconds(self, s: str | None) -> int | None:
        when = _rfc3339(s)
        return None if when is None else int(when.timestamp())

    @_signature({"types": ["string", "null"]})
    def _func_unix_micros(self, s: str | None) -> int | None:
        when = _rfc3339(s)
        if when is None:
            return None
        return (when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


# One interpreter for every evaluation: it keeps no state between them but a method cache.
_INTERPRETER = jp_visitor.TreeInterpreter(jmespath.Options(custom_functions=_Functions()))
FUNCTIONS = frozenset(_Functions.FUNCTION_TABLE) - {"map"}


# A compiled template: ("obj", ((key, node), ...)) | ("list", (node, ...))
#                      | ("expr", AST, source) | ("path", (name, ...)) | ("const", value)
Node = tuple[Any, ...]


@dataclass(frozen=True)
class Template:
    root: Node
    source: bytes  # canonical JSON, for caching and display


def _check_ast(node: dict[str, Any], count: list[int]) -> str | None:
    count[0] += 1
    if count[0] > MAX_NODES:
        return f"the expression has more than {MAX_NODES} parts"
    kind = node.get("type")
    if kind not in _NODES:
        return f"{kind!r} expressions are not supported in templates"
    if kind == "function_expression":
        name = node.get("value")
        if name not in FUNCTIONS:
            return f"unknown function {name}()" if name != "map" else "map() is not available"
        spec = _Functions.FUNCTION_TABLE[name]["signature"]
        given = len(node["children"])
        variadic = bool(spec) and spec[-1].get("variadic")
        if (given < len(spec)) if variadic else (given != len(spec)):
            return f"{name}() takes {len(spec)} argument{'s' if len(spec) != 1 else ''}"
    children = [c for c in node.get("children", []) if isinstance(c, dict)]
    # Building from a value built earlier is what compounds; taking parts of one is not.
    if kind in _NAVIGATING and len(children) > 1 and _builds(children[0]) and _builds(children[1]):
        return (
            "an expression may not build from a value it built itself "
            "(a [...] or {...} on both sides of '.', '[*]', '[?]' or '|')"
        )
    for child in children:
        found = _check_ast(child, count)
        if found:
            return found
    return None


def _builds(node: dict[str, Any]) -> bool:
    if node.get("type") in _BUILDING:
        return True
    return any(_builds(c) for c in node.get("children", []) if isinstance(c, dict))


def compile_expression(source: str, path: str) -> Any:
    if not source.strip():
        raise TemplateError(path, "an empty string is not an expression; write '' for empty text")
    if len(source) > MAX_EXPRESSION:
        raise TemplateError(path, f"an expression is at most {MAX_EXPRESSION} characters")
    try:
        parsed = jmespath.compile(source)
    except jp_errors.JMESPathError as exc:
        why = str(exc).splitlines()[0].removeprefix("Invalid jmespath expression: ").rstrip(":")
        where = getattr(exc, "lex_position", None)
        at = f" at character {where}" if isinstance(where, int) else ""
        raise TemplateError(path, f"{source!r} is not a JMESPath expression{at}: {why}") from None
    problem = _check_ast(parsed.parsed, [0])
    if problem:
        raise TemplateError(path, f"{source!r}: {problem}")
    return parsed


def _compile(value: Any, path: str, depth: int, leaves: list[int]) -> Node:
    if depth > MAX_DEPTH:
        raise TemplateError(path, f"a template nests at most {MAX_DEPTH} levels")
    if isinstance(value, dict):
        items = []
        for key, child in value.items():
            if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY:
                raise TemplateError(path, f"object keys are 1 to {MAX_KEY} characters")
            items.append((key, _compile(child, _join(path, key), depth + 1, leaves)))
        return ("obj", tuple(items))
    if isinstance(value, list):
        return (
            "list",
            tuple(_compile(c, f"{path}[{i}]", depth + 1, leaves) for i, c in enumerate(value)),
        )
    leaves[0] += 1
    if leaves[0] > MAX_LEAVES:
        raise TemplateError(path, f"a template has at most {MAX_LEAVES} values")
    if isinstance(value, str):
        parsed = compile_expression(value, path)
        names = _field_path(parsed.parsed)
        # Most leaves are plain field paths (`data.utm_campaign`): looked up directly.
        return ("path", names) if names is not None else ("expr", parsed.parsed, value)
    return ("const", value)


def _field_path(node: dict[str, Any]) -> tuple[str, ...] | None:
    if node["type"] == "field":
        return (node["value"],)
    if node["type"] == "subexpression":
        left, right = node["children"]
        head, tail = _field_path(left), _field_path(right)
        if head is not None and tail is not None:
            return head + tail
    return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def compile_template(raw: Any, path: str = "template") -> Template:
    """Validate and compile; raises TemplateError naming the bad place and expression."""
    source = msgspec.json.encode(raw)
    if len(source) > MAX_TEMPLATE_BYTES:
        raise TemplateError(path, f"a template is at most {MAX_TEMPLATE_BYTES} bytes of JSON")
    if not isinstance(raw, dict | list):
        raise TemplateError(path, "a template is a JSON object or array")
    return _cached(source, path)


@functools.lru_cache(maxsize=512)
def _cached(source: bytes, path: str) -> Template:
    return Template(_compile(msgspec.json.decode(source), path, 1, [0]), source)


def _render(node: Node, envelope: dict[str, Any]) -> Any:
    kind = node[0]
    if kind == "path":
        value: Any = envelope
        for name in node[1]:
            if not isinstance(value, dict):
                return None
            value = value.get(name)
        return value
    if kind == "expr":
        try:
            return _INTERPRETER.visit(node[1], envelope)
        except (jp_errors.JMESPathError, ValueError, TypeError, OverflowError) as exc:
            raise RenderError(f"{node[2]!r}: {exc}") from None
    if kind == "const":
        return node[1]
    if kind == "list":
        return [_render(child, envelope) for child in node[1]]
    out = {}
    for key, child in node[1]:
        value = _render(child, envelope)
        if value is not None:
            out[key] = value
    return out


def render(template: Template, envelope: dict[str, Any]) -> Any:
    """The body this template makes of this envelope; RenderError if an expression fails."""
    return _render(template.root, envelope)


def merge(base: Any, override: Any) -> Any:
    """`override` laid over `base`: objects merge key by key, anything else replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = merge(base[key], value) if key in base else value
        return out
    return override
