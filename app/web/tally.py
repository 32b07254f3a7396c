"""Delivery counts kept in the web process and written to Redis in the background.

A delivery that starts nothing must not wait on Redis, not even to be counted: it is counted
here, and a background loop adds the counts to the Redis counters /metrics serves. The same
loop logs one summary line a minute for the deliveries it ignored, in place of a line each.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter

from redis import Redis
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from app.store import count_delivery
from app.web.triggers import HANDLED_EVENTS

FLUSH_EVERY = 1.0
SUMMARY_EVERY = 60.0
log = logging.getLogger("forgehand.webhook")


def event_label(event: str) -> str:
    """The name a delivery is counted under: only known events, so that a forged header
    grows neither the label set nor the web process's counts."""
    return event if event in HANDLED_EVENTS else "other"


class Tally:
    """Counts by (event, outcome); safe to add to from the event loop and worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: Counter[tuple[str, str]] = Counter()
        self._ignored: Counter[str] = Counter()
        self._since = time.monotonic()

    def add(self, event: str, outcome: str) -> None:
        event = event_label(event)  # unsigned requests are counted too, under any header
        with self._lock:
            self._pending[event, outcome] += 1
            if outcome == "ignored":
                self._ignored[event] += 1

    def flush(self, redis: Redis) -> None:
        """Add what was counted since the last flush to Redis; keep it if Redis is down."""
        with self._lock:
            counts, self._pending = self._pending, Counter()
        if not counts:
            return
        try:
            with redis.pipeline(transaction=False) as pipe:
                for (event, outcome), amount in counts.items():
                    count_delivery(pipe, event, outcome, amount)
                pipe.execute()
        except RedisError:
            with self._lock:
                self._pending.update(counts)

    def summary(self) -> str | None:
        """One line for the deliveries ignored since the last summary, None when there were
        none."""
        with self._lock:
            ignored, self._ignored = self._ignored, Counter()
            seconds, self._since = time.monotonic() - self._since, time.monotonic()
        if not ignored:
            return None
        parts = ", ".join(f"{event} {n}" for event, n in ignored.most_common())
        return f"ignored {ignored.total()} deliveries in {seconds:.0f}s: {parts}"


async def flush_forever(tally: Tally, redis: Redis) -> None:
    """Flush every FLUSH_EVERY seconds and log a summary every SUMMARY_EVERY, until cancelled;
    a last flush on the way out."""
    last_summary = time.monotonic()
    try:
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            await run_in_threadpool(tally.flush, redis)
            if time.monotonic() - last_summary >= SUMMARY_EVERY:
                last_summary = time.monotonic()
                line = tally.summary()
                if line:
                    log.info(line)
    finally:
        await run_in_threadpool(tally.flush, redis)
