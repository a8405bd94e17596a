"""The OpenAPI 3.1 document built from the same declarations as the routes."""

from __future__ import annotations

from typing import Any

import pytest

import control.app
from control.openapi import Operation, document

OPERATIONS = control.app.OPERATIONS


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return document(OPERATIONS, "Ricochet management API", "1")


def _op_id(op: Operation) -> str:
    return f"{op.method} {op.path}"


def test_the_document_is_openapi_3_1(spec: dict[str, Any]) -> None:
    # Given the control plane's operations / When documented / Then it is OpenAPI 3.1.0
    assert spec["openapi"] == "3.1.0"


def test_the_document_carries_its_title_and_version(spec: dict[str, Any]) -> None:
    # Given a title and version / When documented / Then they are the info block
    assert spec["info"] == {"title": "Ricochet management API", "version": "1"}


def test_creating_a_link_takes_a_create_link_body(spec: dict[str, Any]) -> None:
    # Given the create-link operation / When documented
    body = spec["paths"]["/api/v1/links"]["post"]["requestBody"]

    # Then its required JSON body refers to the LinkIn schema
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/LinkIn"}


def test_creating_a_link_answers_201_with_a_link(spec: dict[str, Any]) -> None:
    # Given the create-link operation / When documented
    responses = spec["paths"]["/api/v1/links"]["post"]["responses"]

    # Then success is 201 with the LinkOut schema
    assert responses["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/LinkOut"
    }
    assert "200" not in responses


def test_creating_a_link_documents_slug_taken_as_a_409_problem(spec: dict[str, Any]) -> None:
    # Given the create-link operation / When documented
    conflict = spec["paths"]["/api/v1/links"]["post"]["responses"]["409"]

    # Then the conflict is a problem+json Problem
    assert conflict["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }


@pytest.mark.parametrize("name", ["LinkIn", "LinkOut", "Problem"])
def test_the_components_hold_the_named_schemas(spec: dict[str, Any], name: str) -> None:
    # Given the document / When its components are read / Then the schema is defined
    assert spec["components"]["schemas"][name]["type"] == "object"


def test_every_reference_points_at_a_defined_schema(spec: dict[str, Any]) -> None:
    # Given every $ref anywhere in the document
    refs: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            refs.extend(v for k, v in node.items() if k == "$ref")
            for v in node.values():
                collect(v)
        elif isinstance(node, list):
            for v in node:
                collect(v)

    collect(spec)

    # When resolved / Then each names a component schema that exists
    defined = {f"#/components/schemas/{n}" for n in spec["components"]["schemas"]}
    assert refs
    assert set(refs) <= defined


def test_the_problem_schema_requires_the_stable_code(spec: dict[str, Any]) -> None:
    # Given the Problem schema / When read / Then code is a required member
    assert "code" in spec["components"]["schemas"]["Problem"]["required"]


@pytest.mark.parametrize("op", OPERATIONS, ids=_op_id)
def test_every_operation_appears_under_its_path_and_method(
    spec: dict[str, Any], op: Operation
) -> None:
    # Given a declared operation / When documented / Then its path and method are present
    assert op.method.lower() in spec["paths"][op.path]


@pytest.mark.parametrize("op", OPERATIONS, ids=_op_id)
def test_every_operation_has_its_endpoint_name_as_operation_id(
    spec: dict[str, Any], op: Operation
) -> None:
    # Given a declared operation / When documented / Then its operationId is the handler's name
    assert spec["paths"][op.path][op.method.lower()]["operationId"] == op.endpoint.__name__


@pytest.mark.parametrize("op", [op for op in OPERATIONS if op.scope], ids=_op_id)
def test_a_scoped_operation_documents_its_scope_and_401_403(
    spec: dict[str, Any], op: Operation
) -> None:
    # Given an operation that needs a scope / When documented
    item = spec["paths"][op.path][op.method.lower()]

    # Then it names its credential's scope and the auth failures
    assert item["security"] == [{op.security: [op.scope]}]
    assert op.security in spec["components"]["securitySchemes"]
    assert {"401", "403"} <= set(item["responses"])


def test_hooks_take_installation_tokens_and_the_callback_a_signature(
    spec: dict[str, Any],
) -> None:
    # Given the REST-hook routes and the Conversion API callback / When documented
    subscribe = spec["paths"]["/api/v1/hooks"]["post"]
    callback = spec["paths"]["/api/conversions/callback/{workspace_id}"]["post"]
    schemes = spec["components"]["securitySchemes"]

    # Then neither claims to take a workspace API key
    assert subscribe["security"] == [{"installationToken": ["hooks:write"]}]
    assert callback["security"] == [{"conversionSignature": []}]
    signature = schemes["conversionSignature"]
    assert (signature["type"], signature["in"], signature["name"]) == (
        "apiKey",
        "header",
        "X-Nim-Signature",
    )


def test_path_parameters_are_documented(spec: dict[str, Any]) -> None:
    # Given the get-link operation with its {link_id} parameter
    # When documented
    [param] = spec["paths"]["/api/v1/links/{link_id}"]["get"]["parameters"]

    # Then the parameter is a required string in the path
    assert (param["name"], param["in"], param["required"]) == ("link_id", "path", True)


def test_the_document_declares_bearer_authentication(spec: dict[str, Any]) -> None:
    # Given the document / When its security schemes are read / Then bearer is HTTP bearer
    bearer = spec["components"]["securitySchemes"]["bearer"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")
