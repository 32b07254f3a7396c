"""The dashboard and the setup page as a person sees them: headless Chromium, a screenshot."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from redis import Redis

from app.dispatch import Dispatcher
from app.main import create_app
from app.settings import parse
from app.store import Store
from app.tasks import Kind, Task
from simulator.sandbox import free_port
from tests import payloads as p

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
TASK = Task(Kind.ISSUE, p.INSTALLATION, p.REPO_ID, p.REPO, 7, "alice")


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
    Dispatcher(store, 60).enqueue(TASK, "delivery d-1 (issues.labeled)")
    store.append_log(TASK.id, ["demo agent: add() subtracted; it adds now"])
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
    index = chromium("--dump-dom", f"{site}/", tmp=tmp_path)
    assert TASK.id in index and "1 queued" in index
    before = len(POLLS)
    page = chromium("--dump-dom", f"{site}/tasks/{TASK.id}", tmp=tmp_path, wait_ms=3000)
    assert len(POLLS) > before  # the page polled its task while it was queued
    assert "demo agent: add() subtracted; it adds now" in page
    assert "delivery d-1 (issues.labeled)" in page


def test_setup_page_form_in_a_browser(site: str, tmp_path: Path) -> None:
    dom = chromium("--dump-dom", f"{site}/setup?org=acme", tmp=tmp_path)
    action = html.unescape(re.search(r'action="([^"]+)"', dom)[1])  # type: ignore[index]
    value = html.unescape(re.search(r'name="manifest" value="([^"]+)"', dom)[1])  # type: ignore[index]
    assert action.startswith("https://github.com/organizations/acme/settings/apps/new?state=")
    manifest = json.loads(value)
    assert manifest["hook_attributes"]["url"] == f"{site}/api/github/webhooks"
    assert manifest["redirect_url"] == f"{site}/setup/callback"


def test_plan_page_in_a_browser(site: str, redis: Redis, tmp_path: Path) -> None:
    from tests.app.test_plan import fleet

    fleet(redis)
    dom = chromium("--dump-dom", f"{site}/plan/{p.REPO}", tmp=tmp_path)
    table = dom[dom.index('<table id="plan">') :]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
    assert [html.unescape(re.sub(r"<[^>]+>", " ", r)).split()[:3] for r in rows[1:]] == [
        ["#8", "agent/issue-8-<b>", "#21"],
        ["#7", "agent/issue-7-x", "#20"],
        ["#9", "—", "—"],
    ]
