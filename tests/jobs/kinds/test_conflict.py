"""The base moves under an agent pull request and they conflict: a task merges the base in,
has the agent resolve the conflicts and pushes a new commit."""

from __future__ import annotations

import shlex
import sys

from app.tasks import Kind, State, Task
from tests import fakes
from tests import payloads as p
from tests.jobs.boundary.test_sandbox import ATTACK
from tests.jobs.conftest import BRANCH, World
from tests.jobs.fleet.test_waiting import commit_to_main


def base_moved(world: World) -> Task:
    head = fakes.sh_git("rev-parse", "main", cwd=world.origin).strip()
    return Task(Kind.BASE, p.INSTALLATION, p.REPO_ID, p.REPO, 0, "carol", sha=head, branch="main")


def conflicting_base(world: World) -> tuple[int, str]:
    """An agent pull request, then a change on main to the same lines; (number, old head)."""
    number = world.open_pull_request()
    old_head = world.github.head_sha(BRANCH)
    commit_to_main(world, "calc.py", "def add(a, b):\n    return sum((a, b))\n")
    return number, old_head


def test_a_conflicted_pull_request_gets_the_base_merged_in_and_resolved(world: World) -> None:
    number, old_head = conflicting_base(world)
    main = fakes.sh_git("rev-parse", "main", cwd=world.origin).strip()
    record = world.run(base_moved(world))
    assert (record.state, record.error) == (State.DONE, "")
    conflict = world.store.get(f"conflict-{p.REPO_ID}-{number}-{main}")
    assert conflict is not None and conflict.state is State.DONE, conflict and conflict.error
    head = world.github.head_sha(BRANCH)
    parents = fakes.sh_git("rev-list", "--parents", "-n", "1", head, cwd=world.origin).split()
    assert parents[1:] == [old_head, main]  # a merge commit on top: nothing was forced
    assert fakes.show(world.origin, BRANCH, "calc.py") == "def add(a, b):\n    return a + b\n"
    status = [b for b in world.github.comment_bodies(number) if "Merged `main`" in b]
    assert status and "resolved the conflicts in `calc.py`" in status[0]
    (attempt,) = world.store.attempts(p.REPO_ID, number)
    assert attempt["failed"] == "merge conflict with main"
    assert attempt["task"].startswith("conflict-")  # the attempts table links its task
    # Now it merges: the base moving again queues nothing.
    commit_to_main(world, "NEWS.md", "news\n")
    assert world.run(base_moved(world)).state is State.DONE
    assert [r.task.kind for r in world.store.recent()].count(Kind.CONFLICT) == 1


def test_pull_requests_that_still_merge_get_nothing(world: World) -> None:
    world.open_pull_request()
    commit_to_main(world, "NEWS.md", "news\n")
    record = world.run(base_moved(world))
    assert record.state is State.DONE
    assert [r.task.kind for r in world.store.recent()].count(Kind.CONFLICT) == 0


def test_markers_left_behind_fail_the_attempt_and_push_nothing(world: World) -> None:
    number, old_head = conflicting_base(world)
    world.use_agent("noop")
    world.run(base_moved(world))
    (conflict,) = [r for r in world.store.recent() if r.task.kind is Kind.CONFLICT]
    assert conflict.state is State.FAILED
    assert conflict.error == "The agent left conflict markers in `calc.py`; nothing was pushed."
    assert world.github.head_sha(BRANCH) == old_head
    assert len(world.store.attempts(p.REPO_ID, number)) == 1


def test_conflicts_count_under_the_retry_cap_and_escalate(world: World) -> None:
    world.github.config_text = "max_attempts: 1\n"
    number, old_head = conflicting_base(world)
    world.store.add_attempt(p.REPO_ID, number, {"attempt": 1, "sha": old_head,
                                                "failed": "tests (failure)"})  # fmt: skip
    world.run(base_moved(world))
    assert world.store.escalated(p.REPO_ID, number)
    assert world.github.labels[number] == ["agent:needs-human"]
    assert world.github.head_sha(BRANCH) == old_head


def test_a_pipe_left_for_a_conflicted_file_does_not_stall_the_worker(world: World) -> None:
    # The agent leaves the file in conflict as a pipe: reading it for markers would wait for a
    # writer that never comes (a link to /dev/zero would read without end).
    _, old_head = conflicting_base(world)
    world.setenv("AGENT_COMMAND", shlex.join([sys.executable, str(ATTACK), "plant-fifos"]))
    world.setenv("AGENT_SANDBOX", "bwrap")
    world.run(base_moved(world))
    (conflict,) = [r for r in world.store.recent() if r.task.kind is Kind.CONFLICT]
    assert conflict.state is State.FAILED
    assert conflict.error == "The agent left conflict markers in `calc.py`; nothing was pushed."
    assert world.github.head_sha(BRANCH) == old_head
