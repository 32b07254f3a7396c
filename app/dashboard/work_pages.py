"""The dashboard's pages about the work: every issue and pull request forgehand worked on, and
one of them with its tasks and attempts in order. Everything that came from a repository, an
agent or GitHub is escaped here."""

from __future__ import annotations

import time
from collections.abc import Mapping
from html import escape
from typing import Any

from app.dashboard.pages import ago, linked, page, state_badge, took, worker_banner
from app.dashboard.work_items import (
    Item,
    ci_words,
    heading,
    kind_of,
    name,
    outcome,
    shown_state,
    tries,
    what,
)
from app.store import Spend, cost_cell


def github_url(web: str, item: Item) -> str:
    kind = "pull" if item.pull else "issues"
    return f"{web}/{item.repo}/{kind}/{item.number}" if item.number else f"{web}/{item.repo}"


def _next(item: Item) -> str:
    """The next step; the ways out of an escalation are a click away."""
    if item.state == "escalated":
        return f"a human takes over: see <a href='{escape(item.path)}#way-out'>the ways out</a>"
    return escape(item.next_step)


def items_html(
    items: list[Item], web: str, depth: int, workers: int, max_attempts: int,
    spent: Mapping[tuple[int, int], Spend],
) -> str:  # fmt: skip
    now = time.time()
    rows = []
    for item in items:
        known = item.state if item.state in ("failed", "escalated") else ""
        rows.append(
            f"<tr class='{known}'><td>{escape(item.repo)}</td>"
            f"<td><a href='{escape(item.path)}'>{escape(name(item))}</a></td>"
            f"<td>{escape(heading(item)) or '<span class=muted>—</span>'}</td>"
            f"<td>{state_badge(item.state)}</td><td>{tries(item, max_attempts)}</td>"
            f"<td>{linked(item.outcome[:200], web, item.repo)}</td>"
            f"<td>{_next(item)}</td>"
            f"<td>{cost_cell(spent.get((item.repo_id, item.number), Spend()))}</td>"
            f"<td class='muted'>{ago(item.updated, now)}</td></tr>"
        )
    table = "".join(rows) or "<tr><td colspan='9' class='muted'>No work yet.</td></tr>"
    repos = sorted({i.repo for i in items})
    plans = " · ".join(f"<a href='/plan/{escape(r)}'>{escape(r)}</a>" for r in repos)
    body = (
        f"<h1>forgehand</h1>{worker_banner(depth, workers)}"
        f"<p>{depth} queued · {workers} worker{'s' * (workers != 1)} · "
        "<a href='/tasks'>every task</a> · <a href='/usage'>model spend</a>"
        + (f" · plans: {plans}" if plans else "")
        + "</p><table id='items'><tr><th>Repository</th><th>Issue / PR</th><th>Title</th>"
        f"<th>State</th><th>Attempts</th><th>Last outcome</th><th>Next</th><th>Spend</th>"
        "<th>Updated</th>"
        f"</tr>{table}"
        "</table>"
    )
    live = any(r.active for i in items for r in i.rows)
    return page("forgehand", body, refresh=live)


def attempts_html(item: Item, web: str, max_attempts: int) -> str:
    """The fix attempts that count on a pull request (CI failures and merge conflicts alike):
    what failed, what was tried, what it came to."""
    rows = []
    for entry in item.attempts:
        rows.append(
            f"<tr><td>{escape(str(entry.get('attempt', '')))}</td>"
            f"<td>{linked(str(entry.get('sha', ''))[:7], web, item.repo)}</td>"
            f"<td>{escape(str(entry.get('failed') or '—'))}</td>"
            f"<td>{escape(str(entry.get('changed') or '—'))}</td>"
            f"<td>{linked(attempt_outcome(entry, item.ci), web, item.repo)}</td>"
            f"<td>{_task_link(entry)}</td></tr>"
        )
    return (
        f"<p class='muted'>CI failures and merge conflicts forgehand tried to fix count alike: "
        f"{len(item.attempts)} of {max_attempts} used. Green CI resets the count.</p>"
        "<table id='attempts'><tr><th>Attempt</th><th>Failed on</th><th>What failed</th>"
        "<th>What the agent changed</th><th>Outcome</th><th>Task</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def attempt_outcome(entry: dict[str, Any], ci: dict[str, str]) -> str:
    pushed = str(entry.get("pushed") or "")
    if pushed:
        merged = str(entry.get("failed") or "").startswith("merge conflict")
        lead = "merge pushed as" if merged else "fix pushed as"
        return f"{lead} {pushed[:7]} — CI on it: {ci_words(pushed, ci)}"
    return str(entry.get("result") or "—")


def _task_link(entry: dict[str, Any]) -> str:
    task = str(entry.get("task") or "")
    return f"<a href='/tasks/{escape(task)}'>its task</a>" if task else "—"


def way_out(item: Item, label: str, prefix: str, max_attempts: int) -> str:
    branch = next((r.task.branch for r in reversed(item.rows) if r.task.branch), "")
    on = f" to <code>{escape(branch)}</code>" if branch else ""
    return (
        f"<div class='warn' id='way-out'><p><b>forgehand stopped after {len(item.attempts)} "
        "attempts to make CI pass and hands this pull request to a human.</b> It ignores CI "
        "failures here until one of these:</p><ul>"
        f"<li>fix it yourself: push{on}; green CI resets the count;</li>"
        f"<li>comment <code>{escape(prefix)} retry</code> on the pull request, press "
        "<b>Re-run</b> on its <code>forgehand</code> check, or <b>Retry</b> on the last task "
        f"here: the agent gets {max_attempts} more attempts;</li>"
        f"<li>remove the <code>{escape(label)}</code> label.</li></ul></div>"
    )


def item_html(item: Item, web: str, max_attempts: int, label: str, prefix: str,
              depth: int, workers: int) -> str:  # fmt: skip
    now = time.time()
    shown = name(item) if item.number else item.repo
    titled = heading(item)
    there = f"<a href='{escape(github_url(web, item))}'>{escape(shown)} on GitHub</a>"
    link = ""
    if item.linked:
        other = "issue" if item.pull else "pull request"
        link = (f" · for {other} <a href='/work/{escape(item.repo)}/{item.linked}'>"
                f"#{item.linked}</a>")  # fmt: skip
    head = (
        f"<p><a href='/'>← all work</a></p>{worker_banner(depth, workers)}"
        f"<h1>{escape(item.repo)} {escape(name(item))}"
        f"{': ' + escape(titled) if titled else ''}</h1>"
        f"<p>{escape(kind_of(item))} · {there}{link} · {state_badge(item.state, 'state')}</p>"
        f"<p id='outcome'>Last outcome: {linked(item.outcome, web, item.repo)}</p>"
        f"<p id='next'>Next: {escape(item.next_step)}</p>"
    )
    fixes = ""
    if item.escalated:
        fixes += way_out(item, label, prefix, max_attempts)
    if item.attempts:
        fixes += f"<h2>Fix attempts</h2>{attempts_html(item, web, max_attempts)}"
    rows = []
    for n, row in enumerate(item.rows, 1):
        known = row.state if row.state in ("failed", "escalated") else ""
        rows.append(
            f"<tr class='{known}'><td>{n}</td>"
            f"<td><a href='/tasks/{escape(row.id)}'>{escape(what(row))}</a></td>"
            f"<td>{state_badge(shown_state(row, item.ci))}</td>"
            f"<td>{linked(outcome(row, item.ci), web, item.repo)}</td>"
            f"<td class='muted'>{ago(row.created, now)}</td><td>{took(row, now)}</td></tr>"
        )
    tasks = (
        "<h2>Tasks, in order</h2><table id='item-tasks'><tr><th>#</th><th>Task</th>"
        "<th>State</th><th>Outcome</th><th>Started</th><th>Took</th></tr>"
        + "".join(rows)
        + "</table>"
    )
    live = any(r.active for r in item.rows)
    return page(f"{item.repo} {name(item)}", head + fixes + tasks, refresh=live)
