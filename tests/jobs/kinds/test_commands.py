"""`/agent` comments on the App's pull requests and on labelled issues."""

from __future__ import annotations

from app.tasks import Kind, State, Task
from tests import payloads as p
from tests.jobs.conftest import BRANCH, World


def command(world: World, number: int, body: str, comment_id: int = 9001) -> Task:
    world.github.issue_comments[comment_id] = {"id": comment_id, "body": body,
                                               "user": {"login": "alice"}}  # fmt: skip
    return Task(Kind.COMMAND, p.INSTALLATION, p.REPO_ID, p.REPO, number, "alice",
                comment_id=comment_id)  # fmt: skip


def test_instructions_on_pull_request_are_pushed(world: World) -> None:
    number = world.open_pull_request()
    out = world.tmp / "agent.json"
    world.use_agent("tweak", "--out", str(out))
    before = world.github.head_sha(BRANCH)
    record = world.run(command(world, number, "/agent please also handle floats"))
    assert record.state is State.DONE, record.error
    assert world.github.head_sha(BRANCH) != before
    assert "please also handle floats" in out.read_text()


def test_help_for_an_empty_or_unknown_command(world: World) -> None:
    number = world.open_pull_request()
    world.run(command(world, number, "/agent"))
    assert any("forgehand understands" in b for b in world.github.comment_bodies(number))


def test_retry_after_escalation_runs_one_more_round(world: World) -> None:
    number = world.open_pull_request()
    world.use_agent("tweak")
    world.fail_ci(number, rounds=4)
    assert world.store.escalated(p.REPO_ID, number)
    world.github.add_check_run(world.github.head_sha(BRANCH), "tests")
    before = world.github.head_sha(BRANCH)
    world.run(command(world, number, "/agent retry", comment_id=9100))
    assert not world.store.escalated(p.REPO_ID, number)
    assert world.github.labels[number] == []
    world.work()  # the CI fix the retry queued
    assert world.github.head_sha(BRANCH) != before
    assert len(world.store.attempts(p.REPO_ID, number)) == 1


def test_instructions_on_issue_without_pull_request_resolve_it(world: World) -> None:
    out = world.tmp / "agent.json"
    world.use_agent("fix", "--out", str(out))
    record = world.run(command(world, 7, "/agent use the operator module"))
    assert record.state is State.DONE, record.error
    assert "use the operator module" in out.read_text()
    (number,) = world.github.pulls
    # The command's own run opened it: the issue's close would let that run finish.
    assert record.pull == number
