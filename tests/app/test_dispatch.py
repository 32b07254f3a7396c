from __future__ import annotations

import threading
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from redis import Redis
from redis._parsers.encoders import Encoder
from rq import Queue, Retry
from rq.job import Job, JobStatus
from rq.serializers import DefaultSerializer

from app.dispatch import (
    FAILURE_TTL,
    JOB_FUNCTION,
    QUEUE_NAME,
    RESULT_TTL,
    RETRY_INTERVALS,
    Dispatcher,
    Outcome,
    job_hash,
)
from app.store.store import Store
from app.tasks import Cancel, Kind, State, Task
from tests import fakes
from tests import payloads as p

TASK = Task(Kind.ISSUE, p.INSTALLATION, p.REPO_ID, p.REPO, 7, "alice")


def jobs(redis: Redis) -> list[str]:
    return Queue(QUEUE_NAME, connection=redis).get_job_ids()


def test_enqueue_writes_the_record_the_job_and_the_timeline_together(redis: Redis) -> None:
    store = Store(redis)
    outcome = Dispatcher(store, 60).enqueue(TASK, "delivery d-1 (issues.labeled)")
    assert outcome.enqueued and outcome.note == "queued run 1"
    record = store.get(TASK.id)
    assert record is not None and record.state is State.QUEUED and record.run == 1
    assert jobs(redis) == [TASK.id]
    job = Job.fetch(TASK.id, connection=redis)
    assert job.args == (TASK.id, 1) and job.get_status() == JobStatus.QUEUED
    assert [e["event"] for e in store.events(TASK.id)] == ["queued"]


def test_a_live_job_is_not_queued_twice(redis: Redis) -> None:
    dispatcher = Dispatcher(Store(redis), 60)
    dispatcher.enqueue(TASK, "first")
    again = dispatcher.enqueue(TASK, "second")
    assert not again.enqueued and again.note == "already queued"
    assert jobs(redis) == [TASK.id]


def test_a_finished_run_is_replaced_by_the_next_run(redis: Redis) -> None:
    store = Store(redis)
    dispatcher = Dispatcher(store, 60)
    dispatcher.enqueue(TASK, "first")
    Queue(QUEUE_NAME, connection=redis).remove(TASK.id)
    Job.fetch(TASK.id, connection=redis).set_status(JobStatus.FINISHED)
    store.transition(TASK.id, (State.QUEUED,), State.DONE)
    outcome = dispatcher.enqueue(TASK, "second")
    assert outcome.enqueued and outcome.note == "queued run 2"
    assert Job.fetch(TASK.id, connection=redis).args == (TASK.id, 2)
    assert jobs(redis) == [TASK.id]


def test_a_run_queued_between_read_and_write_wins_and_ours_stands_down(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another web process queues the same task after we read its state: our write must not
    apply, and the retry must see the live job."""
    store = Store(redis)
    ours, theirs = Dispatcher(store, 60), Dispatcher(Store(redis), 60)
    write_queued = store.write_queued
    raced: list[Outcome] = []

    def racing(*args: object, **kwargs: object) -> None:
        if not raced:
            raced.append(theirs.enqueue(TASK, "the other process"))
        write_queued(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "write_queued", racing)
    outcome = ours.enqueue(TASK, "us")
    assert raced[0].enqueued
    assert not outcome.enqueued and outcome.note == "already queued"
    record = store.get(TASK.id)
    assert record is not None and record.run == 1
    assert jobs(redis) == [TASK.id]


def test_concurrent_deliveries_for_one_task_make_one_job(redis: Redis) -> None:
    start = threading.Barrier(8)
    outcomes: list[Outcome] = []

    def deliver() -> None:
        dispatcher = Dispatcher(Store(redis), 60)
        start.wait()
        outcomes.append(dispatcher.enqueue(TASK, "delivery"))

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(o.enqueued for o in outcomes) == 1
    assert jobs(redis) == [TASK.id]
    record = Store(redis).get(TASK.id)
    assert record is not None and record.run == 1


def ran(task_id: str, run: int) -> str:
    """The job function of the worker test below: what RQ handed it."""
    return f"{task_id} run {run}"


def as_sent(mapping: Mapping[Any, Any]) -> dict[str, bytes]:
    """A hash's fields and values as redis-py sends them to Redis."""
    encoder = Encoder("utf-8", "strict", False)
    return {str(k): bytes(encoder.encode(v)) for k, v in mapping.items()}


def test_the_job_hash_is_what_rq_itself_writes(redis: Redis) -> None:
    dispatcher = Dispatcher(Store(redis), 60)
    with redis.pipeline() as theirs:
        theirs.multi()
        Queue(QUEUE_NAME, connection=redis).enqueue_call(
            JOB_FUNCTION, args=(TASK.id, 3), job_id=TASK.id, timeout=60, result_ttl=RESULT_TTL,
            failure_ttl=FAILURE_TTL, retry=Retry(max=3, interval=RETRY_INTERVALS),
            description=f"issue {p.REPO}#7", pipeline=theirs,
        )  # fmt: skip
        commands = [args for args, _options in theirs.command_stack]
    written: dict[object, object] = {}
    for name, key, *rest in commands:
        if name == "HSET" and key == Job.key_for(TASK.id):
            written |= dict(zip(rest[::2], rest[1::2], strict=True))
    ours = as_sent(job_hash(TASK.id, 3, f"issue {p.REPO}#7", 60, datetime.now(UTC)))
    theirs_sent = as_sent(written)
    stamps = {"created_at", "enqueued_at"}
    assert set(ours) == set(theirs_sent)
    for name in set(ours) - stamps - {"data"}:
        assert ours[name] == theirs_sent[name], name
    call = [DefaultSerializer.loads(zlib.decompress(h["data"])) for h in (ours, theirs_sent)]
    assert call[0] == call[1] == (JOB_FUNCTION, None, (TASK.id, 3), {})
    # The queue: RQ registers it and pushes the id; so do we.
    assert commands[0] == ("SADD", "rq:queues", f"rq:queue:{QUEUE_NAME}")
    assert commands[-1] == ("RPUSH", f"rq:queue:{QUEUE_NAME}", TASK.id)
    dispatcher.enqueue(TASK, "ours")
    assert redis.smembers("rq:queues") == {f"rq:queue:{QUEUE_NAME}".encode()}


def test_a_real_rq_worker_runs_the_job_the_script_wrote(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.dispatch.JOB_FUNCTION", f"{__name__}.ran")
    dispatcher = Dispatcher(Store(redis), 60)
    assert dispatcher.enqueue(TASK, "first").enqueued
    fakes.work_burst(Queue(QUEUE_NAME, connection=redis))
    job = Job.fetch(TASK.id, connection=redis)
    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value() == f"{TASK.id} run 1"
    assert (job.timeout, job.retries_left, job.description) == (60, 3, f"issue {p.REPO}#7")
    # Finished, it is replaced by the next run, which the worker runs too.
    assert dispatcher.enqueue(TASK, "again").note == "queued run 2"
    fakes.work_burst(Queue(QUEUE_NAME, connection=redis))
    assert Job.fetch(TASK.id, connection=redis).return_value() == f"{TASK.id} run 2"


def test_an_issue_close_spares_only_the_run_that_opened_its_pull_request(redis: Redis) -> None:
    store = Store(redis)
    dispatcher = Dispatcher(store, 60)
    closed = Cancel(p.REPO_ID, 7, "issue closed", spare_opened=True)
    dispatcher.enqueue(TASK, "first")
    assert store.transition(TASK.id, (State.QUEUED,), State.RUNNING)
    store.add_app_pull_request(p.REPO_ID, 8, 7, p.REPO, p.INSTALLATION, "main", TASK.id)
    assert dispatcher.cancel(closed) == []
    trail = store.events(TASK.id)[-1]
    assert (trail["event"], trail["detail"]) == (
        "issue closed",
        "not cancelled: its pull request #8 is open",
    )
    # Any other cancel still stops it.
    assert dispatcher.cancel(Cancel(p.REPO_ID, 7, "/agent stop by alice")) == [TASK.id]
    # The next run has opened nothing yet.
    assert dispatcher.enqueue(TASK, "labelled again").enqueued
    assert dispatcher.cancel(closed) == [TASK.id]


def test_an_issue_close_cancels_a_queued_retry_of_the_run_that_opened_its_pull_request(
    redis: Redis,
) -> None:
    # The retry (entry.py puts the task back to queued) would find the pull request merged
    # and fail the task of a resolved issue: only a running run is spared.
    store = Store(redis)
    dispatcher = Dispatcher(store, 60)
    dispatcher.enqueue(TASK, "first")
    assert store.transition(TASK.id, (State.QUEUED,), State.RUNNING)
    store.add_app_pull_request(p.REPO_ID, 8, 7, p.REPO, p.INSTALLATION, "main", TASK.id)
    assert store.transition(TASK.id, (State.RUNNING,), State.QUEUED, "internal error: 502")
    closed = Cancel(p.REPO_ID, 7, "issue closed", spare_opened=True)
    assert dispatcher.cancel(closed) == [TASK.id]
    record = store.get(TASK.id)
    assert record is not None and record.state is State.CANCELLED
