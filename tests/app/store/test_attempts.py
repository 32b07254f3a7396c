from __future__ import annotations

from redis import Redis

from app.store import Store
from tests import payloads as p

SHA, OTHER = "a" * 40, "b" * 40
LEAD = "Fix pushed as aaaaaaa (attempt 1 of 3)"


def test_ci_told_while_a_push_is_made_waits_for_the_task_that_notes_it(redis: Redis) -> None:
    store = Store(redis)
    store.note_pushing(p.REPO_ID, 12, SHA, "ci-1")
    assert store.ours(p.REPO_ID, 12, SHA)
    assert store.tell_pushed(p.REPO_ID, 12, SHA, "passed") is None
    assert store.note_pushed(p.REPO_ID, 12, SHA, "ci-1", LEAD) == "passed"
    assert store.ours(p.REPO_ID, 12, SHA)
    # Noted: told from now on, and nothing waits any more.
    told = store.tell_pushed(p.REPO_ID, 12, SHA, "failed (lint)")
    assert told == {"task": "ci-1", "lead": LEAD}
    assert store.note_pushed(p.REPO_ID, 12, SHA, "ci-1", LEAD) == ""


def test_ci_on_a_commit_no_task_pushes_is_not_kept(redis: Redis) -> None:
    store = Store(redis)
    assert not store.ours(p.REPO_ID, 12, OTHER)
    assert store.tell_pushed(p.REPO_ID, 12, OTHER, "passed") is None
    assert redis.keys("*:waiting") == []
    store.note_pushing(p.REPO_ID, 12, OTHER, "ci-1")
    store.not_pushing(p.REPO_ID, 12, OTHER)  # refused: never reached GitHub
    assert not store.ours(p.REPO_ID, 12, OTHER)
