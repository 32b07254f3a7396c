"""A running task's progress on GitHub: its `forgehand` check run, or the issue's status
comment, against the simulated GitHub's checks API."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

from app.github import GitHubError, Installation
from app.tasks import Kind, State, Task
from jobs import pipeline
from jobs.errors import HANDED_BACK
from jobs.hand_back import HAND_BACK_SIGNAL
from jobs.kinds import ci_fix as fix_ci
from jobs.pipeline import deliver, flow
from jobs.report import progress
from jobs.report.progress import Heartbeat
from tests import payloads as p
from tests.jobs.conftest import BRANCH, World, wait_until

TOKEN_LIKE = "ghp_" + "a1B2c3D4e5" * 4  # shaped like a GitHub token: never shown


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fix_ci, "CHECK_POLL", 0.05)
    monkeypatch.setattr(fix_ci, "CHECK_WAIT", 5.0)


def own_runs(world: World) -> list[dict[str, Any]]:
    return [
        run
        for runs in world.github.check_runs.values()
        for run in runs
        if run["app"]["id"] == p.APP_ID
    ]


def check_bodies(world: World) -> list[dict[str, Any]]:
    return [c.body for c in world.github.requests(None, r"/check-runs(/\d+)?$") if c.body]


def test_ci_fix_shows_progress_and_outcome_on_its_check_run(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "INTERVAL", 0.05)
    number = world.open_pull_request()
    head = world.github.head_sha(BRANCH)
    world.github.add_check_run(head, "tests")
    world.use_agent("tweak", "--say", f"thinking about it {TOKEN_LIKE}")
    task = world.ci_task(number, head)
    record = world.run(task)
    assert record.state is State.DONE, record.error
    (run,) = own_runs(world)
    url = f"http://127.0.0.1:3000/tasks/{task.id}"
    assert (run["name"], run["head_sha"], run["details_url"]) == ("forgehand", head, url)
    assert run["external_id"] == task.id
    # Never green on the commit whose CI failed: the title says what was done and CI's state.
    assert (run["status"], run["conclusion"]) == ("completed", "neutral")
    pushed = world.github.head_sha(BRANCH)[:7]
    assert run["output"]["title"] == f"Fix pushed as {pushed} (attempt 1 of 3) — CI on it: pending"
    assert "> Tweaked calc.py." in run["output"]["summary"]  # the agent's own words
    assert "**Steps so far**" in run["output"]["summary"] and url in run["output"]["summary"]
    assert "Tweaked calc.py." in run["output"]["text"]  # the log tail
    bodies = check_bodies(world)
    assert bodies[0]["status"] == "in_progress"
    working = [b for b in bodies[1:-1] if b["output"]["title"].startswith("agent working · ")]
    assert working and all("status" not in b for b in working)
    assert "last output" in working[0]["output"]["title"]
    assert "- `" in working[0]["output"]["summary"]  # the steps so far, one per line
    assert TOKEN_LIKE not in str(bodies)
    # CI's own run is untouched, and the App's check is not CI to wait for or fix.
    assert [r["name"] for r in world.github.check_runs[head]] == ["tests", "forgehand"]


def test_escalation_completes_the_check_run_as_a_failure(world: World) -> None:
    world.escalate_ci()
    (run,) = own_runs(world)
    assert (run["status"], run["conclusion"]) == ("completed", "failure")
    assert run["output"]["title"] == "Out of attempts: handed to a human"
    assert "escalated after 3 failed attempts" in run["output"]["summary"]


def test_a_review_with_no_change_completes_its_check_run_as_neutral(world: World) -> None:
    number = world.open_pull_request()
    world.use_agent("noop")
    world.github.reviews[5] = {"id": 5, "body": "Rename it.", "state": "CHANGES_REQUESTED",
                               "user": {"login": "alice"}}  # fmt: skip
    world.github.review_comments[5] = []
    review = Task(Kind.REVIEW, p.INSTALLATION, p.REPO_ID, p.REPO, number, "alice", review_id=5)
    record = world.run(review)
    assert record.state is State.DONE, record.error
    (run,) = [r for r in own_runs(world) if r["external_id"] == review.id]
    assert (run["status"], run["conclusion"]) == ("completed", "neutral")
    assert run["output"]["title"] == "@alice: The agent made no changes, so nothing was pushed."
    assert "Nothing needed changing." in run["output"]["text"]


def test_the_apps_own_failed_check_never_starts_a_fix(world: World) -> None:
    number = world.open_pull_request()
    head = world.github.head_sha(BRANCH)
    world.github.add_check_run(head, "forgehand")
    world.github.check_runs[head][-1]["app"] = {"id": p.APP_ID, "slug": "forgehand"}
    record = world.run(world.ci_task(number, head))
    assert record.state is State.DONE
    assert world.store.events(record.id)[-1]["detail"] == "no failing checks on the head any more"
    assert world.store.attempts(p.REPO_ID, number) == []


def test_issue_task_shows_progress_in_its_status_comment(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "INTERVAL", 0.05)
    world.use_agent("fix", "--say", f"looking at calc.py {TOKEN_LIKE}")
    record = world.run(world.issue_task())
    assert record.state is State.DONE, record.error
    edits = [c.body["body"] for c in world.github.requests("PATCH", r"/issues/comments/\d+$")]
    working = [b for b in edits if "⏳ Working on it… agent working · " in b]
    assert working and "**Steps so far**" in working[0] and "worktree" in working[0]
    assert all(TOKEN_LIKE not in b for b in edits)
    assert own_runs(world) == []  # an issue has no commit of the App's to put a check on


def test_heartbeat_shows_silence_and_survives_github(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "INTERVAL", 0.05)
    shown: list[str] = []
    beat = Heartbeat(lambda b: shown.append(b.line()))
    with beat.beating():
        assert shown == ["agent working · 0 s · last output 0 s ago"]  # at once, then on time
        wait_until(lambda: len(shown) >= 3, "the heartbeat stopped beating")
    after = len(shown)
    beat.output()
    assert len(shown) == after  # output alone publishes nothing; the beat stopped with the body

    def refuse(_beat: Heartbeat) -> None:
        raise GitHubError("GitHub answered 502", 502)

    with Heartbeat(refuse).beating():  # logged, never raised into the agent's run
        pass


def test_a_failed_task_completes_its_check_run_with_the_reason_and_log(world: World) -> None:
    number = world.open_pull_request()
    world.use_agent("fail")
    comment = world.github._id()
    world.github.issue_comments[comment] = {"id": comment, "body": "/agent rename it",
                                            "user": {"login": "alice"}}  # fmt: skip
    command = Task(Kind.COMMAND, p.INSTALLATION, p.REPO_ID, p.REPO, number, "alice",
                   comment_id=comment)  # fmt: skip
    record = world.run(command)
    assert record.state is State.FAILED
    (run,) = own_runs(world)
    assert (run["status"], run["conclusion"]) == ("completed", "failure")
    assert (
        run["output"]["title"] == "The agent exited with status 3: error: the model is unavailable"
    )
    assert "error: the model is unavailable" in run["output"]["text"]


def test_an_installation_without_checks_write_still_gets_its_fix(world: World) -> None:
    number = world.open_pull_request()
    world.use_agent("tweak")
    world.github.add_check_run(world.github.head_sha(BRANCH), "tests")
    world.github.failures[f"POST /repos/{p.REPO}/check-runs"] = [403]
    record = world.run(world.ci_task(number))
    assert record.state is State.DONE, record.error
    assert own_runs(world) == []
    (note,) = [e for e in world.store.events(record.id) if e["event"] == "no check run"]
    assert note["detail"].startswith("GitHub answered 403 to POST")
    assert world.github.requests("PATCH", "/check-runs/") == []


def test_a_fix_check_run_learns_what_ci_said_of_its_commit(world: World) -> None:
    number = world.open_pull_request()
    world.use_agent("tweak")
    world.fail_ci(number)
    (first,) = own_runs(world)
    pushed = world.github.head_sha(BRANCH)
    assert first["output"]["title"].endswith("CI on it: pending")
    world.fail_ci(number)  # CI fails on the pushed fix too: the next attempt runs
    first = next(r for r in own_runs(world) if r["id"] == first["id"])
    assert first["output"]["title"] == (
        f"Fix pushed as {pushed[:7]} (attempt 1 of 3) — CI on it: failed (tests)"
    )
    assert first["conclusion"] == "neutral"
    assert "**Steps so far**" in first["output"]["summary"]  # the summary is kept
    assert world.store.ci_results(p.REPO_ID, number)[pushed] == "failed (tests)"


def test_a_check_run_is_never_green_on_a_commit_whose_ci_is_red(world: World) -> None:
    number = world.open_pull_request()
    head = world.github.head_sha(BRANCH)
    world.github.add_check_run(head, "lint")  # red, and no CI-fix task has seen it yet
    world.use_agent("tweak")
    world.github.issue_comments[9001] = {"id": 9001, "body": "/agent add a docstring",
                                         "user": {"login": "alice"}}  # fmt: skip
    task = Task(Kind.COMMAND, p.INSTALLATION, p.REPO_ID, p.REPO, number, "alice", comment_id=9001)
    record = world.run(task)
    assert record.state is State.DONE, record.error
    (run,) = own_runs(world)
    assert run["head_sha"] == head
    assert run["conclusion"] == "neutral"
    pushed = world.github.head_sha(BRANCH)[:7]
    assert run["output"]["title"] == (
        f"✅ Pushed `{pushed}` for @alice — CI on it: pending · CI on {head[:7]}: failed (lint)"
    )
    assert world.redis.hget(f"fh:task:{task.id}", "result") == b"pushed " + (
        world.github.head_sha(BRANCH)[:7].encode()
    )


def _command(world: World, number: int, comment: int) -> Task:
    world.github.issue_comments[comment] = {"id": comment, "body": "/agent add a docstring",
                                            "user": {"login": "alice"}}  # fmt: skip
    return Task(Kind.COMMAND, p.INSTALLATION, p.REPO_ID, p.REPO, number, "alice",
                comment_id=comment)  # fmt: skip


def test_an_agent_request_check_run_goes_green_only_once_ci_passes_on_what_it_pushed(
    world: World,
) -> None:
    number = world.open_pull_request()
    world.use_agent("tweak")
    record = world.run(_command(world, number, 9001))
    assert record.state is State.DONE, record.error
    (run,) = own_runs(world)
    pushed = world.github.head_sha(BRANCH)
    lead = f"✅ Pushed `{pushed[:7]}` for @alice"
    assert run["output"]["title"] == f"{lead} — CI on it: pending"
    world.github.add_check_run(pushed, "tests", status="in_progress")
    verdict = Task(Kind.VERDICT, p.INSTALLATION, p.REPO_ID, p.REPO, number, "ci", sha=pushed)
    assert world.run(verdict).state is State.DONE
    run = next(r for r in own_runs(world) if r["id"] == run["id"])
    assert run["output"]["title"] == f"{lead} — CI on it: pending"  # a suite still runs
    world.github.check_runs[pushed][-1].update(status="completed", conclusion="success")
    assert world.run(verdict).state is State.DONE
    run = next(r for r in own_runs(world) if r["id"] == run["id"])
    assert (run["conclusion"], run["output"]["title"]) == ("success", f"{lead} — CI on it: passed")
    assert "**Steps so far**" in run["output"]["summary"]  # the summary is kept
    assert world.redis.hget(f"fh:task:{verdict.id}", "result") == (
        f"CI on {pushed[:7]}: passed".encode()
    )


def test_an_agent_request_check_run_says_ci_failed_on_what_it_pushed_and_is_not_green(
    world: World,
) -> None:
    number = world.open_pull_request()
    world.use_agent("tweak")
    assert world.run(_command(world, number, 9001)).state is State.DONE
    (run,) = own_runs(world)
    assert run["conclusion"] == "success"
    pushed = world.github.head_sha(BRANCH)
    world.fail_ci(number)  # CI fails on the pushed commit: its fix task tells the request's run
    run = next(r for r in own_runs(world) if r["id"] == run["id"])
    assert (run["conclusion"], run["output"]["title"]) == (
        "neutral",
        f"✅ Pushed `{pushed[:7]}` for @alice — CI on it: failed (tests)",
    )


def test_a_verdict_on_a_commit_no_task_pushed_changes_nothing(world: World) -> None:
    number = world.open_pull_request()
    head = world.github.head_sha(BRANCH)
    verdict = Task(Kind.VERDICT, p.INSTALLATION, p.REPO_ID, p.REPO, number, "ci", sha=head)
    assert world.run(verdict).state is State.DONE
    assert world.redis.hget(f"fh:task:{verdict.id}", "result") == (
        f"no task of forgehand's pushed {head[:7]}".encode()
    )
    assert world.github.requests("PATCH", "/check-runs/") == []


def test_check_names_the_repository_chose_are_redacted_where_forgehand_repeats_them(
    world: World,
) -> None:
    number = world.open_pull_request()
    world.use_agent("tweak")
    for _ in range(2):  # a fix, then CI failing on the fix too: the first run is retitled
        head = world.github.head_sha(BRANCH)
        world.github.add_check_run(head, f"tests {TOKEN_LIKE}")
        world.run(world.ci_task(number, head))
    titles = [run["output"]["title"] for run in own_runs(world)]
    assert any("CI on it: failed" in t for t in titles), titles
    assert TOKEN_LIKE not in str(titles) + str(check_bodies(world))
    assert TOKEN_LIKE not in str(world.store.ci_results(p.REPO_ID, number))


# The interrupted agent's output pipe is left to the work-horse's exit, which follows at once
# in a worker; here the horse is the test's own process.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_run_handed_back_says_so_on_its_check_run(world: World) -> None:
    number = world.open_pull_request()
    world.use_agent("hang")
    world.github.add_check_run(world.github.head_sha(BRANCH), "tests")
    task = world.ci_task(number)

    def drain() -> None:
        # What a draining worker does to its work-horse (here the test's own process).
        wait_until(lambda: "thinking…" in world.store.log_tail(task.id), "the agent", 30)
        os.kill(os.getpid(), HAND_BACK_SIGNAL)

    threading.Thread(target=drain, daemon=True).start()
    record = world.run(task)
    assert (record.state, record.error) == (State.QUEUED, HANDED_BACK)
    assert world.store.events(task.id)[-1]["event"] == "handed back"
    (run,) = own_runs(world)
    assert (run["status"], run["conclusion"]) == ("completed", "neutral")
    assert run["output"]["title"] == HANDED_BACK


def test_ci_that_passes_before_the_fix_task_notes_its_push_is_still_told(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    number = world.open_pull_request()
    world.github.add_check_run(world.github.head_sha(BRANCH), "tests")
    world.use_agent("tweak")
    verdicts: list[str] = []

    def push_then_ci_passes(work: pipeline.Run, api: Installation) -> None:
        # CI on the fix completes, and its verdict runs, before the fix task goes on.
        deliver.push(work, api)
        head = world.github.head_sha(BRANCH)
        world.github.add_check_run(head, "tests", conclusion="success")
        verdict = Task(Kind.VERDICT, p.INSTALLATION, p.REPO_ID, p.REPO, number, "ci", sha=head)
        verdicts.extend(world.execute_together([verdict]).values())

    monkeypatch.setattr(flow, "push", push_then_ci_passes)
    record = world.run(world.ci_task(number))
    assert record.state is State.DONE, record.error
    pushed = world.github.head_sha(BRANCH)[:7]
    assert verdicts == [f"CI on {pushed}: passed; told once its push is noted"]
    (run,) = own_runs(world)
    assert run["output"]["title"] == f"Fix pushed as {pushed} (attempt 1 of 3) — CI on it: passed"
