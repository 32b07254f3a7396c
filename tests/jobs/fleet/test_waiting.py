"""Labelled issues that wait: for the issues they are blocked by, or under the review cap."""

from __future__ import annotations

from app.fleet.state import FleetState
from app.fleet.waking import wake, wake_stale
from app.tasks import Cancel, State
from jobs.fleet.waiting import MAX_BLOCKERS
from tests import fakes
from tests import payloads as p
from tests.jobs.conftest import World


def status_of(world: World, number: int) -> str:
    (status,) = world.github.comment_bodies(number)
    return status


def commit_to_main(world: World, path: str, text: str) -> None:
    """Someone's work merges into main on origin."""
    seed = world.tmp / "seed-clone"
    if not seed.exists():
        fakes.sh_git("clone", "--quiet", str(world.origin), str(seed), cwd=world.tmp)
    fakes.sh_git("pull", "--quiet", "origin", "main", cwd=seed)
    (seed / path).write_text(text)
    fakes.sh_git("add", "-A", cwd=seed)
    fakes.sh_git("commit", "--quiet", "-m", f"Add {path}", cwd=seed)
    fakes.sh_git("push", "--quiet", "origin", "HEAD:main", cwd=seed)


def test_an_issue_blocked_by_a_line_waits_then_starts_when_the_blocker_closes(
    world: World,
) -> None:
    world.github.add_issue(3, "Add the parser")
    world.github.issues[7]["body"] += "\n\nDepends on #3"
    record = world.run(world.issue_task())
    assert record.state is State.WAITING
    assert record.error == "waiting for #3"
    status = status_of(world, 7)
    assert f"⏸ Waiting: this issue is blocked by [#3](https://github.test/{p.REPO}/issues/3)" in (
        status
    )
    assert world.github.pulls == {} and set(fakes.branches(world.origin)) == {"main"}
    # Another issue closing wakes it; it looks, and waits again.
    assert wake(world.store, world.dispatcher, p.REPO_ID, "test") == [world.issue_task().id]
    world.work()
    assert world.store.get(world.issue_task().id).state is State.WAITING  # type: ignore[union-attr]
    # The blocker closes, and the new base has its work: the task starts from there.
    commit_to_main(world, "parser.py", "def parse(text):\n    return text\n")
    world.github.issues[3]["state"] = "closed"
    assert wake(world.store, world.dispatcher, p.REPO_ID, "#3 closed") == [world.issue_task().id]
    world.work()
    done = world.store.get(world.issue_task().id)
    assert done is not None
    assert done.state is State.DONE, done.error
    (pr,) = world.github.pulls.values()
    assert fakes.show(world.origin, pr["head"], "parser.py").startswith("def parse")
    assert "✅ Opened" in status_of(world, 7)
    assert FleetState(world.redis).waiting(p.REPO_ID) == []


def test_github_issue_dependencies_are_read_too(world: World) -> None:
    world.github.add_issue(4, "Blocker", state="open")
    world.github.blocked_by[7] = [4]
    record = world.run(world.issue_task())
    assert (record.state, record.error) == (State.WAITING, "waiting for #4")
    world.github.issues[4]["state"] = "closed"
    wake(world.store, world.dispatcher, p.REPO_ID, "#4 closed")
    world.work()
    assert world.store.get(world.issue_task().id).state is State.DONE  # type: ignore[union-attr]


def test_a_dependency_cycle_is_reported_not_waited_on(world: World) -> None:
    world.github.add_issue(3, "Parser", "Blocked by #5")
    world.github.add_issue(5, "Lexer")
    world.github.blocked_by[5] = [7]
    world.github.issues[7]["body"] += "\nDepends on #3"
    record = world.run(world.issue_task())
    assert record.state is State.FAILED
    assert "wait for each other, so none of them can start: #7 → #3 → #5 → #7" in record.error
    assert "❌" in status_of(world, 7)
    assert FleetState(world.redis).waiting(p.REPO_ID) == []


def test_a_closed_blocker_or_a_missing_one_does_not_hold(world: World) -> None:
    world.github.add_issue(3, "Done already", state="closed")
    world.github.issues[7]["body"] += "\nDepends on #3\nBlocked by #404"
    assert world.run(world.issue_task()).state is State.DONE


def test_an_issue_naming_many_blockers_costs_a_bounded_number_of_requests(
    world: World,
) -> None:
    world.github.issues[7]["body"] += "".join(f"\nBlocked by #{n}" for n in range(1000, 1500))
    assert world.run(world.issue_task()).state is State.DONE
    assert len(world.github.requests("GET", r"/issues/1\d\d\d$")) == MAX_BLOCKERS


def test_a_waiting_task_can_be_cancelled_and_leaves_the_queue(world: World) -> None:
    world.github.add_issue(3, "Blocker")
    world.github.issues[7]["body"] += "\nDepends on #3"
    world.run(world.issue_task())
    assert world.dispatcher.cancel(Cancel(p.REPO_ID, 7, "trigger label removed")) == [
        world.issue_task().id
    ]
    assert wake(world.store, world.dispatcher, p.REPO_ID, "test") == []
    assert FleetState(world.redis).waiting(p.REPO_ID) == []


def test_a_task_that_parked_before_a_wake_up_is_woken_by_the_sweep(world: World) -> None:
    world.github.add_issue(3, "Blocker")
    world.github.issues[7]["body"] += "\nDepends on #3"
    world.run(world.issue_task())
    assert wake_stale(world.store, world.dispatcher, "sweep") == []  # nothing missed
    # A wake-up that came while the task was still finishing its job could not queue it.
    FleetState(world.redis).bump(p.REPO_ID)
    assert wake_stale(world.store, world.dispatcher, "sweep") == [world.issue_task().id]


def test_beyond_the_review_cap_issues_wait_in_a_queue(world: World) -> None:
    world.github.config_text = "max_open_pull_requests: 1\n"
    fakes.sh_git("branch", "agent/issue-1-older", "main", cwd=world.origin)
    world.github.add_pull(1, "agent/issue-1-older", issue=1)
    world.github.add_issue(8, "Subtraction adds")
    seven, eight = world.issue_task(7), world.issue_task(8)
    world.enqueue(seven)
    world.enqueue(eight)
    world.work()
    for task, place in ((seven, 1), (eight, 2)):
        record = world.store.get(task.id)
        assert record is not None and record.state is State.WAITING
        assert record.error == f"waiting for review capacity: number {place} in the queue"
        assert f"number {place} in the queue" in status_of(world, task.number)
    assert "`max_open_pull_requests: 1`" in status_of(world, 7)
    # The open pull request merges: the head of the queue starts, the next moves up.
    world.github.pulls[1]["state"] = "closed"
    assert wake(world.store, world.dispatcher, p.REPO_ID, "#1 closed") == [seven.id, eight.id]
    world.work()
    first, second = world.store.get(seven.id), world.store.get(eight.id)
    assert first is not None and second is not None
    assert first.state is State.DONE, first.error
    assert second.state is State.WAITING
    assert second.error == "waiting for review capacity: number 1 in the queue"
    assert len([pr for pr in world.github.pulls.values() if pr["state"] == "open"]) == 1
