"""Whether a labelled issue may start now, or waits: for the issues it is blocked by, or for a
free slot under the repository's `max_open_pull_requests`.

A waiting task is in state `waiting` with its status comment saying for what; it is queued
again when an issue or agent pull request of its repository closes (app/fleet/waking.py) and
then asks again here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from app.fleet import (
    FleetState,
    blockers_in,
    find_cycle,
    may_open,
    owners_of,
    paths_named,
    queue_position,
)
from app.github import GitHubError, Installation
from app.tasks import State, Task
from jobs.boundary import printable
from jobs.errors import TaskFailed
from jobs.pipeline import Context, Repo
from jobs.report import StatusComment

MAX_GRAPH = 50  # issues read at most when looking for a dependency cycle
# Blockers read from one issue's body at most: each costs a request of the installation's
# rate limit, and anyone who writes an issue writes its body.
MAX_BLOCKERS = 20
GATE_TTL = 120  # seconds; one task at a time decides to take a slot under the cap
LOOKS = 3  # looks again when a wake-up came while it decided


@dataclass(frozen=True)
class Blocker:
    number: int  # 0 when it lives in another repository
    url: str
    open: bool

    @property
    def link(self) -> str:
        return f"[#{self.number}]({self.url})" if self.number else f"[{self.url}]({self.url})"


def blocked_by(api: Installation, repo: str, number: int, issue: dict[str, Any]) -> list[Blocker]:
    """The issues this one is blocked by: GitHub's issue dependencies, then its body's lines."""
    found: dict[str, Blocker] = {}
    for other in _dependencies(api, repo, number):
        blocker = _blocker(repo, other)
        found[blocker.url] = blocker
    for n in blockers_in(issue.get("body"), number)[:MAX_BLOCKERS]:
        if any(b.number == n for b in found.values()):
            continue
        try:
            other = api.get(f"/repos/{repo}/issues/{n}")
        except GitHubError as exc:
            if exc.status in (404, 410):
                continue  # no such issue (or deleted): nothing to wait for
            raise
        blocker = _blocker(repo, other)
        found[blocker.url] = blocker
    return list(found.values())


def _dependencies(api: Installation, repo: str, number: int) -> list[dict[str, Any]]:
    try:
        found = api.get(f"/repos/{repo}/issues/{number}/dependencies/blocked_by", per_page=100)
    except GitHubError as exc:
        if exc.status in (403, 404, 410):
            return []  # no issue dependencies here (GitHub Enterprise Server, or turned off)
        raise
    return [i for i in found or [] if isinstance(i, dict)]


def _blocker(repo: str, issue: dict[str, Any]) -> Blocker:
    url = str(issue.get("html_url") or "")
    same = url.rstrip("/").rsplit("/", 2)[0].endswith(f"/{repo}") if url else True
    return Blocker(int(issue["number"]) if same else 0, url, issue.get("state") == "open")


def cycle_through(
    api: Installation, repo: str, number: int, open_blockers: list[Blocker]
) -> tuple[int, ...] | None:
    """A cycle of same-repository dependencies that this issue is on, read breadth first."""
    edges: dict[int, list[int]] = {number: [b.number for b in open_blockers if b.number]}
    todo = list(edges[number])
    while todo and len(edges) < MAX_GRAPH:
        n = todo.pop(0)
        if n in edges:
            continue
        try:
            issue = api.get(f"/repos/{repo}/issues/{n}")
        except GitHubError as exc:
            if exc.status in (404, 410):
                edges[n] = []
                continue
            raise
        edges[n] = [b.number for b in blocked_by(api, repo, n, issue) if b.open and b.number]
        todo += edges[n]
    return find_cycle(number, edges)


def open_agent_pull_requests(api: Installation, ctx: Context, task: Task) -> int:
    count, page = 0, 1
    while True:
        found = api.get(f"/repos/{task.repo}/pulls", state="open", per_page=100, page=page) or []
        for pr in found:
            head = pr.get("head") or {}
            own = (head.get("repo") or {}).get("id") == task.repo_id
            if own and str(head.get("ref", "")).startswith(ctx.settings.branch_prefix):
                count += 1
        if len(found) < 100:
            return count
        page += 1


def hold(
    api: Installation,
    ctx: Context,
    task: Task,
    repo: Repo,
    issue: dict[str, Any],
    status: StatusComment,
) -> str | None:
    """None when the task may go on (it then holds a slot until `slot` ends); else it is now
    waiting, its status comment says for what, and the summary is returned."""
    fleet = FleetState(ctx.store.redis)
    for _ in range(LOOKS):
        generation = fleet.generation(task.repo_id)
        why = _why_wait(api, ctx, task, repo, issue, fleet)
        if why is None:
            fleet.unwait(task.repo_id, task.id)
            return None
        queue, headline, summary = why
        fleet.wait(task.repo_id, task.id, queue, summary, generation)
        status.update(headline)
        if not ctx.store.transition(task.id, (State.RUNNING,), State.WAITING, summary):
            return summary  # cancelled meanwhile: it stays cancelled
        ctx.store.audit(task.id, "waiting", summary)
        if fleet.generation(task.repo_id) == generation:
            return summary
        # Woken while deciding; that wake-up could not queue a task that was still running.
        if not ctx.store.transition(task.id, (State.WAITING,), State.RUNNING):
            return summary
    return summary


def _why_wait(
    api: Installation,
    ctx: Context,
    task: Task,
    repo: Repo,
    issue: dict[str, Any],
    fleet: FleetState,
) -> tuple[str, str, str] | None:
    """(queue, status headline, summary) of what the task waits for, or None."""
    blockers = blocked_by(api, task.repo, task.number, issue)
    fleet.set_depends(task.repo_id, task.number, [b.number for b in blockers if b.number])
    waiting_for = [b for b in blockers if b.open]
    if waiting_for:
        cycle = cycle_through(api, task.repo, task.number, waiting_for)
        if cycle is not None:
            fleet.unwait(task.repo_id, task.id)
            path = " → ".join(f"#{n}" for n in cycle)
            raise TaskFailed(
                f"These issues wait for each other, so none of them can start: {path}. "
                "Remove one of the dependencies and label this issue again."
            )
        links = ", ".join(b.link for b in waiting_for)
        numbers = ", ".join(f"#{b.number}" if b.number else b.url for b in waiting_for)
        headline = (
            f"⏸ Waiting: this issue is blocked by {links}. Work starts by itself, from the "
            "new base, once they are closed."
        )
        return "blocked", headline, f"waiting for {numbers}"
    held = _held_files(task, repo, issue, fleet)
    if held:
        owner, files = held
        named = ", ".join(f"`{printable(f)}`" for f in sorted(files))
        headline = (
            f"⏸ Waiting: this issue names {named}, which #{owner} (an open agent pull request) "
            "changes, and this repository serializes overlapping work (`overlap: serialize`). "
            f"Work starts by itself once #{owner} merges or closes."
        )
        return "blocked", headline, f"waiting for #{owner} to merge"
    cap = repo.config.max_open_pull_requests
    with _gate(ctx, task):
        taken = open_agent_pull_requests(api, ctx, task) + _starting(ctx, task, fleet)
        place = queue_position(_live(ctx, fleet.waiting(task.repo_id, "cap")), task.id)
        if may_open(taken, cap, place):
            fleet.start(task.repo_id, task.id)
            return None
    headline = (
        f"⏸ Waiting for review capacity: {taken} agent pull requests are open or being made "
        f"(`max_open_pull_requests: {cap}`). This issue is number {place} in the queue and "
        "starts by itself as agent pull requests merge or close."
    )
    return "cap", headline, f"waiting for review capacity: number {place} in the queue"


@contextmanager
def _gate(ctx: Context, task: Task) -> Iterator[None]:
    """One task of a repository at a time counts the slots and takes one."""
    lock = ctx.store.redis.lock(f"fh:fleet:{task.repo_id}:gate", timeout=GATE_TTL)
    lock.acquire(blocking=True)
    try:
        yield
    finally:
        lock.release()


def _held_files(
    task: Task, repo: Repo, issue: dict[str, Any], fleet: FleetState
) -> tuple[int, frozenset[str]] | None:
    """With `overlap: serialize`, the oldest other open agent pull request that changes files
    the issue names, and those files."""
    if repo.config.overlap != "serialize":
        return None
    named = paths_named(f"{issue.get('title') or ''}\n{issue.get('body') or ''}")
    others = [p for p in fleet.pulls(task.repo_id) if p.issue != task.number]
    owners = owners_of(named, sorted(others, key=lambda p: (p.created, p.number)))
    if not owners:
        return None
    first = next(iter(owners))
    return first, owners[first]


def _starting(ctx: Context, task: Task, fleet: FleetState) -> int:
    """Other tasks of the repository that took a slot and are still making their pull
    request; one that ended without one gave its slot back by ending."""
    count = 0
    for other in fleet.starting(task.repo_id) - {task.id}:
        record = ctx.store.get(other)
        if record is not None and record.state is State.RUNNING:
            count += 1
        else:
            fleet.started(task.repo_id, other)
    return count


def _live(ctx: Context, queue: list[str]) -> list[str]:
    """The queue without tasks that were cancelled or ended while in it."""
    records = [ctx.store.get(t) for t in queue]
    return [t for t, r in zip(queue, records, strict=True) if r is not None and r.state.active]


def opened(ctx: Context, task: Task) -> None:
    """The task's pull request is open: GitHub counts it from now on, not the slot."""
    FleetState(ctx.store.redis).started(task.repo_id, task.id)
