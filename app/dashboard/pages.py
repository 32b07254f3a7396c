"""The dashboard's HTML: the frame and style every page shares (/setup's too), the task list
and the task page. Everything that came from a repository, an agent or GitHub is escaped here.
"""

from __future__ import annotations

import json
import re
import time
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from app.dashboard import timeline
from app.dashboard.task_rows import Filters, Listing, Row
from app.dashboard.work_items import outcome, shown_state, what
from app.tasks import Kind

STYLE = """
:root{--fg:#1f2328;--muted:#57606a;--line:#d0d7de;--soft:#f6f8fa;--blue:#0969da;
--red:#cf222e;--red-bg:#ffebe9;--amber:#9a6700;--amber-bg:#fff8c5;--green:#1a7f37}
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:var(--fg)}
h1{font-size:1.6rem;margin:0 0 .5rem}h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
table{border-collapse:collapse;width:100%}
td,th{padding:.35rem .6rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:var(--soft)}a{color:var(--blue)}.muted{color:var(--muted)}
pre{background:#0d1117;color:#e6edf3;padding:1rem;overflow:auto;max-height:32rem;
white-space:pre-wrap}code{background:var(--soft);padding:0 .2rem;border-radius:4px}
.state{font-weight:600;white-space:nowrap;color:var(--muted)}
.state.queued,.state.waiting{color:var(--amber)}.state.running{color:var(--blue)}
.state.done,.state.merged{color:var(--green)}
.state.failed,.state.escalated,.state.ci-failed{color:#fff;background:var(--red);
padding:.1rem .45rem;border-radius:1rem}.state.escalated{background:var(--amber);color:#fff}
tr.failed td{background:var(--red-bg)}tr.escalated td{background:var(--amber-bg)}
.totals a{display:inline-block;margin:0 .4rem .4rem 0;padding:.15rem .6rem;border-radius:1rem;
border:1px solid var(--line);text-decoration:none}.totals a.on{background:var(--soft);
font-weight:600}form.filters{margin:.5rem 0 1rem}form.filters select{margin-right:.5rem}
form.act{display:inline}button{font:inherit;padding:.25rem .8rem;border-radius:6px;
border:1px solid var(--line);background:var(--soft);cursor:pointer}
button.danger{color:var(--red)}.why{color:var(--red);font-weight:600}
.warn{border-left:4px solid var(--amber);background:var(--amber-bg);padding:.6rem 1rem}
.alarm{border-left:4px solid var(--red);background:var(--red-bg);padding:.6rem 1rem;
font-weight:600}.id{font-size:.8rem}
.add{color:#7ee787}.del{color:#ffa198}.hunk{color:#79c0ff}
"""

# States people see styled: the rest (one a newer worker wrote) is shown plainly.
KNOWN_STATES = ("queued", "running", "waiting", "done", "failed", "escalated", "cancelled")
# A piece of work's states beyond its tasks': what became of a pull request.
WORK_STATES = ("merged", "closed", "ci-failed")
MARKS = {"failed": "✖ failed", "escalated": "⚠ escalated", "ci-failed": "✖ done, CI failed on it"}
CANCELLABLE = frozenset({"queued", "running", "waiting"})
RETRYABLE = frozenset({"failed", "escalated", "cancelled"})


def page(title: str, body: str, refresh: bool = False) -> str:
    meta = '<meta http-equiv="refresh" content="5">' if refresh else ""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'>{meta}<title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )


def state_badge(state: str, element_id: str = "") -> str:
    known = state if state in (*KNOWN_STATES, *WORK_STATES) else ""
    id_attr = f" id='{element_id}'" if element_id else ""
    label = MARKS.get(state, state)
    return f"<span{id_attr} class='state {known}'>{escape(label)}</span>"


def linked(text: str, web: str, repo: str) -> str:
    """`text` escaped, with its commits and issue numbers linked on GitHub."""
    return "".join(
        f'<a href="{escape(p.href)}">{escape(p.text)}</a>' if p.href else escape(p.text)
        for p in timeline.parts(text, web, repo)
    )


def worker_banner(depth: int, workers: int) -> str:
    """Red when work waits and nothing can run it: the one fix, named."""
    if not depth or workers:
        return ""
    return (
        f"<p class='alarm' id='no-worker'>{depth} task{'s' * (depth != 1)} queued and no "
        "worker is running, so nothing will start. Start one beside the web process: "
        "<code>forgehand worker</code> (or run both with <code>forgehand dev</code>), with "
        "the same <code>REDIS_URL</code>.</p>"
    )


def ago(ts: float, now: float) -> str:
    seconds = max(0, int(now - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def took(row: Row, now: float) -> str:
    end = now if row.active else row.updated
    seconds = max(0, int(end - row.created))
    return f"{seconds // 60}m {seconds % 60}s" if seconds >= 60 else f"{seconds}s"


def target_link(web: str, row: Row) -> str:
    task = row.task
    if not task.number:
        return escape(task.repo)
    kind = "issues" if task.kind.on_issue else "pull"
    url = f"{web}/{task.repo}/{kind}/{task.number}"
    return f'<a href="{escape(url)}">{escape(task.repo)}#{task.number}</a>'


def attempt(row: Row, max_attempts: int) -> str:
    """The task's own attempt at fixing CI, e.g. `2/3`; blank for other kinds."""
    if row.task.kind is not Kind.CI or row.attempt <= 0:
        return ""
    return f"{row.attempt}/{max_attempts}"


def _query(filters: Filters, page_number: int = 1, **change: str) -> str:
    values = {"state": filters.state, "repo": filters.repo, "kind": filters.kind} | change
    if page_number > 1:
        values["page"] = str(page_number)
    kept = {k: v for k, v in values.items() if v}
    return "/tasks?" + urlencode(kept) if kept else "/tasks"


def _select(name: str, label: str, chosen: str, options: list[str]) -> str:
    items = "".join(
        f"<option value='{escape(o)}'{' selected' if o == chosen else ''}>{escape(o)}</option>"
        for o in options
    )
    return (
        f"<label>{label} <select name='{name}' id='filter-{name}'>"
        f"<option value=''>all</option>{items}</select></label>"
    )


def index_html(listing: Listing, filters: Filters, web: str, depth: int, workers: int,
               max_attempts: int, titles: dict[tuple[int, int], str] | None = None,
               ci: dict[tuple[int, int], dict[str, str]] | None = None) -> str:  # fmt: skip
    chosen, now = listing.selection, time.time()
    total = sum(chosen.totals.values())
    chips = [f"<a href='{escape(_query(filters, state=''))}'"
             f"{' class=on' if not filters.state else ''}>{total} all</a>"]  # fmt: skip
    for state in [*KNOWN_STATES, *sorted(set(chosen.totals) - set(KNOWN_STATES))]:
        count = chosen.totals.get(state, 0)
        if count or state in ("failed", "escalated"):
            on = " class=on" if filters.state == state else ""
            chips.append(
                f"<a id='total-{escape(state)}' href='{escape(_query(filters, state=state))}'"
                f"{on}>{count} {state_badge(state)}</a>"
            )
    states = sorted(set(KNOWN_STATES) | set(chosen.totals))
    form = (
        "<form class='filters' method='get' action='/tasks'>"
        + _select("state", "State", filters.state, states)
        + _select("repo", "Repository", filters.repo, chosen.repos)
        + _select("kind", "Kind", filters.kind, [k.value for k in Kind])
        + "<button type='submit'>Filter</button></form>"
    )
    plans = " · ".join(
        f"<a href='/plan/{escape(quote(repo, safe='/'))}'>{escape(repo)}</a>"
        for repo in chosen.repos
    )
    plans = f"<p class='plans'>Plans: {plans}</p>" if plans else ""
    plans += "<p class='plans'><a href='/usage'>Model spend by repository and day</a></p>"
    rows = []
    for row in listing.rows:
        known = row.state if row.state in KNOWN_STATES else ""
        key = (row.task.repo_id, row.task.number)
        title, said = (titles or {}).get(key, ""), (ci or {}).get(key, {})
        rows.append(
            f"<tr class='{known}'><td><a href='/tasks/{escape(row.id)}'>"
            f"{escape(what(row))}</a></td>"
            f"<td>{escape(row.task.kind.value)}</td><td>{target_link(web, row)}"
            f"{' ' + escape(title[:80]) if title else ''}</td>"
            f"<td>{state_badge(shown_state(row, said))}</td><td>{attempt(row, max_attempts)}</td>"
            f"<td>{took(row, now)}</td><td class='muted'>{ago(row.updated, now)}</td>"
            f"<td class='muted'>{escape(outcome(row, said)[:160])}</td></tr>"
        )
    empty = "No tasks yet." if not total else "No task matches these filters."
    table = "".join(rows) or f"<tr><td colspan='8' class='muted'>{empty}</td></tr>"
    pager = ""
    if chosen.pages > 1:
        newer = (f"<a id='newer' href='{escape(_query(filters, chosen.page - 1))}'>← newer</a> "
                 if chosen.page > 1 else "")  # fmt: skip
        older = (f" <a id='older' href='{escape(_query(filters, chosen.page + 1))}'>older →</a>"
                 if chosen.page < chosen.pages else "")  # fmt: skip
        pager = (f"<p class='pager'>{newer}page {chosen.page} of {chosen.pages} "
                 f"({chosen.matching} tasks){older}</p>")  # fmt: skip
    body = (
        f"<p><a href='/'>← all work</a></p><h1>Every task</h1>{worker_banner(depth, workers)}"
        f"<p>{depth} queued · {workers} worker{'s' * (workers != 1)}</p>"
        f"<p class='totals'>{''.join(chips)}</p>{form}{plans}"
        "<table id='tasks'><tr><th>Task</th><th>Kind</th><th>Issue / PR</th><th>State</th>"
        f"<th>Attempt</th><th>Took</th><th>Updated</th><th>Outcome</th></tr>{table}</table>"
        f"{pager}"
    )
    live = any(chosen.totals.get(s, 0) for s in ("queued", "running", "waiting"))
    return page("forgehand", body, refresh=live)


def steps_html(steps: list[dict[str, Any]]) -> str:
    rows = []
    for step in steps:
        detail = "".join(
            f'<a href="{escape(p["href"])}">{escape(p["text"])}</a>' if p["href"]
            else escape(p["text"])
            for p in step["parts"]
        )  # fmt: skip
        clock = time.strftime("%H:%M:%S", time.localtime(step["ts"]))
        rows.append(
            f"<tr><td class='muted'>{clock}</td><td>{escape(step['event'])}</td>"
            f"<td>{detail}</td><td class='muted'>{escape(step['took'])}</td></tr>"
        )
    return "<tr><th>At</th><th>Step</th><th>Detail</th><th>Took</th></tr>" + "".join(rows)


def diff_html(diff: str) -> str:
    lines = []
    for line in diff.splitlines():
        kind = ""
        if line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+") and not line.startswith("+++"):
            kind = "add"
        elif line.startswith("-") and not line.startswith("---"):
            kind = "del"
        text = escape(line)
        lines.append(f"<span class='{kind}'>{text}</span>" if kind else text)
    return "\n".join(lines)


def _js(value: str) -> str:
    """A JavaScript string literal that cannot end the script element it is in."""
    return json.dumps(value).replace("<", "\\u003c")


def _action(task_id: str, verb: str, label: str, token: str, danger: bool = False) -> str:
    css = " class='danger'" if danger else ""
    return (
        f"<form class='act' method='post' action='/tasks/{escape(task_id)}/{verb}'>"
        f"<input type='hidden' name='csrf' value='{escape(token)}'>"
        f"<button type='submit' id='{verb}'{css}>{label}</button></form>"
    )


def task_html(row: Row, steps: list[dict[str, Any]], log: list[str], prompt: str, diff: str,
              web: str, max_attempts: int, token: str, title: str = "",
              ci: dict[str, str] | None = None, spent: str = "") -> str:  # fmt: skip
    now, ci = time.time(), ci or {}
    repo = row.task.repo
    buttons = []
    if row.state in CANCELLABLE:
        buttons.append(_action(row.id, "cancel", "Cancel", token, danger=True))
    if row.state in RETRYABLE:
        buttons.append(_action(row.id, "retry", "Retry", token))
    tried = attempt(row, max_attempts)
    css = "why" if row.state in MARKS else "muted"
    why = (f"<p class='{css}' id='why'>{escape(MARKS.get(row.state, row.state))}: "
           f"{escape(row.error)}</p>" if row.error and row.active else "")  # fmt: skip
    # A finished task's reason is its outcome: said once, marked as the reason was.
    ended = "" if row.active else (
        f"<p id='outcome'{f' class={css}' if row.error else ''}>Outcome: "
        f"{linked(outcome(row, ci), web, repo)}</p>{_next_html(row)}")  # fmt: skip
    failed = ""
    if row.task.kind is Kind.CI and row.task.sha:
        said = ci.get(row.task.sha, "not read yet")
        failed = (f"<p id='ci'>CI on {linked(row.task.sha[:7], web, repo)}, the commit it set "
                  f"out to fix: {escape(said)}</p>")  # fmt: skip
    work = ""
    if row.task.number:
        work = (f" · <a href='/work/{escape(repo)}/{row.task.number}'>all work on "
                f"#{row.task.number}</a>")  # fmt: skip
    text_log = escape("\n".join(log)) or ("(no output yet)" if row.active else "(no output)")
    pushed = re.match(r"pushed ([0-9a-f]{7,40})", row.result)
    if diff:
        change = f"<pre id='diff'>{diff_html(diff)}</pre>"
    elif pushed:
        change = (f"<p class='muted' id='diff'>Pushed as {linked(pushed[1], web, repo)}; "
                  "the change is on GitHub.</p>")  # fmt: skip
    else:
        change = (
            "<p class='muted' id='diff'>"
            + ("No change yet." if row.active else "No change committed.")
            + "</p>"
        )
    if not (row.active or prompt or log or diff or pushed):
        # Nothing of an agent to show: three empty sections would only say so three times.
        agent = "<h2>Agent</h2><p id='prompt'>The agent was not run in this task.</p>"
    else:
        asked = (f"<details><summary>The agent's last prompt</summary><pre id='prompt'>"
                 f"{escape(prompt)}</pre></details>" if prompt else
                 "<p class='muted' id='prompt'>"
                 + ("No prompt yet." if row.active else "The agent was not run in this task.")
                 + "</p>")  # fmt: skip
        agent = (f"<h2>Agent output</h2><pre id='log'>{text_log}</pre><h2>Change</h2>{change}"
                 f"<h2>Prompt</h2>{asked}")  # fmt: skip
    body = (
        f"<p><a href='/'>← all work</a>{work}</p>"
        f"<h1>{escape(what(row)[:1].upper() + what(row)[1:])} · {target_link(web, row)}"
        f"{' ' + escape(title) if title else ''}</h1>"
        f"<p class='muted id'>task {escape(row.id)}</p>"
        f"<p>{escape(row.task.kind.value)} · {state_badge(shown_state(row, ci), 'state')}"
        f"{' · attempt ' + tried if tried else ''} · took <span id='took'>{took(row, now)}"
        f"</span> {' '.join(buttons)}</p>{why}{ended}{failed}"
        f"<p id='spend' class='muted'>Model use: {escape(spent or 'no model calls')}</p>"
        f"<h2>Timeline</h2><table id='timeline'>{steps_html(steps)}</table>"
        f"{agent}"
        + f"<script>{_POLL % (_js(row.id), _js(row.state))}</script>"
    )  # fmt: skip
    return page(f"{what(row)} · {repo}#{row.task.number}", body)


def _next_html(row: Row) -> str:
    """What a person does about a task that failed or gave up."""
    if row.state == "escalated" and row.task.number:
        page = f"/work/{escape(row.task.repo)}/{row.task.number}"
        return (f"<p id='next'>Next: a human takes over. The attempts, what failed each time, "
                f"and the ways out are on <a href='{page}#way-out'>the pull request's page"
                "</a>.</p>")  # fmt: skip
    if row.state == "failed":
        return "<p id='next'>Next: fix the cause above, then Retry.</p>"
    return ""


# While the task is live, re-reads it every two seconds: the log and the timeline as text and
# links built with the DOM (never HTML from the server), and the whole page once the state
# changes, so that its buttons and its change follow.
_POLL = """
const id = %s, shown = %s;
async function poll() {
  const r = await fetch(`/tasks/${encodeURIComponent(id)}.json`, {credentials: "same-origin"});
  if (!r.ok) return;
  const t = await r.json();
  if (t.state !== shown) { location.reload(); return; }
  document.getElementById("log").textContent = t.log.join("\\n") || "(no output yet)";
  const rows = t.steps.map(s => {
    const tr = document.createElement("tr");
    const cell = v => { const td = document.createElement("td"); td.textContent = v; return td; };
    const detail = document.createElement("td");
    for (const p of s.parts) {
      if (p.href) {
        const a = document.createElement("a"); a.href = p.href; a.textContent = p.text;
        detail.appendChild(a);
      } else detail.appendChild(document.createTextNode(p.text));
    }
    tr.append(cell(new Date(s.ts * 1000).toLocaleTimeString()), cell(s.event), detail,
              cell(s.took));
    return tr;
  });
  document.getElementById("timeline").tBodies[0].replaceChildren(
    document.getElementById("timeline").rows[0], ...rows);
  if (t.active) setTimeout(poll, 2000);
}
if (["queued", "running", "waiting"].includes(shown)) setTimeout(poll, 2000);
"""
