"""Resolve a labelled issue with a new pull request."""

from __future__ import annotations

from typing import Any

from app.github import GitHubError, Installation
from app.tasks import Task
from jobs.agents import prompts
from jobs.errors import TaskFailed
from jobs.fleet import overlap, waiting
from jobs.fleet import pulls as fleet
from jobs.kinds import planning
from jobs.pipeline import (
    Context,
    Run,
    branch_name,
    config_problems,
    prepare,
    reported,
    run,
    status_for,
)
from jobs.report import Heartbeat
from jobs.report import words as report


def resolve_issue(task: Task, ctx: Context, instructions: str = "", running: str = "") -> str:
    """`running`: the id of the task that runs this, when it is not `task` (an `/agent`
    command on the issue, run as the issue's task)."""
    api, repo = prepare(task, ctx)
    repo_path = f"/repos/{task.repo}"
    status = status_for(api, ctx, task)
    with reported(status, ctx, task), planning.failing(api, ctx, task):
        api.post(f"{repo_path}/issues/{task.number}/reactions", {"content": "eyes"})
        existing = open_pull_request(api, ctx, task)
        if existing is not None:
            status.update(f"This issue already has an open pull request: #{existing}.")
            return f"linked #{existing}"
        issue = api.get(f"{repo_path}/issues/{task.number}")
        if issue.get("state") != "open":
            raise TaskFailed("The issue was closed before work started.")
        waits = waiting.hold(api, ctx, task, repo, issue, status)
        # An epic's checklist shows the row waiting, or running, as its task now is.
        planning.follow(api, ctx, task, task.number, {"state": None})
        if waits is not None:
            return waits
        problems = config_problems(repo)
        status.update("⏳ Working on it…", problems)
        identity = ctx.app.identity(api)
        ctx.store.set_app_slug(identity.slug)
        title = issue.get("title") or ""
        branch = branch_name(ctx.settings.branch_prefix, task.number, title)
        with ctx.workspaces.worktree(
            task.id, task.repo_id, repo.clone_url, api.token(), branch, repo.base_branch,
            new_branch=True, identity=(identity.login, identity.email),
            installation=task.installation_id,
        ) as tree:  # fmt: skip
            ctx.store.audit(task.id, "worktree", f"{tree.branch} from {repo.base_branch}")

            def progress(beat: Heartbeat) -> None:
                steps = report.steps_so_far(ctx.store.events(task.id))
                status.update(f"⏳ Working on it… {beat.line()}", "\n\n".join(
                    part for part in (problems, f"**Steps so far**\n\n{steps}") if part
                ))  # fmt: skip

            work = Run(task, ctx, repo, tree, identity, Heartbeat(progress))
            prompt = prompts.issue_prompt(
                task.repo, task.number, title, issue.get("body"), tree.branch
            )
            if instructions:
                prompt += "\n" + prompts.fenced(f"extra request by {task.sender}", instructions)
            change = run(work, api, prompt, f"Resolve #{task.number}: {title}".strip())
            result, commits = change.result, change.commits
            if not commits:
                raise TaskFailed(result.nothing_done("there is no pull request"), result.tail)
            changed = overlap.changed_files(tree.gitdir, tree.base, "HEAD")
            pr = api.post(
                f"{repo_path}/pulls",
                {
                    "title": title or f"Resolve #{task.number}",
                    "head": tree.branch,
                    "base": repo.base_branch,
                    "body": report.pull_request_body(
                        task.number,
                        status.redactor.text(result.summary),
                        status.redactor.lines(commits),
                        {"task": task.id, "kind": task.kind.value, "issue": task.number},
                    ),
                    "draft": repo.config.draft,
                },
            )
        number = int(pr["number"])
        # Known as the App's at once: a person may merge it before this task has finished,
        # and what follows the close needs to know its issue.
        ctx.store.add_app_pull_request(
            task.repo_id, number, task.number, task.repo, task.installation_id, repo.base_branch,
            running or task.id,
        )  # fmt: skip
        waiting.opened(ctx, task)
        fleet.opened(api, ctx, task, number, tree.branch, changed)
        files = sorted(status.redactor.text(f) for f in changed[0])
        planning.follow(api, ctx, task, task.number, {"pull": number, "state": "open",
                                                      "changed": files})  # fmt: skip
        ctx.store.audit(task.id, "pull request", f"#{number} opened")
        _request_review(api, task, number)
        status.update(f"✅ Opened #{number}.", problems)
        return f"opened #{number}"


def open_pull_request(api: Installation, ctx: Context, task: Task) -> int | None:
    number = ctx.store.pull_request_for_issue(task.repo_id, task.number)
    if number is None:
        return None
    pr: dict[str, Any] = api.get(f"/repos/{task.repo}/pulls/{number}")
    return number if pr.get("state") == "open" else None


def _request_review(api: Installation, task: Task, number: int) -> None:
    try:
        api.post(
            f"/repos/{task.repo}/pulls/{number}/requested_reviewers",
            {"reviewers": [task.sender]},
        )
    except GitHubError as exc:
        # A reviewer who cannot be requested (the author, a bot) is no reason to fail.
        if exc.status != 422:
            raise
