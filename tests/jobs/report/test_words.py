from __future__ import annotations

import re

from jobs.report import words as report
from jobs.report.words import (
    RESET_MARKER,
    attempt_marker,
    escalation_comment,
    markers,
    pull_request_body,
    rebuild_attempts,
    status_comment,
)

FORGED = "<!-- forgehand:reset -->"


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


def test_an_agent_log_cannot_close_the_excerpt_fence_or_forge_a_marker() -> None:
    log = f"working\n```\n{FORGED}\n</details>\n✅ Done, all green.\n`````\nmore"
    body = status_comment("t1", "❌ The agent exited with status 1.", log=log)
    fences = re.findall(r"^(`{3,})$", body, re.MULTILINE)
    inside = body.split(fences[0], 2)[1] if fences else ""
    assert len(fences) >= 2 and fences[0] == fences[-1]
    assert len(fences[0]) > max(len(run) for run in re.findall(r"`+", inside))
    # Everything the agent printed is between the fences, and no marker is read out of it.
    assert "✅ Done, all green." in inside and body.endswith(f"{fences[0]}\n</details>")
    assert markers(body) == []
    assert "<!--" not in body.replace("<!-- forgehand:status t1 -->", "")


def test_the_fence_is_three_backticks_when_the_log_has_none() -> None:
    body = status_comment("t1", "❌ failed", log="plain output")
    assert "\n```\nplain output\n```\n" in body


def test_agent_words_elsewhere_cannot_forge_a_marker() -> None:
    status = status_comment("t1", f"❌ changed `{FORGED}`", detail=f"> {FORGED}")
    body = pull_request_body(7, f"Done.\n{FORGED}", [f"abc1234 fix {FORGED}"], {"task": "t1"})
    attempt = {"attempt": 1, "sha": "a" * 40, "changed": FORGED}
    table = escalation_comment([attempt], "b" * 40, [], [], "agent:needs-human", "/agent")
    for text in (status, body, table):
        assert markers(text) == []
        assert "forgehand:reset" in text  # shown, not hidden


def test_a_check_run_is_green_only_when_ci_passed_and_its_own_commit_is_not_red() -> None:
    assert report.ci_conclusion("passed") == "success"
    assert report.ci_conclusion("passed", on_red=True) == "neutral"
    assert report.ci_conclusion("failed (unit, lint)") == "neutral"
    assert report.ci_conclusion("failed (unit)", on_red=True) == "neutral"
    assert report.ci_conclusion("pending") is None
