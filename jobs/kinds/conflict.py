"""Conflicts become work: when the base branch moves, agent pull requests that no longer merge
get a task that merges the base into their branch, has the agent resolve the conflicts and
pushes a new commit (never a force-push), counted under the retry cap like a CI fix."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any

from app.dispatch import Dispatcher, job_timeout
from app.github import Installation
from app.tasks import Kind, Task
from jobs.agents import prompts
from jobs.boundary import GitError, protected
from jobs.errors import TaskFailed
from jobs.kinds.ci_fix import escalate
from jobs.lock import pull_request_lock
from jobs.pipeline import (
    Context,
    PullRequest,
    Repo,
    Run,
    agent_then_tests,
    changed_names,
    prepare,
    push,
    read_pull,
    reported,
    setup,
    status_for,
    take,
)
from jobs.report import StatusComment
from jobs.workspace import Worktree

# GitHub computes `mergeable` in the background after a push; it is null until then.
MERGEABLE_TRIES = 10
MERGEABLE_WAIT = 1.0
MARKERS = ("<<<<<<< ", ">>>>>>> ", "||||||| ")
MARKER_READ_LIMIT = 64 * 1024 * 1024


def check_base(task: Task, ctx: Context) -> str:
    """The base branch moved to `task.sha`: queue a conflict task for each agent pull request
    on it that no longer merges."""
    api, repo = prepare(task, ctx, check=False)
    if task.branch != repo.base_branch:
        return f"{task.branch} is not the base branch ({repo.base_branch})"
    dispatcher = Dispatcher(ctx.store, job_timeout(ctx.settings.agent_timeout))
    queued = []
    for number, branch in _agent_pulls(api, ctx, task, repo.base_branch):
        clean, base_sha = _mergeable(api, task.repo, number)
        if clean is not False:
            continue
        # Keyed by the base it conflicts with now, which may be newer than this push.
        work = Task(Kind.CONFLICT, task.installation_id, task.repo_id, task.repo, number,
                    task.sender, sha=base_sha, branch=branch)  # fmt: skip
        if dispatcher.enqueue(work, f"{repo.base_branch} moved to {base_sha[:7]}").enqueued:
            queued.append(f"#{number}")
    return (
        f"conflicts queued for {', '.join(queued)}" if queued else "every agent pull request merges"
    )


def _agent_pulls(api: Installation, ctx: Context, task: Task, base: str) -> list[tuple[int, str]]:
    found = []
    for pr in api.get(f"/repos/{task.repo}/pulls", state="open", base=base, per_page=100) or []:
        head = pr.get("head") or {}
        own = (head.get("repo") or {}).get("id") == task.repo_id
        ref = str(head.get("ref", ""))
        if own and ref.startswith(ctx.settings.branch_prefix) and pr["base"]["ref"] == base:
            found.append((int(pr["number"]), ref))
    return found


def _mergeable(api: Installation, repo: str, number: int) -> tuple[bool | None, str]:
    """Whether the pull request merges into its base, and the base commit GitHub judged by;
    None when GitHub has not worked it out yet."""
    for _ in range(MERGEABLE_TRIES):
        data: dict[str, Any] = api.get(f"/repos/{repo}/pulls/{number}")
        if data.get("mergeable") is not None:
            return bool(data["mergeable"]), str(data["base"]["sha"])
        time.sleep(MERGEABLE_WAIT)
    return None, ""


def resolve_conflict(task: Task, ctx: Context) -> str:
    api, repo = prepare(task, ctx, check=False)
    with pull_request_lock(ctx.store.redis, task.repo_id, task.number, task.id):
        pr = read_pull(api, task, task.number)
        if pr.state != "open" or pr.fork:
            return "the pull request is closed" if pr.state != "open" else "a fork's pull request"
        if ctx.store.escalated(task.repo_id, pr.number):
            ctx.store.audit(task.id, "escalated", "waiting for a human; conflicts are left")
            return "escalated: waiting for a human"
        if _mergeable(api, task.repo, pr.number)[0] is not False:
            return "merges cleanly now"
        base = repo.base_branch
        failing = [f"merge conflict with {base}"]
        limit = repo.config.max_attempts or ctx.settings.max_attempts
        done = ctx.store.attempts(task.repo_id, pr.number)
        if len(done) >= limit:
            escalate(task, ctx, api, repo, pr, failing)
            return f"escalated after {len(done)} attempts"
        status = status_for(api, ctx, task)
        attempt = len(done) + 1
        entry: dict[str, object] = {
            "attempt": attempt, "sha": pr.head_sha, "failed": failing[0], "task": task.id,
        }  # fmt: skip
        with reported(status, ctx, task):
            status.update(
                f"🔀 This pull request conflicts with `{base}`: merging `{base}` into it and "
                f"resolving the conflicts (attempt {attempt} of {limit})…"
            )
            try:
                head, files = _merge_base_into(task, ctx, api, repo, pr)
            except TaskFailed as exc:
                _record(ctx, task, pr.number, status, entry | {"changed": "—", "result": str(exc)})
                raise
        pushed = {"changed": f"merged {base}", "result": f"pushed {head[:7]}", "pushed": head}
        _record(ctx, task, pr.number, status, entry | pushed)
        named = ", ".join(f"`{protected.printable(f)}`" for f in files) or "no files"
        status.update(
            f"🔀 Merged `{base}` into `{pr.branch}`, resolved the conflicts in {named} and "
            f"pushed `{head[:7]}` (a new commit; nothing was forced)."
        )
        return f"pushed {head[:7]}"


def _record(
    ctx: Context, task: Task, number: int, status: StatusComment, entry: dict[str, object]
) -> None:
    # Why an attempt failed can hold the agent's words; they reach the escalation table.
    entry = {k: status.redactor.text(v) if isinstance(v, str) else v for k, v in entry.items()}
    ctx.store.add_attempt(task.repo_id, number, entry)


def _merge_base_into(
    task: Task, ctx: Context, api: Installation, repo: Repo, pr: PullRequest
) -> tuple[str, list[str]]:
    """Merge the base into the branch, have the agent resolve what conflicts, push; return
    the new head and the files that conflicted."""
    identity = ctx.app.identity(api)
    if pr.author != identity.login:
        raise TaskFailed(
            f"#{pr.number} was opened by {pr.author}, not by the App; nothing was done."
        )
    base_sha = str(api.get(f"/repos/{task.repo}/pulls/{pr.number}")["base"]["sha"])
    with ctx.workspaces.worktree(
        task.id, task.repo_id, repo.clone_url, api.token(), pr.branch, pr.branch,
        new_branch=False, identity=(identity.login, identity.email),
        installation=task.installation_id,
    ) as tree:  # fmt: skip
        work = Run(task, ctx, repo, tree, identity)
        env = work.env()  # the App's identity, as its other commits
        message = f"Merge {repo.base_branch} into {pr.branch}"
        files = _merge(tree, base_sha, message, env)
        if files:
            ctx.store.audit(task.id, "conflicts", ", ".join(files))
            setup(work)
            agent_then_tests(
                work, conflict_prompt(task.repo, pr.number, pr.branch, repo.base_branch, files)
            )
            left = [f for f in files if _unresolved(tree.path, f)]
            if left:
                raise TaskFailed(
                    "The agent left conflict markers in "
                    + ", ".join(f"`{protected.printable(f)}`" for f in left)
                    + "; nothing was pushed."
                )
            # The resolution is the tree the agent left, handed over as data; the merge
            # commit is forgehand's, on the branch and the base.
            resolved = take(work, message)
            tree.git(["read-tree", f"{resolved}^{{tree}}"])
            tree.git(["commit", "--quiet", "--no-verify", "--no-edit"], env=env)
        _check_resolution(work, tree.base, base_sha)
        push(work, api)
        return tree.git(["rev-parse", "HEAD"]).strip(), files


def _merge(tree: Worktree, base_sha: str, message: str, env: dict[str, str]) -> list[str]:
    """Merge `base_sha` into the tree's branch; the files left in conflict (none when it
    merged by itself)."""
    try:
        tree.git(["merge", "--no-ff", "--no-edit", "-m", message, base_sha], env=env)
        return []
    except GitError as exc:
        names = tree.git(["diff", "--name-only", "-z", "--diff-filter=U"]).split("\0")
        files = sorted(n for n in names if n)
        if not files:
            raise TaskFailed(f"Merging the base failed: {exc}") from None
        return files


def _unresolved(root: Path, name: str) -> bool:
    """Whether a file that was in conflict still is: markers in it, or anything but a regular
    file in its place. The agent chose what lies there, so no link is followed, no pipe or
    device opened, and no more than MARKER_READ_LIMIT bytes read."""
    path = root / name
    expected = os.path.normpath(os.path.join(os.path.realpath(root), os.path.dirname(name)))
    if os.path.realpath(path.parent) != expected:
        return True  # a link on the way would have the worker read elsewhere
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False  # resolved by deleting it
    if not stat.S_ISREG(info.st_mode):
        return True
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        text = f.read(MARKER_READ_LIMIT).decode(errors="replace")
    return any(line.startswith(MARKERS) for line in text.splitlines())


def _check_resolution(work: Run, branch_head: str, base_sha: str) -> None:
    """The merge may bring in the base's changes to protected paths (they are the base's);
    the resolution may neither change a protected path itself (what differs from both sides)
    nor keep the branch's version of one the base changed (a quiet revert)."""
    globs = work.repo.config.protected_paths
    if not globs:
        return
    tree = work.tree
    fork = tree.git(["merge-base", branch_head, base_sha]).strip()
    not_theirs = changed_names(work, base_sha, "HEAD", commits=False)
    ours = changed_names(work, branch_head, "HEAD", commits=False)
    theirs_changed = changed_names(work, fork, base_sha, commits=False)
    hit = protected.violations(sorted(not_theirs & (ours | theirs_changed)), globs)
    if hit:
        raise TaskFailed(
            "Resolving the conflicts changed protected paths, so nothing was pushed: "
            + ", ".join(f"`{protected.printable(f)}`" for f in hit)
        )


def conflict_prompt(repo: str, number: int, branch: str, base: str, files: list[str]) -> str:
    listed = "\n".join(f"- {protected.printable(f)}" for f in files)
    return f"""\
You are on branch {branch} of {repo} (pull request #{number}). The base branch {base} was merged
into it and these files have merge conflicts, marked with <<<<<<<, ======= and >>>>>>> lines:

{listed}

Resolve every conflict: keep what both sides meant (the base's change and this branch's), remove
all the markers, and leave the files so the project works. Change nothing else.

{prompts.RULES}
"""
