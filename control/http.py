"""msgspec at the HTTP boundary: decode requests into structs, encode responses, problems."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from control.errors import ApiError, Internal, MethodNotAllowed, NotFound

T = TypeVar("T")
log = logging.getLogger("ricochet.control")
_encoder = msgspec.json.Encoder()
PROBLEM_BASE = "https://ricochet.dev/problems/"
MAX_BODY = 2 * 1024 * 1024


async def read_json(request: Request, type_: type[T]) -> T:
    media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise ApiError.unsupported_media_type()
    body = await request.body()
    if len(body) > MAX_BODY:
        raise ApiError.validation(f"The request body exceeds {MAX_BODY} bytes.")
    return decode(body, type_)


def decode(body: bytes, type_: type[T]) -> T:
    try:
        value = msgspec.json.decode(body, type=type_)
    except msgspec.ValidationError as exc:
        text = str(exc)
        field = None
        if " - at `$." in text:
            text, _, where = text.rpartition(" - at `$.")
            field = where.rstrip("`")
        if text.startswith(("Object missing required field `", "Object contains unknown field `")):
            inner = text.split("`")[1]
            field = f"{field}.{inner}" if field else inner
        raise ApiError.validation(text, field) from None
    except msgspec.DecodeError as exc:
        raise ApiError.malformed_json(str(exc)) from None
    # PostgreSQL text cannot hold NUL, and no field of ours has a use for it.
    if b"\\u0000" in body:
        raise ApiError.validation("Strings must not contain NUL characters.", _nul_field(value))
    return value


def _nul_field(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string holding a NUL, for the problem's `field`."""
    if isinstance(value, str):
        return path or None if "\x00" in value else None
    if isinstance(value, msgspec.Struct):
        items: Any = msgspec.structs.asdict(value).items()
    elif isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = ((f"[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for key, item in items:
        joined = f"{path}{key}" if key.startswith("[") else f"{path}.{key}" if path else key
        found = _nul_field(item, joined)
        if found:
            return found
    return None


def read_query(request: Request, type_: type[T]) -> T:
    """Query parameters into a struct; repeated parameters become lists where the type says."""
    listy = {
        f.name
        for f in msgspec.structs.fields(type_)  # type: ignore[arg-type]
        if getattr(f.type, "__origin__", None) is list or f.type is list
    }
    params: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        if "\x00" in key or any("\x00" in v for v in values):
            raise ApiError(
                "invalid_query",
                "Query parameters must not contain NUL characters.",
                field=key.replace("\x00", ""),
            )
        params[key] = values if key in listy or len(values) > 1 else values[0]
    try:
        return msgspec.convert(params, type_, strict=False)
    except msgspec.ValidationError as exc:
        text, _, where = str(exc).rpartition(" - at `$.")
        if not text:
            text, where = str(exc), ""
        field = where.rstrip("`") or None
        if text.startswith("Object contains unknown field `"):
            field = text.split("`")[1]
        # A malformed cursor keeps its own code, as when it fails to decode later.
        code = "invalid_cursor" if field == "cursor" else "invalid_query"
        raise ApiError(code, text, **({"field": field} if field else {})) from None


def json_bytes(content: Any) -> bytes:
    return _encoder.encode(content)


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(_encoder.encode(content), status, headers, media_type="application/json")


def problem_response(error: ApiError, instance: str | None = None) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + error.code,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "code": error.code,
        **error.extra,
    }
    if instance:
        body["instance"] = instance
    return Response(
        _encoder.encode(body),
        error.status,
        headers=error.headers or None,
        media_type="application/problem+json",
    )


async def on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return problem_response(exc, request.url.path)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error: ApiError = NotFound("route_not_found", f"No route for {request.url.path}.")
    elif exc.status_code == 405:
        error = MethodNotAllowed("method_not_allowed", f"{request.method} is not allowed here.")
    else:
        error = ApiError("http_error", str(exc.detail))
        error.status = exc.status_code
    return problem_response(error, request.url.path)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(Internal("internal_error", "Something went wrong on our side."))
