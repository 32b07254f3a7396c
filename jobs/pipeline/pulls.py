"""The App's pull requests as a task reads them, and a change run on one's branch."""

from __future__ import annotations

from dataclasses import dataclass

from app.github import Installation
from app.tasks import Task
from jobs.errors import TaskFailed
from jobs.pipeline.context import Context, Repo, Run
from jobs.pipeline.flow import Change, run
from jobs.report import CheckRun, Heartbeat


@dataclass(frozen=True)
class PullRequest:
    number: int
    branch: str
    head_sha: str
    state: str
    merged: bool
    fork: bool
    author: str


def read_pull(api: Installation, task: Task, number: int) -> PullRequest:
    data = api.get(f"/repos/{task.repo}/pulls/{number}")
    head = data["head"]
    return PullRequest(
        number=number,
        branch=head["ref"],
        head_sha=head["sha"],
        state=data["state"],
        merged=bool(data.get("merged")),
        fork=(head.get("repo") or {}).get("id") != task.repo_id,
        author=(data.get("user") or {}).get("login", ""),
    )


def find_pull(api: Installation, task: Task) -> int | None:
    """The open pull request whose head is the task's branch in its own repository."""
    owner = task.repo.split("/")[0]
    found = api.get(f"/repos/{task.repo}/pulls", head=f"{owner}:{task.branch}", state="open")
    for data in found or []:
        if data["head"]["ref"] == task.branch:
            return int(data["number"])
    return None


def change_pull_request(
    task: Task, ctx: Context, api: Installation, repo: Repo, pr: PullRequest, prompt: str,
    message: str, check: CheckRun,
) -> Change:  # fmt: skip
    """Run the agent on the pull request's branch at its head and push what it changes,
    showing its progress on the task's check run."""
    identity = ctx.app.identity(api)
    ctx.store.set_app_slug(identity.slug)
    if pr.author != identity.login:
        # An `agent/` branch someone else opened is theirs: the App pushes only to its own.
        raise TaskFailed(
            f"#{pr.number} was opened by {pr.author}, not by the App; nothing was done."
        )
    with ctx.workspaces.worktree(
        task.id, task.repo_id, repo.clone_url, api.token(), pr.branch, pr.branch,
        new_branch=False, identity=(identity.login, identity.email),
        installation=task.installation_id,
    ) as tree:  # fmt: skip
        ctx.store.audit(task.id, "worktree", f"{pr.branch} at {tree.base[:7]}")
        work = Run(task, ctx, repo, tree, identity, Heartbeat(check.progress), pr.number)
        return run(work, api, prompt, message)
