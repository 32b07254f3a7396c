"""CI finished on a commit of an agent pull request: if a task of forgehand's pushed it, that
task's check run, which said "CI on it: pending", now says what CI made of it."""

from __future__ import annotations

from app.tasks import Task
from jobs import ci
from jobs.boundary import redactor_for
from jobs.pipeline import Context
from jobs.report import tell_ci


def tell_verdict(task: Task, ctx: Context) -> str:
    # Every green suite on an agent branch comes here (the web does not look): most commits
    # are nobody's to tell, and cost no call to GitHub.
    if not ctx.store.ours(task.repo_id, task.number, task.sha):
        return f"no task of forgehand's pushed {task.sha[:7]}"
    api = ctx.app.installation(task.installation_id)
    # Read now, not taken from the event: another suite on the commit may still be running,
    # or may have failed since.
    words = ci.verdict(*ci.read_checks(api, task.repo, task.sha)).words
    # The check names are the repository's: redacted before GitHub and the dashboard show them.
    redactor = redactor_for(ctx.settings, api.token())
    words = redactor.text(words)
    if not tell_ci(api, ctx.store, task, task.sha, words, redactor):
        # Its task is between pushing and noting the push: it tells them then.
        return f"CI on {task.sha[:7]}: {words}; told once its push is noted"
    return f"CI on {task.sha[:7]}: {words}"
