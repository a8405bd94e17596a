"""Routes and the OpenAPI 3.1 document come from the same declarations, so they agree."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Endpoint = Callable[[Request], Awaitable[Response]]


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

    def route(self) -> Route:
        return Route(self.path, self.endpoint, methods=[self.method])


def document(operations: Sequence[Operation], title: str, version: str) -> dict[str, Any]:
    types = {t for op in operations for t in (op.body, op.response) if t is not None}
    _, components = msgspec.json.schema_components(
        sorted([*types, Problem], key=lambda t: t.__name__),
        ref_template="#/components/schemas/{name}",
    )
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        item: dict[str, Any] = {"summary": op.summary, "operationId": op.endpoint.__name__}
        if op.params:
            item["parameters"] = [
                {
                    "name": n,
                    "in": "path",
                    "required": True,
                    "description": d,
                    "schema": {"type": "string"},
                }
                for n, d in op.params.items()
            ]
        if op.scope:
            item["security"] = [{"bearer": [op.scope]}]
        if op.body is not None:
            item["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(op.body)}},
            }
        responses: dict[str, Any] = {}
        ok: dict[str, Any] = {"description": "OK"}
        if op.response is not None:
            ok["content"] = {"application/json": {"schema": _ref(op.response)}}
        responses[str(op.status)] = ok
        codes = set(op.errors) | ({401, 403} if op.scope else set())
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
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A workspace API key (ric_…).",
                }
            },
        },
    }


def _ref(t: type) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{t.__name__}"}
