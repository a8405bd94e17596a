"""A link seen three ways: its editable state (revisions, rollback), its event data
(integrators: no raw destination, no secrets), and its Redis projection (the edge)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import msgspec

from control.events.envelope import destination_host, destination_url_capped
from control.links.models import Link
from shared.keys import link_key
from shared.records import LinkRecord

PROJECTION_TOPIC = "link.projection"
# What a rollback restores: how the link behaves, not what it is called or who may open it.
ROLLBACK_FIELDS = (
    "destination",
    "redirect_status",
    "expires_at",
    "expired_url",
    "utm",
    "routing",
    "forward_query",
    "track_conversions",
)


@dataclass(frozen=True)
class Names:
    """Names a link refers to by id, looked up in batches by the caller."""

    domain: str
    tags: list[str] = field(default_factory=list)
    space: str | None = None
    preset: str | None = None


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def snapshot(link: Link, names: Names) -> dict[str, Any]:
    """Everything a person can change, JSON-ready: stored as revision before/after."""
    return {
        "destination": link.destination,
        "slug": link.slug,
        "domain": names.domain,
        "redirect_status": link.redirect_status,
        "expires_at": _iso(link.expires_at),
        "expired_url": link.expired_url,
        "has_password": link.password_hash is not None,
        "utm": dict(link.utm or {}),
        "utm_preset": names.preset,
        "tags": list(names.tags),
        "space": names.space,
        "track_conversions": link.track_conversions,
        "forward_query": link.forward_query,
        "routing": dict(link.routing or {}),
        "external_id": link.external_id,
        "archived": link.archived_at is not None,
        "taken_down": link.taken_down_at is not None,
    }


def changed(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    if before is None or after is None:
        return []
    return sorted(k for k in after if before.get(k) != after.get(k))


def public(state: dict[str, Any]) -> dict[str, Any]:
    """A snapshot safe for event payloads: the destination only as host and capped URL."""
    out = {k: v for k, v in state.items() if k not in ("destination", "expired_url", "routing")}
    out["destination_host"] = destination_host(state["destination"])
    out["destination_url_capped"] = destination_url_capped(state["destination"])
    out["has_routing"] = bool(state.get("routing"))
    return out


def event_data(link: Link, names: Names, short_url: str) -> dict[str, Any]:
    return {
        "link_id": str(link.id),
        "domain_id": str(link.domain_id),
        "domain_name": names.domain,
        "short_code": link.slug,
        "short_url": short_url,
        "version": link.version,
        "created_at": _iso(link.created_at),
        "updated_at": _iso(link.updated_at),
        **public(snapshot(link, names)),
    }


def record(link: Link) -> LinkRecord:
    routing = link.routing or {}
    return LinkRecord(
        link_id=str(link.id),
        workspace_id=str(link.workspace_id),
        domain_id=str(link.domain_id),
        version=link.version,
        destination=link.destination,
        status=link.redirect_status,
        expires_at_ms=int(link.expires_at.timestamp() * 1000) if link.expires_at else 0,
        expired_url=link.expired_url or "",
        password_hash=link.password_hash or "",
        taken_down=link.taken_down_at is not None,
        utm={k: v for k, v in (link.utm or {}).items() if v} or None,
        forward_query=link.forward_query,
        track_conversions=link.track_conversions,
        countries={k.upper(): v for k, v in routing.get("countries", {}).items()} or None,
        devices=dict(routing.get("devices", {})) or None,
        variants=[(v["destination"], int(v.get("weight", 1))) for v in routing.get("variants", [])]
        or None,
    )


def upsert_message(link: Link, domain: str, old_key: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {
        "op": "upsert",
        "key": link_key(domain, link.slug),
        "version": link.version,
        "record": msgspec.to_builtins(record(link)),
    }
    if old_key and old_key != message["key"]:
        message["old_key"] = old_key
    return message


def delete_message(link: Link, domain: str) -> dict[str, Any]:
    return {"op": "delete", "key": link_key(domain, link.slug), "version": link.version}
