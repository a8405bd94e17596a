"""Errors as RFC 9457 problem+json (control/errors.py, control/http.py)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from control.errors import ApiError, Forbidden, Unauthorized
from control.http import PROBLEM_BASE, decode, problem_response
from control.links.schemas import LinkIn


def body_of(error: ApiError, instance: str | None = None) -> dict[str, Any]:
    response = problem_response(error, instance)
    body: dict[str, Any] = msgspec.json.decode(bytes(response.body))
    return body


def refused(body: bytes) -> ApiError:
    with pytest.raises(ApiError) as excinfo:
        decode(body, LinkIn)
    return excinfo.value


# -- problem responses ---------------------------------------------------------------------


def test_a_problem_carries_the_rfc_9457_members_and_the_stable_code() -> None:
    # Given an invalid destination error
    error = ApiError.invalid_destination("The destination is empty.")

    # When rendered
    body = body_of(error)

    # Then the body has type, title, status, detail, code and the extra field
    assert body == {
        "type": PROBLEM_BASE + "invalid_destination",
        "title": "Unprocessable content",
        "status": 422,
        "detail": "The destination is empty.",
        "code": "invalid_destination",
        "field": "destination",
    }


def test_a_problem_is_served_as_application_problem_json() -> None:
    # Given any error / When rendered / Then the media type is problem+json
    response = problem_response(ApiError.not_found("link"))
    assert response.media_type == "application/problem+json"
    assert response.headers["content-type"] == "application/problem+json"


def test_a_problem_response_has_the_error_status() -> None:
    # Given a conflict / When rendered / Then the HTTP status is the error's
    assert problem_response(ApiError.slug_taken("a", "go.brand.com", None)).status_code == 409


def test_the_problem_type_is_a_url_ending_in_the_code() -> None:
    # Given an error / When rendered / Then its type URL names its code
    assert (
        body_of(ApiError.not_found("link"))["type"]
        == "https://ricochet.dev/problems/link_not_found"
    )


def test_the_instance_is_included_when_given() -> None:
    # Given the request path / When rendered with it / Then it is the problem's instance
    assert body_of(ApiError.not_found("link"), "/api/v1/links/x")["instance"] == "/api/v1/links/x"


def test_the_instance_is_left_out_when_not_given() -> None:
    # Given no request path / When rendered / Then there is no instance member
    assert "instance" not in body_of(ApiError.not_found("link"))


def test_slug_taken_carries_slug_domain_and_the_callers_link_id() -> None:
    # Given the slug is taken by the caller's own link
    error = ApiError.slug_taken("launch-q2", "go.brand.com", "lnk_1")

    # When rendered
    body = body_of(error)

    # Then scripts can find the existing link
    assert (body["code"], body["status"]) == ("slug_taken", 409)
    assert (body["slug"], body["domain"], body["link_id"]) == ("launch-q2", "go.brand.com", "lnk_1")


def test_slug_taken_by_someone_else_carries_no_link_id() -> None:
    # Given the slug is taken by a link the caller may not see
    # When rendered / Then no link id leaks
    body = body_of(ApiError.slug_taken("launch-q2", "go.brand.com", None))
    assert "link_id" not in body
    assert (body["slug"], body["domain"]) == ("launch-q2", "go.brand.com")


def test_insufficient_scope_names_the_scope() -> None:
    # Given a key lacking a scope / When rendered / Then the body names the scope needed
    body = body_of(Forbidden.scope("links:write"))
    assert (body["status"], body["code"], body["scope"]) == (
        403,
        "insufficient_scope",
        "links:write",
    )


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ApiError.malformed_json("x"), 400, "malformed_json"),
        (ApiError.validation("x"), 422, "validation_failed"),
        (ApiError.invalid_destination("x"), 422, "invalid_destination"),
        (ApiError.invalid_slug("x"), 422, "invalid_slug"),
        (ApiError.slug_reserved("api"), 422, "slug_reserved"),
        (ApiError.slug_taken("a", "d", None), 409, "slug_taken"),
        (ApiError.not_found("link"), 404, "link_not_found"),
        (ApiError.unsupported_media_type(), 415, "unsupported_media_type"),
        (Unauthorized.missing(), 401, "unauthorized"),
        (Unauthorized.invalid(), 401, "invalid_api_key"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_named_constructors_have_their_documented_status_and_code(
    error: ApiError, status: int, code: str
) -> None:
    # Given an error from a named constructor / When inspected / Then status and code are stable
    assert (error.status, error.code) == (status, code)


def test_a_validation_error_without_a_field_has_no_field_member() -> None:
    # Given a validation problem about the body as a whole
    # When rendered / Then there is no field member (not even a null one)
    assert "field" not in body_of(ApiError.validation("Too big."))


# -- decoding request bodies ---------------------------------------------------------------


def test_a_valid_body_decodes_into_the_struct() -> None:
    # Given a well-formed create request / When decoded / Then it is the struct
    assert decode(b'{"destination": "brand.com/launch", "slug": "launch-q2"}', LinkIn) == (
        LinkIn(destination="brand.com/launch", slug="launch-q2")
    )


@pytest.mark.parametrize("body", [b"{", b"", b"not json", b"\xff", b'{"destination": "x",}'])
def test_malformed_json_is_a_400_malformed_json(body: bytes) -> None:
    # Given a body that is not JSON
    # When decoded
    error = refused(body)

    # Then it is a 400 with the malformed_json code
    assert (error.status, error.code) == (400, "malformed_json")


def test_a_value_of_the_wrong_type_is_a_422_naming_the_field() -> None:
    # Given a destination that is a number
    # When decoded
    error = refused(b'{"destination": 42}')

    # Then it is a 422 validation_failed that names the field
    assert (error.status, error.code) == (422, "validation_failed")
    assert error.extra == {"field": "destination"}


def test_the_field_is_named_without_the_json_path_decoration() -> None:
    # Given an optional field of the wrong type / When decoded / Then the field is plain "slug"
    assert refused(b'{"destination": "x", "slug": 5}').extra == {"field": "slug"}


def test_the_detail_of_a_type_error_does_not_repeat_the_json_path() -> None:
    # Given a value of the wrong type / When decoded / Then the detail is the message alone
    assert "$." not in refused(b'{"destination": 42}').detail


def test_a_body_that_is_not_an_object_is_a_422() -> None:
    # Given a JSON array instead of an object / When decoded / Then it is validation_failed
    error = refused(b"[]")
    assert (error.status, error.code) == (422, "validation_failed")


def test_a_missing_required_field_is_a_422() -> None:
    # Given an object without a destination / When decoded / Then it is validation_failed
    error = refused(b"{}")
    assert (error.status, error.code) == (422, "validation_failed")
    assert "destination" in error.detail


def test_an_unknown_field_is_a_422() -> None:
    # Given an object with a field the API does not know / When decoded / Then it is refused
    error = refused(b'{"destination": "x", "colour": "red"}')
    assert (error.status, error.code) == (422, "validation_failed")
    assert "colour" in error.detail


@pytest.mark.parametrize(
    ("body", "field"),
    [(b"{}", "destination"), (b'{"destination": "x", "colour": "red"}', "colour")],
)
def test_missing_and_unknown_fields_are_named_in_the_problem(body: bytes, field: str) -> None:
    from control.links.schemas import LinkIn

    with pytest.raises(ApiError) as excinfo:
        decode(body, LinkIn)
    assert excinfo.value.code == "validation_failed"
    assert excinfo.value.extra == {"field": field}


def test_a_nul_character_in_a_json_string_is_refused_as_invalid() -> None:
    from control.links.schemas import LinkIn

    with pytest.raises(ApiError) as excinfo:
        decode(b'{"destination": "a\\u0000b"}', LinkIn)
    assert excinfo.value.code == "validation_failed"
