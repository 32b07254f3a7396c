"""The plan: one table of a repository's fleet, from Redis, as text and as a page."""

from __future__ import annotations

import pytest
from redis import Redis
from starlette.testclient import TestClient

from app.__main__ import main
from app.dispatch import Dispatcher
from app.fleet import plan
from app.fleet.decisions import Pull
from app.fleet.epic_state import EpicState
from app.fleet.state import FleetState
from app.settings import parse
from app.store.store import Store
from app.tasks import Kind, State, Task
from app.web.main import create_app
from tests import payloads as p
from tests.app.fleet.test_epic_plan import PLAN
from tests.fakes import LOCAL_URL


def fleet(redis: Redis) -> None:
    """Three issues: #7 and #8 have overlapping pull requests, #9 waits for #7."""
    store = Store(redis)
    dispatcher = Dispatcher(store, 60)
    for number in (7, 8, 9):
        task = Task(Kind.ISSUE, p.INSTALLATION, p.REPO_ID, p.REPO, number, "alice")
        dispatcher.enqueue(task, "test")
    for number in (7, 8):
        store.transition(f"issue-{p.REPO_ID}-{number}", (State.QUEUED,), State.DONE)
    store.transition(f"issue-{p.REPO_ID}-9", (State.QUEUED,), State.WAITING, "waiting for #7")
    state = FleetState(redis)
    state.record(p.REPO_ID, Pull(20, 7, 1.0, frozenset({"calc.py", "a.py"}), frozenset(),
                                 "agent/issue-7-x"))  # fmt: skip
    state.record(p.REPO_ID, Pull(21, 8, 2.0, frozenset({"calc.py"}), frozenset({"calc.py"}),
                                 "agent/issue-8-<b>"))  # fmt: skip
    state.set_depends(p.REPO_ID, 9, [7])


def test_plan_rows_put_pull_requests_in_merge_order_then_waiting_issues(redis: Redis) -> None:
    fleet(redis)
    rows = plan.read(Store(redis), p.REPO)
    assert [(r.issue, r.pull, r.merge_order, r.overlaps, r.state) for r in rows] == [
        (8, 21, 1, (20,), "done"),  # it changes calc.py's definitions: first
        (7, 20, 2, (21,), "done"),
        (9, None, None, (), "waiting"),
    ]
    assert rows[2].depends_on == (7,) and rows[2].why == "waiting for #7"
    assert rows[1].files == ("a.py", "calc.py")
    assert plan.read(Store(redis), "someone/else") == []
    # A pull request out of CI-fix attempts: its row says so, not its issue task's "done".
    Store(redis).set_escalated(p.REPO_ID, 20)
    (_, row, _) = plan.read(Store(redis), p.REPO)
    assert (row.pull, row.state, row.why) == (
        20,
        "escalated",
        "out of CI-fix attempts; a human takes over",
    )


def test_merged_pull_requests_stay_in_the_plan(redis: Redis) -> None:
    fleet(redis)
    state = FleetState(redis)
    state.close(p.REPO_ID, 21, merged=True)
    state.close(p.REPO_ID, 20, merged=False)
    rows = plan.read(Store(redis), p.REPO)
    assert [(r.issue, r.branch, r.pull, r.files, r.state) for r in rows] == [
        (7, "agent/issue-7-x", 20, ("a.py", "calc.py"), "closed"),
        (8, "agent/issue-8-<b>", 21, ("calc.py",), "merged"),
        (9, "", None, (), "waiting"),
    ]
    assert rows[2].depends_on == (7,)  # a waiting issue keeps its row as it was


def test_tasks_plan_prints_the_table(
    redis: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    fleet(redis)
    monkeypatch.setenv("REDIS_URL", redis_url)
    assert main(["tasks", "--plan", p.REPO]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ISSUE", "BRANCH", "PR", "FILES", "DEPENDS", "ON", "OVERLAPS",
                                "STATE", "MERGE"]  # fmt: skip
    assert lines[1].split()[:4] == ["#8", "agent/issue-8-<b>", "#21", "calc.py"]
    assert lines[3].split() == ["#9", "—", "—", "—", "#7", "—", "waiting", "(waiting", "for",
                                "#7)", "—"]  # fmt: skip
    assert main(["tasks", "--plan", "someone/else"]) == 0
    assert capsys.readouterr().out == "(no tasks on someone/else)\n"


def test_plan_page_escapes_and_links(redis: Redis) -> None:
    fleet(redis)
    app = create_app(parse({"WEBHOOK_SECRET": p.SECRET}), redis)
    with TestClient(app, client=("127.0.0.1", 5000), base_url=LOCAL_URL) as client:
        page = client.get(f"/plan/{p.REPO}").text
    with TestClient(app, client=("203.0.113.9", 4000), base_url=LOCAL_URL) as client:
        assert client.get(f"/plan/{p.REPO}").status_code == 403  # as the dashboard
    assert "agent/issue-8-&lt;b&gt;" in page and "<b>" not in page
    assert f'<a href="https://github.com/{p.REPO}/pull/21">#21</a>' in page
    assert f'<a href="https://github.com/{p.REPO}/issues/7">#7</a>' in page


def test_the_plan_page_shows_each_epic_with_its_rows(redis: Redis) -> None:
    fleet(redis)
    state = EpicState(redis)
    text = PLAN.replace("Document the project", "Document <b>it</b>")
    state.planned(p.REPO_ID, 5, 900, ["calc.py", "test_calc.py", "README.md"], text)
    state.filed(p.REPO_ID, 5, "fix-add", 7, 10007)
    state.progressed(p.REPO_ID, 5, 7, {"pull": 20, "state": "merged", "changed": ["calc.py"]})
    state.filed(p.REPO_ID, 5, "docs", 9, 10009)
    app = create_app(parse({"WEBHOOK_SECRET": p.SECRET}), redis)
    with TestClient(app, client=("127.0.0.1", 5000), base_url=LOCAL_URL) as client:
        page = client.get(f"/plan/{p.REPO}").text
    epic = page.split("<h2 id='epic-5'>", 1)[1]
    assert f'Epic <a href="https://github.com/{p.REPO}/issues/5">#5</a>' in epic
    assert "Split the calculator work." in epic and "Critical path: fix-add → docs" in epic
    assert "Document &lt;b&gt;it&lt;/b&gt;" in epic and "<b>it" not in epic
    fix_add = epic.split("<code>fix-add</code>", 1)[1].split("</tr>", 1)[0]
    assert "<td>three</td><td>1</td>" in fix_add
    assert '/issues/7">#7</a>' in fix_add and '/pull/20">#20</a>' in fix_add
    assert "merged" in fix_add
    docs = epic.split("<code>docs</code>", 1)[1].split("</tr>", 1)[0]
    assert "waiting" in docs and "<td>fix-add</td>" in docs  # its task's state: waiting for #7
    three = epic.split("<code>three</code>", 1)[1].split("</tr>", 1)[0]
    assert "not filed" in three
