"""The plan page: GET /plan/{owner}/{name}, the repository's fleet as one table."""

from __future__ import annotations

from html import escape

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from app import plan
from app.dashboard import allowed, web_base
from app.dashboard_pages import page, state_badge
from app.settings import Settings
from app.store import Store


def _numbers(base: str, kind: str, values: tuple[int, ...]) -> str:
    return ", ".join(f'<a href="{escape(base)}/{kind}/{n}">#{n}</a>' for n in values) or "—"


def plan_view(store: Store, settings: Settings, repo: str) -> HTMLResponse:
    base = f"{web_base(settings.github_api_url)}/{repo}"
    rows = []
    for row in plan.read(store, repo):
        files = "<br>".join(f"<code>{escape(f)}</code>" for f in row.files) or "—"
        why = f"<div class='muted'>{escape(row.why[:200])}</div>" if row.why else ""
        rows.append(
            f"<tr><td>{_numbers(base, 'issues', (row.issue,))}</td>"
            f"<td><code>{escape(row.branch) or '—'}</code></td>"
            f"<td>{_numbers(base, 'pull', (row.pull,) if row.pull else ())}</td>"
            f"<td>{files}</td><td>{_numbers(base, 'issues', row.depends_on)}</td>"
            f"<td>{_numbers(base, 'pull', row.overlaps)}</td>"
            f"<td>{state_badge(row.state)}{why}</td>"
            f"<td>{row.merge_order or '—'}</td></tr>"
        )
    table = "".join(rows) or "<tr><td colspan='8' class='muted'>No tasks on it yet.</td></tr>"
    body = (
        f"<p><a href='/'>← all tasks</a></p><h1>Plan of {escape(repo)}</h1>"
        "<p class='muted'>Open agent pull requests in the suggested merge order (among those "
        "that overlap, the one that changes a shared interface first, else the older), then "
        "the issues still without one.</p>"
        "<table id='plan'><tr><th>Issue</th><th>Branch</th><th>Pull request</th>"
        "<th>Files owned</th><th>Depends on</th><th>Overlaps</th><th>State</th>"
        f"<th>Merge order</th></tr>{table}</table>"
    )
    return HTMLResponse(page(f"Plan of {repo}", body, refresh=True))


async def plan_page(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    refused = allowed(request, settings)
    if refused is not None:
        return refused
    repo = f"{request.path_params['owner']}/{request.path_params['name']}"
    store: Store = request.app.state.intake.store
    return await run_in_threadpool(plan_view, store, settings, repo)
