"""Every octokit payload example in ../shared, signed, through the real endpoint."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from starlette.testclient import TestClient

from app.store.store import Store
from tests import payloads as p
from tests.app.web.test_webhook import make_client, post, queued_ids

EXAMPLES = Path(__file__).resolve().parents[4] / "shared" / "github-payloads"
FILES = sorted(EXAMPLES.glob("*/*.json")) if EXAMPLES.is_dir() else []

pytestmark = pytest.mark.skipif(
    not FILES, reason="../shared/github-payloads is not beside the repo"
)


def load(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    # The examples come from plain repository webhooks; an App's deliveries carry this key.
    payload.setdefault("installation", {"id": p.INSTALLATION})
    return payload


@pytest.fixture
def client(redis: Redis) -> Iterator[TestClient]:
    with make_client(redis) as c:
        yield c


@pytest.mark.parametrize("path", FILES, ids=lambda f: f"{f.parent.name}/{f.name}")
def test_every_example_is_answered_without_5xx(
    client: TestClient, redis: Redis, path: Path
) -> None:
    event = path.parent.name
    payload = load(f"{event}/{path.name}")
    response = post(client, event, payload)
    assert response.status_code == (200 if event == "ping" else 202), response.text
    body = response.json()
    if event == "ping":
        return
    if event.startswith("installation"):
        assert "ignored" in body or body["tasks"] == []
    elif event == "issues" and payload["action"] in ("deleted", "transferred"):
        assert body["tasks"] == [] and "ignored" not in body  # cancels, as closing does
    elif event == "push" and str(payload["ref"]).startswith("refs/heads/"):
        # A push to the default branch starts nothing while no agent pull request targets
        # it; once one does, the agent pull requests on it are checked.
        branch = str(payload["ref"]).removeprefix("refs/heads/")
        assert body["ignored"] == f"no open agent pull request targets {branch}", body
        repo_id = payload["repository"]["id"]
        Store(redis).add_app_pull_request(repo_id, 12, 7, "o/r", p.INSTALLATION, branch)
        body = post(client, event, payload, "again").json()
        assert [t.split("-")[0] for t in body["tasks"]] == ["base"], body
    else:
        # Unmodified examples name no trigger label and no agent/ branch: nothing qualifies.
        assert body["tasks"] == [] and body["ignored"], body


EXPECTED_IGNORED = {
    "issues/labeled.payload.json": "label bug is not agent",
    "issues/opened.payload.json": "issues.opened is not a trigger",
    "check_run/completed.payload.json": "check run concluded success",
    "check_suite/completed.payload.json": "check suite concluded success",
    "status/payload.json": "commit status is success",
    "pull_request/closed.payload.json": "branch changes is not under agent/",
    "pull_request_review/submitted.payload.json": "branch changes is not under agent/",
    "push/payload.json": "push to refs/tags/simple-tag, not a branch",
    "workflow_run/completed.payload.json": "workflow_run events are not handled",
}


@pytest.mark.parametrize(("name", "reason"), sorted(EXPECTED_IGNORED.items()))
def test_examples_are_ignored_for_the_right_reason(
    client: TestClient, name: str, reason: str
) -> None:
    event = name.split("/")[0]
    assert post(client, event, load(name)).json()["ignored"] == reason


def _qualifying(name: str) -> tuple[str, dict[str, Any]]:
    """The example, changed only where it must be to qualify as a trigger."""
    payload = copy.deepcopy(load(name))
    event = name.split("/")[0]
    repo_id = payload["repository"]["id"]
    if event == "issues":
        payload["label"]["name"] = "agent"
    elif event == "check_run":
        payload["check_run"]["check_suite"]["head_branch"] = "agent/issue-1-x"
    elif event in ("pull_request", "pull_request_review"):
        payload["pull_request"]["head"]["ref"] = "agent/issue-1-x"
        payload["pull_request"]["head"]["repo"]["id"] = repo_id
        if event == "pull_request_review":
            payload["review"]["author_association"] = "OWNER"
    return event, payload


def test_labelled_example_becomes_an_issue_task(client: TestClient, redis: Redis) -> None:
    event, payload = _qualifying("issues/labeled.payload.json")
    body = post(client, event, payload).json()
    assert body["tasks"] == [f"issue-{payload['repository']['id']}-{payload['issue']['number']}"]
    assert queued_ids(redis) == body["tasks"]


def test_failed_check_run_example_becomes_a_ci_task(client: TestClient) -> None:
    event, payload = _qualifying("check_run/completed.1.payload.json")
    body = post(client, event, payload).json()
    sha = payload["check_run"]["head_sha"]
    assert body["tasks"] == [f"ci-{payload['repository']['id']}-{sha}"]


def test_closed_pull_request_example_becomes_a_cleanup_task(client: TestClient) -> None:
    event, payload = _qualifying("pull_request/closed.payload.json")
    body = post(client, event, payload).json()
    assert body["tasks"] == [f"closed-{payload['repository']['id']}-{payload['number']}"]


def test_submitted_review_example_becomes_a_review_task(client: TestClient) -> None:
    event, payload = _qualifying("pull_request_review/submitted.payload.json")
    body = post(client, event, payload).json()
    pr, review = payload["pull_request"]["number"], payload["review"]["id"]
    assert body["tasks"] == [f"review-{payload['repository']['id']}-{pr}-{review}"]
