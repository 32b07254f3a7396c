"""The spend page: GET /usage, the agents' model calls by UTC day, repository and agent, with
each repository's and each day's total (the dashboard's view of `forgehand usage`)."""

from __future__ import annotations

from html import escape

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from app.dashboard.pages import page
from app.dashboard.routes import guarded
from app.settings import Settings
from app.store import Store, spend

DAYS = 30


def _cells(used: spend.Spend) -> str:
    return (
        f"<td>{used.calls}</td><td>{spend.tokens_label(used.input)}</td>"
        f"<td>{spend.tokens_label(used.output)}</td>"
        f"<td>{spend.tokens_label(used.cached + used.cache_write)}</td>"
        f"<td>{escape(spend.cost_cell(used))}</td>"
    )


def _table(element: str, first: str, rows: list[tuple[str, spend.Spend]]) -> str:
    head = (f"<tr><th>{first}</th><th>Calls</th><th>Input</th><th>Output</th><th>Cached</th>"
            "<th>Cost</th></tr>")  # fmt: skip
    body = "".join(f"<tr><td>{escape(name)}</td>{_cells(used)}</tr>" for name, used in rows)
    empty = "<tr><td colspan='6' class='muted'>No model calls metered yet.</td></tr>"
    return f"<table id='{element}'>{head}{body or empty}</table>"


def _sum(pairs: list[tuple[str, spend.Spend]]) -> list[tuple[str, spend.Spend]]:
    totals: dict[str, spend.Spend] = {}
    for name, used in pairs:
        totals[name] = totals.get(name, spend.Spend()) + used
    return sorted(totals.items())


def usage_view(store: Store, days: int = DAYS) -> str:
    rows = spend.by_day(store.redis, days)
    by_repo = _sum([(r.repo, r.spend) for r in rows])
    by_day = sorted(_sum([(r.day, r.spend) for r in rows]), reverse=True)
    detail = [(f"{r.day} · {r.repo} · {r.agent}", r.spend) for r in reversed(rows)]
    body = (
        f"<p><a href='/'>← all work</a></p><h1>Model spend, last {days} days</h1>"
        "<p class='muted'>What the agents' model calls used, as forgehand's gateway metered "
        "them; a cost with <code>+?</code> leaves out calls of models without a known price "
        "(<code>AGENT_PRICES</code> can give one).</p>"
        f"<h2>By repository</h2>{_table('by-repo', 'Repository', by_repo)}"
        f"<h2>By day (UTC)</h2>{_table('by-day', 'Day', by_day)}"
        "<h2>By day, repository and agent</h2>"
        + _table("by-all", "Day · repository · agent", detail)
    )
    return page("Model spend", body)


@guarded
async def usage_page(request: Request, settings: Settings) -> Response:
    store: Store = request.app.state.intake.store
    return HTMLResponse(await run_in_threadpool(usage_view, store))
