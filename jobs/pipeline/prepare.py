"""Before a task touches git: its installation, its repository and config, and whether whoever
started it may."""

from __future__ import annotations

import base64
import re

from app.github import GitHubError, Installation, segment
from app.repo_config import PATH as CONFIG_PATH
from app.repo_config import parse as parse_config
from app.tasks import Task
from jobs.boundary import redactor_for
from jobs.errors import DayBudgetReached, TaskFailed
from jobs.pipeline.context import Context, Repo
from jobs.spend import AGENT_KINDS, Caps, day_refusal

WRITE_PERMISSIONS = frozenset({"admin", "maintain", "write"})


def prepare(task: Task, ctx: Context, check: bool = True) -> tuple[Installation, Repo]:
    """The installation client and the repository, once the sender is known to be allowed."""
    api = ctx.app.installation(task.installation_id)
    try:
        repo = read_repo(api, ctx, task)
        if check:
            check_sender(api, task, repo)
    except GitHubError as exc:
        if exc.permanent:
            raise TaskFailed(str(exc)) from exc
        raise
    # The operator's day cap was checked before the task began (jobs/day_budget.py); the
    # repository's own is known only now that its config is read.
    repo_day = repo.config.max_cost_per_day
    if repo_day is not None and task.kind in AGENT_KINDS:
        why = day_refusal(ctx.store.redis, task.installation_id, task.repo, Caps(repo_day=repo_day))
        if why is not None:
            raise DayBudgetReached(why)
    if task.number:
        note_title(api, ctx, task)
    return api, repo


def has_write_access(api: Installation, repo: str, login: str) -> bool:
    data = api.get(f"/repos/{repo}/collaborators/{segment(login)}/permission")
    role = data.get("role_name") or data.get("permission")
    return role in WRITE_PERMISSIONS or data.get("permission") in WRITE_PERMISSIONS


def read_repo(api: Installation, ctx: Context, task: Task) -> Repo:
    data = api.get(f"/repos/{task.repo}")
    config, problems = parse_config(_config_text(api, task.repo, data["default_branch"]))
    ctx.store.set_allowed_bots(task.repo_id, config.allowed_bots)
    return Repo(
        full_name=task.repo,
        clone_url=data["clone_url"],
        default_branch=data["default_branch"],
        config=config,
        problems=tuple(problems),
    )


def _config_text(api: Installation, repo: str, ref: str) -> str | None:
    try:
        data = api.request(
            "GET",
            f"/repos/{repo}/contents/{CONFIG_PATH}",
            params={"ref": ref},
            headers={"Accept": "application/vnd.github.raw+json"},
        )
    except GitHubError as exc:
        if exc.status == 404:
            return None
        raise
    # The raw media type answers with the file itself; some servers still send JSON.
    if isinstance(data, dict) and "content" in data:
        return base64.b64decode(data["content"]).decode(errors="replace")
    return data if isinstance(data, str) else None


def check_sender(api: Installation, task: Task, repo: Repo) -> None:
    """Stop unless whoever started the task may: write access, or an allowed bot."""
    allowed = {b.removesuffix("[bot]") for b in repo.config.allowed_bots}
    if task.sender.endswith("[bot]") and task.sender.removesuffix("[bot]") in allowed:
        return
    if not has_write_access(api, task.repo, task.sender):
        raise TaskFailed(f"{task.sender} has no write access to {task.repo}; nothing was done.")


def note_title(api: Installation, ctx: Context, task: Task) -> None:
    """Keep the issue's or pull request's title for the dashboard, which never asks GitHub."""
    try:
        data = api.get(f"/repos/{task.repo}/issues/{task.number}")
    except GitHubError as exc:
        ctx.store.audit(task.id, "title not read", str(exc))
        return
    title = redactor_for(ctx.settings, api.token()).text(str(data.get("title") or ""))
    ctx.store.note_item(task.repo_id, task.number, title, "pull_request" in data)


def branch_name(prefix: str, number: int, title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40].rstrip("-")
    return f"{prefix}issue-{number}" + (f"-{slug}" if slug else "")


def config_problems(repo: Repo) -> str:
    if not repo.problems:
        return ""
    items = "\n".join(f"- {p}" for p in repo.problems)
    return f"⚠️ `{CONFIG_PATH}` has problems; defaults are used for those settings:\n{items}"
