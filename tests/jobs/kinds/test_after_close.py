"""Closing or merging one of the App's pull requests; forks."""

from __future__ import annotations

from typing import Any

from rq.job import Job

from app.tasks import Cancel, Kind, State, Task
from app.web.triggers import Facts, decide
from jobs.kinds import ci_fix as fix_ci
from tests import fakes
from tests import payloads as p
from tests.jobs.conftest import BRANCH, World, agent_pids, gone, wait_until

FACTS = Facts(app_id=p.APP_ID, app_slug="forgehand")


def closed_task(number: int) -> Task:
    return Task(Kind.CLOSED, p.INSTALLATION, p.REPO_ID, p.REPO, number, "alice", branch=BRANCH)


def events(world: World, task_id: str) -> list[str]:
    return [e["event"] for e in world.store.events(task_id)]


def test_merged_pull_request_branch_is_deleted(world: World) -> None:
    number = world.open_pull_request()
    world.github.pulls[number] |= {"state": "closed", "merged": True}
    record = world.run(closed_task(number))
    assert record.state is State.DONE
    assert world.github.deleted_refs == [BRANCH]
    assert BRANCH not in fakes.branches(world.origin)


def test_closed_unmerged_pull_request_keeps_its_branch(world: World) -> None:
    number = world.open_pull_request()
    world.github.pulls[number]["state"] = "closed"
    world.run(closed_task(number))
    assert world.github.deleted_refs == []
    assert BRANCH in fakes.branches(world.origin)


def test_fork_is_told_once(world: World) -> None:
    world.github.add_pull(30, "agent/sneaky", fork=True)
    task = Task(Kind.FORK, p.INSTALLATION, p.REPO_ID, p.REPO, 30, "eve", branch="agent/sneaky")
    world.run(task)
    world.run(task)
    bodies = world.github.comment_bodies(30)
    assert len(bodies) == 1 and "does not work on pull requests from forks" in bodies[0]
    assert world.github.requests("POST", "/pulls") == []


def test_closing_while_the_agent_runs_kills_it(world: World, redis_url: str) -> None:
    number = world.open_pull_request()
    world.monkeypatch.setattr(fix_ci, "CHECK_WAIT", 1.0)
    world.github.add_check_run(world.github.head_sha(BRANCH), "tests")
    out = world.hanging_agent()
    task = world.ci_task(number)
    world.enqueue(task)
    with world.forked_worker(redis_url) as proc:
        agent_pid, child_pid = agent_pids(out)
        # What the web process does on pull_request.closed.
        cancelled = world.dispatcher.cancel(Cancel(p.REPO_ID, number, "pull request closed"))
        assert cancelled == [task.id]
        proc.join(timeout=30)
        assert not proc.is_alive()
    assert gone(agent_pid) and gone(child_pid)
    record = world.store.get(task.id)
    assert record is not None and record.state is State.CANCELLED
    assert world.leftovers() == []


def test_an_issue_closed_as_its_pull_request_merges_lets_its_task_finish(
    world: World, redis_url: str
) -> None:
    # Merging the pull request closes its issue while the task still says so on GitHub.
    go_on = world.tmp / "go-on"

    def hold_after_opening(event: str, data: dict[str, Any]) -> None:
        # In the work-horse, at the status comment's edit once the pull request is open.
        if event == "issue_comment" and data["action"] == "edited" and world.github.pulls:
            wait_until(go_on.exists, "the test never let the task go on", 60)

    world.github.listeners.append(hold_after_opening)
    task = world.issue_task()
    world.enqueue(task)
    with world.forked_worker(redis_url) as worker:
        wait_until(lambda: "pull request" in events(world, task.id), "the pull request", 60)
        for action in decide("issues", p.issues(action="closed"), FACTS).actions:
            if isinstance(action, Cancel):
                assert world.dispatcher.cancel(action) == []
        go_on.touch()
        worker.join(timeout=60)
        assert not worker.is_alive()
    record = world.store.get(task.id)
    assert record is not None and record.state is State.DONE, record
    assert Job.fetch(task.id, connection=world.redis).return_value() == "opened #8"
    assert "issue closed" in events(world, task.id)
    assert "cancelled" not in events(world, task.id)


def test_an_issue_closed_before_its_pull_request_opens_cancels_its_task(
    world: World, redis_url: str
) -> None:
    out = world.hanging_agent()
    task = world.issue_task()
    world.enqueue(task)
    with world.forked_worker(redis_url) as worker:
        agent_pids(out)
        (cancel, _wake) = decide("issues", p.issues(action="closed"), FACTS).actions
        assert isinstance(cancel, Cancel)
        assert world.dispatcher.cancel(cancel) == [task.id]
        worker.join(timeout=30)
        assert not worker.is_alive()
    record = world.store.get(task.id)
    assert record is not None and (record.state, record.error) == (State.CANCELLED, "issue closed")
