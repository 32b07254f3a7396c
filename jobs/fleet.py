"""The fleet's side of a task: what an agent pull request that opened or closed changes for the
others (their overlap comments)."""

from __future__ import annotations

import time

from app.fleet import Pull
from app.fleet_state import FleetState
from app.github import GitHubError, Installation
from app.tasks import Task
from jobs import overlap
from jobs.pipeline import Context
from jobs.redact import redactor_for


def opened(
    api: Installation,
    ctx: Context,
    task: Task,
    number: int,
    branch: str,
    changed: tuple[frozenset[str], frozenset[str]],
) -> None:
    """Record the new pull request's files and tell the ones it overlaps."""
    # The agent named the files: they reach comments and the plan only redacted.
    clean = redactor_for(ctx.settings, api.token()).text
    files, interface = (frozenset(clean(f) for f in names) for names in changed)
    pull = Pull(number, task.number, time.time(), files, interface, branch)
    state = FleetState(ctx.store.redis)
    found, _fleet = overlap.check_push(state, task.repo_id, pull)
    if found.shared:
        shared = ", ".join(f"#{n}" for n in sorted(found.shared))
        ctx.store.audit(task.id, "overlap", f"#{number} shares files with {shared}")
    _comment(api, ctx, task, state)


def closed(api: Installation, ctx: Context, task: Task) -> None:
    """A pull request closed: it owns no files any more; the others' comments say so."""
    state = FleetState(ctx.store.redis)
    state.forget(task.repo_id, task.number)
    state.forget_overlap_comment(task.repo_id, task.number)
    _comment(api, ctx, task, state)


def _comment(api: Installation, ctx: Context, task: Task, state: FleetState) -> None:
    try:
        overlap.update_comments(api, state, task.repo, task.repo_id)
    except GitHubError as exc:
        # The pull request is open either way; the next push or close updates the comments.
        ctx.store.audit(task.id, "overlap comments not updated", str(exc))
