"""What Redis keeps of each epic's plan: its comment, the repository's files when it was made
(to check an edited plan against), the issues filed for its rows, and how each is doing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from redis import Redis

from app.store import text

MAX_FILES_KEPT = 5000  # repository paths kept per epic to check edits against


def _key(repo_id: int, epic: int) -> str:
    return f"fh:epic:{repo_id}:{epic}"


def _of_key(repo_id: int) -> str:
    return f"fh:epic-of:{repo_id}"


@dataclass(frozen=True)
class Epic:
    comment: int  # the plan comment's id; 0 before one was posted
    files: tuple[str, ...] = ()
    filed: dict[str, int] = field(default_factory=dict)  # row key → issue number
    ids: dict[str, int] = field(default_factory=dict)  # row key → issue id (for links)
    notes: tuple[str, ...] = ()  # said under the table once filed (GHES stand-ins)
    progress: dict[int, dict[str, Any]] = field(default_factory=dict)  # issue → pull/state/changed
    plan: str = ""  # the plan's YAML as last checked (redacted), for the plan page


class EpicState:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def get(self, repo_id: int, epic: int) -> Epic | None:
        raw = self.redis.hgetall(_key(repo_id, epic))
        if not raw:
            return None
        fields = {text(k): text(v) for k, v in raw.items()}
        return Epic(
            comment=int(fields.get("comment", "0")),
            files=tuple(json.loads(fields.get("files", "[]"))),
            filed=dict(json.loads(fields.get("filed", "{}"))),
            ids=dict(json.loads(fields.get("ids", "{}"))),
            notes=tuple(json.loads(fields.get("notes", "[]"))),
            plan=fields.get("plan", ""),
            progress={int(k[9:]): json.loads(v) for k, v in fields.items()
                      if k.startswith("progress:")},
        )  # fmt: skip

    def planned(self, repo_id: int, epic: int, comment: int, files: list[str], plan: str) -> None:
        """A plan comment was posted for the epic, from a tree with these files."""
        kept = json.dumps(sorted(files)[:MAX_FILES_KEPT])
        with self.redis.pipeline() as pipe:
            pipe.hset(
                _key(repo_id, epic), mapping={"comment": comment, "files": kept, "plan": plan}
            )
            pipe.sadd(f"fh:epics:{repo_id}", str(epic))
            pipe.execute()

    def set_plan(self, repo_id: int, epic: int, plan: str) -> None:
        """The plan as the comment now says (a person edited it)."""
        self.redis.hset(_key(repo_id, epic), "plan", plan)

    def epics(self, repo_id: int) -> list[int]:
        return sorted(int(e) for e in self.redis.smembers(f"fh:epics:{repo_id}"))

    def filed(self, repo_id: int, epic: int, key: str, number: int, issue_id: int) -> None:
        """One row is filed: recorded at once, so that no later approval files it again."""
        current = self.get(repo_id, epic) or Epic(0)
        with self.redis.pipeline() as pipe:
            pipe.hset(_key(repo_id, epic), "filed", json.dumps(current.filed | {key: number}))
            pipe.hset(_key(repo_id, epic), "ids", json.dumps(current.ids | {key: issue_id}))
            pipe.hset(_of_key(repo_id), str(number), str(epic))
            pipe.execute()

    def set_notes(self, repo_id: int, epic: int, notes: list[str]) -> None:
        self.redis.hset(_key(repo_id, epic), "notes", json.dumps(notes))

    def epic_of(self, repo_id: int, issue: int) -> int | None:
        value = self.redis.hget(_of_key(repo_id), str(issue))
        return int(value) if value is not None else None

    def progressed(self, repo_id: int, epic: int, issue: int, step: dict[str, Any]) -> None:
        """What one row's issue reached: its pull request, that pull request's state, and the
        files it changes (as far as known)."""
        key = f"progress:{issue}"
        before = self.redis.hget(_key(repo_id, epic), key)
        old = json.loads(before) if before is not None else {}
        merged = old | step
        # The task that opened a pull request may tell of it after the pull request closed
        # (a person merged it at once): closed is the last word on that pull request.
        if old.get("pull") == step.get("pull") and old.get("state") in ("merged", "closed"):
            merged["state"] = old["state"]
        self.redis.hset(_key(repo_id, epic), key, json.dumps(merged))

    def lock(self, repo_id: int, epic: int, hold: float = 600) -> Any:
        """One task at a time files or re-renders an epic's plan. A holder that is killed (a
        task cancelled because its issue closed) keeps the lock for `hold` seconds."""
        return self.redis.lock(f"{_key(repo_id, epic)}:lock", timeout=hold, blocking_timeout=600)

    def refused_once(self, repo_id: int, epic: int, login: str) -> bool:
        """True the first time `login` is refused on this epic: they are told once, not at
        every comment."""
        return bool(self.redis.sadd(f"{_key(repo_id, epic)}:refused", login))
