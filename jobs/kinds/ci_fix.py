"""Fix a failing head commit of one of the App's pull requests, within the retry cap."""

from __future__ import annotations

from dataclasses import replace

from app.github import Installation
from app.store import count_escalation
from app.tasks import Task
from jobs import ci
from jobs.agents import prompts
from jobs.boundary import redactor_for
from jobs.errors import BudgetStopped, Escalated, TaskFailed
from jobs.kinds import planning
from jobs.lock import pull_request_lock
from jobs.pipeline import (
    Context,
    PullRequest,
    Repo,
    change_pull_request,
    check_run_for,
    find_pull,
    prepare,
    read_pull,
    reported,
    status_for,
)
from jobs.report import CheckRun, StatusComment, checked, noted_push, tell_ci
from jobs.report import words as report

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
            raise Escalated(
                f"#{number} waits for a human; CI failures are ignored until "
                f"`{ctx.settings.command_prefix} retry` or the `{ctx.settings.escalation_label}` "
                "label is removed"
            )
        if pr.head_sha != task.sha:
            return f"skipped: {task.sha[:7]} is no longer the head ({pr.head_sha[:7]} is)"
        runs, statuses = ci.wait_for_checks(api, task.repo, task.sha, CHECK_WAIT, CHECK_POLL)
        if read_pull(api, task, number).head_sha != task.sha:
            return "skipped: the head moved while checks were running"
        failures = ci.failures(api, task.repo, runs, statuses)
        if not failures:
            return "no failing checks on the head any more"
        # The check names are the repository's: redacted before the dashboard shows them.
        redactor = redactor_for(ctx.settings, api.token())
        words = redactor.text(ci.verdict(runs, statuses).words)
        ctx.store.mark_failed(task.repo_id, number, task.sha, words)
        if not ctx.store.tracked(task.repo_id, number):
            _rebuild(task, ctx, api, pr)
        # The task that pushed this commit (a fix, a review, `/agent`) says CI failed on it.
        tell_ci(api, ctx.store, task, task.sha, words, redactor)
        with checked(check_run_for(api, ctx, task, task.sha)) as check:
            return _attempt(task, ctx, api, repo, pr, failures, check)


def _rebuild(task: Task, ctx: Context, api: Installation, pr: PullRequest) -> None:
    """Restore a pull request's attempts from the markers in its comments (Redis forgot)."""
    # Anyone can write a marker into a comment: only the App's own are believed.
    app_login = ctx.app.identity(api).login
    found: list[dict[str, object] | None] = []
    for page in range(1, 11):
        comments = api.get(f"/repos/{task.repo}/issues/{pr.number}/comments", per_page=100,
                           page=page) or []  # fmt: skip
        for comment in comments:
            if (comment.get("user") or {}).get("login") == app_login:
                found.extend(report.markers(comment.get("body") or ""))
        if len(comments) < 100:
            break
    pushed = {str(e["pushed"]) for e in found if e and e.get("pushed")}
    green = {sha for sha in pushed if _green(api, task.repo, sha)}
    entries = report.rebuild_attempts(found, green)
    labels = api.get(f"/repos/{task.repo}/pulls/{pr.number}").get("labels") or []
    escalated = any(lbl.get("name") == ctx.settings.escalation_label for lbl in labels)
    ctx.store.restore_attempts(task.repo_id, pr.number, entries, escalated)
    ctx.store.audit(task.id, "attempts rebuilt", f"{len(entries)} from the pull request's comments")


def _green(api: Installation, repo: str, sha: str) -> bool:
    runs, statuses = ci.read_checks(api, repo, sha)
    return (
        bool(runs or statuses) and not ci.pending(runs, statuses) and not ci.failing(runs, statuses)
    )


def _attempt(
    task: Task, ctx: Context, api: Installation, repo: Repo, pr: PullRequest,
    failures: list[ci.Failure], check: CheckRun,
) -> str:  # fmt: skip
    limit = repo.config.max_attempts or ctx.settings.max_attempts
    names = [f"{f.name} ({f.conclusion})" for f in failures]
    status = status_for(api, ctx, task)
    while True:
        done = ctx.store.attempts(task.repo_id, pr.number)
        if len(done) >= limit:
            if status.markers:  # this run's own failed attempts, before the hand-over
                status.update(f"🙋 Out of attempts on `{task.sha[:7]}`; asking a human.")
            escalate(task, ctx, api, repo, pr, names)
            raise Escalated(
                f"escalated after {len(done)} failed attempts: CI still fails ({', '.join(names)})"
            )
        attempt = len(done) + 1
        ctx.store.set_attempt(task.id, attempt)
        entry: dict[str, object] = {
            "attempt": attempt, "sha": task.sha, "failed": ", ".join(names), "task": task.id,
        }  # fmt: skip
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
                    check,
                )
            except TaskFailed as exc:
                _record(ctx, task, pr, status, entry | {"changed": "—", "result": str(exc)})
                if isinstance(exc, BudgetStopped):
                    escalate(task, ctx, api, repo, pr, names)
                    raise Escalated(str(exc)) from None
                continue
        if not change.head:
            said = change.result.complaint
            result = f"no change: {said}" if said else "no change"
            _record(ctx, task, pr, status, entry | {"changed": "nothing", "result": result})
            continue
        changed = "; ".join(c.split(" ", 1)[-1] for c in change.commits)
        result = f"pushed {change.head[:7]}"
        _record(ctx, task, pr, status, entry | {"changed": changed, "result": result,
                                                "pushed": change.head})  # fmt: skip
        headline = (
            f"🔧 Pushed `{change.head[:7]}` (attempt {attempt} of {limit}) to fix "
            f"{', '.join(names)}; waiting for CI."
        )
        status.update(headline)
        summary = report.quote(status.redactor.text(change.result.summary))
        # Not green yet: CI on the fix has not spoken (a verdict task retitles it when it has).
        lead = report.fix_lead(change.head, attempt, limit)
        check.finish("neutral", report.ci_title(lead, "pending"), summary, change.result.tail)
        noted_push(api, ctx.store, task, pr.number, change.head, lead, status.redactor)
        return result


def _record(
    ctx: Context, task: Task, pr: PullRequest, status: StatusComment, entry: dict[str, object]
) -> None:
    # What the agent changed (its commit subjects) and why it failed reach the escalation table.
    entry = {k: status.redactor.text(v) if isinstance(v, str) else v for k, v in entry.items()}
    ctx.store.add_attempt(task.repo_id, pr.number, entry)
    status.markers.append(report.attempt_marker(entry))


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
    count_escalation(ctx.store.redis)
    if issue is not None:
        planning.follow(api, ctx, task, issue, {"pull": pr.number, "state": "escalated"})
