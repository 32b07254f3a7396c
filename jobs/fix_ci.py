"""Fix a failing head commit of one of the App's pull requests, within the retry cap."""

from __future__ import annotations

from dataclasses import replace

from app.github import Installation
from app.tasks import Task
from jobs import ci, prompts, report
from jobs.errors import TaskFailed
from jobs.lock import pull_request_lock
from jobs.pipeline import (
    Context,
    PullRequest,
    Repo,
    change_pull_request,
    find_pull,
    prepare,
    read_pull,
    reported,
)
from jobs.status import StatusComment

# How long a fix waits for the commit's other checks to finish, and how often it looks.
CHECK_WAIT = 20 * 60.0
CHECK_POLL = 15.0


def fix_ci(task: Task, ctx: Context) -> str:
    # CI events come from CI, not from a person: there is no sender to check.
    api, repo = prepare(task, ctx, check=False)
    number = task.number or find_pull(api, task)
    if not number:
        return f"no open pull request for {task.branch}"
    task = replace(task, number=number)
    with pull_request_lock(ctx.store.redis, task.repo_id, number, task.id):
        pr = read_pull(api, task, number)
        if pr.state != "open" or pr.fork:
            return "the pull request is closed" if pr.state != "open" else "a fork's pull request"
        if ctx.store.escalated(task.repo_id, number):
            ctx.store.audit(task.id, "escalated", "waiting for a human; CI failures are ignored")
            return "escalated: waiting for a human"
        if pr.head_sha != task.sha:
            return f"skipped: {task.sha[:7]} is no longer the head ({pr.head_sha[:7]} is)"
        runs, statuses = ci.wait_for_checks(api, task.repo, task.sha, CHECK_WAIT, CHECK_POLL)
        if read_pull(api, task, number).head_sha != task.sha:
            return "skipped: the head moved while checks were running"
        failures = ci.failures(api, task.repo, runs, statuses)
        if not failures:
            return "no failing checks on the head any more"
        ctx.store.mark_failed(task.repo_id, number, task.sha)
        return _attempt(task, ctx, api, repo, pr, failures)


def _attempt(
    task: Task, ctx: Context, api: Installation, repo: Repo, pr: PullRequest,
    failures: list[ci.Failure],
) -> str:  # fmt: skip
    limit = repo.config.max_attempts or ctx.settings.max_attempts
    names = [f"{f.name} ({f.conclusion})" for f in failures]
    status = StatusComment(api, ctx.store, task)
    while True:
        done = ctx.store.attempts(task.repo_id, pr.number)
        if len(done) >= limit:
            escalate(task, ctx, api, repo, pr, names)
            return f"escalated after {len(done)} attempts"
        attempt = len(done) + 1
        entry: dict[str, object] = {"attempt": attempt, "sha": task.sha, "failed": ", ".join(names)}
        with reported(status, ctx, task):
            status.update(
                f"🔧 CI failed on `{task.sha[:7]}`: attempt {attempt} of {limit} to fix it…"
            )
            prompt = prompts.ci_prompt(task.repo, pr.number, pr.branch, task.sha, failures)
            try:
                change = change_pull_request(
                    task,
                    ctx,
                    api,
                    repo,
                    pr,
                    prompt,
                    f"Fix CI: {', '.join(f.name for f in failures)}",
                )
            except TaskFailed as exc:
                ctx.store.add_attempt(
                    task.repo_id, pr.number, entry | {"changed": "—", "result": str(exc)}
                )
                continue
        if not change.head:
            ctx.store.add_attempt(
                task.repo_id, pr.number, entry | {"changed": "nothing", "result": "no change"}
            )
            continue
        changed = "; ".join(c.split(" ", 1)[-1] for c in change.commits)
        result = f"pushed {change.head[:7]}"
        ctx.store.add_attempt(
            task.repo_id, pr.number, entry | {"changed": changed, "result": result}
        )
        status.update(
            f"🔧 Pushed `{change.head[:7]}` (attempt {attempt} of {limit}) to fix "
            f"{', '.join(names)}; waiting for CI."
        )
        return result


def escalate(
    task: Task, ctx: Context, api: Installation, repo: Repo, pr: PullRequest, failing: list[str]
) -> None:
    label = ctx.settings.escalation_label
    mention = list(repo.config.escalate_to)
    issue = ctx.store.issue_for_pull_request(task.repo_id, pr.number)
    if issue is not None:
        author = (api.get(f"/repos/{task.repo}/issues/{issue}").get("user") or {}).get("login")
        record = ctx.store.get(f"issue-{task.repo_id}-{issue}")
        mention = [m for m in (author, record.task.sender if record else None) if m] + mention
    body = report.escalation_comment(
        ctx.store.attempts(task.repo_id, pr.number), task.sha, failing, mention, label,
        ctx.settings.command_prefix,
    )  # fmt: skip
    api.post(f"/repos/{task.repo}/issues/{pr.number}/comments", {"body": body})
    # The label last: it is what people (and the sandbox) watch for.
    api.post(f"/repos/{task.repo}/issues/{pr.number}/labels", {"labels": [label]})
    ctx.store.set_escalated(task.repo_id, pr.number)
    ctx.store.audit(
        task.id, "escalated", f"after {len(ctx.store.attempts(task.repo_id, pr.number))} attempts"
    )
