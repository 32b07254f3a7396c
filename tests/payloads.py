"""Small webhook payloads in GitHub's shapes, built per test; signing helpers."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

SECRET = "test-webhook-secret"
REPO_ID = 1296269
REPO = "octo-org/hello-world"
INSTALLATION = 42
APP_ID = 1001


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headers(event: str, body: bytes, delivery: str | None = None) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(body),
        "Content-Type": "application/json",
    }


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def user(login: str = "alice", kind: str = "User") -> dict[str, Any]:
    return {"login": login, "id": abs(hash(login)) % 10**6, "type": kind}


def repository(repo_id: int = REPO_ID, full_name: str = REPO) -> dict[str, Any]:
    owner, name = full_name.split("/")
    return {
        "id": repo_id,
        "full_name": full_name,
        "name": name,
        "owner": user(owner, "Organization"),
    }


def _base(sender: str = "alice", sender_type: str = "User") -> dict[str, Any]:
    return {
        "repository": repository(),
        "sender": user(sender, sender_type),
        "installation": {"id": INSTALLATION},
    }


def issue(number: int = 7, labels: tuple[str, ...] = (), state: str = "open") -> dict[str, Any]:
    return {
        "number": number,
        "title": "Login fails with an empty password",
        "body": "Steps to reproduce…",
        "state": state,
        "labels": [{"name": n} for n in labels],
        "user": user("carol"),
    }


def issues(
    action: str = "labeled", label: str = "agent", number: int = 7, **kw: Any
) -> dict[str, Any]:
    payload = _base(**kw) | {"action": action, "issue": issue(number, (label,))}
    if action in ("labeled", "unlabeled"):
        payload["label"] = {"name": label}
    return payload


def pull_request(
    number: int = 12, ref: str = "agent/issue-7-login", head_repo: int = REPO_ID
) -> dict[str, Any]:
    return {
        "number": number,
        "state": "open",
        "merged": False,
        "head": {"ref": ref, "sha": "a" * 40, "repo": {"id": head_repo}},
        "base": {"ref": "main", "repo": {"id": REPO_ID}},
        "user": user("forgehand[bot]", "Bot"),
    }


def pr_closed(number: int = 12, ref: str = "agent/issue-7-login", **kw: Any) -> dict[str, Any]:
    return _base(**kw) | {
        "action": "closed",
        "number": number,
        "pull_request": pull_request(number, ref),
    }


def review(
    state: str = "changes_requested",
    association: str = "MEMBER",
    ref: str = "agent/issue-7-login",
    head_repo: int = REPO_ID,
    review_id: int = 555,
    **kw: Any,
) -> dict[str, Any]:
    return _base(**kw) | {
        "action": "submitted",
        "review": {
            "id": review_id,
            "state": state,
            "body": "Please rename the helper.",
            "commit_id": "b" * 40,
            "author_association": association,
            "user": user(kw.get("sender", "alice")),
        },
        "pull_request": pull_request(12, ref, head_repo),
    }


def comment(
    body: str = "/agent also handle the empty username",
    association: str = "MEMBER",
    on_pr: bool = False,
    labels: tuple[str, ...] = ("agent",),
    comment_id: int = 9001,
    **kw: Any,
) -> dict[str, Any]:
    target = issue(12 if on_pr else 7, labels)
    if on_pr:
        target["pull_request"] = {"url": "https://api.github.com/repos/o/r/pulls/12"}
    return _base(**kw) | {
        "action": "created",
        "issue": target,
        "comment": {"id": comment_id, "body": body, "author_association": association},
    }


def _pr_ref(ref: str) -> dict[str, Any]:
    return {
        "number": 12,
        "head": {"ref": ref, "sha": "c" * 40, "repo": {"id": REPO_ID}},
        "base": {"ref": "main", "repo": {"id": REPO_ID}},
    }


def check_suite(
    conclusion: str = "failure",
    ref: str = "agent/issue-7-login",
    sha: str = "c" * 40,
    app: int = 15368,
) -> dict[str, Any]:
    return _base("github-actions[bot]", "Bot") | {
        "action": "completed",
        "check_suite": {
            "id": 1,
            "head_sha": sha,
            "head_branch": ref,
            "conclusion": conclusion,
            "app": {"id": app},
            "pull_requests": [_pr_ref(ref)],
        },
    }


def check_run(
    conclusion: str = "failure",
    ref: str = "agent/issue-7-login",
    sha: str = "c" * 40,
    app: int = 15368,
    run_id: int = 1,
) -> dict[str, Any]:
    return _base("github-actions[bot]", "Bot") | {
        "action": "completed",
        "check_run": {
            "id": run_id,
            "name": f"test-{run_id}",
            "head_sha": sha,
            "conclusion": conclusion,
            "app": {"id": app},
            "check_suite": {"id": 1, "head_branch": ref},
            "pull_requests": [_pr_ref(ref)],
        },
    }


def status(
    state: str = "failure", ref: str = "agent/issue-7-login", sha: str = "c" * 40
) -> dict[str, Any]:
    return _base("ci-bot", "User") | {
        "sha": sha,
        "state": state,
        "context": "ci/legacy",
        "branches": [{"name": ref}],
    }


def installation(action: str = "created") -> dict[str, Any]:
    return {
        "action": action,
        "installation": {"id": INSTALLATION},
        "repositories": [{"id": REPO_ID, "full_name": REPO}],
        "sender": user(),
    }


def installation_repositories(added: bool = True) -> dict[str, Any]:
    repos = [{"id": 77, "full_name": "octo-org/other"}]
    return {
        "action": "added" if added else "removed",
        "installation": {"id": INSTALLATION},
        "repositories_added": repos if added else [],
        "repositories_removed": [] if added else repos,
        "sender": user(),
    }
