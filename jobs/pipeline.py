"""The one pipeline every task kind runs through."""

from __future__ import annotations

from dataclasses import dataclass

from app.store import Store
from app.tasks import Task
from jobs.errors import TaskFailed


@dataclass(frozen=True)
class Context:
    store: Store


def run(task: Task, ctx: Context) -> str:
    raise TaskFailed(f"{task.kind.value} tasks are not supported by this version of forgehand")
