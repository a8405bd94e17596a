"""The control plane's one error hierarchy, rendered as RFC 9457 problem+json in one place.

Raise the named constructors from services and handlers; `problem_response` is the only
code that turns an error into HTTP. `code` values are stable: integrators branch on them.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    status: int = 400
    title: str = "Bad request"

    def __init__(self, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.extra = extra
        self.headers: dict[str, str] = {}

    # -- named constructors -------------------------------------------------------------

    @classmethod
    def malformed_json(cls, detail: str) -> ApiError:
        return BadRequest("malformed_json", f"The request body is not valid JSON: {detail}")

    @classmethod
    def validation(cls, detail: str, field: str | None = None) -> ApiError:
        extra = {"field": field} if field else {}
        return Unprocessable("validation_failed", detail, **extra)

    @classmethod
    def invalid_destination(cls, detail: str) -> ApiError:
        return Unprocessable("invalid_destination", detail, field="destination")

    @classmethod
    def invalid_slug(cls, detail: str) -> ApiError:
        return Unprocessable("invalid_slug", detail, field="slug")

    @classmethod
    def slug_reserved(cls, slug: str) -> ApiError:
        return Unprocessable("slug_reserved", f"The slug {slug!r} is reserved.", field="slug")

    @classmethod
    def slug_taken(cls, slug: str, domain: str, link_id: str | None) -> ApiError:
        extra: dict[str, Any] = {"slug": slug, "domain": domain}
        if link_id is not None:  # only ever the caller's own link
            extra["link_id"] = link_id
        return Conflict("slug_taken", f"The slug {slug!r} is already used on {domain}.", **extra)

    @classmethod
    def not_found(cls, what: str) -> ApiError:
        return NotFound(f"{what}_not_found", f"No such {what}.")

    @classmethod
    def unsupported_media_type(cls) -> ApiError:
        return UnsupportedMediaType(
            "unsupported_media_type", "Send the request body as application/json."
        )


class BadRequest(ApiError):
    status, title = 400, "Bad request"


class Unauthorized(ApiError):
    status, title = 401, "Unauthorized"

    @classmethod
    def missing(cls) -> Unauthorized:
        return cls("unauthorized", "Send an API key as `Authorization: Bearer <key>`.")

    @classmethod
    def invalid(cls) -> Unauthorized:
        return cls("invalid_api_key", "The API key is unknown, malformed or revoked.")


class Forbidden(ApiError):
    status, title = 403, "Forbidden"

    @classmethod
    def scope(cls, scope: str) -> Forbidden:
        return cls("insufficient_scope", f"This API key lacks the {scope!r} scope.", scope=scope)


class NotFound(ApiError):
    status, title = 404, "Not found"


class MethodNotAllowed(ApiError):
    status, title = 405, "Method not allowed"


class Conflict(ApiError):
    status, title = 409, "Conflict"


class UnsupportedMediaType(ApiError):
    status, title = 415, "Unsupported media type"


class PreconditionFailed(ApiError):
    status, title = 412, "Precondition failed"


class Unprocessable(ApiError):
    status, title = 422, "Unprocessable content"


class Internal(ApiError):
    status, title = 500, "Internal server error"


class TooManyRequests(ApiError):
    status, title = 429, "Too many requests"

    @classmethod
    def rate_limited(cls, retry_after: int, headers: dict[str, str]) -> TooManyRequests:
        error = cls(
            "rate_limited", f"Too many requests for this API key; retry in {retry_after} s."
        )
        error.headers = {**headers, "retry-after": str(retry_after)}
        return error
