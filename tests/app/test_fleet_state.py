from __future__ import annotations

from redis import Redis

from app.fleet import Pull
from app.fleet_state import FleetState


def test_recorded_pull_requests_come_back_and_can_be_forgotten(redis: Redis) -> None:
    state = FleetState(redis)
    a = Pull(3, 1, 10.0, frozenset({"a.py", "b.py"}), frozenset({"a.py"}), "agent/issue-1")
    b = Pull(4, 2, 20.0, frozenset({"c.py"}))
    state.record(7, a)
    state.record(7, b)
    state.record(8, Pull(9, 9, 1.0, frozenset({"z.py"})))
    assert state.pulls(7) == [a, b]
    state.record(7, Pull(3, 1, 10.0, frozenset({"d.py"})))  # a new push replaces the files
    assert state.pulls(7)[0].files == {"d.py"}
    state.forget(7, 3)
    assert state.pulls(7) == [b]


def test_waiting_tasks_keep_their_place_in_the_queue(redis: Redis) -> None:
    state = FleetState(redis)
    state.wait(7, "issue-7-1", "blocked by #5")
    state.wait(7, "issue-7-2", "review cap")
    state.wait(7, "issue-7-1", "review cap")  # waiting again: same place, new reason
    assert state.waiting(7) == ["issue-7-1", "issue-7-2"]
    assert state.why(7, "issue-7-1") == "review cap"
    state.unwait(7, "issue-7-1")
    assert state.waiting(7) == ["issue-7-2"]
    assert state.why(7, "issue-7-1") == ""
    assert state.waiting(8) == []
