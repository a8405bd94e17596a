"""Payload templates: JMESPath leaves over the envelope, validated when saved."""

from __future__ import annotations

from typing import Any

import pytest

from control.destinations import templates
from control.destinations.templates import TemplateError

ENVELOPE: dict[str, Any] = {
    "id": "evt_0190a",
    "type": "link.clicked",
    "created_at": "2026-03-01T10:00:00.250Z",
    "data": {"short_url": "https://go.example/x", "country": "DE", "utm_campaign": "spring"},
}


def render(template: Any, envelope: dict[str, Any] = ENVELOPE) -> Any:
    return templates.render(templates.compile_template(template), envelope)


def test_string_leaves_are_expressions_and_other_leaves_constants() -> None:
    out = render(
        {
            "event": "type",
            "where": {"url": "data.short_url", "country": "lower(data.country)"},
            "fixed": "'constant'",
            "n": 3,
            "flag": True,
            "list": ["id", 1],
        }
    )
    assert out == {
        "event": "link.clicked",
        "where": {"url": "https://go.example/x", "country": "de"},
        "fixed": "constant",
        "n": 3,
        "flag": True,
        "list": ["evt_0190a", 1],
    }


def test_keys_whose_expression_yields_null_are_left_out() -> None:
    assert render({"a": "data.nothing", "b": "data.country"}) == {"b": "DE"}


def test_helper_functions() -> None:
    out = render(
        {
            "s": "unix_seconds(created_at)",
            "us": "unix_micros(created_at)",
            "h": "sha256('a')",
            "t": "truncate(data.short_url, `8`)",
            "r": "replace(type, '.', '_')",
            "e": "slack_escape('<!channel> & co')",
            "null_safe": "unix_seconds(data.nothing)",
        }
    )
    assert out == {
        "s": 1772359200,
        "us": 1772359200250000,
        "h": "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb",
        "t": "https://",
        "r": "link_clicked",
        "e": "&lt;!channel&gt; &amp; co",
    }


@pytest.mark.parametrize(
    ("template", "path", "says"),
    [
        ({"a": {"b": "a["}}, "template.a.b", "is not a JMESPath expression"),
        ({"a": ["ok", "nope("]}, "template.a[1]", "is not a JMESPath expression"),
        ({"a": "no_such_fn(x)"}, "template.a", "unknown function no_such_fn()"),
        ({"a": "join(x)"}, "template.a", "join() takes 2 arguments"),
        ({"a": "map(&x, y)"}, "template.a", "map() is not available"),
        ({"a": ""}, "template.a", "empty string"),
        ({"a": "x" * 1001}, "template.a", "at most 1000 characters"),
    ],
)
def test_bad_expressions_are_named_with_their_place(template: Any, path: str, says: str) -> None:
    with pytest.raises(TemplateError) as caught:
        templates.compile_template(template)
    assert caught.value.path == path
    assert says in caught.value.message


def test_compounding_expressions_are_refused() -> None:
    # Each step would double the value: 2**30 copies after 30 steps.
    doubling = "{a: data, b: data}" + ".{a: [a, b], b: [a, b]}" * 30
    with pytest.raises(TemplateError, match="may not build from a value it built"):
        templates.compile_template({"x": doubling})
    with pytest.raises(TemplateError, match="may not build from a value it built"):
        templates.compile_template({"x": "[data, data] | [@, @]"})


def test_taking_parts_of_a_built_value_is_allowed() -> None:
    out = render({"x": "join(' ', [data.country, data.nothing, data.utm_campaign][?@])"})
    assert out == {"x": "DE spring"}


def test_size_limits() -> None:
    deep: Any = "id"
    for _ in range(10):
        deep = {"k": deep}
    with pytest.raises(TemplateError, match="nests at most"):
        templates.compile_template(deep)
    with pytest.raises(TemplateError, match="at most 200 values"):
        templates.compile_template({f"k{i}": "id" for i in range(201)})
    with pytest.raises(TemplateError, match="bytes of JSON"):
        templates.compile_template({"k": [1] * 10_000})
    with pytest.raises(TemplateError, match="object or array"):
        templates.compile_template("id")


def test_a_type_error_on_one_event_is_a_render_error() -> None:
    template = templates.compile_template({"x": "join('', [data.country, `1`])"})
    with pytest.raises(templates.RenderError, match="join"):
        templates.render(template, ENVELOPE)


def test_merge_lays_objects_over_objects_and_replaces_the_rest() -> None:
    base = {"a": {"b": 1, "c": 2}, "l": [1, 2], "s": "x"}
    assert templates.merge(base, {"a": {"c": 3, "d": 4}, "l": [9], "n": 5}) == {
        "a": {"b": 1, "c": 3, "d": 4},
        "l": [9],
        "s": "x",
        "n": 5,
    }
