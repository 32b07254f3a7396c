"""The fleet's bookkeeping in Redis: the files each open agent pull request touches, and the
queue of tasks waiting for a dependency or a free review slot."""

from __future__ import annotations

import json
import time
from typing import Any, cast

from redis import Redis

from app.fleet.decisions import Pull
from app.store import text


def _pulls_key(repo_id: int) -> str:
    return f"fh:fleet:{repo_id}:pulls"


def _closed_key(repo_id: int) -> str:
    return f"fh:fleet:{repo_id}:closed"


def _read(raw: dict[Any, Any]) -> list[Pull]:
    found = []
    for number, value in raw.items():
        entry = json.loads(value)
        found.append(
            Pull(
                number=int(number),
                issue=int(entry["issue"]),
                created=float(entry["created"]),
                files=frozenset(entry["files"]),
                interface=frozenset(entry["interface"]),
                branch=str(entry.get("branch", "")),
            )
        )
    return sorted(found, key=lambda p: p.number)


def _waiting_key(repo_id: int, queue: str) -> str:
    return f"fh:fleet:{repo_id}:waiting:{queue}"


class FleetState:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    # --- open agent pull requests and their files ----------------------------------------

    def record(self, repo_id: int, pull: Pull) -> None:
        entry = {
            "issue": pull.issue,
            "created": pull.created,
            "files": sorted(pull.files),
            "interface": sorted(pull.interface),
            "branch": pull.branch,
        }
        self.redis.hset(_pulls_key(repo_id), str(pull.number), json.dumps(entry))

    def close(self, repo_id: int, number: int, merged: bool) -> None:
        """The pull request closed: it owns no files any more, but the plan still shows what
        it was (its branch, its files) and that it merged."""
        raw = self.redis.hget(_pulls_key(repo_id), str(number))
        with self.redis.pipeline() as pipe:
            if raw is not None:
                entry = json.loads(raw) | {"merged": merged}
                pipe.hset(_closed_key(repo_id), str(number), json.dumps(entry))
            pipe.hdel(_pulls_key(repo_id), str(number))
            pipe.execute()

    def pulls(self, repo_id: int) -> list[Pull]:
        """Every open agent pull request of the repository, in one round trip."""
        return _read(self.redis.hgetall(_pulls_key(repo_id)))

    def closed_pulls(self, repo_id: int) -> list[tuple[Pull, bool]]:
        """The repository's closed agent pull requests, each with whether it merged."""
        raw = self.redis.hgetall(_closed_key(repo_id))
        merged = {int(n): bool(json.loads(v).get("merged")) for n, v in raw.items()}
        return [(pull, merged[pull.number]) for pull in _read(raw)]

    def overlap_comment(self, repo_id: int, number: int) -> tuple[int, str] | None:
        """(comment id, digest of its body) of the pull request's overlap comment."""
        value = self.redis.hget(f"fh:fleet:{repo_id}:overlap_comments", str(number))
        if value is None:
            return None
        comment_id, digest = text(value).split(" ", 1)
        return int(comment_id), digest

    def set_overlap_comment(self, repo_id: int, number: int, comment_id: int, digest: str) -> None:
        self.redis.hset(
            f"fh:fleet:{repo_id}:overlap_comments", str(number), f"{comment_id} {digest}"
        )

    def forget_overlap_comment(self, repo_id: int, number: int) -> None:
        self.redis.hdel(f"fh:fleet:{repo_id}:overlap_comments", str(number))

    def set_depends(self, repo_id: int, issue: int, blockers: list[int]) -> None:
        """What an issue depends on, as its task last read it (for the plan)."""
        self.redis.hset(f"fh:fleet:{repo_id}:depends", str(issue), json.dumps(blockers))

    def depends(self, repo_id: int) -> dict[int, tuple[int, ...]]:
        raw = self.redis.hgetall(f"fh:fleet:{repo_id}:depends")
        return {int(k): tuple(json.loads(v)) for k, v in raw.items()}

    # --- tasks waiting for a blocker or a free slot --------------------------------------

    def generation(self, repo_id: int) -> int:
        """How many times the repository's waiting tasks were woken: a task that parked at an
        older generation may have slept through its wake-up."""
        value = self.redis.get(f"fh:fleet:{repo_id}:generation")
        return int(value) if value is not None else 0

    def bump(self, repo_id: int) -> int:
        return int(self.redis.incr(f"fh:fleet:{repo_id}:generation"))

    def wait(self, repo_id: int, task_id: str, queue: str, reason: str, generation: int) -> None:
        """Park a task in one of the repository's queues (`blocked` or `cap`), keeping its
        place if it was already in that queue."""
        entry = json.dumps({"queue": queue, "reason": reason, "generation": generation})
        with self.redis.pipeline() as pipe:
            pipe.zadd(_waiting_key(repo_id, queue), {task_id: time.time()}, nx=True)
            pipe.zrem(_waiting_key(repo_id, _other(queue)), task_id)
            pipe.hset(_why_key(repo_id), task_id, entry)
            pipe.sadd(WAITING_REPOS, str(repo_id))
            pipe.execute()

    def unwait(self, repo_id: int, task_id: str) -> None:
        with self.redis.pipeline() as pipe:
            for queue in QUEUES:
                pipe.zrem(_waiting_key(repo_id, queue), task_id)
            pipe.hdel(_why_key(repo_id), task_id)
            pipe.execute()

    def waiting(self, repo_id: int, queue: str | None = None) -> list[str]:
        """Task ids in the queue (both when None), the longest waiting first."""
        queues = QUEUES if queue is None else (queue,)
        found: list[tuple[float, str]] = []
        for name in queues:
            entries = self.redis.zrange(_waiting_key(repo_id, name), 0, -1, withscores=True)
            for entry in entries:
                member, score = cast(tuple[bytes, float], entry)
                found.append((float(score), text(member)))
        return [task_id for _score, task_id in sorted(found)]

    def parked(self, repo_id: int, task_id: str) -> dict[str, Any]:
        """{"queue", "reason", "generation"} of a waiting task; empty when it is not waiting."""
        value = self.redis.hget(_why_key(repo_id), task_id)
        return dict(json.loads(value)) if value is not None else {}

    def repos_waiting(self) -> list[int]:
        return sorted(int(r) for r in self.redis.smembers(WAITING_REPOS))

    # --- issue tasks that passed the cap and have not opened their pull request yet -------

    def start(self, repo_id: int, task_id: str) -> None:
        self.redis.sadd(f"fh:fleet:{repo_id}:starting", task_id)

    def started(self, repo_id: int, task_id: str) -> None:
        self.redis.srem(f"fh:fleet:{repo_id}:starting", task_id)

    def starting(self, repo_id: int) -> set[str]:
        return {text(t) for t in self.redis.smembers(f"fh:fleet:{repo_id}:starting")}


QUEUES = ("blocked", "cap")
WAITING_REPOS = "fh:fleet:waiting_repos"


def _other(queue: str) -> str:
    return QUEUES[1 - QUEUES.index(queue)]


def _why_key(repo_id: int) -> str:
    return f"fh:fleet:{repo_id}:why"
