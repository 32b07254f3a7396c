"""A submitted review becomes one task; every thread gets an answer."""

from __future__ import annotations

from app.tasks import Kind, State, Task
from tests import fakes
from tests import payloads as p
from tests.jobs.conftest import BRANCH, World


def review_task(number: int, review_id: int = 555, sender: str = "alice") -> Task:
    return Task(Kind.REVIEW, p.INSTALLATION, p.REPO_ID, p.REPO, number, sender,
                review_id=review_id, branch=BRANCH)  # fmt: skip


def add_review(world: World, number: int, review_id: int = 555, comments: int = 5) -> None:
    world.github.reviews[review_id] = {
        "id": review_id, "body": "A few things.", "state": "CHANGES_REQUESTED",
        "user": {"login": "alice"},
    }  # fmt: skip
    world.github.review_comments[review_id] = [
        {"id": 7000 + i, "path": "calc.py", "line": 1 + i, "diff_hunk": "@@ -1,2 +1,2 @@",
         "body": f"Point {i}: please rename."}
        for i in range(comments)
    ]  # fmt: skip


def test_review_with_five_comments_is_one_push_and_five_replies(world: World) -> None:
    number = world.open_pull_request()
    add_review(world, number)
    world.use_agent("tweak", "--out", str(world.tmp / "agent.json"))
    before = world.github.head_sha(BRANCH)
    record = world.run(review_task(number))
    assert record.state is State.DONE, record.error
    head = world.github.head_sha(BRANCH)
    assert head != before
    assert sorted(r[0] for r in world.github.replies) == [7000, 7001, 7002, 7003, 7004]
    assert {r[1] for r in world.github.replies} == {f"Addressed in {head[:7]}."}
    import json

    prompt = json.loads((world.tmp / "agent.json").read_text())["prompt"]
    assert "calc.py line 3" in prompt and "Point 4: please rename." in prompt
    summary = [b for b in world.github.comment_bodies(number) if "for your review" in b]
    assert summary and "@alice" in summary[0]


def test_replies_go_to_the_first_comment_of_each_thread(world: World) -> None:
    number = world.open_pull_request()
    add_review(world, number, comments=2)
    world.github.review_comments[555][1]["in_reply_to_id"] = 7000
    world.use_agent("tweak")
    world.run(review_task(number))
    assert [r[0] for r in world.github.replies] == [7000]


def test_review_by_user_without_write_access_does_nothing(world: World) -> None:
    number = world.open_pull_request()
    add_review(world, number)
    world.github.permissions["mallory"] = "read"
    before = world.github.head_sha(BRANCH)
    record = world.run(review_task(number, sender="mallory"))
    assert record.state is State.FAILED
    assert world.github.head_sha(BRANCH) == before and world.github.replies == []


def test_two_tasks_on_one_pull_request_are_serialized(world: World) -> None:
    number = world.open_pull_request()
    add_review(world, number, review_id=1, comments=1)
    add_review(world, number, review_id=2, comments=1)
    world.use_agent("tweak")
    results = world.execute_together([review_task(number, 1), review_task(number, 2)])
    assert all(r.startswith("pushed ") for r in results.values()), results
    # Both landed, one on top of the other: nothing was rejected or forced.
    log = fakes.sh_git("log", "--format=%s", f"main..{BRANCH}", cwd=world.origin).splitlines()
    assert log[:2] == ["Address review by alice", "Address review by alice"]


def test_push_after_a_human_pushed_meanwhile_is_replayed_on_top(world: World) -> None:
    number = world.open_pull_request()
    add_review(world, number, comments=1)
    world.use_agent("race", "--origin", str(world.origin), "--mark", str(world.tmp / "human"))
    record = world.run(review_task(number))
    assert record.state is State.DONE, record.error
    log = fakes.sh_git("log", "--format=%s", f"main..{BRANCH}", cwd=world.origin).splitlines()
    assert log[:2] == ["Address review by alice", "human change"]  # theirs kept, ours on top
    assert "rebase" in [e["event"] for e in world.store.events(record.id)]


def test_conflicting_human_push_fails_the_task_without_forcing(world: World) -> None:
    number = world.open_pull_request()
    add_review(world, number, comments=1)
    world.use_agent("race-conflict", "--origin", str(world.origin),
                    "--mark", str(world.tmp / "human"))  # fmt: skip
    record = world.run(review_task(number))
    assert record.state is State.FAILED
    assert "conflict" in record.error and "nothing was pushed" in record.error
    log = fakes.sh_git("log", "--format=%s", "-1", BRANCH, cwd=world.origin).strip()
    assert log == "human change"
    assert world.leftovers() == []


def test_a_pull_request_the_app_did_not_open_is_never_pushed_to(world: World) -> None:
    world.github.add_pull(40, BRANCH)
    fakes.sh_git("branch", BRANCH, "main", cwd=world.origin)
    world.github.pulls[40]["author"] = "mallory"
    add_review(world, 40, comments=1)
    record = world.run(review_task(40))
    assert record.state is State.FAILED
    assert record.error == "#40 was opened by mallory, not by the App; nothing was done."
    assert fakes.sh_git("rev-parse", BRANCH, cwd=world.origin) == fakes.sh_git(
        "rev-parse", "main", cwd=world.origin
    )
