"""GitHub's REST answer shapes, filled in with the simulator's values.

The templates in shapes/ are real GitHub objects taken from octokit/webhooks' examples (MIT,
see shapes/LICENSE); the simulator overlays its own ids, names and states on copies of them, so
every answer carries every field a client such as githubkit expects.
"""

from __future__ import annotations

import copy
import json
import time
from functools import cache
from importlib.resources import files
from typing import Any
from urllib.parse import quote

import yaml

from app.web import MANIFEST_FILE

Obj = dict[str, Any]
NOW = "2026-01-01T00:00:00Z"


@cache
def _template(name: str) -> Obj:
    data: Obj = json.loads((files("simulator") / "shapes" / f"{name}.json").read_text())
    return data


def _merge(base: Obj, over: Obj) -> Obj:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def shape(template: str, /, **values: Any) -> Obj:
    return _merge(copy.deepcopy(_template(template)), values)


def stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# What the App's manifest asks for: what its installation tokens carry.
_MANIFEST = yaml.safe_load(MANIFEST_FILE.read_text())
PERMISSIONS: dict[str, str] = _MANIFEST["default_permissions"]
EVENTS: list[str] = _MANIFEST["default_events"]
# The simulator assigns no one and has no milestones; the templates' are Codertocat's.
UNASSIGNED: Obj = {"assignee": None, "assignees": [], "milestone": None}
TEMPLATE_REPO = "Codertocat/Hello-World"
TEMPLATE_USER = "Codertocat"


def retarget(data: Any, full_name: str) -> Any:
    """`data` with the templates' repository and its owner replaced by `full_name` and its
    owner in every string (URLs, names, a commit's author), so that no answer points at a
    repository or person the simulator does not serve."""
    if isinstance(data, dict):
        return {k: retarget(v, full_name) for k, v in data.items()}
    if isinstance(data, list):
        return [retarget(v, full_name) for v in data]
    if isinstance(data, str) and (TEMPLATE_USER in data or "Hello-World" in data):
        owner, name = full_name.split("/")
        return (
            data.replace(TEMPLATE_REPO, full_name)
            .replace("Hello-World", name)
            .replace(TEMPLATE_USER, owner)
        )
    return data


def user(login: str, kind: str = "User", user_id: int = 0) -> Obj:
    made = shape("user", login=login, type=kind, id=user_id or abs(hash(login)) % 10**7)
    path = quote(login)
    for key, value in made.items():
        if key.endswith("url") and isinstance(value, str):
            made[key] = value.replace(f"/{TEMPLATE_USER}", f"/{path}")
    # GitHub shows a bot at its App's page; "/forgehand[bot]" is no valid URI.
    slug = login.removesuffix("[bot]")
    made["html_url"] = (
        f"https://github.com/apps/{slug}" if kind == "Bot" else f"https://github.test/{path}"
    )
    return made


def public_user(login: str, kind: str, user_id: int) -> Obj:
    extra = {
        "name": login, "company": None, "blog": "", "location": None, "email": None,
        "hireable": None, "bio": None, "public_repos": 0, "public_gists": 0, "followers": 0,
        "following": 0, "created_at": NOW, "updated_at": NOW,
    }  # fmt: skip
    return user(login, kind, user_id) | extra


def repository(full_name: str, repo_id: int, default_branch: str, clone_url: str) -> Obj:
    owner, name = full_name.split("/")
    return shape(
        "repository", id=repo_id, name=name, full_name=full_name,
        owner=user(owner, "Organization"), default_branch=default_branch, clone_url=clone_url,
        html_url=f"https://github.test/{full_name}", private=False, fork=False,
    )  # fmt: skip


def label(name: str) -> Obj:
    return {
        "id": abs(hash(name)) % 10**7, "node_id": f"LA_{name}", "name": name,
        "url": f"https://github.test/labels/{name}", "description": None, "color": "ededed",
        "default": False, "archived_at": None, "archived_by": None,
    }  # fmt: skip


def issue(data: Obj, repo: Obj) -> Obj:
    number = data["number"]
    out = shape(
        "issue", number=number, id=10_000 + number, title=data.get("title", ""),
        body=data.get("body") or None, state=data.get("state", "open"),
        user=user(data.get("user", {}).get("login", "carol")),
        labels=[label(lbl["name"]) for lbl in data.get("labels", [])],
        html_url=f"{repo['html_url']}/issues/{number}", **UNASSIGNED,
    )  # fmt: skip
    out.pop("pull_request", None)
    return out


def comment(comment_id: int, body: str, login: str, kind: str = "User") -> Obj:
    return shape(
        "issue_comment", id=comment_id, body=body, user=user(login, kind),
        created_at=stamp(), updated_at=stamp(),
        html_url=f"https://github.test/comments/{comment_id}",
    )  # fmt: skip


def pull_request(
    data: Obj, repo: Obj, head_sha: str, head_repo: Obj, base_sha: str, bot: Obj
) -> Obj:
    number = data["number"]
    closed = data.get("state") == "closed"
    return shape(
        "pull_request", number=number, id=20_000 + number, title=data.get("title", ""),
        body=data.get("body"), state=data.get("state", "open"), draft=bool(data.get("draft")),
        merged=bool(data.get("merged")), user=bot,
        closed_at=stamp() if closed else None, merged_at=stamp() if data.get("merged") else None,
        html_url=f"{repo['html_url']}/pull/{number}", **UNASSIGNED,
        head={"ref": data["head"], "sha": head_sha, "label": f"x:{data['head']}",
              "repo": head_repo, "user": head_repo["owner"]},
        base={"ref": data["base"], "sha": base_sha, "label": f"x:{data['base']}",
              "repo": repo, "user": repo["owner"]},
    )  # fmt: skip


def check_run(data: Obj, app: Obj) -> Obj:
    output = {"text": None, "annotations_url": "https://github.test/annotations"}
    output |= data.get("output", {})
    return shape(
        "check_run", **{k: v for k, v in data.items() if k not in ("output", "app")},
        output=output, app=app, completed_at=stamp() if data.get("status") == "completed" else None,
    )  # fmt: skip


def app(app_id: int, slug: str) -> Obj:
    return shape("app", id=app_id, slug=slug, name=slug)


def annotation(data: Obj) -> Obj:
    line = data.get("start_line", 1)
    return {
        "path": data.get("path", ""), "start_line": line, "end_line": data.get("end_line", line),
        "start_column": None, "end_column": None,
        "annotation_level": data.get("annotation_level", "failure"), "title": None,
        "message": data.get("message", ""), "raw_details": None,
        "blob_href": "https://github.test/blob",
    }  # fmt: skip


def commit_status(data: Obj, status_id: int) -> Obj:
    return {
        "id": status_id, "node_id": f"SC_{status_id}", "state": data["state"],
        "context": data["context"], "description": data.get("description"),
        "target_url": data.get("target_url"), "avatar_url": None,
        "url": "https://github.test/statuses", "created_at": NOW, "updated_at": NOW,
    }  # fmt: skip


def review(data: Obj, commit: str) -> Obj:
    login = (data.get("user") or {}).get("login", "carol")
    return shape(
        "review", id=data["id"], body=data.get("body") or "", state=data.get("state", "COMMENTED"),
        user=user(login), commit_id=data.get("commit_id") or commit, submitted_at=stamp(),
    )  # fmt: skip


def review_comment(data: Obj, review_id: int, commit: str) -> Obj:
    values = {k: v for k, v in data.items() if k != "user"}
    return shape(
        "review_comment", **values, pull_request_review_id=review_id, commit_id=commit,
        original_commit_id=commit, user=user((data.get("user") or {}).get("login", "carol")),
    )  # fmt: skip


def installation(installation_id: int, account: Obj, app_id: int, slug: str) -> Obj:
    base = f"https://api.github.com/app/installations/{installation_id}"
    return {
        "id": installation_id, "account": account, "app_id": app_id, "app_slug": slug,
        "target_id": account["id"], "target_type": account["type"],
        "repository_selection": "selected", "access_tokens_url": f"{base}/access_tokens",
        "repositories_url": "https://api.github.com/installation/repositories",
        "html_url": f"https://github.test/settings/installations/{installation_id}",
        "permissions": PERMISSIONS, "events": EVENTS, "created_at": NOW, "updated_at": NOW,
        "single_file_name": None, "has_multiple_single_files": False, "single_file_paths": [],
        "suspended_by": None, "suspended_at": None,
    }  # fmt: skip


def hook_delivery(data: Obj) -> Obj:
    """One item of the App's delivery log: what the simulator was told, and the rest of the
    fields GitHub always gives."""
    status = int(data.get("status_code") or 0)
    return {
        "redelivery": False, "duration": 0.05, "action": None, "installation_id": None,
        "repository_id": None, "throttled_at": None,
        "status": "OK" if 200 <= status < 300 else f"Invalid HTTP Response: {status}",
    } | data  # fmt: skip
