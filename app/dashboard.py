"""The dashboard: tasks newest first, and per task its timeline and the agent's log tail.

Pages are plain HTML with everything user-written escaped; the task page polls a JSON view of
itself every two seconds. With DASHBOARD_PASSWORD set it asks for HTTP basic auth; without it,
it answers only requests from this machine.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import re
import time
from html import escape
from typing import Any

from redis import Redis
from rq import Worker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from app.dispatch import queue_for
from app.settings import Settings
from app.store import Store, TaskRecord
from app.tasks import Kind

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1f2328}
table{border-collapse:collapse;width:100%}
td,th{padding:.35rem .6rem;border-bottom:1px solid #d0d7de;text-align:left;vertical-align:top}
th{background:#f6f8fa}.state{font-weight:600}
.queued{color:#9a6700}.running{color:#0969da}.done{color:#1a7f37}.failed{color:#cf222e}
.cancelled{color:#57606a}pre{background:#0d1117;color:#e6edf3;padding:1rem;overflow:auto;
max-height:32rem;white-space:pre-wrap}.muted{color:#57606a}a{color:#0969da}
"""


def web_base(api_url: str) -> str:
    """The site people browse for an API: github.com, or a GitHub Enterprise Server host."""
    if api_url.rstrip("/") == "https://api.github.com":
        return "https://github.com"
    return api_url.rstrip("/").removesuffix("/api/v3")


def allowed(request: Request, settings: Settings) -> Response | None:
    """None when the request may see the dashboard, else the answer that refuses it."""
    password = settings.dashboard_password
    if password:
        header = request.headers.get("authorization", "")
        given = ""
        if header.lower().startswith("basic "):
            try:
                given = base64.b64decode(header[6:]).decode().partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                given = ""
        if hmac.compare_digest(given.encode(), password.encode()):
            return None
        return Response("authentication required", 401,
                        {"WWW-Authenticate": 'Basic realm="forgehand"'})  # fmt: skip
    host = request.client.host if request.client else ""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return Response("the dashboard answers only on this machine unless DASHBOARD_PASSWORD is set",
                    403)  # fmt: skip


def _ago(ts: float) -> str:
    seconds = max(0, int(time.time() - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _took(record: TaskRecord) -> str:
    end = time.time() if record.state.active else record.updated
    seconds = max(0, int(end - record.created))
    return f"{seconds // 60}m {seconds % 60}s" if seconds >= 60 else f"{seconds}s"


def _link(settings: Settings, record: TaskRecord) -> str:
    task = record.task
    if not task.number:
        return escape(task.repo)
    kind = "issues" if task.kind is Kind.ISSUE else "pull"
    url = f"{web_base(settings.github_api_url)}/{task.repo}/{kind}/{task.number}"
    return f'<a href="{escape(url)}">{escape(task.repo)}#{task.number}</a>'


def _attempt(store: Store, settings: Settings, record: TaskRecord) -> str:
    if record.task.kind is not Kind.CI or not record.task.number:
        return ""
    done = len(store.attempts(record.task.repo_id, record.task.number))
    return f"{done}/{settings.max_attempts}"


def _short(task_id: str) -> str:
    """A task id with its commit SHA cut to seven characters, for reading."""
    return re.sub(r"[0-9a-f]{40}", lambda m: m[0][:7], task_id)


def _page(title: str, body: str, refresh: bool = False) -> HTMLResponse:
    meta = '<meta http-equiv="refresh" content="5">' if refresh else ""
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'>{meta}<title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )


def index_view(store: Store, settings: Settings) -> HTMLResponse:
    redis: Redis = store.redis
    rows = []
    for record in store.recent(200):
        rows.append(
            f"<tr><td><a href='/tasks/{escape(record.id)}'>{escape(_short(record.id))}</a></td>"
            f"<td>{escape(record.task.kind.value)}</td><td>{_link(settings, record)}</td>"
            f"<td class='state {record.state.value}'>{record.state.value}</td>"
            f"<td>{_attempt(store, settings, record)}</td><td>{_took(record)}</td>"
            f"<td class='muted'>{_ago(record.updated)}</td>"
            f"<td class='muted'>{escape(record.error[:120])}</td></tr>"
        )
    depth = queue_for(redis).count
    workers = Worker.count(connection=redis)
    table = "".join(rows) or "<tr><td colspan='8' class='muted'>No tasks yet.</td></tr>"
    body = (
        f"<h1>forgehand</h1><p>{depth} queued · {workers} worker{'s' * (workers != 1)}</p>"
        "<table><tr><th>Task</th><th>Kind</th><th>Issue / PR</th><th>State</th><th>Attempt</th>"
        f"<th>Took</th><th>Updated</th><th>Why</th></tr>{table}</table>"
    )
    return _page("forgehand", body, refresh=True)


def task_json(store: Store, task_id: str) -> dict[str, Any] | None:
    record = store.get(task_id)
    if record is None:
        return None
    return record.as_json() | {"events": store.events(task_id), "log": store.log_tail(task_id, 200)}


def task_view(store: Store, settings: Settings, task_id: str) -> HTMLResponse | None:
    data = task_json(store, task_id)
    record = store.get(task_id)
    if data is None or record is None:
        return None
    timeline = "".join(
        f"<tr><td class='muted'>{time.strftime('%H:%M:%S', time.localtime(e['ts']))}</td>"
        f"<td>{escape(e['event'])}</td><td>{escape(e['detail'])}</td></tr>"
        for e in data["events"]
    )
    log = escape("\n".join(data["log"])) or "(no output yet)"
    body = (
        f"<p><a href='/'>← all tasks</a></p><h1>{escape(task_id)}</h1>"
        f"<p>{_link(settings, record)} · <span id='state' class='state {record.state.value}'>"
        f"{record.state.value}</span> · took <span id='took'>{_took(record)}</span></p>"
        f"<h2>Timeline</h2><table id='timeline'>{timeline}</table>"
        f"<h2>Agent output</h2><pre id='log'>{log}</pre>"
        f"<script>{_POLL % escape(task_id)}</script>"
    )
    return _page(task_id, body)


# Re-reads the task every two seconds while it is queued or running; text only, no HTML.
_POLL = """
const id = "%s";
async function poll() {
  const r = await fetch(`/tasks/${encodeURIComponent(id)}.json`, {credentials: "same-origin"});
  if (!r.ok) return;
  const t = await r.json();
  const state = document.getElementById("state");
  state.textContent = t.state; state.className = "state " + t.state;
  document.getElementById("log").textContent = t.log.join("\\n") || "(no output yet)";
  const rows = t.events.map(e => {
    const tr = document.createElement("tr");
    for (const v of [new Date(e.ts * 1000).toLocaleTimeString(), e.event, e.detail]) {
      const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
    }
    return tr;
  });
  document.getElementById("timeline").replaceChildren(...rows);
  if (t.state === "queued" || t.state === "running") setTimeout(poll, 2000);
}
setTimeout(poll, 2000);
"""


async def index(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    refused = allowed(request, settings)
    if refused is not None:
        return refused
    return await run_in_threadpool(index_view, request.app.state.intake.store, settings)


async def task_page(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    refused = allowed(request, settings)
    if refused is not None:
        return refused
    task_id = request.path_params["task_id"]
    store: Store = request.app.state.intake.store
    if task_id.endswith(".json"):
        data = await run_in_threadpool(task_json, store, task_id.removesuffix(".json"))
        return JSONResponse(data) if data else JSONResponse({"error": "no such task"}, 404)
    page = await run_in_threadpool(task_view, store, settings, task_id)
    return page or HTMLResponse("no such task", 404)
