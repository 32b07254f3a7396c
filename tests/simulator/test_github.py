"""Every answer the simulated GitHub gives parses as githubkit's model of GitHub's answer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from githubkit_schemas.latest import models as m
from pydantic import TypeAdapter

from tests import fakes
from tests import payloads as p

BRANCH = "agent/issue-7-x"


@pytest.fixture
def gh(tmp_path: Path) -> fakes.FakeGitHub:
    origin = fakes.make_origin(tmp_path)
    fakes.sh_git("branch", BRANCH, "main", cwd=origin)
    fake = fakes.FakeGitHub(clone_url=f"file://{origin}")
    fake.add_issue(7, "Addition subtracts", "body")
    fake.tokens.add("ghs_test")
    return fake


def call(gh: fakes.FakeGitHub, method: str, path: str, body: Any = None, auth: str = "") -> Any:
    content = json.dumps(body).encode() if body is not None else b""
    headers = {"authorization": auth or "token ghs_test"}
    response = gh.handle(
        httpx.Request(method, f"{fakes.API}{path}", content=content, headers=headers)
    )
    assert response.status_code < 400, (path, response.text)
    return response.json()


def valid(model: Any, data: Any) -> None:
    TypeAdapter(model).validate_python(data)


REPO = f"/repos/{p.REPO}"


def test_app_and_installation_answers(gh: fakes.FakeGitHub) -> None:
    token = jwt.encode({"iss": str(p.APP_ID), "iat": 0, "exp": 2**31}, fakes.app_key()[0], "RS256")
    bearer = f"Bearer {token}"
    valid(m.Integration, call(gh, "GET", "/app", auth=bearer))
    valid(m.InstallationToken, call(gh, "POST", "/app/installations/1/access_tokens", auth=bearer))
    valid(m.PublicUser, call(gh, "GET", "/users/forgehand%5Bbot%5D"))
    valid(m.FullRepository, call(gh, "GET", REPO))
    valid(
        m.RepositoryCollaboratorPermission,
        call(gh, "GET", f"{REPO}/collaborators/alice/permission"),
    )


def test_issue_answers(gh: fakes.FakeGitHub) -> None:
    valid(m.Issue, call(gh, "GET", f"{REPO}/issues/7"))
    valid(m.Reaction, call(gh, "POST", f"{REPO}/issues/7/reactions", {"content": "eyes"}))
    created = call(gh, "POST", f"{REPO}/issues/7/comments", {"body": "hello"})
    valid(m.IssueComment, created)
    valid(
        m.IssueComment, call(gh, "PATCH", f"{REPO}/issues/comments/{created['id']}", {"body": "x"})
    )
    gh.issue_comments[5] = {"id": 5, "body": "/agent go", "user": {"login": "alice"}}
    valid(m.IssueComment, call(gh, "GET", f"{REPO}/issues/comments/5"))
    valid(list[m.Label], call(gh, "POST", f"{REPO}/issues/7/labels", {"labels": ["a"]}))


def test_issue_dependency_answers(gh: fakes.FakeGitHub) -> None:
    gh.add_issue(3, "Blocker")
    assert call(gh, "GET", f"{REPO}/issues/7/dependencies/blocked_by") == []
    blocker_id = call(gh, "GET", f"{REPO}/issues/3")["id"]
    valid(m.Issue, call(gh, "POST", f"{REPO}/issues/7/dependencies/blocked_by",
                        {"issue_id": blocker_id}))  # fmt: skip
    (blocker,) = call(gh, "GET", f"{REPO}/issues/7/dependencies/blocked_by")
    valid(m.Issue, blocker)
    assert (blocker["number"], blocker["state"]) == (3, "open")
    assert gh.blocked_by == {7: [3]}


def test_pull_request_answers(gh: fakes.FakeGitHub) -> None:
    pr = call(
        gh,
        "POST",
        f"{REPO}/pulls",
        {"title": "t", "head": BRANCH, "base": "main", "body": "Fixes #7", "draft": False},
    )
    valid(m.PullRequest, pr)
    number = pr["number"]
    valid(m.PullRequest, call(gh, "GET", f"{REPO}/pulls/{number}"))
    valid(list[m.PullRequestSimple], call(gh, "GET", f"{REPO}/pulls?head=o:{BRANCH}"))
    valid(
        m.PullRequestSimple,
        call(gh, "POST", f"{REPO}/pulls/{number}/requested_reviewers", {"reviewers": ["alice"]}),
    )
    gh.reviews[1] = {
        "id": 1,
        "body": "hm",
        "state": "CHANGES_REQUESTED",
        "user": {"login": "alice"},
    }
    gh.review_comments[1] = [
        {"id": 70, "path": "calc.py", "line": 1, "body": "x", "diff_hunk": "@@"}
    ]
    valid(m.PullRequestReview, call(gh, "GET", f"{REPO}/pulls/{number}/reviews/1"))
    valid(list[m.ReviewComment], call(gh, "GET", f"{REPO}/pulls/{number}/reviews/1/comments"))
    reply = call(gh, "POST", f"{REPO}/pulls/{number}/comments/70/replies", {"body": "done"})
    valid(m.PullRequestReviewComment, reply)


def test_check_answers(gh: fakes.FakeGitHub) -> None:
    sha = gh.head_sha(BRANCH)
    run = gh.add_check_run(
        sha, "tests", annotations=[{"path": "calc.py", "start_line": 2, "message": "boom"}]
    )
    gh.statuses[sha] = [{"context": "ci", "state": "failure", "description": "red"}]
    runs = call(gh, "GET", f"{REPO}/commits/{sha}/check-runs")
    valid(list[m.CheckRun], runs["check_runs"])
    valid(list[m.CheckAnnotation], call(gh, "GET", f"{REPO}/check-runs/{run}/annotations"))
    valid(m.CombinedCommitStatus, call(gh, "GET", f"{REPO}/commits/{sha}/status"))
