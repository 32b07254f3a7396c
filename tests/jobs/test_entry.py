"""Task states through a real RQ worker: queued → running → done / failed / cancelled."""

from __future__ import annotations

import multiprocessing
import time

import pytest
from redis import Redis
from rq import SimpleWorker, Worker
from rq.job import Job, JobStatus

from app.dispatch import Dispatcher, queue_for
from app.store import Store
from app.tasks import Cancel, Kind, State, Task
from jobs import pipeline
from jobs.errors import TaskFailed
from tests import payloads as p

TASK = Task(Kind.ISSUE, p.INSTALLATION, p.REPO_ID, p.REPO, 7, "alice")


def burst(redis: Redis) -> None:
    SimpleWorker([queue_for(redis)], connection=redis).work(burst=True)


def states(store: Store, task_id: str) -> list[str]:
    return [e["event"] for e in store.events(task_id)]


@pytest.fixture
def dispatcher(redis: Redis) -> Dispatcher:
    return Dispatcher(Store(redis), job_timeout=60)


def test_task_runs_to_done(
    redis: Redis, dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "run", lambda task, ctx: f"handled {task.id}")
    assert dispatcher.enqueue(TASK, "test").enqueued
    burst(redis)
    record = dispatcher.store.get(TASK.id)
    assert record is not None and record.state is State.DONE
    assert states(dispatcher.store, TASK.id) == ["queued", "running", "done"]
    assert Job.fetch(TASK.id, connection=redis).return_value() == f"handled {TASK.id}"


def test_task_failure_is_recorded_with_its_reason(
    redis: Redis, dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(task: Task, ctx: pipeline.Context) -> str:
        raise TaskFailed("the agent made no changes")

    monkeypatch.setattr(pipeline, "run", fail)
    dispatcher.enqueue(TASK, "test")
    burst(redis)
    record = dispatcher.store.get(TASK.id)
    assert record is not None and record.state is State.FAILED
    assert record.error == "the agent made no changes"


def test_unexpected_error_fails_the_task_and_the_job(
    redis: Redis, dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(task: Task, ctx: pipeline.Context) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(pipeline, "run", crash)
    dispatcher.enqueue(TASK, "test")
    burst(redis)
    record = dispatcher.store.get(TASK.id)
    assert record is not None and record.state is State.FAILED
    assert record.error == "internal error: OSError: disk full"
    assert Job.fetch(TASK.id, connection=redis).get_status() == JobStatus.FAILED


def test_finished_task_can_start_again(
    redis: Redis, dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "run", lambda task, ctx: "ok")
    dispatcher.enqueue(TASK, "first label")
    burst(redis)
    again = dispatcher.enqueue(TASK, "labelled again")
    assert again.enqueued and again.note == "queued run 2"
    assert dispatcher.enqueue(TASK, "third").enqueued is False
    burst(redis)
    record = dispatcher.store.get(TASK.id)
    assert record is not None and (record.state, record.run) == (State.DONE, 2)


def test_cancelled_while_queued_never_runs(
    redis: Redis, dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[str] = []

    def remember(task: Task, ctx: pipeline.Context) -> str:
        ran.append(task.id)
        return "ran"

    monkeypatch.setattr(pipeline, "run", remember)
    dispatcher.enqueue(TASK, "test")
    assert dispatcher.cancel(Cancel(p.REPO_ID, 7, "issue closed")) == [TASK.id]
    burst(redis)
    assert ran == []
    record = dispatcher.store.get(TASK.id)
    assert record is not None and record.state is State.CANCELLED
    # Cancelling again finds nothing live.
    assert dispatcher.cancel(Cancel(p.REPO_ID, 7, "issue closed")) == []


def _slow(task: Task, ctx: pipeline.Context) -> str:
    time.sleep(60)
    return "too late"


def _work_forked(url: str) -> None:
    from app.redis_conn import connect

    redis = connect(url)
    Worker([queue_for(redis)], connection=redis).work(burst=True)


def test_cancelled_while_running_is_stopped(
    redis: Redis, redis_url: str, dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "run", _slow)
    dispatcher.enqueue(TASK, "test")
    worker = multiprocessing.get_context("fork").Process(target=_work_forked, args=(redis_url,))
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while (rec := dispatcher.store.get(TASK.id)) is None or rec.state is not State.RUNNING:
            assert time.monotonic() < deadline, "task never started"
            time.sleep(0.05)
        started = time.monotonic()
        assert dispatcher.cancel(Cancel(p.REPO_ID, 7, "/agent stop by alice")) == [TASK.id]
        worker.join(timeout=20)
        assert not worker.is_alive()
        assert time.monotonic() - started < 15
    finally:
        if worker.is_alive():
            worker.kill()
    record = dispatcher.store.get(TASK.id)
    assert record is not None and record.state is State.CANCELLED
    assert Job.fetch(TASK.id, connection=redis).get_status() == JobStatus.STOPPED
