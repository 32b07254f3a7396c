"""The webhook deliveries seen, by GUID, and what deciding one reads with its claim."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.client import Pipeline

from app.store.keys import (
    APP_PRS,
    APP_SLUG,
    INSTALLATIONS,
    REPOS,
    Conn,
    Records,
    allowed_bots_key,
    app_pr_member,
    text,
)

# GitHub lets an App redeliver for three days; a GUID must stay known at least that long.
DELIVERY_TTL = 3 * 24 * 3600
# A delivery being processed holds its GUID this long; if the web process dies meanwhile the
# claim lapses and a redelivery is accepted.
DELIVERY_CLAIM_TTL = 60


def delivery_key(guid: str) -> str:
    return f"fh:delivery:{guid}"


@dataclass(frozen=True)
class DeliveryFacts:
    app_slug: str | None
    allowed_bots: frozenset[str]
    repo_installed: bool | None
    app_pull_request: bool
    # The replies to the caller's own reads, made in the same round trip (claim_delivery).
    also: list[Any] = field(default_factory=list)


class Deliveries(Records):
    def claim_delivery(
        self,
        guid: str,
        repo_id: int | None,
        installation_id: int | None,
        pull: tuple[int, int] | None,
        also: Callable[[Pipeline], None] | None = None,
    ) -> DeliveryFacts | None:
        """Claim a delivery's GUID and read what deciding it needs, in one round trip.

        None when the GUID was already processed or is being processed. The facts are read
        either way: a wasted read on the rare duplicate costs less than a second round trip
        on every delivery.
        """
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(delivery_key(guid), "pending", nx=True, ex=DELIVERY_CLAIM_TTL)
            pipe.get(APP_SLUG)
            pipe.smembers(allowed_bots_key(repo_id))
            pipe.hget(REPOS, str(repo_id))
            pipe.sismember(INSTALLATIONS, str(installation_id))
            pipe.sismember(APP_PRS, app_pr_member(*pull) if pull else "")
            if also is not None:
                also(pipe)
            claimed, slug, bots, owner, known, app_pr, *extra = pipe.execute()
        if not claimed:
            return None
        installed: bool | None = None
        if repo_id is not None and installation_id is not None:
            # Installation events put the repository elsewhere, or named its installation
            # without it; when they never spoke of the installation, nothing can be said.
            if owner is not None:
                installed = int(owner) == installation_id
            elif known:
                installed = False
        return DeliveryFacts(
            app_slug=text(slug) if slug else None,
            allowed_bots=frozenset(text(b) for b in bots) if repo_id is not None else frozenset(),
            repo_installed=installed,
            app_pull_request=bool(app_pr) if pull else False,
            also=extra,
        )

    def finish_delivery(self, guid: str, conn: Conn | None = None) -> None:
        (conn if conn is not None else self.redis).set(delivery_key(guid), "done", ex=DELIVERY_TTL)

    def release_delivery(self, guid: str) -> None:
        self.redis.delete(delivery_key(guid))
