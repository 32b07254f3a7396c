"""The fleet's bookkeeping in Redis: the files each open agent pull request touches, and the
queue of tasks waiting for a dependency or a free review slot."""

from __future__ import annotations

import json
import time

from redis import Redis

from app.fleet import Pull
from app.store import text


def _pulls_key(repo_id: int) -> str:
    return f"fh:fleet:{repo_id}:pulls"


def _waiting_key(repo_id: int) -> str:
    return f"fh:fleet:{repo_id}:waiting"


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

    def forget(self, repo_id: int, number: int) -> None:
        self.redis.hdel(_pulls_key(repo_id), str(number))

    def pulls(self, repo_id: int) -> list[Pull]:
        """Every open agent pull request of the repository, in one round trip."""
        found = []
        for number, raw in self.redis.hgetall(_pulls_key(repo_id)).items():
            entry = json.loads(raw)
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

    # --- tasks waiting for a blocker or a free slot --------------------------------------

    def wait(self, repo_id: int, task_id: str, reason: str) -> None:
        """Put a task in the repository's queue (keeping its place if it was there)."""
        with self.redis.pipeline() as pipe:
            pipe.zadd(_waiting_key(repo_id), {task_id: time.time()}, nx=True)
            pipe.hset(f"{_waiting_key(repo_id)}:why", task_id, reason)
            pipe.execute()

    def unwait(self, repo_id: int, task_id: str) -> None:
        with self.redis.pipeline() as pipe:
            pipe.zrem(_waiting_key(repo_id), task_id)
            pipe.hdel(f"{_waiting_key(repo_id)}:why", task_id)
            pipe.execute()

    def waiting(self, repo_id: int) -> list[str]:
        """Waiting task ids of the repository, the longest waiting first."""
        found = self.redis.zrange(_waiting_key(repo_id), 0, -1)
        return [text(t) for t in found if isinstance(t, bytes | str)]

    def why(self, repo_id: int, task_id: str) -> str:
        value = self.redis.hget(f"{_waiting_key(repo_id)}:why", task_id)
        return text(value) if value is not None else ""
