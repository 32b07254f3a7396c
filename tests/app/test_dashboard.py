from __future__ import annotations

import base64

import pytest
from redis import Redis
from starlette.testclient import TestClient

from app.dashboard import web_base
from app.dispatch import Dispatcher
from app.main import create_app
from app.settings import parse
from app.store import Store
from app.tasks import Kind, Task
from tests import payloads as p

LOCAL = ("127.0.0.1", 50000)
TASK = Task(Kind.ISSUE, p.INSTALLATION, p.REPO_ID, p.REPO, 7, "alice")


def client(redis: Redis, client: tuple[str, int] = LOCAL, **env: str) -> TestClient:
    settings = parse({"WEBHOOK_SECRET": p.SECRET, **env})
    return TestClient(create_app(settings, redis), client=client)


@pytest.fixture
def queued(redis: Redis) -> Store:
    store = Store(redis)
    Dispatcher(store, 60).enqueue(TASK, "delivery d-1 (issues.labeled)")
    store.append_log(TASK.id, ["thinking <b>hard</b>", "done"])
    return store


def test_index_lists_tasks_with_links(redis: Redis, queued: Store) -> None:
    with client(redis) as c:
        page = c.get("/").text
    assert f"<a href='/tasks/{TASK.id}'>{TASK.id}</a>" in page
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
