"""What the relay writes to Redis for a link: built here, in the link's own transaction."""

from __future__ import annotations

from typing import Any

import msgspec

from control.links.models import Link
from shared.keys import link_key
from shared.records import LinkRecord

TOPIC = "link.projection"


def upsert_message(link: Link, domain: str) -> dict[str, Any]:
    record = LinkRecord(
        link_id=str(link.id),
        workspace_id=str(link.workspace_id),
        domain_id=str(link.domain_id),
        version=link.version,
        destination=link.destination,
        status=link.redirect_status,
    )
    return {
        "op": "upsert",
        "key": link_key(domain, link.slug),
        "version": link.version,
        "record": msgspec.to_builtins(record),
    }
