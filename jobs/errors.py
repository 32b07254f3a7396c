"""Failures a task reports to people, as opposed to bugs and outages."""

from __future__ import annotations

from app.github import GitHubError
from app.settings import SettingsError


class AgentConfigError(ValueError):
    """The agent cannot be started as configured; the message says why."""


class TaskFailed(Exception):
    """The task cannot succeed; the message says why in words for the status comment."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


class BudgetStopped(TaskFailed):
    """The model gateway refused the agent's calls: its budget is spent. Trying again cannot
    help, so a CI fix escalates at once instead of using its other attempts."""


class DayBudgetReached(Exception):
    """The repository's own daily budget is spent: the task waits for the next UTC day
    instead of starting (jobs/day_budget.py); the message says why."""


class Escalated(Exception):
    """The pull request is a human's now (out of attempts); the message says why."""


class HandedBack(BaseException):
    """The worker running the task is stopping (SIGTERM, WORKER_DRAIN_TIMEOUT passed): this
    run ends where it is and the task goes back to the queue. A BaseException, so that no
    `except Exception` on the way takes it for the task's own failure."""


HANDED_BACK = (
    "Handed back: the worker running this was stopped (a restart or an upgrade); another "
    "worker takes it up again from the start"
)


def permanent_reason(exc: Exception) -> str | None:
    """Why `exc` fails its task at once, or None when it may be an outage worth retrying.

    Running again cannot fix a missing setting, a request GitHub refused (4xx) or an agent
    that cannot be started; Redis, the network and GitHub's 5xx can pass.
    """
    if isinstance(exc, SettingsError):
        return f"forgehand is not configured: {exc}"
    if isinstance(exc, GitHubError) and exc.permanent:
        return str(exc)
    if isinstance(exc, AgentConfigError):
        return str(exc)
    return None
