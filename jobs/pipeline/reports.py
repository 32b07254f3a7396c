"""How a task shows itself on GitHub while the pipeline runs: its status comment and check run,
each redacting what it posts, and a failure turned into the status comment's last word."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from app.github import GitHubError, Installation
from app.tasks import Task
from jobs.boundary import redactor_for
from jobs.errors import HANDED_BACK, HandedBack, TaskFailed
from jobs.pipeline.context import Context
from jobs.report import CheckRun, StatusComment, dashboard_url
from jobs.report import words as report


def status_for(api: Installation, ctx: Context, task: Task) -> StatusComment:
    """The task's status comment, which redacts what it posts of the agent's words."""
    return StatusComment(api, ctx.store, task, redactor_for(ctx.settings, api.token()))


def check_run_for(api: Installation, ctx: Context, task: Task, sha: str) -> CheckRun:
    """The task's `forgehand` check run on `sha`, which redacts what it shows."""
    url = dashboard_url(ctx.settings.web_url, task.id)
    return CheckRun(api, ctx.store, task, sha, redactor_for(ctx.settings, api.token()), url)


@contextmanager
def reported(status: StatusComment, ctx: Context, task: Task) -> Iterator[None]:
    """Turn a task failure into the status comment's last word, then re-raise it."""
    try:
        yield
    except TaskFailed as exc:
        log = exc.log or "\n".join(ctx.store.log_tail(task.id, report.EXCERPT_LINES))
        status.update(f"❌ {exc}", log=log)
        raise
    except GitHubError as exc:
        if exc.permanent:
            status.update(f"❌ {exc}")
            raise TaskFailed(str(exc)) from exc
        raise
    except HandedBack:
        status.update(f"⏸️ {HANDED_BACK}.")
        raise
