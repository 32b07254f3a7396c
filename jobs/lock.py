"""One task at a time per pull request: a Redis lock with expiry, renewed while it is held.

A worker that dies stops renewing; its lock lapses after TTL seconds and the next task takes it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from redis import Redis

TTL = 60
POLL = 0.5

# Only the owner may extend or release: another task's lock is never touched.
_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0"""


def lock_key(repo_id: int, number: int) -> str:
    return f"fh:lock:{repo_id}:{number}"


@contextmanager
def pull_request_lock(
    redis: Redis, repo_id: int, number: int, owner: str, ttl: float = TTL
) -> Iterator[None]:
    """Hold the pull request's lock for the body; wait (as long as the job may) to get it."""
    key = lock_key(repo_id, number)
    ms = int(ttl * 1000)
    while not redis.set(key, owner, nx=True, px=ms):
        if redis.get(key) == owner.encode():
            break  # a retried run of the same task
        time.sleep(POLL)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl / 3):
            redis.eval(_EXTEND, 1, key, owner, ms)

    keeper = threading.Thread(target=renew, daemon=True, name=f"lock {key}")
    keeper.start()
    try:
        yield
    finally:
        stop.set()
        keeper.join(timeout=5)
        redis.eval(_RELEASE, 1, key, owner)
