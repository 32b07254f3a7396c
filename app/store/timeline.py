"""What a task's page shows of it besides its record: the audit trail, the log tail, the
agent's last prompt, the change, and the status comment on GitHub."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from app.store.keys import Conn, Records, text

AUDIT_LIMIT = 200
LOG_TAIL_LIMIT = 500
# What the task page shows of the agent's prompt and of the change; the rest is cut.
PROMPT_LIMIT = 100_000
DIFF_LIMIT = 400_000
log = logging.getLogger("forgehand.task")


def events_key(task_id: str) -> str:
    return f"fh:task:{task_id}:events"


def log_key(task_id: str) -> str:
    return f"fh:task:{task_id}:log"


def comment_key(task_id: str) -> str:
    return f"fh:task:{task_id}:comment"


def prompt_key(task_id: str) -> str:
    return f"fh:task:{task_id}:prompt"


def diff_key(task_id: str) -> str:
    return f"fh:task:{task_id}:diff"


def timeline_keys(task_id: str) -> list[str]:
    """Every key this module keeps for a task (pruned with it)."""
    return [f(task_id) for f in (events_key, log_key, comment_key, prompt_key, diff_key)]


class Timeline(Records):
    def audit(self, task_id: str, event: str, detail: str = "", conn: Conn | None = None) -> None:
        """Record a step in the task's timeline; every step is also one log line."""
        self.audit_log(task_id, event, detail)
        self.audit_write(conn if conn is not None else self.redis, task_id, event, detail)

    def audit_log(self, task_id: str, event: str, detail: str) -> None:
        log.info("%s%s", event, f": {detail}" if detail else "", extra={"task": task_id})

    def audit_write(self, conn: Conn, task_id: str, event: str, detail: str) -> None:
        """The timeline entry alone, for a caller that logs only once its writes are applied."""
        entry = json.dumps({"ts": time.time(), "event": event, "detail": detail})
        conn.rpush(events_key(task_id), entry)
        conn.ltrim(events_key(task_id), -AUDIT_LIMIT, -1)

    def events(self, task_id: str) -> list[dict[str, Any]]:
        return [json.loads(e) for e in self.redis.lrange(events_key(task_id), 0, -1)]

    def append_log(self, task_id: str, lines: list[str]) -> None:
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.rpush(log_key(task_id), *lines)
            pipe.ltrim(log_key(task_id), -LOG_TAIL_LIMIT, -1)
            pipe.execute()

    def log_tail(self, task_id: str, lines: int = LOG_TAIL_LIMIT) -> list[str]:
        return [text(x) for x in self.redis.lrange(log_key(task_id), -lines, -1)]

    def status_comment(self, task_id: str) -> int | None:
        value = self.redis.get(comment_key(task_id))
        return int(value) if isinstance(value, bytes) else None

    def set_status_comment(self, task_id: str, comment_id: int) -> None:
        self.redis.set(comment_key(task_id), comment_id)

    def set_prompt(self, task_id: str, prompt: str) -> None:
        self.redis.set(prompt_key(task_id), _cut(prompt, PROMPT_LIMIT))

    def prompt(self, task_id: str) -> str:
        value = self.redis.get(prompt_key(task_id))
        return text(value) if isinstance(value, bytes) else ""

    def set_diff(self, task_id: str, diff: str) -> None:
        self.redis.set(diff_key(task_id), _cut(diff, DIFF_LIMIT))

    def diff(self, task_id: str) -> str:
        value = self.redis.get(diff_key(task_id))
        return text(value) if isinstance(value, bytes) else ""


def _cut(value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    return value[:limit] + f"\n… ({len(value) - limit} more characters not kept)\n"
