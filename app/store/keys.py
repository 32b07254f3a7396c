"""What the record modules share: the Redis connection they sit on, reply decoding, and the
keys more than one of them (or code outside app.store) reads or writes.

Every key starts with `fh:`, so forgehand can share a Redis database with RQ and nothing else.
"""

from __future__ import annotations

from redis import Redis
from redis.client import Pipeline

# A write goes to Redis at once, or is queued on the caller's pipeline to apply with others.
Conn = Redis | Pipeline

TASKS_INDEX = "fh:tasks"
APP_PRS = "fh:app_prs"
APP_SLUG = "fh:app:slug"
INSTALLATIONS = "fh:installations"
REPOS = "fh:repos"  # repo id → installation id


class Records:
    """One kind of record over the one connection every part of `Store` shares."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis


def text(value: bytes | str) -> str:
    """A Redis reply as text (clients here do not decode replies)."""
    return value.decode() if isinstance(value, bytes) else value


def task_key(task_id: str) -> str:
    return f"fh:task:{task_id}"


def pull_key(repo_id: int, number: int, part: str) -> str:
    """One record of a pull request: its attempts, CI results, whether it is tracked…"""
    return f"fh:pr:{repo_id}:{number}:{part}"


def app_pr_member(repo_id: int, number: int) -> str:
    return f"{repo_id}:{number}"


def allowed_bots_key(repo_id: int | None) -> str:
    return f"fh:allowed_bots:{repo_id}"
