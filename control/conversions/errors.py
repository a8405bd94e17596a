"""The Conversion API's problems: named constructors over control/errors.py's classes.

Codes are stable (integrators branch on them); `field` names the body field at fault in
the request's own dotted terms (`custom_data.value`).
"""

from __future__ import annotations

from control.errors import (
    ApiError,
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
    Unprocessable,
)


class PayloadTooLarge(ApiError):
    status, title = 413, "Content too large"


# -- verification (401/403/404/413: nothing was recorded) ------------------------------------


def missing_header(name: str) -> ApiError:
    return Unauthorized("missing_signature", f"Sign the request: send {name}.", header=name)


def invalid_timestamp() -> ApiError:
    return Unauthorized(
        "invalid_timestamp", "X-Nim-Timestamp must be the Unix time in whole seconds."
    )


def stale_timestamp(tolerance_s: int) -> ApiError:
    return Unauthorized(
        "stale_timestamp",
        f"X-Nim-Timestamp is more than {tolerance_s} s from our clock: sign the request "
        "afresh with the current time (and check the sender's clock).",
        tolerance_s=tolerance_s,
    )


def invalid_signature() -> ApiError:
    return Unauthorized(
        "invalid_signature",
        'X-Nim-Signature matches no conversion secret of this workspace: send "v1=" + the '
        'hex HMAC-SHA256 of "{timestamp}.{raw body}" keyed with the conversion secret.',
    )


def workspace_not_found() -> ApiError:
    return NotFound("workspace_not_found", "No such workspace.")


def secret_not_set() -> ApiError:
    return Forbidden(
        "conversion_secret_not_set",
        "This workspace has no conversion secret yet: create one with "
        "POST /api/v1/conversions/secret.",
    )


def body_too_large(limit: int) -> ApiError:
    return PayloadTooLarge("body_too_large", f"The request body exceeds {limit} bytes.")


# -- the outcome itself (422/409) ------------------------------------------------------------


def invalid(code: str, detail: str, field: str) -> ApiError:
    return Unprocessable(code, detail, field=field)


def invalid_click_id() -> ApiError:
    return invalid(
        "invalid_click_id",
        "user_data.click_id is not a click token: send the nim_ct value as it arrived "
        "(nimct_ and 32 hexadecimal characters).",
        "user_data.click_id",
    )


def user_data_required() -> ApiError:
    return invalid(
        "user_data_required",
        "A lead or sale needs user_data.click_id (the nim_ct value) or user_data.external_id.",
        "user_data",
    )


def related_required(event_name: str) -> ApiError:
    return invalid(
        "related_sale_required",
        f"A {event_name} must name the sale it undoes: custom_data.related_order_id or "
        "custom_data.related_event_id.",
        "custom_data.related_order_id",
    )


def related_not_allowed(event_name: str, field: str) -> ApiError:
    return invalid(
        "related_not_allowed",
        f"A {event_name} does not refer to another outcome; only refunds, cancellations "
        "and reversals carry related ids.",
        field,
    )


def related_sale_not_found(field: str) -> ApiError:
    return invalid(
        "related_sale_not_found",
        "No sale of this workspace has that id. Record the sale first: a refund, "
        "cancellation or reversal must follow the sale it undoes.",
        field,
    )


def related_mismatch() -> ApiError:
    return invalid(
        "related_mismatch",
        "custom_data.related_order_id and custom_data.related_event_id name different sales.",
        "custom_data.related_event_id",
    )


def currency_mismatch(expected: str) -> ApiError:
    return invalid(
        "currency_mismatch",
        f"The sale was in {expected}; a refund, cancellation or reversal of it is too.",
        "custom_data.currency",
    )


def exceeds_sale_value(remaining: str, currency: str | None) -> ApiError:
    unit = f" {currency}" if currency else ""
    return invalid(
        "exceeds_sale_value",
        f"Only {remaining}{unit} of the sale is left to undo.",
        "custom_data.value",
    )


def event_id_conflict() -> ApiError:
    return Conflict(
        "event_id_conflict",
        "This event_id was recorded with a different outcome. Outcomes are immutable: "
        "send a refund, cancellation or reversal, or use a new event_id.",
    )


def order_id_taken(order_id: str) -> ApiError:
    return Conflict(
        "order_id_taken",
        f"Another sale already has order_id {order_id[:100]!r}.",
        field="custom_data.order_id",
    )


# -- the management API ------------------------------------------------------------------------


def secret_exists() -> ApiError:
    return Conflict(
        "conversion_secret_exists",
        "This workspace has a conversion secret already; rotate it to get a new one.",
    )


def secret_not_found() -> ApiError:
    return NotFound("conversion_secret_not_found", "This workspace has no conversion secret.")
