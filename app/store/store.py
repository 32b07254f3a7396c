"""`Store`: every kind of record forgehand keeps in Redis, over one connection, so that a
caller holds one object whatever it reads or writes."""

from __future__ import annotations

from app.store.attempts import Attempts
from app.store.deliveries import Deliveries
from app.store.installations import Installations
from app.store.items import Items
from app.store.pulls import PullRequests
from app.store.tasks import Tasks
from app.store.timeline import Timeline


class Store(Deliveries, Tasks, Timeline, Attempts, PullRequests, Items, Installations):
    """Each part keeps one kind of record; all share `redis`, given once (`Store(redis)`)."""
