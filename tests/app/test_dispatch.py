from __future__ import annotations

import threading

import pytest
from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus

from app.dispatch import QUEUE_NAME, Dispatcher, Outcome
from app.store import Store
from app.tasks import Kind, State, Task
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
