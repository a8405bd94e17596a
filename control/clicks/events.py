"""Click and scan events (`link.clicked`, `link.qr_scanned`) for workspaces that listen.

Ingest writes them in the transaction that stores the clicks, from the rows that
transaction really inserted: an event exists exactly when its click does, and a click
delivered twice by the stream is stored once and makes one event. The event id is the click
id, so the event is tied to its click for good. Bots never make events (seed 002).

Only workspaces with a receiver subscribed to the type get events: a row per click for a
workspace nobody listens to would cost storage and relay work for nothing. Data carries what
seed 002 lists and never the destination URL, which may hold signatures or personal data.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from control.clicks import repository
from control.delivery import subscriptions
from control.events import envelope
from control.events import repository as events
from control.events.service import TOPIC
from control.links.views import short_url
from control.outbox import repository as outbox
from control.settings import ControlSettings
from shared.clicks import CLICK_TOKEN_PREFIX

TYPE_BY_TOUCH = {"link": envelope.LINK_CLICKED, "qr": envelope.LINK_QR_SCANNED}


def data(settings: ControlSettings, row: dict[str, Any], slug: str, domain: str) -> dict[str, Any]:
    """The event's `data` from a stored click row (see control/clicks/enrich.py)."""
    out: dict[str, Any] = {
        "click_id": CLICK_TOKEN_PREFIX + row["id"],
        "link_id": row["link_id"],
        "domain_id": row["domain_id"],
        "short_url": short_url(settings, domain, slug),
        "domain_name": domain,
        "short_code": slug,
        "touch_type": row["touch"],
        "clicked_at": row["clicked_at"].isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "country": row["country"] or None,
        "device_category": row["device"],
        "browser_family": row["browser"],
        "os_family": row["os"],
        "referrer_host": row["referrer_host"] or None,
        "social_source": row["social"] or None,
    }
    # UTM fields where present (seed 002), as the edge saw them on the redirect.
    for name in ("utm_source", "utm_medium", "utm_campaign"):
        if row[name]:
            out[name] = row[name]
    return out


async def record(
    conn: AsyncConnection, settings: ControlSettings, inserted: list[dict[str, Any]]
) -> int:
    """Write the events of these newly stored clicks, in the caller's transaction; returns
    how many. The relay fans them out to receivers after commit."""
    humans = [r for r in inserted if not r["bot"] and r["touch"] in TYPE_BY_TOUCH]
    if not humans:
        return 0
    workspaces = {uuid.UUID(r["workspace_id"]) for r in humans}
    # One look-up answers the common case (nobody listens to clicks) for the whole batch;
    # only workspaces that do listen are asked which of the two types they take.
    listening = await subscriptions.subscribed_workspaces(
        conn, workspaces, list(TYPE_BY_TOUCH.values())
    )
    if not listening:
        return 0
    by_type: dict[str, set[uuid.UUID]] = {}
    for event_type in TYPE_BY_TOUCH.values():
        by_type[event_type] = await subscriptions.subscribed_workspaces(
            conn, listening, [event_type]
        )
    wanted = [
        r for r in humans if uuid.UUID(r["workspace_id"]) in by_type[TYPE_BY_TOUCH[r["touch"]]]
    ]
    if not wanted:
        return 0
    links = await repository.link_context(conn, {r["link_id"] for r in wanted})
    rows = []
    for row in wanted:
        known = links.get(row["link_id"])
        if known is None:
            continue  # the link was removed for good since the click: nothing to name it by
        slug, domain, organization_id = known
        workspace_id = uuid.UUID(row["workspace_id"])
        event_type = TYPE_BY_TOUCH[row["touch"]]
        eid, when, env = envelope.build(
            event_type,
            organization_id,
            workspace_id,
            data(settings, row, slug, domain),
            event_id=uuid.UUID(hex=row["id"]),
            created_at=row["clicked_at"],
        )
        rows.append((eid, workspace_id, event_type, when, env))
    await events.add_many(conn, rows)
    await outbox.add_many(conn, TOPIC, [{"event_id": str(r[0]), "type": r[2]} for r in rows])
    return len(rows)
