"""The dashboard's routes: the task list, a task's page and its JSON, cancel and retry.

With DASHBOARD_PASSWORD set it asks for HTTP basic auth; without it, it answers only requests
from this machine. Cancel and retry change state, so they are POSTs that must come from the
dashboard's own pages: a browser's cross-site request is refused by its Origin and
Sec-Fetch-Site headers, and the form carries a token that another site cannot read.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from html import escape
from typing import Any
from urllib.parse import parse_qs, urlsplit

from redis import Redis
from rq import Worker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from app.dashboard import pages, timeline, work_items, work_pages
from app.dashboard.task_rows import Filters, Row, listing, read_row
from app.dispatch import Dispatcher, queue_for
from app.parsing import is_loopback
from app.settings import Settings
from app.store import Store, spend
from app.tasks import Kind

FORM_LIMIT = 4096


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
    if is_loopback(request.client.host if request.client else ""):
        return None
    return Response("the dashboard answers only on this machine unless DASHBOARD_PASSWORD is set",
                    403)  # fmt: skip


Handler = Callable[[Request, Settings], Awaitable[Response]]


def guarded(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """The route for a dashboard handler: refused unless `allowed`, else given the settings."""

    @functools.wraps(handler)
    async def route(request: Request) -> Response:
        settings: Settings = request.app.state.settings
        refused = allowed(request, settings)
        if refused is not None:
            return refused
        return await handler(request, settings)

    return route


def repo_in(request: Request) -> str:
    """The owner/name repository a route's path names."""
    return f"{request.path_params['owner']}/{request.path_params['name']}"


def form_token(settings: Settings) -> str:
    """The token the dashboard's forms carry: derived from the webhook secret, so every web
    process agrees on it and no other site can know it."""
    secret = (settings.webhook_secret or "").encode()
    return hmac.new(secret, b"forgehand dashboard form", hashlib.sha256).hexdigest()[:32]


def forged(headers: dict[str, str], token: str, form: dict[str, list[str]]) -> str:
    """Why a POST does not come from the dashboard's own page, or "" when it does."""
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"a {site} request"
    origin = headers.get("origin")
    # Behind a proxy that rewrites Host, the browser's host is the forwarded one; a page on
    # another site cannot set that header on a form it posts.
    ours = {headers.get("host", ""), headers.get("x-forwarded-host", "")} - {""}
    if origin is not None and urlsplit(origin).netloc not in ours:
        return "a request from another site"
    given = (form.get("csrf") or [""])[0]
    if not hmac.compare_digest(given.encode(), token.encode()):
        return "a form without the dashboard's token"
    return ""


def filters_from(query: dict[str, str]) -> tuple[Filters, int]:
    number = query.get("page", "1")
    page = int(number) if number.isdigit() else 1
    return Filters(query.get("state", ""), query.get("repo", ""), query.get("kind", "")), page


def index_view(store: Store, settings: Settings, filters: Filters, page: int) -> str:
    redis: Redis = store.redis
    found = listing(redis, filters, page)
    keys = list({(r.task.repo_id, r.task.number) for r in found.rows if r.task.number})
    titles = {k: str(v.get("title") or "") for k, v in store.items(keys).items()}
    # What CI said of what they pushed, for the rows that pushed something.
    pushed = {(r.task.repo_id, r.task.number) for r in found.rows if r.result.startswith("pushed")}
    ci = {key: store.ci_results(*key) for key in pushed if key[1]}
    return pages.index_html(
        found, filters, web_base(settings.github_api_url), queue_for(redis).count,
        Worker.count(connection=redis), settings.max_attempts, titles, ci,
    )  # fmt: skip


def work_view(store: Store, settings: Settings) -> str:
    redis: Redis = store.redis
    items = work_items.read_items(store)
    spent = work_items.spend_of(redis, items)
    return work_pages.items_html(
        items, web_base(settings.github_api_url), queue_for(redis).count,
        Worker.count(connection=redis), settings.max_attempts, spent,
    )  # fmt: skip


def item_view(store: Store, settings: Settings, repo: str, number: int) -> str | None:
    item = work_items.read_item(store, repo, number)
    if item is None:
        return None
    redis: Redis = store.redis
    return work_pages.item_html(
        item, web_base(settings.github_api_url), settings.max_attempts,
        settings.escalation_label, settings.command_prefix, queue_for(redis).count,
        Worker.count(connection=redis),
    )  # fmt: skip


def task_json(store: Store, settings: Settings, task_id: str) -> dict[str, Any] | None:
    row = read_row(store.redis, task_id)
    return _task_data(store, settings, row) if row is not None else None


def _task_data(store: Store, settings: Settings, row: Row) -> dict[str, Any]:
    events = store.events(row.id)
    end = time.time() if row.active else None
    return {
        "id": row.id, "kind": row.task.kind.value, "repo": row.task.repo,
        "number": row.task.number, "state": row.state, "active": row.active,
        "attempt": row.attempt, "created": row.created, "updated": row.updated,
        "error": row.error, "events": events,
        "steps": timeline.steps(events, web_base(settings.github_api_url), row.task.repo, end),
        "log": store.log_tail(row.id, 200),
        "usage": _spent(store, row.id).as_json(),
    }  # fmt: skip


def _spent(store: Store, task_id: str) -> spend.Spend:
    record = store.get(task_id)
    return spend.task_spend(store.redis, task_id, record.run) if record else spend.Spend()


def task_view(store: Store, settings: Settings, task_id: str) -> str | None:
    row = read_row(store.redis, task_id)
    if row is None:
        return None
    data = _task_data(store, settings, row)
    used = _spent(store, task_id)
    task = row.task
    noted = store.items([(task.repo_id, task.number)]) if task.number else {}
    title = str(noted.get((task.repo_id, task.number), {}).get("title") or "")
    ci = store.ci_results(task.repo_id, task.number) if task.number else {}
    return pages.task_html(
        row, data["steps"], data["log"], store.prompt(task_id), store.diff(task_id),
        web_base(settings.github_api_url), settings.max_attempts, form_token(settings),
        title, ci, used.label() if used.calls else "",
    )  # fmt: skip


def cancel_task(dispatcher: Dispatcher, task_id: str) -> str:
    """Cancel through the same path as `/agent stop`; why not, or "" when it was."""
    row = read_row(dispatcher.store.redis, task_id)
    if row is None:
        return "no such task"
    if row.state not in pages.CANCELLABLE or not dispatcher.cancel_task(
        task_id, "cancelled from the dashboard"
    ):
        return f"{task_id} is {row.state}: only a queued or running task can be cancelled"
    return ""


def retry_task(dispatcher: Dispatcher, task_id: str) -> str:
    """Queue a failed, escalated or cancelled task again; why not, or "" when it was."""
    store = dispatcher.store
    row = read_row(store.redis, task_id)
    if row is None:
        return "no such task"
    if row.state not in pages.RETRYABLE:
        return f"{task_id} is {row.state}: only a failed, escalated or cancelled task is retried"
    task = row.task
    if row.state == "escalated" and task.kind is Kind.CI and task.number:
        # As `/agent retry` does: a pull request out of attempts would escalate again at once.
        store.reset_attempts(task.repo_id, task.number)
        store.audit(task_id, "attempts reset", "retry from the dashboard")
    outcome = dispatcher.enqueue(task, "retry from the dashboard")
    return "" if outcome.enqueued else f"{task_id} is {outcome.note} already"


@guarded
async def work(request: Request, settings: Settings) -> Response:
    store: Store = request.app.state.intake.store
    return HTMLResponse(await run_in_threadpool(work_view, store, settings))


@guarded
async def item(request: Request, settings: Settings) -> Response:
    repo = repo_in(request)
    number = request.path_params["number"]
    store: Store = request.app.state.intake.store
    page = await run_in_threadpool(item_view, store, settings, repo, number)
    return (
        HTMLResponse(page) if page else HTMLResponse("no work on that issue or pull request", 404)
    )


@guarded
async def index(request: Request, settings: Settings) -> Response:
    filters, page = filters_from(dict(request.query_params))
    store: Store = request.app.state.intake.store
    return HTMLResponse(await run_in_threadpool(index_view, store, settings, filters, page))


@guarded
async def task_page(request: Request, settings: Settings) -> Response:
    task_id = request.path_params["task_id"]
    store: Store = request.app.state.intake.store
    if task_id.endswith(".json"):
        data = await run_in_threadpool(task_json, store, settings, task_id.removesuffix(".json"))
        return JSONResponse(data) if data else JSONResponse({"error": "no such task"}, 404)
    page = await run_in_threadpool(task_view, store, settings, task_id)
    return HTMLResponse(page) if page else HTMLResponse("no such task", 404)


async def _act(
    request: Request, settings: Settings, action: Callable[[Dispatcher, str], str]
) -> Response:
    body = await request.body()
    if len(body) > FORM_LIMIT:
        return HTMLResponse("form too large", 413)
    form = parse_qs(body.decode(errors="replace"))
    why = forged(dict(request.headers), form_token(settings), form)
    if why:
        return HTMLResponse(f"refused: {escape(why)}", 403)
    task_id = request.path_params["task_id"]
    failed = await run_in_threadpool(action, request.app.state.intake.dispatcher, task_id)
    if failed:
        back = f"<p><a href='/tasks/{escape(task_id)}'>back to the task</a></p>"
        status = 404 if failed == "no such task" else 409
        return HTMLResponse(pages.page("forgehand", f"<p>{escape(failed)}</p>{back}"), status)
    return RedirectResponse(f"/tasks/{task_id}", 303)


@guarded
async def cancel(request: Request, settings: Settings) -> Response:
    return await _act(request, settings, cancel_task)


@guarded
async def retry(request: Request, settings: Settings) -> Response:
    return await _act(request, settings, retry_task)
