"""The version of what forgehand keeps in Redis, checked (and brought up to date) at start.

`fh:schema` holds the version of the records' layout (docs/upgrades.md lists what each holds).
A process that finds an older version runs the steps in MIGRATIONS once, whoever starts first;
one that finds a newer version refuses to start, since it would misread what it finds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from redis import Redis

from app.store.keys import text

SCHEMA_KEY = "fh:schema"
LOCK_KEY = "fh:schema:migrating"
# The layout this code reads and writes.
SCHEMA = 1
# Version n's step to n + 1. A Redis written before versions were recorded holds version 1's
# layout: it is stamped, not changed.
MIGRATIONS: Mapping[int, Callable[[Redis], None]] = {}
# How long one process may hold the migration lock; others wait for it at most this long.
LOCK_TTL = 600


class SchemaError(Exception):
    """Redis holds a layout this forgehand cannot read; the message is one line."""


def ensure(
    redis: Redis,
    current: int = SCHEMA,
    migrations: Mapping[int, Callable[[Redis], None]] = MIGRATIONS,
) -> int:
    """Make Redis hold version `current`, migrating once if older; return what was found
    (`current` for a Redis never stamped). SchemaError if it is newer."""
    found = _read(redis)
    if found is None:
        redis.set(SCHEMA_KEY, current, nx=True)
        found = _read(redis) or current
    if found > current:
        raise SchemaError(
            f"Redis holds forgehand's records in layout {found}, written by a newer forgehand "
            f"(this one reads up to {current}): run the newer version, or use another Redis"
        )
    if found < current:
        _migrate(redis, found, current, migrations)
    return found


def _read(redis: Redis) -> int | None:
    raw = redis.get(SCHEMA_KEY)
    return int(text(raw)) if isinstance(raw, bytes | str) else None


def _migrate(
    redis: Redis, found: int, current: int, migrations: Mapping[int, Callable[[Redis], None]]
) -> None:
    missing = [n for n in range(found, current) if n not in migrations]
    if missing:
        raise SchemaError(f"no migration from Redis layout {missing[0]}: cannot upgrade it")
    deadline = time.monotonic() + LOCK_TTL
    while not redis.set(LOCK_KEY, "1", nx=True, ex=LOCK_TTL):
        # Another process is migrating: wait for it to finish rather than migrate twice.
        if time.monotonic() > deadline:
            raise SchemaError(f"Redis has been migrating for {LOCK_TTL} s: is {LOCK_KEY} stale?")
        time.sleep(0.1)
    try:
        version = _read(redis) or found
        while version < current:
            migrations[version](redis)
            version += 1
            # Stamped after each step, so that a crash resumes from the step that failed.
            redis.set(SCHEMA_KEY, version)
    finally:
        redis.delete(LOCK_KEY)
