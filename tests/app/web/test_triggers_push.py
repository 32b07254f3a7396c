from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from app.tasks import Kind
from app.web.triggers import Facts, PayloadError, decide, starts_nothing
from tests import payloads as p

FACTS = Facts(app_id=p.APP_ID, app_slug="forgehand")
AFTER = "c" * 40


def push(ref: str = "refs/heads/main", **extra: Any) -> dict[str, Any]:
    payload = p.issues() | {"ref": ref, "before": "b" * 40, "after": AFTER, "deleted": False}
    payload["repository"] = payload["repository"] | {"default_branch": "main"}
    return {k: v for k, v in payload.items() if k not in ("issue", "label", "action")} | extra


def test_a_push_to_the_default_branch_checks_the_agent_pull_requests_on_it() -> None:
    (task,) = decide("push", push(), FACTS).tasks
    assert task.kind is Kind.BASE
    assert (task.id, task.sha, task.branch, task.number) == (
        f"base-{p.REPO_ID}-{AFTER}",
        AFTER,
        "main",
        0,
    )


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (push("refs/heads/feature"), "push to feature, not the default branch"),
        (
            push("refs/heads/agent/issue-7-x"),
            "push to agent/issue-7-x, an agent branch, not a base",
        ),
        (push("refs/tags/v1"), "push to refs/tags/v1, not a branch"),
        (push(deleted=True), "branch main deleted"),
    ],
)
def test_other_pushes_are_ignored(payload: dict[str, Any], reason: str) -> None:
    assert decide("push", payload, FACTS).ignored == reason


def test_a_push_without_a_commit_is_malformed() -> None:
    with pytest.raises(PayloadError, match="commit SHA"):
        decide("push", push(after="nope"), FACTS)


def test_a_push_where_no_agent_pull_request_targets_the_branch_starts_nothing() -> None:
    elsewhere = replace(FACTS, agent_bases=frozenset({"develop"}))
    assert decide("push", push(), elsewhere).ignored == "no open agent pull request targets main"
    assert decide("push", push(), replace(FACTS, agent_bases=frozenset())).tasks == ()
    assert decide("push", push(), replace(FACTS, agent_bases=frozenset({"main"}))).tasks
    # The payload alone cannot tell: the web process reads the bases with the delivery's claim.
    assert starts_nothing("push", push(), FACTS) is None
