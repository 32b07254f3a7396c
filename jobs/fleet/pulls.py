"""The fleet's side of a task: what an agent pull request that opened or closed changes for the
others (their overlap comments)."""

from __future__ import annotations

import time

from app.fleet import FleetState, Pull, interface_files
from app.github import GitHubError, Installation
from app.tasks import Task
from jobs.boundary import redactor_for
from jobs.fleet import overlap
from jobs.pipeline import Context, prepare


def opened(
    api: Installation,
    ctx: Context,
    task: Task,
    number: int,
    branch: str,
    changed: tuple[frozenset[str], frozenset[str]],
) -> None:
    """Record the new pull request's files and tell the ones it overlaps."""
    _record(api, ctx, task, number, task.number, time.time(), branch, changed)


def pushed(task: Task, ctx: Context) -> str:
    """A push to an agent pull request (the App's, or anyone's): its files are read again from
    GitHub, and the overlaps and the plan follow them."""
    api, _repo = prepare(task, ctx, check=False)
    if not ctx.store.is_app_pull_request(task.repo_id, task.number):
        return f"#{task.number} is not a pull request the App opened"
    pr = api.get(f"/repos/{task.repo}/pulls/{task.number}")
    if pr["state"] != "open":
        return f"#{task.number} is closed"
    if pr["head"]["sha"] != task.sha:
        return f"skipped: {task.sha[:7]} is no longer the head"
    state = FleetState(ctx.store.redis)
    known = next((p for p in state.pulls(task.repo_id) if p.number == task.number), None)
    issue = ctx.store.issue_for_pull_request(task.repo_id, task.number) or 0
    created = known.created if known is not None else time.time()
    changed = pull_files(api, task.repo, task.number)
    return _record(api, ctx, task, task.number, issue, created, pr["head"]["ref"], changed)


# GitHub lists at most 3000 files of a pull request, 100 a page.
FILE_PAGES = 30


def pull_files(api: Installation, repo: str, number: int) -> tuple[frozenset[str], frozenset[str]]:
    """(files changed, files whose definitions changed) of a pull request, as GitHub lists
    them."""
    names: set[str] = set()
    diff: list[str] = []
    for page in range(1, FILE_PAGES + 1):
        found = api.get(f"/repos/{repo}/pulls/{number}/files", per_page=100, page=page) or []
        for entry in found:
            name = str(entry.get("filename") or "")
            names.add(name)
            if entry.get("previous_filename"):
                names.add(str(entry["previous_filename"]))
            diff += [f"diff --git a/{name} b/{name}", f"--- a/{name}", f"+++ b/{name}",
                     str(entry.get("patch") or "")]  # fmt: skip
        if len(found) < 100:
            break
    return frozenset(names - {""}), interface_files("\n".join(diff))


def _record(
    api: Installation,
    ctx: Context,
    task: Task,
    number: int,
    issue: int,
    created: float,
    branch: str,
    changed: tuple[frozenset[str], frozenset[str]],
) -> str:
    """Record the pull request's files, say whom it overlaps; return that in a few words."""
    # The agent named the files: they reach comments and the plan only redacted.
    clean = redactor_for(ctx.settings, api.token()).text
    files, interface = (frozenset(clean(f) for f in names) for names in changed)
    pull = Pull(number, issue, created, files, interface, branch)
    state = FleetState(ctx.store.redis)
    found, _fleet = overlap.check_push(state, task.repo_id, pull)
    shared = ", ".join(f"#{n}" for n in sorted(found.shared))
    if shared:
        ctx.store.audit(task.id, "overlap", f"#{number} shares files with {shared}")
    _comment(api, ctx, task, state)
    count = len(files)
    return f"{count} file{'s' * (count != 1)} changed; overlaps {shared or 'none'}"


def closed(api: Installation, ctx: Context, task: Task, merged: bool) -> None:
    """A pull request closed: it owns no files any more; the others' comments say so."""
    state = FleetState(ctx.store.redis)
    state.close(task.repo_id, task.number, merged)
    state.forget_overlap_comment(task.repo_id, task.number)
    _comment(api, ctx, task, state)


def _comment(api: Installation, ctx: Context, task: Task, state: FleetState) -> None:
    try:
        overlap.update_comments(api, state, task.repo, task.repo_id)
    except GitHubError as exc:
        # The pull request is open either way; the next push or close updates the comments.
        ctx.store.audit(task.id, "overlap comments not updated", str(exc))
