"""Closing an issue or an agent pull request queues the repository's waiting tasks again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis import Redis
from rq import Queue
from starlette.testclient import TestClient

from app.dispatch import QUEUE_NAME
from app.fleet.state import FleetState
from app.store.store import Store
from app.tasks import State
from tests import payloads as p
from tests.app.web.test_webhook import make_client, post


@pytest.fixture
def client(redis: Redis) -> Iterator[TestClient]:
    with make_client(redis) as c:
        yield c


def park(redis: Redis, client: TestClient, number: int) -> str:
    """Label issue `number`; then make its task wait, as a worker would."""
    payload = p.issues()
    payload["issue"]["number"] = number
    assert post(client, "issues", payload, f"label-{number}").status_code == 202
    task_id = f"issue-{p.REPO_ID}-{number}"
    queue = Queue(QUEUE_NAME, connection=redis)
    assert queue.job_ids == [task_id]
    queue.remove(task_id)  # a worker took it, and its job ended when it parked
    redis.delete(f"rq:job:{task_id}")
    store = Store(redis)
    assert store.transition(task_id, (State.QUEUED,), State.RUNNING)
    assert store.transition(task_id, (State.RUNNING,), State.WAITING, "waiting for #3")
    FleetState(redis).wait(p.REPO_ID, task_id, "blocked", "waiting for #3", 0)
    return task_id


def test_a_closed_issue_wakes_the_waiting_tasks(client: TestClient, redis: Redis) -> None:
    waiting = park(redis, client, 8)
    response = post(client, "issues", p.issues(action="closed"), "close-7")
    assert response.status_code == 202
    assert response.json()["tasks"] == [waiting]
    record = Store(redis).get(waiting)
    assert record is not None and record.state is State.QUEUED and record.run == 2
    # The same delivery again wakes nothing twice.
    assert post(client, "issues", p.issues(action="closed"), "close-7").json()["tasks"] == []


def test_a_closed_agent_pull_request_wakes_them_too(client: TestClient, redis: Redis) -> None:
    waiting = park(redis, client, 8)
    response = post(client, "pull_request", p.pr_closed(), "pr-closed")
    assert waiting in response.json()["tasks"]
