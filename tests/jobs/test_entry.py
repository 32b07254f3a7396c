"""Task states through a real RQ worker: queued → running → done / failed / cancelled."""

from __future__ import annotations

import time

from rq.job import Job, JobStatus

from app.store.redis_conn import connect
from app.tasks import Cancel, State
from tests import fakes
from tests import payloads as p
from tests.jobs.conftest import BRANCH, World, agent_pids, gone, wait_until


def events(world: World, task_id: str) -> list[str]:
    return [e["event"] for e in world.store.events(task_id)]


def test_task_runs_to_done(world: World) -> None:
    task = world.issue_task()
    record = world.run(task)
    assert record.state is State.DONE
    trail = events(world, task.id)
    assert trail[:2] == ["queued", "running"] and trail[-1] == "done"
    assert Job.fetch(task.id, connection=world.redis).return_value() == "opened #8"


def test_task_failure_is_recorded_with_its_reason(world: World) -> None:
    world.use_agent("noop")
    record = world.run(world.issue_task())
    assert record.state is State.FAILED
    assert record.error == "The agent made no changes, so there is no pull request."


def test_outage_is_retried_by_rq_then_fails_the_task(world: World) -> None:
    world.github.failures["GET /repos/octo-org/hello-world"] = [500] * 100
    world.monkeypatch.setattr("app.github.BACKOFF", 0.0)
    world.monkeypatch.setattr("app.dispatch.RETRY_INTERVALS", [0, 0])
    task = world.issue_task()
    record = world.run(task)
    assert record.state is State.FAILED
    assert record.error.startswith("internal error: GitHubError: GitHub answered 500")
    assert Job.fetch(task.id, connection=world.redis).get_status() == JobStatus.FAILED
    # Three runs (one and two retries), each trying GitHub four times.
    assert len(world.github.requests("GET", "^/repos/octo-org/hello-world$")) == 12
    assert events(world, task.id).count("retrying") == 2


def test_outage_that_passes_is_not_a_failure(world: World) -> None:
    world.github.failures["GET /repos/octo-org/hello-world"] = [500] * 4
    world.monkeypatch.setattr("app.github.BACKOFF", 0.0)
    world.monkeypatch.setattr("app.dispatch.RETRY_INTERVALS", [0, 0])
    record = world.run(world.issue_task())
    assert record.state is State.DONE, record.error


def test_finished_task_can_start_again(world: World) -> None:
    task = world.issue_task()
    world.run(task)
    again = world.dispatcher.enqueue(task, "labelled again")
    assert again.enqueued and again.note == "queued run 2"
    assert world.dispatcher.enqueue(task, "third").enqueued is False
    world.work()
    record = world.store.get(task.id)
    assert record is not None and (record.state, record.run) == (State.DONE, 2)


def test_cancelled_while_queued_never_runs(world: World) -> None:
    task = world.issue_task()
    world.enqueue(task)
    assert world.dispatcher.cancel(Cancel(p.REPO_ID, 7, "issue closed")) == [task.id]
    world.work()
    record = world.store.get(task.id)
    assert record is not None and record.state is State.CANCELLED
    assert world.github.calls == []
    assert world.dispatcher.cancel(Cancel(p.REPO_ID, 7, "issue closed")) == []


def test_cancelled_while_running_kills_the_agent_and_cleans_up(
    world: World, redis_url: str
) -> None:
    out = world.hanging_agent()
    task = world.issue_task()
    world.enqueue(task)
    with world.forked_worker(redis_url) as worker:
        agent_pid, child_pid = agent_pids(out)
        assert (world.workspaces / "tasks" / task.id / "work").is_dir()
        stopped = time.monotonic()
        assert world.dispatcher.cancel(Cancel(p.REPO_ID, 7, "/agent stop by alice")) == [task.id]
        wait_until(lambda: gone(agent_pid) and gone(child_pid), "the agent outlived its cancel", 10)
        assert time.monotonic() - stopped < 10
        worker.join(timeout=30)
        assert not worker.is_alive()
    record = world.store.get(task.id)
    assert record is not None and record.state is State.CANCELLED
    assert record.error == "/agent stop by alice"
    assert Job.fetch(task.id, connection=connect(redis_url)).get_status() == JobStatus.STOPPED
    assert world.leftovers() == []
    assert set(fakes.branches(world.origin)) == {"main"}


def test_missing_setting_fails_the_task_at_once_with_its_reason(world: World) -> None:
    world.monkeypatch.delenv("APP_ID")
    world.setenv("GITHUB_API_URL", fakes.API)  # clears the worker's cached settings
    task = world.issue_task()
    record = world.run(task)
    assert record.state is State.FAILED
    assert record.error.startswith("forgehand is not configured: APP_ID is required")
    # Not an outage: RQ does not run it again, and GitHub was never asked.
    assert Job.fetch(task.id, connection=world.redis).get_status() == JobStatus.FINISHED
    assert "retrying" not in events(world, task.id)
    assert world.github.calls == []


def test_github_refusal_fails_the_task_at_once(world: World) -> None:
    world.monkeypatch.setattr("app.dispatch.RETRY_INTERVALS", [0, 0])
    number = world.open_pull_request()
    del world.github.pulls[number]  # gone from GitHub: GET …/pulls/N answers 404
    world.github.add_check_run(world.github.head_sha(BRANCH), "tests")
    task = world.ci_task(number)
    record = world.run(task)
    assert record.state is State.FAILED
    assert record.error.startswith("GitHub answered 404 to GET ")
    assert record.error.endswith(f"/repos/{p.REPO}/pulls/{number}: Not Found")
    assert len(world.github.requests("GET", f"/pulls/{number}$")) == 1
    assert "retrying" not in events(world, task.id)
    assert Job.fetch(task.id, connection=world.redis).get_status() == JobStatus.FINISHED


def test_missing_agent_program_fails_the_task_at_once(world: World) -> None:
    world.setenv("AGENT_COMMAND", "no-such-agent-program --go")
    world.setenv("AGENT_SANDBOX", "none")
    task = world.issue_task()
    record = world.run(task)
    assert record.state is State.FAILED
    assert record.error == "agent program not found: no-such-agent-program"
    assert "retrying" not in events(world, task.id)
