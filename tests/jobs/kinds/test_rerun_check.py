""" "Re-run" on a `forgehand` check run retries its task, as `/agent retry` does."""

from __future__ import annotations

from app.tasks import Kind, State, Task
from tests import payloads as p
from tests.jobs.conftest import BRANCH, World


def rerun_task(world: World, run_id: int, number: int, sender: str = "alice") -> Task:
    head = world.github.head_sha(BRANCH)
    return Task(Kind.RERUN, p.INSTALLATION, p.REPO_ID, p.REPO, number, sender, sha=head,
                check_run_id=run_id)  # fmt: skip


def escalated_check_run(world: World, number: int) -> int:
    """The id of forgehand's check run that says the pull request was handed to a human."""
    runs = [r for rs in world.github.check_runs.values() for r in rs
            if r["app"]["id"] == p.APP_ID and r["conclusion"] == "failure"]  # fmt: skip
    assert runs, "no failed forgehand check run"
    return int(runs[-1]["id"])


def test_rerun_on_an_escalated_check_run_retries_the_pull_request(world: World) -> None:
    number = world.open_pull_request()
    world.use_agent("tweak")
    world.fail_ci(number, rounds=4)
    assert world.store.escalated(p.REPO_ID, number)
    run_id = escalated_check_run(world, number)
    world.github.add_check_run(world.github.head_sha(BRANCH), "tests")
    before = world.github.head_sha(BRANCH)
    record = world.run(rerun_task(world, run_id, number))
    assert record.state is State.DONE, record.error
    assert not world.store.escalated(p.REPO_ID, number)
    assert world.github.labels[number] == []
    world.work()  # the CI fix the Re-run queued, on the head
    assert world.github.head_sha(BRANCH) != before
    assert len(world.store.attempts(p.REPO_ID, number)) == 1


def test_rerun_by_someone_without_write_access_does_nothing(world: World) -> None:
    number = world.open_pull_request()
    world.use_agent("tweak")
    world.fail_ci(number, rounds=4)
    run_id = escalated_check_run(world, number)
    record = world.run(rerun_task(world, run_id, number, sender="mallory"))
    assert record.state is State.FAILED
    assert "mallory has no write access" in record.error
    assert world.store.escalated(p.REPO_ID, number)


def test_rerun_of_a_failed_command_runs_that_command_again(world: World) -> None:
    number = world.open_pull_request()
    world.use_agent("fail")
    world.github.issue_comments[9001] = {"id": 9001, "body": "/agent add a docstring",
                                         "user": {"login": "alice"}}  # fmt: skip
    command = Task(Kind.COMMAND, p.INSTALLATION, p.REPO_ID, p.REPO, number, "alice",
                   comment_id=9001)  # fmt: skip
    assert world.run(command).state is State.FAILED
    run_id = world.store.check_run(command.id)
    assert run_id is not None
    world.use_agent("tweak")
    before = world.github.head_sha(BRANCH)
    record = world.run(rerun_task(world, run_id, number))
    assert record.state is State.DONE, record.error
    world.work()
    again = world.store.get(command.id)
    assert again is not None and again.state is State.DONE and again.run == 2
    assert world.github.head_sha(BRANCH) != before


def test_rerun_of_another_apps_check_run_does_nothing(world: World) -> None:
    number = world.open_pull_request()
    foreign = world.github.add_check_run(world.github.head_sha(BRANCH), "tests")
    record = world.run(rerun_task(world, foreign, number))
    assert record.state is State.FAILED
    assert "not forgehand's" in record.error
