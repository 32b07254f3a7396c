"""app/fleet/epic_state.py: what Redis keeps of an epic's rows as their pull requests move."""

from __future__ import annotations

import json

from redis import Redis

from app.fleet import EpicState
from app.fleet.epic_state import _key


def _row(redis: Redis, issue: int) -> dict[str, object]:
    raw = redis.hget(_key(7, 2), f"progress:{issue}")
    assert raw is not None
    loaded: dict[str, object] = json.loads(raw)
    return loaded


def test_a_pull_request_merged_before_its_task_said_it_opened_stays_merged(redis: Redis) -> None:
    state = EpicState(redis)
    state.progressed(7, 2, 5, {"pull": 8, "state": "merged"})
    state.progressed(7, 2, 5, {"pull": 8, "state": "open", "changed": ["README.md"]})
    assert _row(redis, 5) == {"pull": 8, "state": "merged", "changed": ["README.md"]}


def test_a_new_pull_request_for_the_row_opens_it_again(redis: Redis) -> None:
    state = EpicState(redis)
    state.progressed(7, 2, 5, {"pull": 8, "state": "closed"})
    state.progressed(7, 2, 5, {"pull": 9, "state": "open"})
    assert _row(redis, 5) == {"pull": 9, "state": "open"}
