from __future__ import annotations

import time

from redis import Redis

from jobs.lock import lock_key, pull_request_lock


def test_lock_is_renewed_while_held_and_released_after(redis: Redis) -> None:
    key = lock_key(1, 2)
    with pull_request_lock(redis, 1, 2, "task-a", ttl=0.3):
        time.sleep(1.0)  # three TTLs: only renewal keeps it
        assert redis.get(key) == b"task-a"
    assert redis.get(key) is None


def test_lock_of_a_dead_worker_lapses_and_is_taken_over(redis: Redis) -> None:
    key = lock_key(1, 2)
    redis.set(key, "task-dead", px=400)  # held by a worker that no longer renews it
    started = time.monotonic()
    with pull_request_lock(redis, 1, 2, "task-b", ttl=5):
        waited = time.monotonic() - started
        assert redis.get(key) == b"task-b"
    assert 0.3 < waited < 5


def test_the_same_task_run_again_takes_its_own_lock_at_once(redis: Redis) -> None:
    redis.set(lock_key(1, 2), "task-a", px=60_000)  # its previous run died holding it
    started = time.monotonic()
    with pull_request_lock(redis, 1, 2, "task-a"):
        assert time.monotonic() - started < 0.2


def test_release_never_drops_another_task_s_lock(redis: Redis) -> None:
    key = lock_key(1, 2)
    with pull_request_lock(redis, 1, 2, "task-a", ttl=0.3):
        redis.set(key, "task-b")  # a lapse, and another task took it meanwhile
    assert redis.get(key) == b"task-b"
