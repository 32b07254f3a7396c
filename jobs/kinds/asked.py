"""What a person asks of the App's open pull request, by a review or an `/agent` request: the
agent's change pushed to it, shown on its status comment and check run as it goes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.github import Installation
from app.tasks import Task
from jobs.pipeline import (
    Change,
    Context,
    PullRequest,
    Repo,
    change_pull_request,
    check_run_for,
    reported,
    status_for,
)
from jobs.report import StatusComment, checked, noted_push
from jobs.report import words as report


@dataclass(frozen=True)
class Asked:
    working: str  # the status comment's words while the agent works
    prompt: str
    message: str  # the commit's
    pushed: Callable[[str], str]  # the headline for a pushed commit, from its short SHA
    unchanged: str  # what leads the headline when the agent pushed nothing


@dataclass(frozen=True)
class Done:
    change: Change
    status: StatusComment
    headline: str
    summary: str  # the agent's, redacted and quoted


def push_asked(
    task: Task, ctx: Context, api: Installation, repo: Repo, pr: PullRequest, asked: Asked
) -> Done:
    """Run the agent on `pr` as asked and push its change; the check run is finished with the
    outcome, the status comment is left for the caller's last word."""
    status = status_for(api, ctx, task)
    with (
        reported(status, ctx, task),
        checked(check_run_for(api, ctx, task, pr.head_sha)) as check,
    ):
        status.update(asked.working)
        change = change_pull_request(task, ctx, api, repo, pr, asked.prompt, asked.message, check)
        # Redacted before `quote` keeps only its end, which could cut a secret in two.
        summary = report.quote(status.redactor.text(change.result.summary))
        if change.head:
            headline = asked.pushed(change.head[:7])
        else:
            headline = asked.unchanged + change.result.nothing_done("nothing was pushed")
        check.finish(
            "success" if change.head else "neutral",
            report.pushed_title(headline, change.head),
            summary,
            change.result.tail,
        )
        if change.head:
            lead = report.pushed_lead(headline)
            noted_push(api, ctx.store, task, task.number, change.head, lead, status.redactor)
    return Done(change, status, headline, summary)
