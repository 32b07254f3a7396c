from __future__ import annotations

import base64
import re

import pytest
from redis import Redis
from redis.typing import EncodableT, FieldT
from starlette.testclient import TestClient

from app.dashboard.routes import form_token, web_base
from app.dashboard.task_rows import Filters, Selection, Summary, select
from app.dashboard.timeline import Part, durations, parts
from app.dispatch import Dispatcher, queue_for
from app.settings import parse
from app.store import Store, task_key
from app.tasks import Kind, State, Task
from app.web.main import create_app
from tests import payloads as p
from tests.fakes import LOCAL_URL

LOCAL = ("127.0.0.1", 50000)
TASK = Task(Kind.ISSUE, p.INSTALLATION, p.REPO_ID, p.REPO, 7, "alice")


def client(redis: Redis, client: tuple[str, int] = LOCAL, **env: str) -> TestClient:
    settings = parse({"WEBHOOK_SECRET": p.SECRET, **env})
    return TestClient(create_app(settings, redis), client=client, base_url=LOCAL_URL)


@pytest.fixture
def queued(redis: Redis) -> Store:
    store = Store(redis)
    Dispatcher(store, 60).enqueue(TASK, "delivery d-1 (issues.labeled)")
    store.append_log(TASK.id, ["thinking <b>hard</b>", "done"])
    return store


def test_index_lists_tasks_with_links(redis: Redis, queued: Store) -> None:
    with client(redis) as c:
        page = c.get("/tasks").text
    # A task is named by what it does; its id stays in the URL.
    assert f"<a href='/tasks/{TASK.id}'>resolve the issue</a>" in page
    assert f'<a href="https://github.com/{p.REPO}/issues/7">{p.REPO}#7</a>' in page
    assert "class='state queued'" in page and "1 queued · 0 workers" in page


def test_task_page_has_timeline_and_escaped_log(redis: Redis, queued: Store) -> None:
    with client(redis) as c:
        page = c.get(f"/tasks/{TASK.id}").text
        data = c.get(f"/tasks/{TASK.id}.json").json()
        assert c.get("/tasks/nope").status_code == 404
    assert "thinking &lt;b&gt;hard&lt;/b&gt;" in page and "<b>hard</b>" not in page
    assert "delivery d-1 (issues.labeled)" in page
    assert data["state"] == "queued" and data["log"] == ["thinking <b>hard</b>", "done"]
    assert [e["event"] for e in data["events"]] == ["queued"]


def test_without_password_only_this_machine_may_look(redis: Redis, queued: Store) -> None:
    with client(redis, ("203.0.113.9", 4000)) as c:
        assert c.get("/").status_code == 403
        assert c.get(f"/tasks/{TASK.id}.json").status_code == 403


def test_password_is_required_when_set(redis: Redis, queued: Store) -> None:
    with client(redis, ("203.0.113.9", 4000), DASHBOARD_PASSWORD="sesame") as c:
        refused = c.get("/")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Basic realm="forgehand"'
        wrong = base64.b64encode(b"admin:open").decode()
        assert c.get("/", headers={"Authorization": f"Basic {wrong}"}).status_code == 401
        right = base64.b64encode(b"admin:sesame").decode()
        assert c.get("/", headers={"Authorization": f"Basic {right}"}).status_code == 200


def test_enterprise_links() -> None:
    assert web_base("https://api.github.com") == "https://github.com"
    assert web_base("https://ghe.example.com/api/v3") == "https://ghe.example.com"


CI = Task(Kind.CI, p.INSTALLATION, p.REPO_ID, p.REPO, 12, "alice", sha="a" * 40, branch="b")


def token() -> str:
    return form_token(parse({"WEBHOOK_SECRET": p.SECRET}))


def raw_state(redis: Redis, task_id: str, state: str, error: str = "", **more: str) -> None:
    """Write a state as a worker does, including states this branch's enum may not know."""
    fields: dict[FieldT, EncodableT] = {"state": state, "error": error}
    fields.update(more)
    redis.hset(task_key(task_id), mapping=fields)


def test_totals_filters_and_unknown_states(redis: Redis, queued: Store) -> None:
    dispatcher = Dispatcher(queued, 60)
    other = Task(Kind.REVIEW, p.INSTALLATION, 99, "octo/other", 3, "bob", review_id=5)
    for task in (CI, other):
        dispatcher.enqueue(task, "test")
    raw_state(redis, CI.id, "escalated", "out of attempts <3>", attempt="3")
    raw_state(redis, other.id, "thinking-hard")
    with client(redis) as c:
        page = c.get("/tasks").text
        only_escalated = c.get("/tasks?state=escalated").text
        by_repo = c.get("/tasks", params={"repo": "octo/other"}).text
        by_kind = c.get("/tasks?kind=issue").text
        none = c.get("/tasks?state=done").text
    assert "3 all" in page
    assert "1 <span class='state escalated'>⚠ escalated</span>" in page
    assert "0 <span class='state failed'>✖ failed</span>" in page
    assert "<tr class='escalated'>" in page and "out of attempts &lt;3&gt;" in page
    assert "<td>3/3</td>" in page
    # A state this process does not know is shown, plainly.
    assert "<span class='state '>thinking-hard</span>" in page
    assert CI.id[:10] in only_escalated and TASK.id not in only_escalated
    assert other.id in by_repo and TASK.id not in by_repo
    assert TASK.id in by_kind and other.id not in by_kind
    assert "No task matches these filters." in none
    # Each repository's fleet plan is one click away.
    assert "<a href='/plan/octo/other'>octo/other</a>" in page
    assert f"<a href='/plan/{p.REPO}'>{p.REPO}</a>" in page


def test_each_task_shows_its_own_attempt(redis: Redis) -> None:
    store = Store(redis)
    second = Task(Kind.CI, p.INSTALLATION, p.REPO_ID, p.REPO, 12, "alice", sha="b" * 40)
    for task, attempt in ((CI, "1"), (second, "2")):
        Dispatcher(store, 60).enqueue(task, "test")
        raw_state(redis, task.id, "failed", "tests still fail", attempt=attempt)
    with client(redis) as c:
        page = c.get("/tasks").text
        first_page = c.get(f"/tasks/{CI.id}").text
    assert "<td>1/3</td>" in page and "<td>2/3</td>" in page
    assert " · attempt 1/3 · " in first_page


def test_pages_go_past_the_newest_200(redis: Redis) -> None:
    store = Store(redis)
    dispatcher = Dispatcher(store, 60)
    tasks = [Task(Kind.ISSUE, p.INSTALLATION, p.REPO_ID, p.REPO, n, "a") for n in range(1, 203)]
    for task in tasks:
        dispatcher.enqueue(task, "test")
    with client(redis) as c:
        first = c.get("/tasks").text
        second = c.get("/tasks?page=2").text
        beyond = c.get("/tasks?page=9").text
        junk = c.get("/tasks?page=x").text

    def shown(page: str) -> set[str]:
        return set(re.findall(r"<a href='/tasks/(issue-[0-9-]+)'>", page))

    assert len(shown(first)) == 200 and "page 1 of 2 (202 tasks)" in first
    assert "<a id='older' href='/tasks?page=2'>" in first
    assert shown(second) == {tasks[0].id, tasks[1].id}  # the oldest two
    assert "<a id='newer' href='/tasks'>" in second and "id='older'" not in second
    assert shown(beyond) == shown(second) and shown(junk) == shown(first)


def test_select_pages_and_counts_without_redis() -> None:
    rows = [Summary(f"t{i}", "done" if i % 2 else "failed", "o/r", "ci") for i in range(5)]
    chosen = select(rows, Filters(state="failed"), 2, 2)
    assert chosen.ids == ["t4"] and chosen.matching == 3 and chosen.pages == 2
    assert chosen.totals == {"failed": 3, "done": 2} and chosen.repos == ["o/r"]
    assert select([], Filters(), 5, 2) == Selection([], {}, [], 0, 1, 1)


def test_task_page_links_durations_prompt_and_diff(redis: Redis, queued: Store) -> None:
    queued.audit(TASK.id, "pull request", "#12 opened")
    queued.audit(TASK.id, "push", f"pushed {'c' * 5}1234567 to agent/x; check run 77 <b>")
    queued.set_prompt(TASK.id, "Fix <script>alert(1)</script> please")
    queued.set_diff(TASK.id, "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-old <i>\n+new <i>\n")
    with client(redis) as c:
        page = c.get(f"/tasks/{TASK.id}").text
        data = c.get(f"/tasks/{TASK.id}.json").json()
    base = f"https://github.com/{p.REPO}"
    assert f'<a href="{base}/issues/12">#12</a> opened' in page
    assert f'<a href="{base}/commit/{"c" * 5}1234567">' in page
    assert f'<a href="{base}/runs/77">check run 77</a> &lt;b&gt;' in page
    assert "Fix &lt;script&gt;alert(1)&lt;/script&gt; please" in page
    assert "<script>alert" not in page
    assert "<span class='del'>-old &lt;i&gt;</span>" in page
    assert "<span class='add'>+new &lt;i&gt;</span>" in page
    # Every step but the last has its length; the last runs on while the task is queued.
    assert [bool(s["took"]) for s in data["steps"]] == [True, True, True]
    assert data["steps"][1]["parts"][0] == {"text": "#12", "href": f"{base}/issues/12"}
    assert data["active"] is True and data["attempt"] == 0


def test_timeline_links_only_to_the_github_site() -> None:
    web = "https://github.com"
    got = parts("see https://evil.example/x and https://github.com/o/r/pull/1", web, "o/r")
    assert [q.href for q in got] == ["", "https://github.com/o/r/pull/1"]
    assert (
        "".join(q.text for q in got)
        == "see https://evil.example/x and https://github.com/o/r/pull/1"
    )
    assert parts("deadbeef café 1234567 added", web, "o/r") == [Part("deadbeef café 1234567 added")]
    assert parts("", web, "o/r") == [Part("")]
    # Only commits are linked as commits: not a delivery's GUID, nor a worker's name.
    guid, worker = "9c8d05ec-5c58-4110-9a1e-7b9c9096f7a3", "43d82379981549cc8d995d6ffb5768cc"
    assert parts(f"delivery {guid}; worker {worker}", web, "o/r") == [
        Part(f"delivery {guid}; worker {worker}")
    ]
    sha = "fa77deb846aba9e64d5ab50c7f05e8b11712e7f6"
    assert [q.href for q in parts(f"pushed {sha[:7]}, then {sha}.", web, "o/r")] == [
        "", f"{web}/o/r/commit/{sha[:7]}", "", f"{web}/o/r/commit/{sha}", "",
    ]  # fmt: skip
    assert durations([10.0, 12.5, 20.0], None) == [2.5, 7.5, None]
    assert durations([10.0], 15.0) == [5.0] and durations([], None) == []


def test_failed_task_page_says_why_and_offers_retry(redis: Redis, queued: Store) -> None:
    raw_state(redis, TASK.id, "failed", "agent program not found: <claude>")
    with client(redis) as c:
        page = c.get(f"/tasks/{TASK.id}").text
    # Said once, as its outcome, with what to do about it.
    assert (
        "<p id='outcome' class=why>Outcome: failed: agent program not found: &lt;claude&gt;</p>"
        "<p id='next'>Next: fix the cause above, then Retry.</p>"
    ) in page
    assert page.count("agent program not found") == 1
    assert "id='retry'" in page and "id='cancel'" not in page
    assert f"name='csrf' value='{token()}'" in page


def test_a_finished_task_without_output_says_so(redis: Redis) -> None:
    store = Store(redis)
    Dispatcher(store, 60).enqueue(TASK, "test")
    with client(redis) as c:
        waiting = c.get(f"/tasks/{TASK.id}").text
        raw_state(redis, TASK.id, "failed", "agent program not found")
        over = c.get(f"/tasks/{TASK.id}").text
    assert "<pre id='log'>(no output yet)</pre>" in waiting
    # No agent ran: one line says so, not three empty sections.
    assert "<h2>Agent</h2><p id='prompt'>The agent was not run in this task.</p>" in over
    assert "id='log'" not in over and "No change committed." not in over


def test_cancel_stops_a_queued_task_through_the_cancel_path(redis: Redis, queued: Store) -> None:
    with client(redis) as c:
        page = c.get(f"/tasks/{TASK.id}").text
        assert "id='cancel'" in page and "id='retry'" not in page
        done = c.post(f"/tasks/{TASK.id}/cancel", data={"csrf": token()}, follow_redirects=False)
        again = c.post(f"/tasks/{TASK.id}/cancel", data={"csrf": token()})
    assert done.status_code == 303 and done.headers["location"] == f"/tasks/{TASK.id}"
    record = queued.get(TASK.id)
    assert record is not None and record.state is State.CANCELLED
    assert record.error == "cancelled from the dashboard"
    assert queue_for(redis).count == 0  # its RQ job is cancelled too
    assert again.status_code == 409 and "only a queued or running task" in again.text


def test_retry_queues_a_failed_task_again(redis: Redis, queued: Store) -> None:
    with client(redis) as c:
        early = c.post(f"/tasks/{TASK.id}/retry", data={"csrf": token()})
        assert early.status_code == 409  # still queued
        Dispatcher(queued, 60).cancel_task(TASK.id, "test")
        done = c.post(f"/tasks/{TASK.id}/retry", data={"csrf": token()}, follow_redirects=False)
        missing = c.post("/tasks/nope/retry", data={"csrf": token()})
    assert done.status_code == 303 and missing.status_code == 404
    record = queued.get(TASK.id)
    assert record is not None and record.state is State.QUEUED and record.run == 2
    assert queued.events(TASK.id)[-1]["detail"] == "run 2; retry from the dashboard"
    assert queue_for(redis).count == 1


def test_retry_of_an_escalated_fix_resets_the_attempts(redis: Redis) -> None:
    store = Store(redis)
    Dispatcher(store, 60).enqueue(CI, "test")
    Dispatcher(store, 60).cancel_task(CI.id, "test")
    store.add_attempt(p.REPO_ID, 12, {"attempt": 1})
    store.set_escalated(p.REPO_ID, 12)
    raw_state(redis, CI.id, "escalated", "out of attempts")
    with client(redis) as c:
        done = c.post(f"/tasks/{CI.id}/retry", data={"csrf": token()}, follow_redirects=False)
    assert done.status_code == 303
    assert not store.escalated(p.REPO_ID, 12) and store.attempts(p.REPO_ID, 12) == []
    record = store.get(CI.id)
    assert record is not None and record.state is State.QUEUED


@pytest.mark.parametrize(
    ("headers", "form"),
    [
        ({"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, {"csrf": ""}),
        ({"Origin": "https://evil.example"}, None),  # the token leaked, the site did not
        ({"Sec-Fetch-Site": "same-site"}, None),
        ({"Origin": "null"}, None),
        ({}, {"csrf": "guess"}),
        ({}, {}),
    ],
)
def test_forged_posts_change_nothing(
    redis: Redis, queued: Store, headers: dict[str, str], form: dict[str, str] | None
) -> None:
    with client(redis) as c:
        answer = c.post(f"/tasks/{TASK.id}/cancel", headers=headers,
                        data=form if form is not None else {"csrf": token()})  # fmt: skip
    assert answer.status_code == 403 and answer.text.startswith("refused: ")
    record = queued.get(TASK.id)
    assert record is not None and record.state is State.QUEUED


def test_actions_are_authenticated_like_the_dashboard(redis: Redis, queued: Store) -> None:
    with client(redis, ("203.0.113.9", 4000)) as c:
        assert c.post(f"/tasks/{TASK.id}/cancel", data={"csrf": token()}).status_code == 403
    with client(redis, ("203.0.113.9", 4000), DASHBOARD_PASSWORD="sesame") as c:
        assert c.post(f"/tasks/{TASK.id}/cancel", data={"csrf": token()}).status_code == 401
        right = {"Authorization": "Basic " + base64.b64encode(b"admin:sesame").decode()}
        ok = c.post(f"/tasks/{TASK.id}/cancel", headers=right, data={"csrf": token()},
                    follow_redirects=False)  # fmt: skip
    assert ok.status_code == 303
    record = queued.get(TASK.id)
    assert record is not None and record.state is State.CANCELLED


def test_a_proxied_post_from_the_dashboard_s_own_page_is_accepted(
    redis: Redis, queued: Store
) -> None:
    proxied = {"Origin": "https://forge.example.com", "X-Forwarded-Host": "forge.example.com",
               "Sec-Fetch-Site": "same-origin",
               "Authorization": "Basic " + base64.b64encode(b"admin:sesame").decode()}  # fmt: skip
    public = {"PUBLIC_URL": "https://forge.example.com", "DASHBOARD_PASSWORD": "sesame"}
    with client(redis, LOCAL, **public) as c:
        done = c.post(f"/tasks/{TASK.id}/cancel", headers=proxied, data={"csrf": token()},
                      follow_redirects=False)  # fmt: skip
    assert done.status_code == 303


def test_filter_values_and_waiting_reasons_are_escaped(redis: Redis, queued: Store) -> None:
    raw_state(redis, TASK.id, "waiting", "for <b>#3</b> to finish")
    with client(redis) as c:
        index = c.get("/tasks", params={"repo": "<script>x</script>", "state": "'><b>"}).text
        page = c.get(f"/tasks/{TASK.id}").text
    assert "<script>x" not in index and "'><b>" not in index
    assert "<p class='muted' id='why'>waiting: for &lt;b&gt;#3&lt;/b&gt; to finish</p>" in page


@pytest.mark.parametrize("path", ["/", f"/tasks/{TASK.id}", "/healthz", "/metrics", "/nowhere"])
def test_a_foreign_host_name_gets_421_even_from_this_machine(
    redis: Redis, queued: Store, path: str
) -> None:
    # A page whose name was rebound to 127.0.0.1 reaches the port from the operator's own
    # browser; its requests carry its name.
    with client(redis) as c:
        assert c.get(path, headers={"Host": "rebound.example.com"}).status_code == 421
        assert c.get(path, headers={"Host": "rebound.example.com:3000"}).status_code == 421
        assert c.get(path, headers={"Host": ""}).status_code == 421
        for name in ("localhost:3000", "127.0.0.1", "[::1]:3000", "app.localhost"):
            assert c.get(path, headers={"Host": name}).status_code != 421, name


def test_a_foreign_host_cannot_cancel(redis: Redis, queued: Store) -> None:
    with client(redis) as c:
        refused = c.post(f"/tasks/{TASK.id}/cancel", headers={"Host": "rebound.example.com"},
                         data={"csrf": token()}, follow_redirects=False)  # fmt: skip
    assert refused.status_code == 421
    record = queued.get(TASK.id)
    assert record is not None and record.state is State.QUEUED


def test_the_public_url_s_host_is_answered_and_the_webhook_is_exempt(redis: Redis) -> None:
    public = {"PUBLIC_URL": "https://forge.example.com", "DASHBOARD_PASSWORD": "sesame"}
    with client(redis, LOCAL, **public) as c:
        assert c.get("/healthz", headers={"Host": "forge.example.com"}).status_code == 200
        assert c.get("/healthz", headers={"Host": "other.example.com"}).status_code == 421
        hook = c.post("/api/github/webhooks", headers={"Host": "other.example.com"}, content=b"{}")
        assert hook.status_code != 421
