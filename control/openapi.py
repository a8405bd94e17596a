"""Routes and the OpenAPI 3.1 document come from the same declarations, so they agree."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import msgspec.inspect
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Endpoint = Callable[[Request], Awaitable[Response]]
REF = "#/components/schemas/{name}"
SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "A workspace API key (ric_…).",
    },
    "installationToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "An installation token for Zapier, Make or n8n: it reaches only the "
        "/api/v1/hooks routes, with the hooks:read / hooks:write scopes it was given.",
    },
    "conversionSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Nim-Signature",
        "description": 'v1=<hex HMAC-SHA256 of "{X-Nim-Timestamp}.{raw body}"> with the '
        "workspace's conversion secret; X-Nim-Timestamp (unix seconds) is required too.",
    },
}


class Problem(msgspec.Struct):
    """RFC 9457 problem details; `code` is stable and meant for programs."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    endpoint: Endpoint
    summary: str
    scope: str | None = None
    body: type | None = None
    response: type | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    params: dict[str, str] = field(default_factory=dict)
    query: type | None = None  # the struct the handler reads query parameters into
    # Non-JSON success bodies (images): their media types, when `response` is None.
    media_types: tuple[str, ...] = ()
    # A non-JSON request body (e.g. text/csv), taken as a string, when `body` is None.
    request_media_type: str | None = None
    # Which credential the route takes: a key of SECURITY_SCHEMES.
    security: str = "bearer"

    def route(self) -> Route:
        return Route(self.path, self.endpoint, methods=[self.method])


def document(operations: Sequence[Operation], title: str, version: str) -> dict[str, Any]:
    types = {t for op in operations for t in (op.body, op.response) if t is not None}
    roots = sorted([*types, Problem], key=lambda t: t.__name__)
    _, components = msgspec.json.schema_components(
        roots, ref_template="#/components/schemas/{name}"
    )
    _mark_datetimes(components, roots)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        item: dict[str, Any] = {"summary": op.summary, "operationId": op.endpoint.__name__}
        parameters: list[dict[str, Any]] = [
            {
                "name": n,
                "in": "path",
                "required": True,
                "description": d,
                "schema": {"type": "string"},
            }
            for n, d in op.params.items()
        ]
        if op.query is not None:
            parameters.extend(_query_parameters(op.query))
        if parameters:
            item["parameters"] = parameters
        if op.scope:
            item["security"] = [{op.security: [op.scope]}]
        elif op.security != "bearer":
            item["security"] = [{op.security: []}]
        if op.body is not None:
            item["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(op.body)}},
            }
        elif op.request_media_type is not None:
            item["requestBody"] = {
                "required": True,
                "content": {op.request_media_type: {"schema": {"type": "string"}}},
            }
        responses: dict[str, Any] = {}
        ok: dict[str, Any] = {"description": "OK"}
        if op.response is not None:
            ok["content"] = {"application/json": {"schema": _ref(op.response)}}
        elif op.media_types:
            ok["content"] = {media: {} for media in op.media_types}
        responses[str(op.status)] = ok
        # Problems every operation of a kind can answer, so the document never under-promises.
        codes = set(op.errors)
        if op.scope:
            codes |= {401, 403, 429}
        if op.body is not None or op.request_media_type is not None:
            codes |= {400, 415, 422}
        if op.query is not None:
            codes |= {400, 422}
        if op.params:
            codes.add(404)
        for code in sorted(codes):
            responses[str(code)] = {
                "description": "Problem",
                "content": {"application/problem+json": {"schema": _ref(Problem)}},
            }
        item["responses"] = responses
        paths.setdefault(op.path, {})[op.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


def _query_parameters(query: type) -> list[dict[str, Any]]:
    """One parameter per struct field; list fields repeat (`?tag=a&tag=b`)."""
    (schema,), components = msgspec.json.schema_components([query], ref_template=REF)
    _mark_datetimes(components, [query])
    body = components[schema["$ref"].rsplit("/", 1)[1]]
    required = set(body.get("required", []))
    out = []
    for name, prop in body.get("properties", {}).items():
        # A query string cannot carry null: a parameter is left out by being absent.
        options = [alt for alt in prop.get("anyOf", []) if alt.get("type") != "null"]
        if "anyOf" in prop and len(options) == 1:
            rest = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
            prop = {**rest, **options[0]}
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if prop.get("type") == "array" or any(
            alt.get("type") == "array" for alt in prop.get("anyOf", [])
        ):
            parameter.update({"style": "form", "explode": True})
        out.append(parameter)
    return out


def _mark_datetimes(components: dict[str, Any], roots: Sequence[type]) -> None:
    """msgspec describes datetimes as plain strings; say `format: date-time` where they are."""
    for info in msgspec.inspect.multi_type_info(list(roots)):
        for struct in _structs(info):
            props = components.get(struct.cls.__name__, {}).get("properties", {})
            for f in struct.fields:
                if _is_datetime(f.type) and f.encode_name in props:
                    prop = props[f.encode_name]
                    for alt in [prop, *prop.get("anyOf", [])]:
                        if alt.get("type") == "string":
                            alt["format"] = "date-time"


def _structs(info: Any, seen: set[int] | None = None) -> list[Any]:
    seen = set() if seen is None else seen
    if id(info) in seen:
        return []
    seen.add(id(info))
    found = [info] if isinstance(info, msgspec.inspect.StructType) else []
    children: list[Any] = []
    if isinstance(info, msgspec.inspect.StructType):
        children = [f.type for f in info.fields]
    elif isinstance(info, msgspec.inspect.UnionType):
        children = list(info.types)
    elif isinstance(
        info,
        (
            msgspec.inspect.ListType,
            msgspec.inspect.SetType,
            msgspec.inspect.FrozenSetType,
            msgspec.inspect.VarTupleType,
        ),
    ):
        children = [info.item_type]
    elif isinstance(info, msgspec.inspect.DictType):
        children = [info.key_type, info.value_type]
    elif isinstance(info, msgspec.inspect.Metadata):
        children = [info.type]
    for child in children:
        found.extend(_structs(child, seen))
    return found


def _is_datetime(info: Any) -> bool:
    if isinstance(info, msgspec.inspect.Metadata):
        return _is_datetime(info.type)
    if isinstance(info, msgspec.inspect.UnionType):
        return any(_is_datetime(t) for t in info.types)
    return isinstance(info, msgspec.inspect.DateTimeType)


def _ref(t: type) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{t.__name__}"}
