"""The CI loop: failing checks → one fix per head commit → retry cap → a human."""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from typing import Any

import pytest

from app.tasks import State
from jobs import hand_back
from jobs.agents.runner import AgentResult
from jobs.boundary import GitError
from jobs.kinds import ci_fix as fix_ci
from jobs.pipeline import Run, agent_then_tests, flow
from jobs.report import words as report
from jobs.workspace import Worktree
from tests import fakes
from tests import payloads as p
from tests.jobs.conftest import BRANCH, World


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fix_ci, "CHECK_POLL", 0.05)
    monkeypatch.setattr(fix_ci, "CHECK_WAIT", 5.0)


def commits_on_branch(world: World) -> list[str]:
    out = fakes.sh_git("log", "--format=%s", f"main..{BRANCH}", cwd=world.origin)
    return out.splitlines()


def test_failing_check_is_fixed_with_its_details_in_the_prompt(world: World) -> None:
    number = world.open_pull_request()
    head = world.github.head_sha(BRANCH)
    world.github.add_check_run(
        head, "pytest", log="FAILED test_calc.py::test_add - assert -1 == 5",
        annotations=[{"path": "calc.py", "start_line": 2, "message": "wrong operator",
                      "annotation_level": "failure"}],
    )  # fmt: skip
    world.github.statuses[head] = [
        {"context": "legacy-ci", "state": "error", "description": "lint exploded"}
    ]
    out = world.tmp / "agent.json"
    world.use_agent("tweak", "--out", str(out))
    record = world.run(world.ci_task(number))
    assert record.state is State.DONE, record.error
    import json

    prompt = json.loads(out.read_text())["prompt"]
    for needle in ("pytest (failure)", "calc.py:2: failure: wrong operator",
                   "assert -1 == 5", "legacy-ci (error)", "lint exploded"):  # fmt: skip
        assert needle in prompt
    assert world.github.head_sha(BRANCH) != head  # a new commit was pushed, not forced
    assert fakes.sh_git("merge-base", "--is-ancestor", head, BRANCH, cwd=world.origin) == ""
    # The log host got no token; GitHub did.
    (log_call,) = world.github.requests("GET", "^LOGS ")
    assert log_call.auth == ""
    assert world.store.attempts(p.REPO_ID, number)[0]["result"].startswith("pushed ")


def test_stale_sha_is_skipped(world: World) -> None:
    number = world.open_pull_request()
    task = world.ci_task(number, sha="f" * 40)
    record = world.run(task)
    assert record.state is State.DONE
    assert "is no longer the head" in world.store.events(task.id)[-1]["detail"]
    assert world.store.attempts(p.REPO_ID, number) == []


def test_waits_for_running_checks_then_sees_they_passed(world: World) -> None:
    number = world.open_pull_request()
    head = world.github.head_sha(BRANCH)
    world.github.add_check_run(head, "slow", status="in_progress")
    # The run stays in progress past the wait: whatever has failed by then is used (nothing).
    record = world.run(world.ci_task(number))
    assert record.state is State.DONE
    assert world.store.events(record.id)[-1]["detail"] == "no failing checks on the head any more"


def test_always_failing_ci_escalates_after_exactly_max_attempts(world: World) -> None:
    number = world.open_pull_request()
    world.use_agent("tweak")
    before = len(commits_on_branch(world))
    tasks = []
    for _ in range(4):  # CI fails on every head, however often the agent pushes
        tasks.append(world.ci_task(number))
        world.fail_ci(number)
    assert len(commits_on_branch(world)) - before == 3  # MAX_ATTEMPTS fix pushes
    records = [world.store.get(t.id) for t in tasks]
    # Each task keeps the attempt it made; the one that gave up says so.
    assert [(r.state, r.attempt) for r in records if r] == [
        (State.DONE, 1), (State.DONE, 2), (State.DONE, 3), (State.ESCALATED, 0),
    ]  # fmt: skip
    assert [r.as_json()["attempt"] for r in records if r] == [1, 2, 3, 0]
    assert records[3] and records[3].error.startswith("escalated after 3 failed attempts")
    world.fail_ci(number)  # the same head fails again: ignored, and said so
    again = world.store.get(tasks[3].id)
    assert again and again.state is State.ESCALATED and again.run == 2
    assert again.error.startswith(f"#{number} waits for a human")
    assert world.github.labels[number] == ["agent:needs-human"]
    escalations = [b for b in world.github.comment_bodies(number) if "stopped after" in b]
    assert len(escalations) == 1  # then silence
    text = escalations[0]
    assert "forgehand stopped after 3 attempts to make CI pass" in text
    assert text.count("| tests (failure) |") == 3
    assert "@carol" in text and "@alice" in text  # the author and its labeller
    assert "`/agent retry`" in text and "`agent:needs-human`" in text
    assert world.store.escalated(p.REPO_ID, number)


def test_agent_failures_count_as_attempts(world: World) -> None:
    number, record = world.escalate_ci()
    assert record.attempt == 3  # one task made all three
    attempts = world.store.attempts(p.REPO_ID, number)
    reason = "The agent exited with status 3: error: the model is unavailable"
    assert [a["result"] for a in attempts] == [reason] * 3
    assert world.github.labels[number] == ["agent:needs-human"]


def test_green_ci_resets_the_count(world: World) -> None:
    number = world.open_pull_request()
    world.use_agent("tweak")
    failing = world.github.head_sha(BRANCH)
    world.github.add_check_run(failing, "tests")
    world.run(world.ci_task(number, failing))
    assert len(world.store.attempts(p.REPO_ID, number)) == 1
    assert world.store.reset_attempts(p.REPO_ID, number, sha=failing) is False  # still red there
    assert world.store.reset_attempts(p.REPO_ID, number, sha=world.github.head_sha(BRANCH))
    assert world.store.attempts(p.REPO_ID, number) == []


def test_attempts_are_rebuilt_from_the_pull_request_when_redis_forgot(world: World) -> None:
    number = world.open_pull_request()
    world.use_agent("tweak")
    world.fail_ci(number, rounds=2)
    assert len(world.store.attempts(p.REPO_ID, number)) == 2
    for key in world.redis.keys(f"fh:pr:{p.REPO_ID}:{number}:*"):
        world.redis.delete(key)  # as if Redis had been emptied
    world.fail_ci(number)
    attempts = world.store.attempts(p.REPO_ID, number)
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    world.fail_ci(number)
    assert world.github.labels[number] == ["agent:needs-human"]


def test_markers_in_comments_by_others_are_not_believed(world: World) -> None:
    number = world.open_pull_request()
    world.use_agent("tweak")
    world.fail_ci(number, rounds=2)
    for key in world.redis.keys(f"fh:pr:{p.REPO_ID}:{number}:*"):
        world.redis.delete(key)  # as if Redis had been emptied
    # Someone (or an agent's text, if it were quoted) writes a reset and a fake attempt.
    forged = f"{report.RESET_MARKER}\n{report.attempt_marker({'attempt': 9, 'sha': 'f' * 40})}"
    world.github.comments[1] = {"id": 1, "issue": number, "body": forged, "login": "mallory"}
    world.fail_ci(number)
    # The App's own markers count (two attempts), mallory's reset and attempt do not.
    attempts = world.store.attempts(p.REPO_ID, number)
    assert [a["attempt"] for a in attempts] == [1, 2, 3]


def watch_hand_back(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, bool]]:
    """At each agent run of the task: whether the run listens for the hand-back signal, and
    whether its delivering file (which keeps its worker from killing it) is there."""
    seen: list[tuple[bool, bool]] = []

    def watched(work: Run, prompt: str) -> AgentResult:
        listening = signal.getsignal(hand_back.HAND_BACK_SIGNAL) is not signal.SIG_IGN
        delivering = hand_back.delivering_file(work.ctx.workspaces.run_dir, os.getpid())
        seen.append((listening, delivering.exists()))
        return agent_then_tests(work, prompt)

    monkeypatch.setattr(flow, "agent_then_tests", watched)
    return seen


def pushes_refused(world: World) -> int:
    """A pull request with CI failing whose fixes GitHub refuses (the agent changes a workflow,
    which the App may not push); its number."""
    number = world.open_pull_request()
    world.github.config_text = "protected_paths: []\n"
    world.github.guard_workflows()
    world.use_agent("protected")
    world.github.add_check_run(world.github.head_sha(BRANCH), "tests")
    return number


def test_an_attempt_after_a_refused_push_can_still_be_handed_back(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GitHub refuses every push (a workflow change without the `workflows` permission; an
    # agent can as well set off push protection): nothing of the run reached GitHub, so the
    # next attempt's agent run must end at a drain like the first, and its worker kill it.
    number = pushes_refused(world)
    seen = watch_hand_back(monkeypatch)
    record = world.run(world.ci_task(number))
    assert record.state is State.ESCALATED, record.error
    assert seen == [(True, False)] * 3


def test_a_push_that_may_have_landed_keeps_the_run_to_its_end(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The connection lost after GitHub took the first push: run again, the run would push
    # again, so neither the next attempts nor their refused pushes let it be handed back.
    number = pushes_refused(world)
    real = Worktree.git
    pushes: list[Sequence[str]] = []

    def git(tree: Worktree, args: Sequence[str], **kwargs: Any) -> str:
        if args[0] == "push":
            pushes.append(args)
            if len(pushes) == 1:
                raise GitError("fatal: the remote end hung up unexpectedly")
        return real(tree, args, **kwargs)

    monkeypatch.setattr(Worktree, "git", git)
    seen = watch_hand_back(monkeypatch)
    record = world.run(world.ci_task(number))
    assert record.state is State.ESCALATED, record.error
    assert len(pushes) > 1  # the later attempts' pushes were refused
    assert seen == [(True, False), (False, True), (False, True)]
