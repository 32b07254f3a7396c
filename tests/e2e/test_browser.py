"""The dashboard and the setup page as a person sees them: headless Chromium, screenshots, and
cancel and retry clicked with the mouse; a forged cross-site form changes nothing."""

from __future__ import annotations

import html
import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from redis import Redis

from app.dashboard.routes import form_token
from app.dispatch import Dispatcher
from app.settings import parse
from app.store import Store, task_key
from app.tasks import Kind, State, Task
from app.web.main import create_app
from simulator.sandbox import free_port
from tests import payloads as p
from tests.e2e.browser import CHROMIUM, Browser

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
TASK = Task(Kind.ISSUE, p.INSTALLATION, p.REPO_ID, p.REPO, 7, "alice")
FAILED = Task(Kind.ISSUE, p.INSTALLATION, p.REPO_ID, p.REPO, 8, "alice")
ESCALATED = Task(Kind.CI, p.INSTALLATION, p.REPO_ID, p.REPO, 12, "bob", sha="e" * 40)


POLLS: list[str] = []


def counting(app: Any) -> Any:
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith(".json"):
            POLLS.append(scope["path"])
        await app(scope, receive, send)

    return wrapped


@pytest.fixture
def site(redis: Redis) -> Iterator[str]:
    store = Store(redis)
    dispatcher = Dispatcher(store, 60)
    # Two finished tasks, as a worker leaves them (escalated may be newer than this branch).
    for task, state, why in (
        (FAILED, "failed", "agent program not found: claude"),
        (ESCALATED, "escalated", "out of attempts after 3 tries"),
    ):
        dispatcher.enqueue(task, "test")
        dispatcher.cancel_task(task.id, "test")
        redis.hset(task_key(task.id), mapping={"state": state, "error": why, "attempt": "3"})
    dispatcher.enqueue(TASK, "delivery d-1 (issues.labeled)")
    store.append_log(TASK.id, ["demo agent: add() subtracted; it adds now"])
    store.audit(TASK.id, "pull request", "#12 opened")
    port = free_port()
    app = create_app(parse({"WEBHOOK_SECRET": p.SECRET}), redis)
    config = uvicorn.Config(counting(app), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def chromium(*args: str, tmp: Path, wait_ms: int = 1000) -> str:
    """Run headless Chromium; `wait_ms` of virtual time lets the page's timers fire."""
    assert CHROMIUM is not None
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp / 'profile'}", f"--virtual-time-budget={wait_ms}",
    ]  # fmt: skip
    done = subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)
    return done.stdout


def test_dashboard_renders_and_task_page_updates_live(site: str, tmp_path: Path) -> None:
    shot = tmp_path / "dashboard.png"
    chromium("--window-size=1280,720", f"--screenshot={shot}", f"{site}/", tmp=tmp_path)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000
    work = chromium("--dump-dom", f"{site}/", tmp=tmp_path)
    assert '<table id="items">' in work and f'href="/work/{p.REPO}/12">PR #12</a>' in work
    assert 'id="no-worker"' in work  # queued, and no worker runs here
    index = chromium("--dump-dom", f"{site}/tasks", tmp=tmp_path)
    assert TASK.id in index and "1 queued" in index
    assert '<tr class="failed">' in index and '<tr class="escalated">' in index
    assert "✖ failed" in index and "⚠ escalated" in index and "<td>3/3</td>" in index
    before = len(POLLS)
    page = chromium("--dump-dom", f"{site}/tasks/{TASK.id}", tmp=tmp_path, wait_ms=3000)
    assert len(POLLS) > before  # the page polled its task while it was queued
    assert "demo agent: add() subtracted; it adds now" in page
    assert "delivery d-1 (issues.labeled)" in page


def test_from_the_work_to_an_escalated_pull_request_and_its_task(
    site: str, redis: Redis, tmp_path: Path
) -> None:
    from tests.app.dashboard.test_work_items import FIRST, escalated_world

    redis.flushdb()
    escalated_world(redis)
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(f"{site}/")
        browser.screenshot(tmp_path / "work.png")
        browser.click(f"a[href='/work/{p.REPO}/12']")
        browser.wait_for("document.getElementById('attempts') !== null")
        assert "forgehand stopped after 2 attempts" in browser.text("#way-out")
        browser.screenshot(tmp_path / "escalated.png")
        browser.click(f"#attempts a[href='/tasks/{FIRST.id}']")
        # The path changes as the navigation commits, before the new page's body is parsed.
        browser.wait_for(
            f"location.pathname === '/tasks/{FIRST.id}' && "
            "(document.getElementById('outcome') || {}).textContent"
        )
        assert "fix pushed as b2b2b2b" in browser.text("#outcome")
        assert (tmp_path / "escalated.png").stat().st_size > 5000
    finally:
        browser.close()


def test_setup_page_form_in_a_browser(site: str, tmp_path: Path) -> None:
    dom = chromium("--dump-dom", f"{site}/setup?org=acme", tmp=tmp_path)
    action = html.unescape(re.search(r'action="([^"]+)"', dom)[1])  # type: ignore[index]
    value = html.unescape(re.search(r'name="manifest" value="([^"]+)"', dom)[1])  # type: ignore[index]
    assert action.startswith("https://github.com/organizations/acme/settings/apps/new?state=")
    manifest = json.loads(value)
    assert manifest["hook_attributes"]["url"] == f"{site}/api/github/webhooks"
    assert manifest["redirect_url"] == f"{site}/setup/callback"


def test_cancel_then_retry_clicked_in_the_browser(site: str, redis: Redis, tmp_path: Path) -> None:
    store = Store(redis)
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(f"{site}/tasks/{TASK.id}")
        assert browser.text("#state") == "queued"
        assert f"{p.REPO}/issues/12" in browser.evaluate(
            "document.querySelector('#timeline a').href"
        )
        browser.screenshot(tmp_path / "task-queued.png")
        browser.click("#cancel")
        browser.wait_for("document.getElementById('state').textContent === 'cancelled'")
        record = store.get(TASK.id)
        assert record is not None and record.state is State.CANCELLED
        assert record.error == "cancelled from the dashboard"
        assert browser.evaluate("location.pathname") == f"/tasks/{TASK.id}"
        browser.click("#retry")
        browser.wait_for("document.getElementById('state').textContent === 'queued'")
        record = store.get(TASK.id)
        assert record is not None and record.state is State.QUEUED and record.run == 2
        assert "retry from the dashboard" in browser.text("#timeline")
        browser.screenshot(tmp_path / "task-retried.png")
        assert (tmp_path / "task-retried.png").stat().st_size > 5000
    finally:
        browser.close()


class _Forger(BaseHTTPRequestHandler):
    """Another site's page that posts the cancel form to the dashboard as soon as it loads;
    it even knows the token, as if it had leaked: the Origin check alone must stop it."""

    target = ""

    def do_GET(self) -> None:
        body = (
            f"<form id='f' method='post' action='{html.escape(self.target)}'>"
            f"<input name='csrf' value='{form_token(parse({'WEBHOOK_SECRET': p.SECRET}))}'>"
            "</form><script>document.getElementById('f').submit()</script>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_forged_cross_site_post_changes_nothing(site: str, redis: Redis, tmp_path: Path) -> None:
    _Forger.target = f"{site}/tasks/{TASK.id}/cancel"
    evil = ThreadingHTTPServer(("127.0.0.1", 0), _Forger)
    thread = threading.Thread(target=evil.serve_forever, daemon=True)
    thread.start()
    browser = Browser(tmp_path / "profile")
    try:
        browser.page("Page.navigate", {"url": f"http://localhost:{evil.server_port}/"})
        browser.wait_for(f"location.href === {json.dumps(_Forger.target)}")
        browser.wait_for("document.body.textContent.startsWith('refused: ')")
    finally:
        browser.close()
        evil.shutdown()
        evil.server_close()
    record = Store(redis).get(TASK.id)
    assert record is not None and record.state is State.QUEUED


def test_setup_page_warns_in_a_browser(site: str, tmp_path: Path) -> None:
    shot = tmp_path / "setup.png"
    chromium("--window-size=1280,1100", f"--screenshot={shot}", f"{site}/setup", tmp=tmp_path)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dom = chromium("--dump-dom", f"{site}/setup", tmp=tmp_path)
    assert "GitHub cannot reach" in dom and "127.0.0.1 is this machine" in dom
    assert "<code>contents</code>" in dom and "<code>issue_comment</code>" in dom


def test_plan_page_in_a_browser(site: str, redis: Redis, tmp_path: Path) -> None:
    from tests.app.fleet.test_plan import fleet

    fleet(redis)
    dom = chromium("--dump-dom", f"{site}/plan/{p.REPO}", tmp=tmp_path)
    table = dom[dom.index('<table id="plan">') :]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
    assert [html.unescape(re.sub(r"<[^>]+>", " ", r)).split()[:3] for r in rows[1:]] == [
        ["#8", "agent/issue-8-<b>", "#21"],
        ["#7", "agent/issue-7-x", "#20"],
        ["#9", "—", "—"],
    ]
