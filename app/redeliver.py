"""Asking GitHub to redeliver webhook deliveries that never reached forgehand.

GitHub does not retry a failed delivery by itself; it keeps them three days, during which an
App may ask for each again. This module decides which (pure) and asks (one small I/O step).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis

from app.github import App, GitHubError

WINDOW = timedelta(days=3)
log = logging.getLogger("forgehand.redeliver")


@dataclass(frozen=True)
class Delivery:
    id: int
    guid: str
    ok: bool
    delivered_at: datetime
    event: str


def parse(raw: dict[str, Any]) -> Delivery:
    when = datetime.fromisoformat(str(raw["delivered_at"]).replace("Z", "+00:00"))
    status = int(raw.get("status_code") or 0)
    return Delivery(
        int(raw["id"]), str(raw["guid"]), 200 <= status < 300, when, str(raw.get("event"))
    )


def to_redeliver(deliveries: list[Delivery], since: datetime) -> list[Delivery]:
    """The newest failed attempt of each GUID that never succeeded, delivered after `since`."""
    succeeded = {d.guid for d in deliveries if d.ok}
    newest: dict[str, Delivery] = {}
    for d in deliveries:
        if d.ok or d.guid in succeeded or d.delivered_at < since:
            continue
        if d.guid not in newest or d.delivered_at > newest[d.guid].delivered_at:
            newest[d.guid] = d
    return sorted(newest.values(), key=lambda d: d.delivered_at)


def redeliver(app: App, redis: Redis, since: timedelta) -> list[Delivery]:
    """Redeliver what failed within `since`; each GUID at most once, whoever runs this."""
    cutoff = datetime.now(UTC) - min(since, WINDOW)
    seen: list[Delivery] = []
    for page in app.app_pages("/app/hook/deliveries", {"per_page": 100}):
        batch = [parse(raw) for raw in page]
        seen.extend(batch)
        if batch and min(d.delivered_at for d in batch) < cutoff:
            break  # newest first: the rest is older than asked for
    asked = []
    for delivery in to_redeliver(seen, cutoff):
        if not redis.set(f"fh:redelivered:{delivery.guid}", delivery.id, nx=True, ex=WINDOW):
            continue
        try:
            app.app_request("POST", f"/app/hook/deliveries/{delivery.id}/attempts")
        except GitHubError as exc:
            redis.delete(f"fh:redelivered:{delivery.guid}")
            log.warning("could not redeliver %s: %s", delivery.guid, exc)
            continue
        log.info("asked GitHub to redeliver %s (%s)", delivery.guid, delivery.event)
        asked.append(delivery)
    return asked
