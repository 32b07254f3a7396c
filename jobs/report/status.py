"""The one status comment a task keeps up to date on its issue or pull request."""

from __future__ import annotations

from app.github import GitHubError, Installation
from app.store import Store
from app.tasks import Task
from jobs.boundary import Redactor
from jobs.report.progress import spend_line
from jobs.report.words import status_comment


class StatusComment:
    def __init__(self, api: Installation, store: Store, task: Task, redactor: Redactor) -> None:
        self.api = api
        self.store = store
        self.task = task
        # Also for the task's other words on GitHub that carry the agent's text.
        self.redactor = redactor
        self.markers: list[str] = []  # hidden records carried by every later update

    def update(self, headline: str, detail: str = "", log: str = "") -> None:
        """Post or edit the comment; any part but the markers may hold the agent's words."""
        clean = self.redactor.text
        spent = spend_line(self.store, self.task.id)
        words = status_comment(self.task.id, clean(headline), clean(detail), clean(log), spent)
        body = "\n".join([words, *self.markers])
        repo = f"/repos/{self.task.repo}"
        comment_id = self.store.status_comment(self.task.id)
        if comment_id is not None:
            try:
                self.api.patch(f"{repo}/issues/comments/{comment_id}", {"body": body})
                return
            except GitHubError as exc:
                if exc.status != 404:
                    raise  # deleted by someone: post a new one below
        created = self.api.post(f"{repo}/issues/{self.task.number}/comments", {"body": body})
        self.store.set_status_comment(self.task.id, int(created["id"]))
