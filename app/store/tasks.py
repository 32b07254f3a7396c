"""Task records: each task's state, run and attempt, the index of tasks by last update, the
tasks that worked on each issue or pull request, and forgetting finished ones (with their
timelines) after the retention period."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from redis.client import Pipeline
from redis.exceptions import WatchError
from redis.typing import EncodableT, FieldT

from app.store.keys import TASKS_INDEX, Conn, Records, task_key, text
from app.store.timeline import timeline_keys
from app.tasks import State, Task


def target_key(repo_id: int, number: int) -> str:
    """The tasks that worked on an issue or pull request."""
    return f"fh:target:{repo_id}:{number}"


@dataclass(frozen=True)
class TaskRecord:
    task: Task
    state: State
    run: int
    attempt: int
    created: float
    updated: float
    error: str
    pull: int | None = None  # the pull request this run opened

    @property
    def id(self) -> str:
        return self.task.id

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.task.kind.value,
            "repo": self.task.repo,
            "number": self.task.number,
            "state": self.state.value,
            "attempt": self.attempt,
            "run": self.run,
            "created": self.created,
            "updated": self.updated,
            "error": self.error,
        }


class Tasks(Records):
    def get(self, task_id: str) -> TaskRecord | None:
        raw = self.redis.hgetall(task_key(task_id))
        return record_from_hash(raw) if raw else None

    def write_queued(self, pipe: Pipeline, task: Task, run: int, created: float | None) -> None:
        """Queue writes (inside the caller's MULTI) that mark `task` queued as run `run`."""
        now = time.time()
        fields: dict[FieldT, EncodableT] = {}
        fields.update(task.to_fields())
        fields |= {
            "state": State.QUEUED.value,
            "run": str(run),
            "created": str(created if created is not None else now),
            "updated": str(now),
            "error": "",
            "result": "",
            "pull": "",
        }
        pipe.hset(task_key(task.id), mapping=fields)
        pipe.hsetnx(task_key(task.id), "attempt", "0")
        pipe.zadd(TASKS_INDEX, {task.id: now})
        pipe.sadd(target_key(task.repo_id, task.number), task.id)

    def set_state(
        self, task_id: str, state: State, error: str = "", conn: Conn | None = None
    ) -> None:
        now = time.time()
        target = conn if conn is not None else self.redis
        target.hset(
            task_key(task_id), mapping={"state": state.value, "updated": str(now), "error": error}
        )
        target.zadd(TASKS_INDEX, {task_id: now})

    def transition(
        self,
        task_id: str,
        frm: Iterable[State],
        to: State,
        error: str = "",
        unless_opened: bool = False,
    ) -> bool:
        """Move a task to `to` only if it is in one of `frm` (and, with `unless_opened`, it is
        not a running run that has opened its pull request); atomic against other writers."""
        allowed = {s.value for s in frm}
        key = task_key(task_id)
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    current, pull = pipe.hmget(key, ["state", "pull"])
                    if not isinstance(current, bytes) or current.decode() not in allowed:
                        pipe.unwatch()
                        return False
                    # A retry keeps the pull its run opened, but starts over: only the run
                    # itself, still running, finishes what the pull request began.
                    if unless_opened and pull and current.decode() == State.RUNNING.value:
                        pipe.unwatch()
                        return False
                    pipe.multi()
                    self.set_state(task_id, to, error, conn=pipe)
                    pipe.execute()
                    return True
                except WatchError:
                    continue

    def set_result(self, task_id: str, result: str) -> None:
        """What a finished task did, in a few words ("pushed abc1234", "no change")."""
        self.redis.hset(task_key(task_id), "result", result)

    def set_check_run(self, task_id: str, run_id: int) -> None:
        """The task's `forgehand` check run, so that a later task can say what became of it."""
        self.redis.hset(task_key(task_id), "check_run", str(run_id))

    def check_run(self, task_id: str) -> int | None:
        value = self.redis.hget(task_key(task_id), "check_run")
        return int(value) if isinstance(value, bytes) and value.isdigit() else None

    def set_attempt(self, task_id: str, attempt: int) -> None:
        """The CI-fix attempt on its pull request this task is making (1 for the first)."""
        self.redis.hset(task_key(task_id), "attempt", str(attempt))

    def recent(self, limit: int = 100) -> list[TaskRecord]:
        ids = [
            text(i) for i in self.redis.zrevrange(TASKS_INDEX, 0, limit - 1) if isinstance(i, bytes)
        ]
        with self.redis.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hgetall(task_key(task_id))
            raws = pipe.execute()
        return [record_from_hash(raw) for raw in raws if raw]

    def state_totals(self, batch: int = 1000) -> dict[State, int]:
        """How many tasks Redis holds in each state (every state present, zero or not)."""
        totals = dict.fromkeys(State, 0)
        ids = [text(i) for i in self.redis.zrange(TASKS_INDEX, 0, -1) if isinstance(i, bytes)]
        for start in range(0, len(ids), batch):
            with self.redis.pipeline(transaction=False) as pipe:
                for task_id in ids[start : start + batch]:
                    pipe.hget(task_key(task_id), "state")
                states = pipe.execute()
            for state in states:
                if state is not None:
                    totals[State(text(state))] += 1
        return totals

    def on_target(self, repo_id: int, number: int) -> list[str]:
        return sorted(text(i) for i in self.redis.smembers(target_key(repo_id, number)))

    def prune(self, before: float, batch: int = 500) -> int:
        """Delete finished tasks last updated before `before`, with their trail and log."""
        removed, offset = 0, 0
        while True:
            found = self.redis.zrangebyscore(TASKS_INDEX, 0, before, offset, batch)
            old = [text(i) for i in found if isinstance(i, bytes | str)]
            gone = self._prune(old)
            removed += gone
            offset += len(old) - gone  # live tasks stay in the index; step over them
            if len(old) < batch:
                return removed

    def _prune(self, old: list[str]) -> int:
        removed = 0
        for task_id in old:
            record = self.get(task_id)
            if record is not None and record.state.active:
                continue  # a live task is never pruned, however old
            with self.redis.pipeline() as pipe:
                pipe.delete(task_key(task_id), *timeline_keys(task_id))
                pipe.zrem(TASKS_INDEX, task_id)
                if record is not None:
                    pipe.srem(target_key(record.task.repo_id, record.task.number), task_id)
                pipe.execute()
            removed += 1
        return removed


def record_from_hash(raw: dict[Any, Any]) -> TaskRecord:
    fields = {text(k): text(v) for k, v in raw.items()}
    return TaskRecord(
        task=Task.from_fields(fields),
        state=State(fields["state"]),
        run=int(fields.get("run", "1")),
        attempt=int(fields.get("attempt", "0")),
        created=float(fields.get("created", "0")),
        updated=float(fields.get("updated", "0")),
        error=fields.get("error", ""),
        pull=int(fields["pull"]) if fields.get("pull") else None,
    )
