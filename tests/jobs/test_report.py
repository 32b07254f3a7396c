from __future__ import annotations

from jobs.report import (
    RESET_MARKER,
    attempt_marker,
    escalation_comment,
    markers,
    rebuild_attempts,
)


def test_markers_round_trip_and_resets_split_them() -> None:
    first = {"attempt": 1, "sha": "a" * 40, "pushed": "b" * 40}
    second = {"attempt": 2, "sha": "b" * 40, "result": "weird -- text"}
    body = f"Status\n{attempt_marker(first)}\n{attempt_marker(second)}\n{RESET_MARKER}"
    assert markers(body) == [first, second | {"result": "weird - - text"}, None]


def test_rebuild_counts_attempts_since_the_last_reset_or_green_push() -> None:
    a1 = {"attempt": 1, "pushed": "p1"}
    a2 = {"attempt": 2, "pushed": "p2"}
    a3 = {"attempt": 1, "pushed": "p3"}
    assert rebuild_attempts([a1, a2], green=set()) == [a1, a2]
    assert rebuild_attempts([a1, a2, a3], green={"p2"}) == [a3]
    assert rebuild_attempts([a1, None, a3], green=set()) == [a3]
    assert rebuild_attempts([a1, a2], green={"p2"}) == []


def test_escalation_comment_tells_what_was_tried() -> None:
    attempts = [
        {"attempt": 1, "sha": "a" * 40, "failed": "tests (failure)", "changed": "Fix | it",
         "result": "pushed bbbbbbb"},
        {"attempt": 2, "sha": "b" * 40, "failed": "tests (failure)", "changed": "—",
         "result": "The agent exited with status 3."},
    ]  # fmt: skip
    text = escalation_comment(attempts, "c" * 40, ["tests (failure)"], ["carol", "alice", "carol"],
                              "agent:needs-human", "/agent")  # fmt: skip
    assert "stopped after 2 attempts" in text
    assert "| 1 | `aaaaaaa` | tests (failure) | Fix \\| it | pushed bbbbbbb |" in text
    assert "| 2 | `bbbbbbb` | tests (failure) | — | The agent exited with status 3. |" in text
    assert "CI still fails on `ccccccc`: tests (failure)." in text
    assert text.endswith("cc @carol @alice")
