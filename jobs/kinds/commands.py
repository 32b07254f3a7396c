"""`/agent …` comments: instructions, stop, retry, help."""

from __future__ import annotations

from dataclasses import replace

from app import budget
from app.dispatch import Dispatcher, job_timeout
from app.github import GitHubError, Installation, segment
from app.parsing import parse_dollars
from app.store import spend
from app.tasks import Kind, Task
from app.web import command_verb
from jobs.agents import prompts
from jobs.kinds.asked import Asked, push_asked
from jobs.kinds.resolve import open_pull_request, resolve_issue
from jobs.lock import pull_request_lock
from jobs.pipeline import (
    Context,
    prepare,
    read_pull,
)
from jobs.report import words as report


def run_command(task: Task, ctx: Context) -> str:
    api, repo = prepare(task, ctx)
    comment = api.get(f"/repos/{task.repo}/issues/comments/{task.comment_id}")
    body: str = comment.get("body") or ""
    prefix = ctx.settings.command_prefix
    verb = command_verb(body, prefix)
    instructions = body.strip()[len(prefix) :].strip()
    on_pr = ctx.store.is_app_pull_request(task.repo_id, task.number)
    if verb == "stop":
        _reply(api, task, "🛑 Stopped what was queued or running here.")
        return "stopped"
    if verb == "retry":
        origin = f"{prefix} retry by {task.sender}"
        if on_pr:
            return retry_pull_request(task, ctx, api, origin)
        return _retry_issue(task, ctx, api, origin)
    if verb == "budget":
        return _budget(task, ctx, api, instructions)
    if verb in (None, "", "help"):
        _reply(api, task, report.help_text(prefix))
        return "help"
    if not on_pr:
        pr_number = open_pull_request(api, ctx, task)
        if pr_number is None:
            issue_task = replace(task, kind=Kind.ISSUE)
            return resolve_issue(issue_task, ctx, instructions, task.id)
        task = replace(task, number=pr_number)
    with pull_request_lock(ctx.store.redis, task.repo_id, task.number, task.id):
        pr = read_pull(api, task, task.number)
        if pr.state != "open":
            _reply(api, task, "This pull request is closed; nothing was done.")
            return "closed"
        sender = task.sender
        asked = Asked(
            f"⏳ Working on @{sender}'s request…",
            prompts.instructions_prompt(task.repo, task.number, sender, instructions),
            f"Apply request by {sender}",
            lambda head: f"✅ Pushed `{head}` for @{sender}.",
            f"@{sender}: ",
        )
        done = push_asked(task, ctx, api, repo, pr, asked)
        done.status.update(done.headline, done.summary)
        change = done.change
        return f"pushed {change.head[:7]}" if change.head else "no change"


def dispatcher_for(ctx: Context) -> Dispatcher:
    return Dispatcher(ctx.store, job_timeout(ctx.settings.agent_timeout))


def _retry_issue(task: Task, ctx: Context, api: Installation, origin: str) -> str:
    issue = replace(task, kind=Kind.ISSUE, comment_id=0, check_run_id=0)
    outcome = dispatcher_for(ctx).enqueue(issue, origin)
    words = "🔁 Trying this issue again." if outcome.enqueued else "Already working on it."
    _reply(api, task, words)
    return "retry issue"


def retry_pull_request(task: Task, ctx: Context, api: Installation, origin: str) -> str:
    """Forget the pull request's failed attempts, lift its escalation, and look at CI on its
    head again."""
    dispatcher = dispatcher_for(ctx)
    ctx.store.reset_attempts(task.repo_id, task.number)
    try:
        label = ctx.settings.escalation_label
        api.delete(f"/repos/{task.repo}/issues/{task.number}/labels/{segment(label)}")
    except GitHubError as exc:
        if exc.status != 404:
            raise
    pr = read_pull(api, task, task.number)
    fix = Task(
        Kind.CI, task.installation_id, task.repo_id, task.repo, task.number, task.sender,
        sha=pr.head_sha, branch=pr.branch,
    )  # fmt: skip
    dispatcher.enqueue(fix, origin)
    reset = f"🔁 Attempts reset; looking at CI on `{pr.head_sha[:7]}` again.\n{report.RESET_MARKER}"
    _reply(api, task, reset)
    return "retry pull request"


def _budget(task: Task, ctx: Context, api: Installation, instructions: str) -> str:
    """`/agent budget <USD>`: this issue's or pull request's task cap, never past the
    operator's MAX_COST_PER_TASK."""
    words = instructions.split()
    try:
        asked = parse_dollars(words[1]) if len(words) == 2 else -1.0
    except ValueError:
        asked = -1.0
    prefix = ctx.settings.command_prefix
    if not 0 <= asked < 1e12:
        _reply(api, task, f"Say how many USD, e.g. `{prefix} budget 5`; nothing was changed.")
        return "budget: not understood"
    operator = ctx.settings.max_cost_per_task
    granted = budget.lowest(asked, operator)
    assert granted is not None
    spend.raise_cap(ctx.store.redis, task.repo_id, task.number, granted)
    said = f"💰 Each task here may now spend {budget.dollars(granted)} on model calls"
    if operator is not None and asked > operator:
        said += f" (asked {budget.dollars(asked)}; the operator's cap is the most)"
    _reply(api, task, said + ".")
    return f"budget {budget.dollars(granted)}"


def _reply(api: Installation, task: Task, text: str) -> None:
    api.post(f"/repos/{task.repo}/issues/{task.number}/comments", {"body": text})
