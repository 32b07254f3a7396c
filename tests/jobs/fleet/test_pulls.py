"""Agent pull requests that change the same files: one comment each, kept up to date; and
`overlap: serialize`."""

from __future__ import annotations

from app.fleet.state import FleetState
from app.tasks import Kind, State, Task
from jobs.fleet import pulls as fleet
from jobs.fleet.overlap import MARKER
from tests import fakes
from tests import payloads as p
from tests.jobs.conftest import World


def overlap_comments(world: World, number: int) -> list[str]:
    return [b for b in world.github.comment_bodies(number) if b.startswith(MARKER)]


def open_two_overlapping(world: World) -> tuple[int, int]:
    world.github.add_issue(8, "Addition is wrong again")
    for number in (7, 8):
        record = world.run(world.issue_task(number))
        assert record.state is State.DONE, record.error
    first, second = sorted(world.github.pulls)
    return first, second


def test_overlapping_pull_requests_get_one_comment_each_kept_up_to_date(world: World) -> None:
    first, second = open_two_overlapping(world)
    (on_first,) = overlap_comments(world, first)
    (on_second,) = overlap_comments(world, second)
    assert f"- #{second}: `calc.py`" in on_first
    assert f"- #{first}: `calc.py`" in on_second
    # Both change the definition of add()? No: only its body; so the older goes first.
    order = f"Suggested merge order: #{first} → #{second}."
    assert order in on_first and order in on_second
    # The first merges: the second's comment is edited, not repeated.
    closed = Task(Kind.CLOSED, p.INSTALLATION, p.REPO_ID, p.REPO, first, "alice",
                  branch=world.github.pulls[first]["head"])  # fmt: skip
    world.github.pulls[first]["state"] = "closed"
    assert world.run(closed).state is State.DONE
    (after,) = overlap_comments(world, second)
    assert "no longer changes files that another open agent pull request changes" in after
    assert [p.number for p in FleetState(world.redis).pulls(p.REPO_ID)] == [second]


def test_pull_requests_that_share_nothing_get_no_comment(world: World) -> None:
    record = world.run(world.issue_task())
    assert record.state is State.DONE
    (number,) = world.github.pulls
    assert overlap_comments(world, number) == []
    (pull,) = FleetState(world.redis).pulls(p.REPO_ID)
    assert (pull.number, pull.issue, pull.files) == (number, 7, frozenset({"calc.py"}))


def test_serialize_holds_an_issue_naming_files_an_open_pull_request_changes(
    world: World,
) -> None:
    world.github.config_text = "overlap: serialize\n"
    assert world.run(world.issue_task(7)).state is State.DONE
    (owner,) = world.github.pulls
    world.github.add_issue(8, "Addition again", "The bug in `calc.py` is back.")
    record = world.run(world.issue_task(8))
    assert (record.state, record.error) == (State.WAITING, f"waiting for #{owner} to merge")
    (status,) = [b for b in world.github.comment_bodies(8) if not b.startswith(MARKER)]
    assert f"this issue names `calc.py`, which #{owner}" in status
    # Issues that name other files go ahead.
    world.github.add_issue(9, "Docs", "Say more in README.md")
    assert world.run(world.issue_task(9)).state is State.DONE


def test_file_names_the_agent_chose_are_recorded_redacted(world: World) -> None:
    world.setenv("WEBHOOK_SECRET", "hook-secret-of-the-app")
    ctx = world.context()
    api = ctx.app.installation(p.INSTALLATION)
    named = frozenset({"calc.py", "leak-hook-secret-of-the-app.txt"})
    fleet.opened(api, ctx, world.issue_task(), 30, "agent/issue-7-x", (named, frozenset()))
    (pull,) = FleetState(world.redis).pulls(p.REPO_ID)
    assert "hook-secret-of-the-app" not in " ".join(pull.files)
    assert "calc.py" in pull.files and len(pull.files) == 2


def push_change(world: World, branch: str, path: str, text: str, start: str = "main") -> str:
    """A person's commit on `branch` (made from `start` when new), pushed to the origin."""
    work = world.tmp / f"clone-{branch.replace('/', '-')}"
    if not work.exists():
        fakes.sh_git("clone", "--quiet", str(world.origin), str(work), cwd=world.tmp)
        fakes.sh_git("checkout", "--quiet", "-B", branch, f"origin/{start}", cwd=work)
    (work / path).write_text(text)
    fakes.sh_git("add", "-A", cwd=work)
    fakes.sh_git("commit", "--quiet", "-m", f"Change {path}", cwd=work)
    fakes.sh_git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", cwd=work)
    return world.github.head_sha(branch)


def sync(world: World, number: int, branch: str) -> Task:
    return Task(Kind.SYNC, p.INSTALLATION, p.REPO_ID, p.REPO, number, "carol",
                sha=world.github.head_sha(branch), branch=branch)  # fmt: skip


def test_a_push_to_an_agent_pull_request_rechecks_its_overlaps(world: World) -> None:
    assert world.run(world.issue_task(7)).state is State.DONE
    (first,) = world.github.pulls
    branch = "agent/issue-8-docs"
    push_change(world, branch, "README.md", "# calc, documented\n")
    world.github.add_pull(30, branch, issue=8)
    world.store.add_app_pull_request(p.REPO_ID, 30, 8, p.REPO, p.INSTALLATION, "main")
    record = world.run(sync(world, 30, branch))
    assert record.state is State.DONE, record.error
    assert overlap_comments(world, 30) == [] and overlap_comments(world, first) == []
    # Someone pushes a change to calc.py, which the first pull request changes too.
    push_change(world, branch, "calc.py", "def add(a, b):\n    return b + a\n")
    record = world.run(sync(world, 30, branch))
    assert record.state is State.DONE, record.error
    assert world.redis.hget(f"fh:task:{record.id}", "result") == (
        f"2 files changed; overlaps #{first}".encode()
    )
    (on_first,) = overlap_comments(world, first)
    assert "- #30: `calc.py`" in on_first
    pulls = {pull.number: pull for pull in FleetState(world.redis).pulls(p.REPO_ID)}
    assert pulls[30].files == frozenset({"README.md", "calc.py"})  # the plan's files follow
    assert pulls[30].issue == 8


def test_a_stale_push_is_skipped(world: World) -> None:
    assert world.run(world.issue_task(7)).state is State.DONE
    (number,) = world.github.pulls
    branch = world.github.pulls[number]["head"]
    old = sync(world, number, branch)
    push_change(world, branch, "README.md", "# moved on\n", start=branch)
    record = world.run(old)
    assert record.state is State.DONE
    assert world.redis.hget(f"fh:task:{old.id}", "result") == (
        f"skipped: {old.sha[:7]} is no longer the head".encode()
    )
