"""The layout version of what Redis holds: stamped, migrated once, refused when newer."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from redis import Redis

from app.dispatch import Dispatcher
from app.store import Store, schema, task_key
from app.store.schema import SCHEMA, SCHEMA_KEY, SchemaError, ensure
from app.tasks import Kind, State, Task
from tests import fakes
from tests import payloads as p
from tests.app.cli.test_cli import run_cli


def _task(redis: Redis) -> Task:
    task = Task(Kind.ISSUE, p.INSTALLATION, p.REPO_ID, p.REPO, 7, "alice")
    Dispatcher(Store(redis), job_timeout=60).enqueue(task, "test")
    return task


def test_a_new_redis_is_stamped_with_this_layout(redis: Redis) -> None:
    assert ensure(redis) == SCHEMA
    assert redis.get(SCHEMA_KEY) == str(SCHEMA).encode()


def test_records_from_before_versions_were_kept_are_read_as_they_are(redis: Redis) -> None:
    task = _task(redis)
    before = redis.hgetall(task_key(task.id))
    assert ensure(redis) == SCHEMA
    assert redis.hgetall(task_key(task.id)) == before
    record = Store(redis).get(task.id)
    assert record is not None and record.state is State.QUEUED


def test_a_redis_written_by_a_newer_forgehand_is_refused(redis: Redis) -> None:
    redis.set(SCHEMA_KEY, SCHEMA + 1)
    with pytest.raises(SchemaError, match=r"newer forgehand \(this one reads up to 1\)"):
        ensure(redis)
    assert redis.get(SCHEMA_KEY) == str(SCHEMA + 1).encode()  # left as it was


def test_an_older_layout_is_migrated_once_however_many_processes_start(redis: Redis) -> None:
    task = _task(redis)
    redis.set(SCHEMA_KEY, 1)
    ran: list[int] = []

    def rename_sender(r: Redis) -> None:
        # A step as a real one would be: every task hash gets a field renamed.
        ran.append(1)
        for key in r.scan_iter("fh:task:*"):
            if r.type(key) == b"hash" and r.hexists(key, "sender"):
                r.hset(key, "by", r.hget(key, "sender") or b"")
                r.hdel(key, "sender")

    def mark(r: Redis) -> None:
        ran.append(2)

    steps = {1: rename_sender, 2: mark}
    errors: list[BaseException] = []

    def start() -> None:
        try:
            ensure(redis, current=3, migrations=steps)
        except BaseException as exc:
            errors.append(exc)

    starters = [threading.Thread(target=start) for _ in range(4)]
    for t in starters:
        t.start()
    for t in starters:
        t.join()
    assert errors == []
    assert ran == [1, 2]
    assert redis.get(SCHEMA_KEY) == b"3"
    assert redis.hget(task_key(task.id), "by") == b"alice"
    assert not redis.exists(schema.LOCK_KEY)


def test_a_layout_with_no_way_up_is_refused(redis: Redis) -> None:
    redis.set(SCHEMA_KEY, 1)
    with pytest.raises(SchemaError, match="no migration from Redis layout 1"):
        ensure(redis, current=2, migrations={})


def test_worker_refuses_a_newer_redis_with_one_line(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    redis.set(SCHEMA_KEY, SCHEMA + 1)
    env = {"REDIS_URL": redis_url, "APP_ID": str(p.APP_ID), "PRIVATE_KEY": fakes.app_key()[0]}
    result = run_cli("worker", env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("forgehand: Redis holds forgehand's records in layout 2")
