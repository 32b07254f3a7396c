from __future__ import annotations

from redis import Redis
from starlette.testclient import TestClient

from app.store.metrics import count_task, observe_agent
from app.store.store import Store
from app.tasks import Kind, State, Task
from tests import payloads as p
from tests.app.web.test_webhook import PATH, make_client, post


def metric_lines(client: TestClient) -> list[str]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return [line for line in response.text.splitlines() if not line.startswith("#")]


def assert_serves(client: TestClient, *expected: str) -> None:
    """/metrics has each of the `expected` lines."""
    lines = metric_lines(client)
    missing = [line for line in expected if line not in lines]
    assert not missing, (missing, lines)


def test_deliveries_by_event_and_outcome(redis: Redis) -> None:
    with make_client(redis) as client:
        post(client, "issues", p.issues(), "m-1")
        post(client, "issues", p.issues(), "m-1")
        post(client, "issues", p.issues(label="bug"))
        client.post(PATH, content=b"{}", headers={"X-GitHub-Event": "evil\nheader"})
        assert_serves(
            client,
            'forgehand_deliveries_total{event="issues",outcome="queued"} 1.0',
            'forgehand_deliveries_total{event="issues",outcome="duplicate"} 1.0',
            'forgehand_deliveries_total{event="issues",outcome="ignored"} 1.0',
            'forgehand_deliveries_total{event="other",outcome="rejected"} 1.0',
            "forgehand_queue_depth 1.0",
        )


def test_tasks_agent_durations_and_escalations(redis: Redis) -> None:
    count_task(redis, "issue", "done")
    observe_agent(redis, 12.5)
    observe_agent(redis, 4000)
    with make_client(redis) as client:
        assert_serves(
            client,
            'forgehand_tasks_total{kind="issue",outcome="done"} 1.0',
            'forgehand_agent_duration_seconds_bucket{le="15.0"} 1.0',
            'forgehand_agent_duration_seconds_bucket{le="+Inf"} 2.0',
            "forgehand_agent_duration_seconds_sum 4012.5",
            "forgehand_escalations_total 0.0",
        )


def test_tasks_by_their_state_now(redis: Redis) -> None:
    store = Store(redis)
    for number, state in ((1, State.ESCALATED), (2, State.ESCALATED), (3, State.FAILED)):
        task = Task(Kind.CI, p.INSTALLATION, p.REPO_ID, p.REPO, number, "ci", sha=f"{number:040}")
        with redis.pipeline() as pipe:
            store.write_queued(pipe, task, 1, None)
            pipe.execute()
        store.set_state(task.id, state, "why")
    with make_client(redis) as client:
        assert_serves(
            client,
            'forgehand_task_states{state="escalated"} 2.0',
            'forgehand_task_states{state="failed"} 1.0',
            'forgehand_task_states{state="queued"} 0.0',
            'forgehand_task_states{state="done"} 0.0',
        )
