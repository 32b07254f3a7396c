"""The dashboard's main view: issues and pull requests with their tasks, attempts and
outcomes in words, and the escalated pull request's way out."""

from __future__ import annotations

from redis import Redis
from starlette.testclient import TestClient

from app.dashboard.task_rows import Row
from app.dashboard.work_items import group, outcome
from app.dashboard.work_pages import attempt_outcome
from app.dispatch import Dispatcher, queue_for
from app.settings import parse
from app.store import Store, task_key
from app.tasks import Kind, Task
from app.web.main import create_app
from tests import payloads as p
from tests.fakes import LOCAL_URL

ISSUE = Task(Kind.ISSUE, p.INSTALLATION, p.REPO_ID, p.REPO, 7, "alice")
FIRST = Task(Kind.CI, p.INSTALLATION, p.REPO_ID, p.REPO, 12, "ci[bot]", sha="a1" * 20)
SECOND = Task(Kind.CI, p.INSTALLATION, p.REPO_ID, p.REPO, 12, "ci[bot]", sha="b2" * 20)
LAST = Task(Kind.CI, p.INSTALLATION, p.REPO_ID, p.REPO, 12, "ci[bot]", sha="c3" * 20)
BASE = Task(Kind.BASE, p.INSTALLATION, p.REPO_ID, p.REPO, 0, "carol", sha="d4" * 20)


def row(task: Task, state: str, error: str = "", result: str = "", at: float = 1.0) -> Row:
    return Row(task, state, 0, at, at, error, result)


def test_an_attempt_says_whether_it_pushed_a_fix_or_a_merge() -> None:
    fix = {"failed": "unit (failure)", "pushed": "b" * 40}
    merge = {"failed": "merge conflict with main", "pushed": "c" * 40}
    ci = {"b" * 40: "passed"}
    assert attempt_outcome(fix, ci) == "fix pushed as bbbbbbb — CI on it: passed"
    assert attempt_outcome(merge, ci) == "merge pushed as ccccccc — CI on it: pending"
    assert attempt_outcome({"result": "no change"}, ci) == "no change"


def test_outcomes_read_as_what_happened() -> None:
    ci = {"b2" * 20: "failed (unit, lint)"}
    pushed = row(FIRST, "done", result="pushed b2b2b2b")
    assert outcome(pushed, ci) == "fix pushed as b2b2b2b — CI on it: failed (unit, lint)"
    assert outcome(pushed, {}) == "fix pushed as b2b2b2b — CI on it: pending"
    assert outcome(row(ISSUE, "done", result="no change"), {}) == "no change"
    timeout = "The agent ran longer than 60s and was stopped."
    assert outcome(row(ISSUE, "failed", timeout), {}) == f"stopped: timeout — {timeout}"
    assert outcome(row(LAST, "escalated", "out of attempts"), {}) == (
        "handed to a human: out of attempts"
    )
    assert outcome(row(LAST, "escalated", "escalated after 3 failed attempts: x"), {}) == (
        "handed to a human after 3 failed attempts: x"
    )
    assert outcome(row(ISSUE, "done", result="opened #12"), {}) == "opened pull request #12"


def test_tasks_group_into_issues_and_pull_requests_newest_first() -> None:
    items = group([
        row(SECOND, "done", at=3.0), row(ISSUE, "done", at=1.0), row(FIRST, "done", at=2.0),
        row(BASE, "running", at=0.5),
    ])  # fmt: skip
    assert [(i.number, i.pull) for i in items] == [(12, True), (7, False), (0, False)]
    assert [r.id for r in items[0].rows] == [FIRST.id, SECOND.id]  # oldest first
    assert items[2].state == "running"


CLOSED = Task(Kind.CLOSED, p.INSTALLATION, p.REPO_ID, p.REPO, 12, "carol")
SYNC = Task(Kind.SYNC, p.INSTALLATION, p.REPO_ID, p.REPO, 12, "carol", sha="e5" * 20)


def test_an_item_says_what_became_of_it_and_what_to_do_next() -> None:
    pushed = row(FIRST, "done", result="pushed b2b2b2b", at=1.0)
    (fixed,) = group([pushed, row(SYNC, "done", result="1 file changed; overlaps none", at=2.0)])
    fixed.pull = True
    # Bookkeeping after a push is not the outcome, nor a task anyone asked for.
    assert fixed.outcome.startswith("fix pushed as b2b2b2b") and len(fixed.work) == 1
    assert fixed.next_step.startswith("review it on GitHub and merge it")
    (merged,) = group([row(FIRST, "done", at=1.0), row(CLOSED, "done", result="merged; x", at=2)])
    assert (merged.state, merged.next_step) == ("merged", "nothing")
    (failed,) = group([row(ISSUE, "failed", "agent program not found")])
    assert failed.next_step == "read why, fix the cause, then Retry the task"
    (issue,) = group([row(ISSUE, "done", result="opened #12")])
    issue.linked = 12
    assert issue.next_step == "review pull request #12"


def escalated_world(redis: Redis) -> Store:
    """What a worker leaves after an issue's pull request ran out of CI-fix attempts."""
    store = Store(redis)
    dispatcher = Dispatcher(store, 60)
    for task, state, error, result in (
        (ISSUE, "done", "", "opened #12"),
        (FIRST, "done", "", "pushed b2b2b2b"),
        (SECOND, "done", "", "pushed c3c3c3c"),
        (LAST, "escalated", "escalated after 2 failed attempts: CI still fails", ""),
    ):
        dispatcher.enqueue(task, "test")
        redis.hset(task_key(task.id), mapping={"state": state, "error": error, "result": result})
    redis.delete(queue_for(redis).key)  # run, as far as RQ is concerned
    store.add_app_pull_request(p.REPO_ID, 12, 7, p.REPO, p.INSTALLATION)
    store.note_item(p.REPO_ID, 7, "Addition <b>subtracts</b>", pull=False)
    store.note_item(p.REPO_ID, 12, "Resolve #7: add() subtracts", pull=True)
    for n, (task, pushed) in enumerate(((FIRST, SECOND.sha), (SECOND, LAST.sha)), 1):
        entry = {
            "attempt": n, "sha": task.sha, "task": task.id, "failed": "unit (failure)",
            "changed": f"try {n}", "result": f"pushed {pushed[:7]}", "pushed": pushed,
        }  # fmt: skip
        store.add_attempt(p.REPO_ID, 12, entry)
        store.mark_failed(p.REPO_ID, 12, task.sha, "failed (unit)")
    store.mark_failed(p.REPO_ID, 12, LAST.sha, "failed (unit, lint)")
    store.set_escalated(p.REPO_ID, 12)
    return store


def client(redis: Redis) -> TestClient:
    settings = parse({"WEBHOOK_SECRET": p.SECRET})
    return TestClient(create_app(settings, redis), client=("127.0.0.1", 50000), base_url=LOCAL_URL)


def test_the_main_view_lists_issues_and_pull_requests(redis: Redis) -> None:
    escalated_world(redis)
    with client(redis) as c:
        page = c.get("/").text
        tasks = c.get("/tasks").text
    # The task list names each task by what it did, and what CI said of what it pushed.
    assert f"<a href='/tasks/{FIRST.id}'>fix CI failing on a1a1a1a</a>" in tasks
    assert "fix pushed as b2b2b2b — CI on it: failed (unit)" in tasks
    assert "<table id='items'>" in page
    assert "see <a href='/work/" in page  # the ways out, one click away
    assert "see pull request #12 (escalated)" in page  # the issue's next step follows its PR
    assert f"<a href='/work/{p.REPO}/12'>PR #12</a>" in page
    assert f"<a href='/work/{p.REPO}/7'>issue #7</a>" in page
    assert "Addition &lt;b&gt;subtracts&lt;/b&gt;" in page and "<b>subtracts" not in page
    assert "3 tasks · 2/3 fix attempts" in page and "id='no-worker'" not in page
    assert "⚠ escalated" in page and "handed to a human" in page
    assert FIRST.id not in page.replace(f"/tasks/{FIRST.id}", "")  # ids only in links


def test_an_escalated_pull_request_shows_its_attempts_and_the_way_out(redis: Redis) -> None:
    escalated_world(redis)
    with client(redis) as c:
        page = c.get(f"/work/{p.REPO}/12").text
        missing = c.get(f"/work/{p.REPO}/99")
    assert missing.status_code == 404
    assert "Resolve #7: add() subtracts" in page
    assert f"for issue <a href='/work/{p.REPO}/7'>#7</a>" in page
    # One row per attempt: what failed, what was tried, what came of it, linked.
    assert "<table id='attempts'>" in page and page.count("unit (failure)") == 2
    web = f"https://github.com/{p.REPO}/commit"
    assert f'fix pushed as <a href="{web}/b2b2b2b">b2b2b2b</a> — CI on it: failed (unit)' in page
    assert "CI on it: failed (unit, lint)" in page
    assert f"<a href='/tasks/{FIRST.id}'>its task</a>" in page
    # The way out, named.
    assert "id='way-out'" in page and "/agent retry" in page and "agent:needs-human" in page
    assert "Re-run" in page
    # A fix whose commit CI then failed is not a green "done".
    assert page.count("<span class='state ci-failed'>✖ done, CI failed on it</span>") == 2
    # Its tasks in order, each in words.
    assert page.index("fix CI failing on a1a1a1a") < page.index("fix CI failing on c3c3c3c")


def test_queued_work_without_a_worker_is_a_red_banner(redis: Redis) -> None:
    Dispatcher(Store(redis), 60).enqueue(ISSUE, "test")
    with client(redis) as c:
        work, tasks = c.get("/").text, c.get("/tasks").text
    for page in (work, tasks):
        assert "id='no-worker'" in page and "forgehand worker" in page


def test_a_finished_task_page_says_what_it_came_to(redis: Redis) -> None:
    escalated_world(redis)
    with client(redis) as c:
        fix = c.get(f"/tasks/{FIRST.id}").text
        last = c.get(f"/tasks/{LAST.id}").text
    assert "Fix CI failing on a1a1a1a" in fix and "Resolve #7: add() subtracts" in fix
    assert "id='ci'>CI on <a" in fix and "the commit it set out to fix: failed (unit)</p>" in fix
    # Done, but not green: CI failed on what it pushed.
    assert "id='state' class='state ci-failed'>✖ done, CI failed on it<" in fix
    assert "CI on it: failed (unit)" in fix  # its outcome
    # Not run here: no prompt, and the pushed change is on GitHub, not "no change".
    assert "The agent was not run in this task." in fix and "No prompt yet." not in fix
    assert "the change is on GitHub" in fix and "No change committed." not in fix
    assert "failed (unit, lint)" in last
    # The escalated task says it once and points at the attempts and the ways out.
    assert last.count("escalated after 2 failed attempts") == 0
    assert last.count("handed to a human after 2 failed attempts") == 1
    assert f"<a href='/work/{p.REPO}/12#way-out'>the pull request's page</a>" in last


def test_work_on_the_repository_itself_says_so(redis: Redis) -> None:
    base = Task(Kind.BASE, p.INSTALLATION, p.REPO_ID, p.REPO, 0, "carol", sha="d" * 40)
    Dispatcher(Store(redis), 60).enqueue(base, "test")
    with client(redis) as c:
        work, item = c.get("/").text, c.get(f"/work/{p.REPO}/0").text
    said = "work on the repository, not on one issue or PR"
    assert said in work
    assert f"{p.REPO} (the repository): {said}</h1>" in item
    assert f"{p.REPO} on GitHub</a>" in item and "(the repository) on GitHub" not in item
