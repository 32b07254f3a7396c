"""After one of the App's pull requests closes; and the one notice a fork's pull request gets."""

from __future__ import annotations

from app.fleet import FleetState
from app.github import GitHubError, segment
from app.tasks import Task
from jobs.fleet import pulls as fleet
from jobs.kinds import planning
from jobs.pipeline import Context, prepare, read_pull

FORK_NOTICE = (
    "forgehand does not work on pull requests from forks: it only pushes to branches it "
    "created in this repository. A maintainer can label the issue `{label}` instead."
)


def closed(task: Task, ctx: Context) -> str:
    api, _repo = prepare(task, ctx, check=False)
    pr = read_pull(api, task, task.number)
    # What it changed in the end (pushes after it opened included), before it is forgotten.
    last = [p for p in FleetState(ctx.store.redis).pulls(task.repo_id) if p.number == pr.number]
    fleet.closed(api, ctx, task, pr.merged)
    ctx.store.closed_pull_request(task.repo_id, task.number)
    issue = ctx.store.issue_for_pull_request(task.repo_id, task.number)
    if issue is not None:
        ctx.store.audit(f"issue-{task.repo_id}-{issue}", "pull request closed", f"#{task.number}")
        step: dict[str, object] = {"pull": pr.number, "state": "merged" if pr.merged else "closed"}
        if last:
            step["changed"] = sorted(last[0].files)
        planning.follow(api, ctx, task, issue, step)
    if not pr.merged:
        return "closed without merging; branch kept"
    if pr.fork or not pr.branch.startswith(ctx.settings.branch_prefix):
        return "merged; not a branch of the App's"
    try:
        api.delete(f"/repos/{task.repo}/git/refs/heads/{segment(pr.branch, keep_slashes=True)}")
    except GitHubError as exc:
        if exc.status not in (404, 422):  # already deleted
            raise
    return f"merged; deleted {pr.branch}"


def fork_notice(task: Task, ctx: Context) -> str:
    if not ctx.store.redis.sadd("fh:fork_noticed", f"{task.repo_id}:{task.number}"):
        return "already told"
    api = ctx.app.installation(task.installation_id)
    body = FORK_NOTICE.format(label=ctx.settings.trigger_label)
    api.post(f"/repos/{task.repo}/issues/{task.number}/comments", {"body": body})
    return "told the fork's author"
