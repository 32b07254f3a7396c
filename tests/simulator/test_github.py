"""Every answer the simulated GitHub gives parses as githubkit's model of GitHub's answer."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from githubkit_schemas.latest import models as m
from pydantic import TypeAdapter

from simulator.github import ROUTES
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


# githubkit's model of each route's answer; None where GitHub answers with no JSON.
MODELS: dict[str, Any] = {
    "_token": m.InstallationToken, "_app": m.Integration, "_installations": list[m.Installation],
    "_hook_config": m.WebhookConfig, "_hook_deliveries": list[m.HookDeliveryItem],
    "_redeliver": None, "_bot": m.PublicUser, "_repo": m.FullRepository, "_content": None,
    "_permission": m.RepositoryCollaboratorPermission, "_reaction": m.Reaction,
    "_issue": m.Issue, "_new_comment": m.IssueComment, "_list_comments": list[m.IssueComment],
    "_edit_comment": m.IssueComment, "_new_pull": m.PullRequest,
    "_new_check_run": m.CheckRun, "_update_check_run": m.CheckRun, "_get_check_run": m.CheckRun,
    "_blocked_by": list[m.Issue], "_add_blocked_by": m.Issue, "_new_issue": m.Issue,
    "_edit_issue": m.Issue, "_sub_issues": list[m.Issue], "_add_sub_issue": m.Issue,
    "_pulls": list[m.PullRequestSimple],
    "_check_runs": m.ReposOwnerRepoCommitsRefCheckRunsGetResponse200,
    "_status": m.CombinedCommitStatus, "_annotations": list[m.CheckAnnotation],
    "_job_logs": None, "_reviews": list[m.PullRequestReview], "_review": m.PullRequestReview,
    "_review_comments": list[m.ReviewComment], "_reply": m.PullRequestReviewComment,
    "_get_comment": m.IssueComment, "_add_labels": list[m.Label], "_remove_label": list[m.Label],
    "_delete_ref": None, "_pull": m.PullRequest,
    "_pull_files": list[m.DiffEntry], "_reviewers": m.PullRequestSimple,
}  # fmt: skip


def call(gh: fakes.FakeGitHub, method: str, path: str, body: Any = None, auth: str = "") -> Any:
    """Ask the simulator; its answer must parse as githubkit's model of that route's answer
    and name no repository or person of the templates."""
    content = json.dumps(body).encode() if body is not None else b""
    headers = {"authorization": auth or "token ghs_test"}
    response = gh.handle(
        httpx.Request(method, f"{fakes.API}{path}", content=content, headers=headers)
    )
    assert response.status_code < 400, (path, response.text)
    handler = next(
        h
        for verb, pattern, h in ROUTES
        if verb == method and re.fullmatch(pattern, path.split("?")[0])
    )
    model = MODELS[handler.__name__]
    if model is None:
        return response
    data = response.json()
    valid(model, data)
    assert "Codertocat" not in response.text and "Hello-World" not in response.text, path
    return data


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


def test_a_pull_request_is_an_issue_too(gh: fakes.FakeGitHub) -> None:
    gh.add_pull(12, BRANCH)
    pull = call(gh, "GET", f"{REPO}/issues/12")
    assert pull["number"] == 12 and "pull_request" in pull
    assert "pull_request" not in call(gh, "GET", f"{REPO}/issues/7")


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


def test_issue_creation_and_sub_issue_answers(gh: fakes.FakeGitHub) -> None:
    made = call(gh, "POST", f"{REPO}/issues", {"title": "Row", "body": "Part of #7"})
    valid(m.Issue, made)
    assert (made["number"], made["state"], gh.issues[made["number"]]["body"]) == (
        8, "open", "Part of #7",
    )  # fmt: skip
    assert call(gh, "GET", f"{REPO}/issues/7/sub_issues") == []
    parent = call(gh, "POST", f"{REPO}/issues/7/sub_issues", {"sub_issue_id": made["id"]})
    assert parent["number"] == 7
    (child,) = call(gh, "GET", f"{REPO}/issues/7/sub_issues")
    assert child["number"] == 8 and gh.sub_issues == {7: [8]}
    edited = call(gh, "PATCH", f"{REPO}/issues/7", {"body": "- [ ] #8"})
    assert edited["body"] == "- [ ] #8"


def test_what_github_refuses_when_filing_issues(gh: fakes.FakeGitHub) -> None:
    def status(method: str, path: str, body: Any) -> int:
        request = httpx.Request(method, f"{fakes.API}{path}", content=json.dumps(body).encode(),
                                headers={"authorization": "token ghs_test"})  # fmt: skip
        return gh.handle(request).status_code

    assert status("POST", f"{REPO}/issues", {"title": ""}) == 422
    assert status("POST", f"{REPO}/issues", {"title": "x" * 257}) == 422
    made = call(gh, "POST", f"{REPO}/issues", {"title": "Row"})
    call(gh, "POST", f"{REPO}/issues/7/sub_issues", {"sub_issue_id": made["id"]})
    assert status("POST", f"{REPO}/issues/7/sub_issues", {"sub_issue_id": made["id"]}) == 422
    assert status("POST", f"{REPO}/issues/7/sub_issues", {"sub_issue_id": 1}) == 404


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


def test_the_app_s_lists_and_tokens(gh: fakes.FakeGitHub) -> None:
    token = jwt.encode({"iss": str(p.APP_ID), "iat": 0, "exp": 2**31}, fakes.app_key()[0], "RS256")
    bearer = f"Bearer {token}"
    (installation,) = call(gh, "GET", "/app/installations", auth=bearer)
    minted = call(gh, "POST", "/app/installations/1/access_tokens", auth=bearer)
    manifest = yaml.safe_load((Path(__file__).parents[2] / "app.yml").read_text())
    assert minted["permissions"] == installation["permissions"] == manifest["default_permissions"]
    assert installation["events"] == manifest["default_events"]
    call(gh, "GET", "/app/hook/config", auth=bearer)
    gh.hook_deliveries = [{"id": 9, "guid": "g-9", "status_code": 503, "event": "issues",
                           "delivered_at": "2026-01-01T00:00:00Z"}]  # fmt: skip
    (item,) = call(gh, "GET", "/app/hook/deliveries?per_page=10", auth=bearer)
    assert item["status"] == "Invalid HTTP Response: 503"
    call(gh, "POST", "/app/hook/deliveries/9/attempts", auth=bearer)


def test_a_bot_is_shown_at_its_app_s_page(gh: fakes.FakeGitHub) -> None:
    bot = call(gh, "GET", "/users/forgehand%5Bbot%5D")
    assert bot["html_url"] == "https://github.com/apps/forgehand"
    comment = call(gh, "POST", f"{REPO}/issues/7/comments", {"body": "hello"})
    assert comment["user"]["html_url"] == "https://github.com/apps/forgehand"


def test_a_commit_with_no_statuses_is_pending(gh: fakes.FakeGitHub) -> None:
    combined = call(gh, "GET", f"{REPO}/commits/{gh.head_sha(BRANCH)}/status")
    assert (combined["state"], combined["total_count"]) == ("pending", 0)


def test_the_rest_of_the_routes(gh: fakes.FakeGitHub) -> None:
    gh.config_text = "max_attempts: 2\n"
    assert call(gh, "GET", f"{REPO}/contents/.github/forgehand.yml").text == "max_attempts: 2\n"
    call(gh, "POST", f"{REPO}/issues/7/comments", {"body": "one"})
    call(gh, "GET", f"{REPO}/issues/7/comments?per_page=10")
    sha = gh.head_sha(BRANCH)
    run = gh.add_check_run(sha, "tests", log="boom")
    assert call(gh, "GET", f"{REPO}/actions/jobs/{run}/logs").status_code == 302
    gh.add_pull(8, BRANCH)
    gh.reviews[3] = {"id": 3, "body": "ok", "state": "COMMENTED", "user": {"login": "alice"}}
    call(gh, "GET", f"{REPO}/pulls/8/reviews")
    call(gh, "POST", f"{REPO}/issues/8/labels", {"labels": ["a/b?#c"]})
    call(gh, "DELETE", f"{REPO}/issues/8/labels/a%2Fb%3F%23c")
    assert call(gh, "DELETE", f"{REPO}/git/refs/heads/{BRANCH}").status_code == 204


def test_every_route_has_a_model() -> None:
    assert {h.__name__ for _verb, _pattern, h in ROUTES} == set(MODELS)


def answer(gh: fakes.FakeGitHub, method: str, path: str, body: Any) -> httpx.Response:
    request = httpx.Request(
        method, f"{fakes.API}{path}", content=json.dumps(body).encode(),
        headers={"authorization": "token ghs_test"},
    )  # fmt: skip
    return gh.handle(request)


def test_the_apps_own_check_run_is_created_updated_and_completed(gh: fakes.FakeGitHub) -> None:
    sha = gh.head_sha(BRANCH)
    told: list[tuple[str, str]] = []
    gh.listeners.append(lambda event, data: told.append((event, data.get("action", ""))))
    output = {"title": "Working on it…", "summary": "- queued"}
    created = call(gh, "POST", f"{REPO}/check-runs", {
        "name": "forgehand", "head_sha": sha, "status": "in_progress", "external_id": "ci-1",
        "details_url": "http://127.0.0.1:3000/tasks/ci-1", "output": output,
    })  # fmt: skip
    valid(m.CheckRun, created)
    assert (created["status"], created["app"]["id"]) == ("in_progress", p.APP_ID)
    path = f"{REPO}/check-runs/{created['id']}"
    valid(m.CheckRun, call(gh, "PATCH", path, {"output": output | {"title": "agent working"}}))
    done = call(gh, "PATCH", path, {"conclusion": "success", "output": output | {"text": "log"}})
    valid(m.CheckRun, done)
    assert (done["status"], done["conclusion"]) == ("completed", "success")
    assert done["output"]["text"] == "log"
    (listed,) = call(gh, "GET", f"{REPO}/commits/{sha}/check-runs")["check_runs"]
    assert listed["name"] == "forgehand" and listed["app"]["slug"] == gh.slug
    one = call(gh, "GET", path)  # as "Re-run" has the worker read it
    assert (one["external_id"], one["conclusion"]) == ("ci-1", "success")
    assert told == [("check_run", "created"), ("check_run", "completed")]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"head_sha": "HEAD"}, 422, "name and head_sha are required"),
        ({"name": "forgehand", "head_sha": "f" * 40}, 422, "No commit found for SHA"),
        ({"name": "x", "head_sha": "HEAD", "status": "done"}, 422, "status 'done' is not one"),
        ({"name": "x", "head_sha": "HEAD", "status": "completed"}, 422, "conclusion is required"),
        ({"name": "x", "head_sha": "HEAD", "conclusion": "green"}, 422, "not a conclusion"),
        ({"name": "x", "head_sha": "HEAD", "details_url": "/tasks/1"}, 422, "details_url"),
        ({"name": "x", "head_sha": "HEAD", "output": {"title": "t"}}, 422, "title and a summary"),
        (
            {"name": "x", "head_sha": "HEAD", "output": {"title": "t", "summary": "s" * 65536}},
            422, "output.summary is longer",
        ),
    ],
)  # fmt: skip
def test_check_runs_github_would_refuse(
    gh: fakes.FakeGitHub, body: dict[str, Any], status: int, words: str
) -> None:
    if body.get("head_sha") == "HEAD":
        body = body | {"head_sha": gh.head_sha(BRANCH)}
    response = answer(gh, "POST", f"{REPO}/check-runs", body)
    assert response.status_code == status
    assert words in response.json()["message"]


def test_only_the_app_that_made_a_check_run_may_change_it(gh: fakes.FakeGitHub) -> None:
    actions = gh.add_check_run(gh.head_sha(BRANCH), "tests")
    response = answer(gh, "PATCH", f"{REPO}/check-runs/{actions}", {"conclusion": "success"})
    assert response.status_code == 403
    assert answer(gh, "PATCH", f"{REPO}/check-runs/999999", {}).status_code == 404
