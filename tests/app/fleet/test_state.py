from __future__ import annotations

from redis import Redis

from app.fleet.decisions import Pull
from app.fleet.state import FleetState


def test_recorded_pull_requests_come_back_and_close(redis: Redis) -> None:
    state = FleetState(redis)
    a = Pull(3, 1, 10.0, frozenset({"a.py", "b.py"}), frozenset({"a.py"}), "agent/issue-1")
    b = Pull(4, 2, 20.0, frozenset({"c.py"}))
    state.record(7, a)
    state.record(7, b)
    state.record(8, Pull(9, 9, 1.0, frozenset({"z.py"})))
    assert state.pulls(7) == [a, b]
    state.record(7, Pull(3, 1, 10.0, frozenset({"d.py"})))  # a new push replaces the files
    assert state.pulls(7)[0].files == {"d.py"}
    state.close(7, 3, merged=True)
    assert state.pulls(7) == [b]
    # Closed, it owns no files, but the plan still knows what it was and that it merged.
    assert state.closed_pulls(7) == [(Pull(3, 1, 10.0, frozenset({"d.py"})), True)]


def test_waiting_tasks_keep_their_place_in_their_queue(redis: Redis) -> None:
    state = FleetState(redis)
    state.wait(7, "issue-7-1", "cap", "review cap", 0)
    state.wait(7, "issue-7-2", "cap", "review cap", 0)
    state.wait(7, "issue-7-3", "blocked", "blocked by #5", 0)
    state.wait(7, "issue-7-1", "cap", "review cap again", 1)  # same place, new words
    assert state.waiting(7, "cap") == ["issue-7-1", "issue-7-2"]
    assert state.waiting(7) == ["issue-7-1", "issue-7-2", "issue-7-3"]
    assert state.parked(7, "issue-7-1") == {
        "queue": "cap",
        "reason": "review cap again",
        "generation": 1,
    }
    state.wait(7, "issue-7-3", "cap", "review cap", 1)  # moves to the back of the cap queue
    assert state.waiting(7, "cap") == ["issue-7-1", "issue-7-2", "issue-7-3"]
    assert state.waiting(7, "blocked") == []
    state.unwait(7, "issue-7-1")
    assert state.waiting(7) == ["issue-7-2", "issue-7-3"]
    assert state.parked(7, "issue-7-1") == {}
    assert state.waiting(8) == []
    assert state.repos_waiting() == [7]


def test_generations_count_wake_ups(redis: Redis) -> None:
    state = FleetState(redis)
    assert state.generation(7) == 0
    assert state.bump(7) == 1
    assert state.generation(7) == 1 and state.generation(8) == 0


def test_starting_tasks_are_tracked_until_they_opened(redis: Redis) -> None:
    state = FleetState(redis)
    state.start(7, "issue-7-1")
    state.start(7, "issue-7-2")
    state.started(7, "issue-7-1")
    assert state.starting(7) == {"issue-7-2"}
