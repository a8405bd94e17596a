"""Default mappings against the vendors' documented request bodies, and where they send."""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest

from control.destinations import mapping, outbound, presets, samples
from control.destinations.catalogue import CONVERSION_RECORDED, EVENT_TYPES
from control.destinations.crypto import Secrets

ORG, WS = uuid.uuid4(), uuid.uuid4()
CONVERSIONS = ("lead", "sale", "refund", "cancellation", "reversal")


def sample(event_type: str, **data: Any) -> dict[str, Any]:
    return samples.envelope_of(event_type, ORG, WS, data or None)[1]


def every_event() -> list[dict[str, Any]]:
    out = [sample(t) for t in EVENT_TYPES]
    out += [sample(CONVERSION_RECORDED, event_name=name) for name in CONVERSIONS]
    return out


def body(kind: str, env: dict[str, Any], **config: str) -> Any:
    return msgspec.json.decode(mapping.body(kind, None, [], config, env))


# -- Segment HTTP Tracking API: track ---------------------------------------------------

SEGMENT_TRACK_FIELDS = {
    "userId",
    "anonymousId",
    "event",
    "properties",
    "context",
    "timestamp",
    "messageId",
    "integrations",
}


@pytest.mark.parametrize("env", every_event(), ids=lambda e: e["type"])
def test_segment_track_call_shape(env: dict[str, Any]) -> None:
    out = body(presets.SEGMENT, env)
    assert set(out) <= SEGMENT_TRACK_FIELDS
    assert out.get("userId") or out.get("anonymousId")  # Segment requires one of them
    assert isinstance(out["event"], str)
    assert out["event"]
    assert out["messageId"] == env["id"]  # Segment dedupes retries on messageId
    # When it happened: a conversion's own event_time, else the event's time.
    assert out["timestamp"] == env["data"].get("event_time", env["created_at"])
    assert isinstance(out["properties"], dict)


def test_segment_names_and_campaign_context() -> None:
    click = body(presets.SEGMENT, sample("link.clicked"))
    assert click["event"] == "Link Clicked"
    assert click["anonymousId"] == "nimct_sample"
    assert click["context"]["campaign"] == {
        "source": "instagram",
        "medium": "social",
        "name": "spring-launch",
    }
    assert body(presets.SEGMENT, sample("link.qr_scanned"))["event"] == "QR Code Scanned"
    sale = body(presets.SEGMENT, sample(CONVERSION_RECORDED, event_name="sale"))
    assert sale["event"] == "Order Completed"
    assert sale["userId"] == "customer-42"


# -- GA4 Measurement Protocol ------------------------------------------------------------

GA4_TOP = {
    "client_id",
    "app_instance_id",
    "user_id",
    "timestamp_micros",
    "user_properties",
    "user_data",
    "consent",
    "non_personalized_ads",
    "events",
}
GA4_RESERVED = {
    "ad_activeview", "ad_click", "ad_exposure", "ad_query", "ad_reward", "adunit_exposure",
    "app_background", "app_clear_data", "app_exception", "app_remove", "app_store_refund",
    "app_store_subscription_cancel", "app_store_subscription_convert",
    "app_store_subscription_renew", "app_update", "app_upgrade", "dynamic_link_app_open",
    "dynamic_link_app_update", "dynamic_link_first_open", "error", "first_open",
    "first_visit", "in_app_purchase", "notification_dismiss", "notification_foreground",
    "notification_open", "notification_receive", "os_update", "session_start",
    "session_start_with_rollout", "user_engagement",
}  # fmt: skip
GA4_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")


@pytest.mark.parametrize("env", every_event(), ids=lambda e: e["type"])
def test_ga4_measurement_protocol_shape(env: dict[str, Any]) -> None:
    out = body(presets.GA4, env)
    assert set(out) <= GA4_TOP
    assert isinstance(out["client_id"], str)
    assert out["client_id"]
    assert isinstance(out["timestamp_micros"], int)
    (event,) = out["events"]
    assert GA4_NAME.match(event["name"]), event["name"]
    assert event["name"] not in GA4_RESERVED
    assert not event["name"].startswith(("firebase_", "google_", "ga_", "_"))
    params = event["params"]
    assert len(params) <= 25
    for name, value in params.items():
        assert GA4_NAME.match(name), name
        assert not isinstance(value, str) or len(value) <= 100, name
        assert isinstance(value, str | int | float), name


def test_ga4_names_follow_recommended_events() -> None:
    assert body(presets.GA4, sample("link.clicked"))["events"][0]["name"] == "short_link_click"
    sale = body(presets.GA4, sample(CONVERSION_RECORDED, event_name="sale"))
    assert sale["events"][0]["name"] == "purchase"
    assert sale["events"][0]["params"]["value"] == 129.0  # GA4 wants a number
    assert sale["events"][0]["params"]["currency"] == "EUR"
    assert sale["events"][0]["params"]["transaction_id"] == "order-1001"
    lead = body(presets.GA4, sample(CONVERSION_RECORDED, event_name="lead"))
    assert lead["events"][0]["name"] == "generate_lead"
    # A conversion names its link in data.attribution.
    assert sale["events"][0]["params"]["short_code"] == "launch-q2"
    assert sale["events"][0]["params"]["link_id"] == sample("link.clicked")["data"]["link_id"]


# -- Meta Conversions API --------------------------------------------------------------

META_ACTION_SOURCES = {
    "email", "website", "app", "phone_call", "chat", "physical_store", "system_generated",
    "business_messaging", "other",
}  # fmt: skip
META_USER_DATA = {
    "em", "ph", "fn", "ln", "db", "ge", "ct", "st", "zp", "country", "external_id",
    "client_ip_address", "client_user_agent", "fbc", "fbp", "subscription_id",
    "fb_login_id", "lead_id",
}  # fmt: skip


@pytest.mark.parametrize("env", every_event(), ids=lambda e: e["type"])
def test_meta_capi_server_event_shape(env: dict[str, Any]) -> None:
    out = body(presets.META_CAPI, env)
    assert set(out) == {"data"}
    (event,) = out["data"]
    assert isinstance(event["event_name"], str)
    assert event["event_name"]
    assert isinstance(event["event_time"], int)
    assert event["event_id"] == env["id"]
    assert event["action_source"] in META_ACTION_SOURCES
    assert set(event["user_data"]) <= META_USER_DATA
    assert event["user_data"]
    # Customer information is sent hashed (SHA-256, lowercase hex), as Meta requires.
    for hashed in event["user_data"]["external_id"]:
        assert re.fullmatch(r"[0-9a-f]{64}", hashed)


def test_meta_standard_events_and_test_code() -> None:
    sale = body(
        presets.META_CAPI, sample(CONVERSION_RECORDED, event_name="sale"), test_event_code="TEST1"
    )
    assert sale["test_event_code"] == "TEST1"
    (event,) = sale["data"]
    assert event["event_name"] == "Purchase"
    assert event["action_source"] == "system_generated"
    assert event["custom_data"]["value"] == 129.0
    assert event["custom_data"]["currency"] == "EUR"
    assert event["event_source_url"] == "https://go.example.com/launch-q2"
    assert event["event_time"] == 1767270600  # the outcome's event_time, 2026-01-01T12:30Z
    lead = body(presets.META_CAPI, sample(CONVERSION_RECORDED, event_name="lead"))
    assert lead["data"][0]["event_name"] == "Lead"


# -- Slack -------------------------------------------------------------------------------


@pytest.mark.parametrize("env", every_event(), ids=lambda e: e["type"])
def test_slack_message_is_one_line_of_text(env: dict[str, Any]) -> None:
    out = body(presets.SLACK, env)
    assert set(out) == {"text"}
    assert out["text"]
    assert "\n" not in out["text"]


def test_slack_text_escapes_visitor_controlled_values() -> None:
    env = sample("link.clicked", utm_campaign="<!channel> & <https://evil|x>")
    text = body(presets.SLACK, env)["text"]
    assert text.startswith("*Link clicked* · https://go.example.com/launch-q2 · US")
    assert "<" not in text
    assert ">" not in text
    assert "campaign &lt;!channel&gt; &amp; &lt;https://evil|x&gt;" in text


# -- overrides, redaction ----------------------------------------------------------------


def test_a_template_overrides_the_default_key_by_key() -> None:
    env = sample("link.clicked")
    out = msgspec.json.decode(
        mapping.body(
            presets.SEGMENT,
            {"event": "'Demo Click'", "context": {"campaign": {"term": "'t'"}}},
            [],
            {},
            env,
        )
    )
    assert out["event"] == "Demo Click"
    assert out["messageId"] == env["id"]  # untouched default
    assert out["context"]["campaign"] == {
        "source": "instagram",
        "medium": "social",
        "name": "spring-launch",
        "term": "t",
    }


def test_redacted_fields_never_reach_the_mapping() -> None:
    env = sample("link.clicked")
    out = msgspec.json.decode(
        mapping.body(presets.GA4, None, ["data.country", "data.click_id"], {}, env)
    )
    assert "country" not in out["events"][0]["params"]
    assert out["client_id"] == env["id"]  # fell back: click_id was redacted


def test_generic_http_sends_the_envelope_in_documented_key_order() -> None:
    env = sample("link.clicked")
    out = mapping.body(presets.HTTP, None, ["data.country"], {}, env)
    assert list(msgspec.json.decode(out))[:6] == [
        "id",
        "type",
        "api_version",
        "created_at",
        "organization_id",
        "workspace_id",
    ]
    assert b"country" not in out


# -- where requests go -------------------------------------------------------------------


def test_segment_authenticates_with_the_write_key_as_basic_user() -> None:
    req = outbound.build("segment", None, {}, Secrets(values={"write_key": "wk_123"}))
    assert req.url == "https://api.segment.io/v1/track"
    scheme, token = req.headers["authorization"].split()
    assert (scheme, base64.b64decode(token)) == ("Basic", b"wk_123:")


def test_ga4_secret_goes_in_the_query_and_never_in_the_displayed_url() -> None:
    config = {"measurement_id": "G-ABC123"}
    req = outbound.build("ga4", None, config, Secrets(values={"api_secret": "s3cret"}))
    parts = urlsplit(req.url)
    assert (parts.netloc, parts.path) == ("www.google-analytics.com", "/mp/collect")
    assert parse_qs(parts.query) == {"measurement_id": ["G-ABC123"], "api_secret": ["s3cret"]}
    assert "s3cret" not in (outbound.display_url("ga4", None, config) or "")
    assert outbound.scrub(f"error at {req.url}", req.hidden) == f"error at {req.url}".replace(
        "s3cret", "***"
    )


def test_meta_uses_a_bearer_token_and_the_versioned_pixel_path() -> None:
    req = outbound.build(
        "meta_capi", None, {"pixel_id": "1234"}, Secrets(values={"access_token": "EAAB"})
    )
    assert req.url == f"https://graph.facebook.com/{presets.META_API_VERSION}/1234/events"
    assert req.headers["authorization"] == "Bearer EAAB"


def test_base_url_replaces_the_vendor_host() -> None:
    req = outbound.build(
        "meta_capi",
        None,
        {"pixel_id": "1", "api_version": "v99.0", "base_url": "http://127.0.0.1:9/"},
        Secrets(values={"access_token": "t"}),
    )
    assert req.url == "http://127.0.0.1:9/v99.0/1/events"


def test_generic_http_sends_its_custom_headers() -> None:
    req = outbound.build(
        "http", "https://r.example/in", {}, Secrets(headers={"X-Api-Key": "k-1234"})
    )
    assert (req.url, req.headers) == ("https://r.example/in", {"X-Api-Key": "k-1234"})
    assert req.hidden == ("k-1234",)
