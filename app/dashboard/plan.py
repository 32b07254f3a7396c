"""The plan page: GET /plan/{owner}/{name}, the repository's fleet as one table."""

from __future__ import annotations

from html import escape

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from app.dashboard.pages import page, state_badge
from app.dashboard.routes import guarded, repo_in, web_base
from app.fleet import Epic, EpicState, PlanError, check, parse, plan
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
        f"<p><a href='/'>← all work</a></p><h1>Plan of {escape(repo)}</h1>"
        "<p class='muted'>Open agent pull requests in the suggested merge order (among those "
        "that overlap, the one that changes a shared interface first, else the older), then "
        "the issues still without one.</p>"
        "<table id='plan'><tr><th>Issue</th><th>Branch</th><th>Pull request</th>"
        "<th>Files owned</th><th>Depends on</th><th>Overlaps</th><th>State</th>"
        f"<th>Merge order</th></tr>{table}</table>"
    )
    repo_id = plan.repo_id_of(store, repo)
    state = EpicState(store.redis)
    for number in state.epics(repo_id) if repo_id is not None else []:
        epic = state.get(repo_id, number) if repo_id is not None else None
        if epic is not None and repo_id is not None:
            body += _epic_view(store, base, repo_id, number, epic)
    return HTMLResponse(page(f"Plan of {repo}", body, refresh=True))


def _epic_view(store: Store, base: str, repo_id: int, number: int, epic: Epic) -> str:
    """One epic's plan and what became of each row: its issue, pull request and state."""
    head = f"<h2 id='epic-{number}'>Epic {_numbers(base, 'issues', (number,))}</h2>"
    try:
        checked = check(parse(epic.plan, max_issues=10**6), epic.files, {})
    except PlanError as exc:
        return head + f"<p class='muted'>Its plan is not valid: {escape(str(exc))}</p>"
    rows = []
    for row in checked.plan.rows:
        issue = epic.filed.get(row.key)
        step = epic.progress.get(issue, {}) if issue else {}
        record = store.get(f"issue-{repo_id}-{issue}") if issue else None
        state = step.get("state") or (record.state.value if record else "")
        pull = step.get("pull")
        shared = [b if a == row.key else a for (a, b) in checked.shared if row.key in (a, b)]
        files = "<br>".join(f"<code>{escape(f)}</code>" for f in row.files)
        rows.append(
            f"<tr><td><code>{escape(row.key)}</code></td><td>{escape(row.title)}</td>"
            f"<td>{files}</td><td>{escape(', '.join(row.depends_on)) or '—'}</td>"
            f"<td>{row.size}</td><td>{escape(', '.join(shared)) or '—'}</td>"
            f"<td>{checked.waves.get(row.key, '—')}</td>"
            f"<td>{_numbers(base, 'issues', (issue,) if issue else ())}</td>"
            f"<td>{_numbers(base, 'pull', (int(pull),) if pull else ())}</td>"
            f"<td>{state_badge(state) if state else 'not filed'}</td></tr>"
        )
    path = " → ".join(checked.critical_path)
    return (
        f"{head}<p>{escape(checked.plan.summary)}</p>"
        f"<p class='muted'>Critical path: {escape(path) or '—'}</p>"
        f"<table class='epic' id='epic-{number}-rows'><tr><th>Row</th><th>Title</th>"
        "<th>Files owned</th><th>Depends on</th><th>Size</th><th>Predicted collisions</th>"
        "<th>Wave</th><th>Issue</th><th>Pull request</th><th>State</th></tr>"
        f"{''.join(rows)}</table>"
    )


@guarded
async def plan_page(request: Request, settings: Settings) -> Response:
    repo = repo_in(request)
    store: Store = request.app.state.intake.store
    return await run_in_threadpool(plan_view, store, settings, repo)
