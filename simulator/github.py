"""The simulated GitHub's REST API: state in memory, GitHub's answer shapes, every request kept.

It checks credentials as GitHub does: `/app` routes need a JWT signed by the App's key, the
rest an installation token it minted. Git is hosted as bare repositories reached by `file://`.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import jwt

from simulator import shapes

# Git as the simulator's people use it: Carol writes every commit; no config of this machine's.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Carol",
    "GIT_AUTHOR_EMAIL": "carol@example.com",
    "GIT_COMMITTER_NAME": "Carol",
    "GIT_COMMITTER_EMAIL": "carol@example.com",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "PATH": "/usr/bin:/bin",
}


def git_out(*args: str, cwd: Path, input: str | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True,
        input=input,
    ).stdout  # fmt: skip


@dataclass
class Call:
    method: str
    path: str
    body: Any
    auth: str


Handler = Callable[["GitHubSimulator", httpx.Request, re.Match[str]], httpx.Response]


@dataclass
class GitHubSimulator:
    """One repository's worth of GitHub: REST answers in GitHub's shapes, and the records."""

    clone_url: str
    repo: str
    repo_id: int
    app_id: int
    public_key: str  # the App's, to verify its JWTs
    logs_url: str  # where job-log redirects point: another host, as on GitHub
    slug: str = "forgehand"
    bot_id: int = 4242
    webhook_url: str = ""  # what the App's settings say deliveries go to
    hook_deliveries: list[dict[str, Any]] = field(default_factory=list)  # the App's delivery log
    redelivered: list[int] = field(default_factory=list)
    default_branch: str = "main"
    config_text: str | None = None
    permissions: dict[str, str] = field(default_factory=lambda: {"alice": "write"})
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    reactions: list[tuple[int, str]] = field(default_factory=list)
    review_requests: dict[int, list[str]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    token_count: int = 0
    # Answers to force, by "METHOD /path": statuses (or status and headers) used one per call.
    failures: dict[str, list[int | tuple[int, dict[str, str]]]] = field(default_factory=dict)
    next_id: int = 1000
    listeners: list[Callable[[str, dict[str, Any]], None]] = field(default_factory=list)
    check_runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by SHA
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by SHA
    annotations: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    job_logs: dict[int, str] = field(default_factory=dict)
    reviews: dict[int, dict[str, Any]] = field(default_factory=dict)
    review_comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # by review
    replies: list[tuple[int, str]] = field(default_factory=list)
    labels: dict[int, list[str]] = field(default_factory=dict)
    deleted_refs: list[str] = field(default_factory=list)
    issue_comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    blocked_by: dict[int, list[int]] = field(default_factory=dict)  # issue dependencies
    sub_issues: dict[int, list[int]] = field(default_factory=dict)  # parent → children

    @property
    def origin(self) -> Path:
        return Path(self.clone_url.removeprefix("file://"))

    def head_sha(self, ref: str) -> str:
        return git_out("rev-parse", f"refs/heads/{ref}", cwd=self.origin).strip()

    def guard_workflows(self) -> None:
        """Refuse pushes that change `.github/workflows/`, as GitHub refuses them from an App
        without the `workflows` permission (the only pushes here are the App's)."""
        hook = self.origin / "hooks" / "pre-receive"
        hook.parent.mkdir(exist_ok=True)
        hook.write_text(WORKFLOW_GUARD)
        hook.chmod(0o755)

    def add_pull(self, number: int, ref: str, *, issue: int = 7, fork: bool = False) -> None:
        self.pulls[number] = {
            "number": number,
            "title": "Addition subtracts",
            "head": ref,
            "base": "main",
            "body": f"Fixes #{issue}",
            "state": "open",
            "merged": False,
            "fork": fork,
        }

    def add_check_run(
        self,
        sha: str,
        name: str = "tests",
        run_id: int | None = None,
        log: str = "",
        annotations: list[dict[str, Any]] | None = None,
        status: str = "completed",
        conclusion: str | None = "failure",
    ) -> int:
        run_id = run_id or self._id()
        self.check_runs.setdefault(sha, []).append(
            {
                "id": run_id,
                "name": name,
                "head_sha": sha,
                "status": status,
                "conclusion": conclusion if status == "completed" else None,
                "app": {"id": 15368, "slug": "github-actions"},
                "output": {
                    "title": f"{name} failed",
                    "summary": f"{name}: 1 failing test",
                    "annotations_count": len(annotations or []),
                },
            }
        )
        self.annotations[run_id] = annotations or []
        if log:
            self.job_logs[run_id] = log
        return run_id

    def add_issue(self, number: int, title: str, body: str = "", state: str = "open") -> None:
        self.issues[number] = {
            "number": number,
            "title": title,
            "body": body,
            "state": state,
            "user": {"login": "carol", "type": "User"},
            "labels": [{"name": "agent"}],
        }

    def requests(self, method: str | None = None, pattern: str = "") -> list[Call]:
        return [
            c
            for c in self.calls
            if (method is None or c.method == method) and re.search(pattern, c.path)
        ]

    def comment_bodies(self, number: int) -> list[str]:
        return [c["body"] for c in self.comments.values() if c["issue"] == number]

    # --- plumbing ---------------------------------------------------------------------------

    def repository(self) -> dict[str, Any]:
        return shapes.repository(self.repo, self.repo_id, self.default_branch, self.clone_url)

    def comment_view(self, comment_id: int) -> dict[str, Any]:
        """A comment on an issue or pull request: the App's, unless it names another author."""
        comment = self.comments[comment_id]
        login = comment.get("login", f"{self.slug}[bot]")
        kind = "Bot" if login.endswith("[bot]") else "User"
        view = shapes.comment(comment_id, comment["body"], login, kind)
        if login == f"{self.slug}[bot]":
            # As GitHub marks what an App wrote: the mark stays when a person edits it.
            view["performed_via_github_app"] = shapes.app(self.app_id, self.slug)
        return view

    def emit(self, event: str, data: dict[str, Any]) -> None:
        """Tell listeners (the webhook sender) what the App just did on GitHub."""
        for listener in self.listeners:
            listener(event, data)

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    def handle(self, request: httpx.Request) -> httpx.Response:
        # As GitHub does: routed on the path as sent, so an unquoted `/`, `?` or `#` in a
        # label or branch name reaches another route (or none), and a quoted one does not.
        path = request.url.raw_path.decode().split("?", 1)[0].removeprefix("/api/v3")
        body = json.loads(request.content) if request.content else None
        auth = request.headers.get("authorization", "")
        self.calls.append(Call(request.method, path, body, auth))
        forced = self.failures.get(f"{request.method} {path}")
        if forced:
            answer = forced.pop(0)
            status, headers = answer if isinstance(answer, tuple) else (answer, {})
            if status == 0:  # no answer at all
                raise httpx.ReadTimeout("the simulator let this request time out", request=request)
            return httpx.Response(status, json={"message": f"forced {status}"}, headers=headers)
        for method, pattern, handler in ROUTES:
            match = re.fullmatch(pattern, path)
            if match and method == request.method:
                if pattern.startswith("/app"):
                    if not self._valid_jwt(auth):
                        return httpx.Response(
                            401, json={"message": "A JSON web token could not be decoded"}
                        )
                elif auth.removeprefix("token ") not in self.tokens:
                    return httpx.Response(401, json={"message": "Bad credentials"})
                return self._retargeted(handler(self, request, match))
        return httpx.Response(404, json={"message": "Not Found"})

    def _retargeted(self, response: httpx.Response) -> httpx.Response:
        if "json" not in response.headers.get("content-type", "") or not response.content:
            return response
        data = shapes.retarget(response.json(), self.repo)
        return httpx.Response(response.status_code, json=data, headers=_kept(response.headers))

    def _valid_jwt(self, auth: str) -> bool:
        try:
            claims = jwt.decode(auth.removeprefix("Bearer "), self.public_key, algorithms=["RS256"])
        except jwt.PyJWTError:
            return False
        return str(claims.get("iss")) == str(self.app_id)


ZERO = "0" * 40
WORKFLOW_GUARD = f"""#!/bin/sh
while read old new ref; do
  [ "$new" = {ZERO} ] && continue
  if [ "$old" = {ZERO} ]; then range="$new --not --all"; else range="$old..$new"; fi
  file=$(git log --format= --name-only $range -- .github/workflows/ | head -n 1)
  if [ -n "$file" ]; then
    printf 'refusing to allow a GitHub App to create or update workflow `%s` ' "$file" >&2
    printf 'without `workflows` permission\\n' >&2
    exit 1
  fi
done
"""


def _kept(headers: httpx.Headers) -> dict[str, str]:
    """The headers of an answer whose body is re-encoded: its length and type are new."""
    return {k: v for k, v in headers.items() if k not in ("content-length", "content-type")}


def _json(data: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=data)


def _token(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    gh.token_count += 1
    token = f"ghs_testtoken{gh.token_count:04d}secretvalue"
    gh.tokens.add(token)
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    return _json({"token": token, "expires_at": expires, "permissions": shapes.PERMISSIONS,
                  "repository_selection": "all"}, 201)  # fmt: skip


def _app(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    return _json(shapes.app(gh.app_id, gh.slug))


def _installations(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    owner = shapes.user(gh.repo.split("/")[0], "Organization")
    return _json([shapes.installation(77, owner, gh.app_id, gh.slug)])


def _hook_config(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    return _json({"url": gh.webhook_url, "content_type": "json", "insecure_ssl": "0"})


def _hook_deliveries(
    gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]
) -> httpx.Response:
    """Newest first, paged by cursor through the Link header, as GitHub does."""
    size = int(request.url.params.get("per_page", "30"))
    start = int(request.url.params.get("cursor", "0"))
    newest = sorted(gh.hook_deliveries, key=lambda d: d["delivered_at"], reverse=True)
    page = [shapes.hook_delivery(d) for d in newest[start : start + size]]
    headers = {}
    if start + size < len(newest):
        nxt = request.url.copy_set_param("cursor", str(start + size))
        headers["link"] = f'<{nxt}>; rel="next"'
    return httpx.Response(200, json=page, headers=headers)


def _redeliver(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    wanted = int(m["id"])
    if not any(d["id"] == wanted for d in gh.hook_deliveries):
        return _json({"message": "Not Found"}, 404)
    gh.redelivered.append(wanted)
    return _json({}, 202)


def _bot(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    return _json(shapes.public_user(f"{gh.slug}[bot]", "Bot", gh.bot_id))


def _repo(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    return _json(gh.repository())


def _content(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    if gh.config_text is None:
        return _json({"message": "Not Found"}, 404)
    return httpx.Response(200, text=gh.config_text, headers={"content-type": "text/plain"})


def _permission(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    level = gh.permissions.get(m["user"], "read")
    return _json({"permission": level, "role_name": level, "user": None})


def _reaction(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    content = json.loads(request.content)["content"]
    gh.reactions.append((int(m["n"]), content))
    reaction = {"id": gh._id(), "node_id": "RE_1", "content": content, "created_at": shapes.stamp(),
                "user": shapes.user(f"{gh.slug}[bot]", "Bot", gh.bot_id)}  # fmt: skip
    return _json(reaction, 201)


def issue_view(gh: GitHubSimulator, number: int) -> dict[str, Any] | None:
    """An issue as GitHub's issues API shows it; a pull request is one too, marked as such."""
    repo = gh.repository()
    # On GitHub an issue and a pull request never share a number; tests' fakes may, and
    # then the issue is what they mean.
    if number in gh.pulls and number not in gh.issues:
        pull = pull_view(gh, number)
        view = shapes.issue({"number": number, "title": pull["title"],
                             "user": {"login": pull["user"]["login"]}}, repo)  # fmt: skip
        view["pull_request"] = {
            "url": pull["url"], "html_url": pull["html_url"], "diff_url": pull["diff_url"],
            "patch_url": pull["patch_url"], "merged_at": None,
        }  # fmt: skip
        return view
    issue = gh.issues.get(number)
    return shapes.issue(issue, repo) if issue is not None else None


def _issue(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    view = issue_view(gh, int(m["n"]))
    return _json(view) if view is not None else _json({"message": "Not Found"}, 404)


def _blocked_by(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    if int(m["n"]) not in gh.issues:
        return _json({"message": "Not Found"}, 404)
    blockers = [gh.issues[b] for b in gh.blocked_by.get(int(m["n"]), []) if b in gh.issues]
    return _json([shapes.issue(b, gh.repository()) for b in blockers])


def _add_blocked_by(
    gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]
) -> httpx.Response:
    """GitHub names the blocking issue by its id, not its number."""
    found = _issue_number(gh, int(json.loads(request.content)["issue_id"]))
    if int(m["n"]) not in gh.issues or found is None:
        return _json({"message": "Not Found"}, 404)
    gh.blocked_by.setdefault(int(m["n"]), []).append(found)
    return _json(shapes.issue(gh.issues[int(m["n"])], gh.repository()), 201)


def _issue_number(gh: GitHubSimulator, issue_id: int) -> int | None:
    """The number of the issue with this id (GitHub links issues by id, not number)."""
    repo = gh.repository()
    return next((n for n in gh.issues if shapes.issue(gh.issues[n], repo)["id"] == issue_id), None)


def _new_issue(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    data = json.loads(request.content)
    title = data.get("title")
    if not isinstance(title, str) or not title.strip() or len(title) > 256:
        return _unprocessable(["title must be a non-empty string of at most 256 characters"])
    number = max([*gh.issues, *gh.pulls, 0]) + 1
    gh.issues[number] = {
        "number": number, "title": title, "body": data.get("body") or "", "state": "open",
        "user": {"login": f"{gh.slug}[bot]", "type": "Bot"},
        "labels": [{"name": n} for n in data.get("labels") or []],
    }  # fmt: skip
    gh.emit("issues", {"action": "opened", "number": number})
    return _json(shapes.issue(gh.issues[number], gh.repository()), 201)


def _edit_issue(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    issue = gh.issues.get(int(m["n"]))
    if issue is None:
        return _json({"message": "Not Found"}, 404)
    data = json.loads(request.content)
    for key in ("title", "body", "state"):
        if key in data:
            issue[key] = data[key]
    return _json(shapes.issue(issue, gh.repository()))


def _sub_issues(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    if int(m["n"]) not in gh.issues:
        return _json({"message": "Not Found"}, 404)
    children = [gh.issues[c] for c in gh.sub_issues.get(int(m["n"]), [])]
    return _json([shapes.issue(c, gh.repository()) for c in children])


def _add_sub_issue(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    """As GitHub: the child named by its id; a child has one parent; answers the parent."""
    parent = int(m["n"])
    child = _issue_number(gh, int(json.loads(request.content)["sub_issue_id"]))
    if parent not in gh.issues or child is None:
        return _json({"message": "Not Found"}, 404)
    if any(child in kids for kids in gh.sub_issues.values()) or child == parent:
        return _unprocessable(["An issue may only have one parent"])
    gh.sub_issues.setdefault(parent, []).append(child)
    return _json(shapes.issue(gh.issues[parent], gh.repository()), 201)


def _new_comment(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    comment_id = gh._id()
    body = json.loads(request.content)["body"]
    gh.comments[comment_id] = {"id": comment_id, "issue": int(m["n"]), "body": body}
    gh.emit("issue_comment", {"action": "created", "number": int(m["n"]), "id": comment_id,
                              "body": body})  # fmt: skip
    return _json(gh.comment_view(comment_id), 201)


def _list_comments(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    number = int(m["n"])
    views = {cid: gh.comment_view(cid) for cid, c in gh.comments.items() if c["issue"] == number}
    for cid, c in gh.issue_comments.items():
        if c.get("issue") == number:
            views[cid] = shapes.comment(cid, c["body"], c["user"]["login"])
    ids = sorted(views)
    page = int(request.url.params.get("page", "1"))
    size = int(request.url.params.get("per_page", "30"))
    return _json([views[cid] for cid in ids[(page - 1) * size : page * size]])


def _edit_comment(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    comment = gh.comments.get(int(m["id"]))
    if comment is None:
        return _json({"message": "Not Found"}, 404)
    before, comment["body"] = comment["body"], json.loads(request.content)["body"]
    gh.emit("issue_comment", {"action": "edited", "number": comment["issue"], "id": int(m["id"]),
                              "from": before})  # fmt: skip
    return _json(gh.comment_view(int(m["id"])))


def _new_pull(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    data = json.loads(request.content)
    number = max([*gh.issues, *gh.pulls, 0]) + 1
    gh.pulls[number] = data | {"number": number, "state": "open", "merged": False}
    gh.emit("pull_request", {"action": "opened", "number": number})
    return _json(pull_view(gh, number), 201)


def pull_view(gh: GitHubSimulator, number: int) -> dict[str, Any]:
    """A pull request as GitHub shows it: head and base resolved against the origin."""
    pull = gh.pulls[number]
    try:
        sha = gh.head_sha(pull["head"])
    except subprocess.CalledProcessError:
        sha = "0" * 40  # the branch was deleted
    repo = gh.repository()
    head_repo = repo
    if pull.get("fork"):
        head_repo = shapes.repository(f"eve/{repo['name']}", gh.repo_id + 1, "main", "")
    bot = shapes.user(f"{gh.slug}[bot]", "Bot", gh.bot_id)
    opener = shapes.user(pull["author"]) if pull.get("author") else bot
    view = shapes.pull_request(pull, repo, sha, head_repo, gh.head_sha(pull["base"]), opener)
    view["labels"] = [shapes.label(n) for n in gh.labels.get(number, [])]
    return view


def _pull(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    number = int(m["n"])
    if number not in gh.pulls:
        return _json({"message": "Not Found"}, 404)
    view = pull_view(gh, number)
    if view["state"] == "open":
        # As GitHub does for one pull request (never in lists): from a test merge of the two.
        clean = merges(gh.origin, view["base"]["sha"], view["head"]["sha"])
        view["mergeable"], view["mergeable_state"] = clean, "clean" if clean else "dirty"
    return _json(view)


def merges(origin: Path, base: str, head: str) -> bool:
    """Whether `head` merges into `base` without conflicts, by real git (≥ 2.38)."""
    found = subprocess.run(
        ["git", "merge-tree", "--write-tree", base, head], cwd=origin,
        capture_output=True, env=GIT_ENV,
    )  # fmt: skip
    return found.returncode == 0


def merge(gh: GitHubSimulator, number: int) -> str:
    """Merge a pull request as the button does (a merge commit on its base); the new base
    head. Raises ValueError when it conflicts."""
    pull = gh.pulls[number]
    base, head = gh.head_sha(pull["base"]), gh.head_sha(pull["head"])
    if not merges(gh.origin, base, head):
        raise ValueError(f"#{number} conflicts with {pull['base']}")
    tree = git_out("merge-tree", "--write-tree", base, head, cwd=gh.origin).split()[0]
    message = f"Merge pull request #{number} from {pull['head']}"
    commit = git_out("commit-tree", tree, "-p", base, "-p", head, "-m", message,
                     cwd=gh.origin).strip()  # fmt: skip
    git_out("update-ref", f"refs/heads/{pull['base']}", commit, base, cwd=gh.origin)
    pull.update(state="closed", merged=True)
    return commit


def _pulls(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    head = request.url.params.get("head", "")
    ref = head.split(":", 1)[-1]
    found = [
        pull_view(gh, n)
        for n, pr in gh.pulls.items()
        if pr["state"] == "open" and (not ref or pr["head"] == ref)
    ]
    return _json(found)


def _pull_files(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    """The files a pull request changes, from the merge base of its base and head, as GitHub
    lists them (a patch each), 100 a page."""
    pull = gh.pulls.get(int(m["n"]))
    if pull is None:
        return _json({"message": "Not Found"}, 404)
    span = f"{pull['base']}...{pull['head']}"
    out = git_out("diff", "--no-renames", "--name-status", "-z", span, cwd=gh.origin)
    parts = [x for x in out.split("\0") if x]
    statuses = {"A": "added", "D": "removed", "M": "modified"}
    entries = []
    for status, name in zip(parts[::2], parts[1::2], strict=True):
        patch = git_out("diff", "--no-renames", span, "--", name, cwd=gh.origin)
        hunks = patch[patch.find("@@") :] if "@@" in patch else ""
        base = f"https://github.test/{gh.repo}"
        entries.append({
            "sha": "0" * 40, "filename": name, "status": statuses.get(status, "modified"),
            "additions": 0, "deletions": 0, "changes": 0, "patch": hunks,
            "blob_url": f"{base}/blob/{pull['head']}/{name}",
            "raw_url": f"{base}/raw/{pull['head']}/{name}",
            "contents_url": f"{base}/contents/{name}",
        })  # fmt: skip
    page = int(request.url.params.get("page", "1"))
    size = int(request.url.params.get("per_page", "30"))
    return _json(entries[(page - 1) * size : page * size])


def _check_runs(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    runs = []
    for run in gh.check_runs.get(m["sha"], []):
        owner = run.get("app") or {"id": 15368, "slug": "github-actions"}
        runs.append(shapes.check_run(run, shapes.app(owner["id"], owner["slug"])))
    return _json({"total_count": len(runs), "check_runs": runs})


CHECK_STATUSES = ("queued", "in_progress", "completed")
CHECK_CONCLUSIONS = ("action_required", "cancelled", "failure", "neutral", "success", "skipped",
                     "stale", "timed_out")  # fmt: skip
CHECK_TEXT_LIMIT = 65535


def _check_problems(data: dict[str, Any]) -> list[str]:
    """What GitHub would refuse in a check run's create or update body (422)."""
    problems = []
    status = data.get("status")
    conclusion = data.get("conclusion")
    if status is not None and status not in CHECK_STATUSES:
        problems.append(f"status {status!r} is not one of {', '.join(CHECK_STATUSES)}")
    if conclusion is not None and conclusion not in CHECK_CONCLUSIONS:
        problems.append(f"conclusion {conclusion!r} is not a conclusion")
    if (status == "completed" or data.get("completed_at")) and conclusion is None:
        problems.append("conclusion is required when status is completed")
    url = data.get("details_url")
    if url is not None and not str(url).startswith(("http://", "https://")):
        problems.append("details_url must be an http(s) URL")
    output = data.get("output")
    if output is not None:
        if not output.get("title") or not output.get("summary"):
            problems.append("output needs a title and a summary")
        for key in ("summary", "text"):
            if len(str(output.get(key) or "")) > CHECK_TEXT_LIMIT:
                problems.append(f"output.{key} is longer than {CHECK_TEXT_LIMIT} characters")
    return problems


def _unprocessable(problems: list[str]) -> httpx.Response:
    message = "Invalid request.\n\n" + "\n".join(problems)
    return _json(
        {"message": message, "documentation_url": "https://docs.github.com/rest/checks"}, 422
    )


def _apply_check(gh: GitHubSimulator, run: dict[str, Any], data: dict[str, Any]) -> None:
    for key in ("name", "details_url", "external_id", "started_at", "status", "conclusion"):
        if key in data:
            run[key] = data[key]
    if data.get("conclusion") is not None:
        run["status"] = "completed"  # a conclusion completes the run, as on GitHub
    if "output" in data:
        run["output"] = {"title": data["output"]["title"], "summary": data["output"]["summary"],
                         "text": data["output"].get("text"), "annotations_count": 0}  # fmt: skip


def _new_check_run(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    data = json.loads(request.content)
    problems = _check_problems(data)
    if not data.get("name") or not data.get("head_sha"):
        problems.append("name and head_sha are required")
    if problems:
        return _unprocessable(problems)
    sha = data["head_sha"]
    try:
        git_out("cat-file", "-e", f"{sha}^{{commit}}", cwd=gh.origin)
    except subprocess.CalledProcessError:
        return _unprocessable([f"No commit found for SHA: {sha}"])
    run: dict[str, Any] = {
        "id": gh._id(), "head_sha": sha, "status": "queued", "conclusion": None,
        "app": {"id": gh.app_id, "slug": gh.slug},
        "output": {"title": None, "summary": None, "annotations_count": 0},
    }  # fmt: skip
    _apply_check(gh, run, data)
    gh.check_runs.setdefault(sha, []).append(run)
    gh.emit("check_run", {"action": "created", "run": run})
    return _json(shapes.check_run(run, shapes.app(gh.app_id, gh.slug)), 201)


def _get_check_run(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    wanted = int(m["id"])
    run = next((r for runs in gh.check_runs.values() for r in runs if r["id"] == wanted), None)
    if run is None:
        return _json({"message": "Not Found"}, 404)
    owner = run.get("app") or {"id": 15368, "slug": "github-actions"}
    return _json(shapes.check_run(run, shapes.app(owner["id"], owner["slug"])))


def _update_check_run(
    gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]
) -> httpx.Response:
    wanted = int(m["id"])
    run = next((r for runs in gh.check_runs.values() for r in runs if r["id"] == wanted), None)
    if run is None:
        return _json({"message": "Not Found"}, 404)
    if (run.get("app") or {}).get("id") != gh.app_id:
        # An App may update only its own check runs.
        return _json({"message": "Resource not accessible by integration"}, 403)
    data = json.loads(request.content)
    problems = _check_problems(data)
    if problems:
        return _unprocessable(problems)
    was = run["status"]
    _apply_check(gh, run, data)
    if run["status"] == "completed" and was != "completed":
        gh.emit("check_run", {"action": "completed", "run": run})
    return _json(shapes.check_run(run, shapes.app(gh.app_id, gh.slug)))


def _annotations(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    return _json([shapes.annotation(a) for a in gh.annotations.get(int(m["id"]), [])])


def _job_logs(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    if int(m["id"]) not in gh.job_logs:
        return _json({"message": "Not Found"}, 404)
    return httpx.Response(302, headers={"location": f"{gh.logs_url}/jobs/{m['id']}?sig=signed"})


def _status(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    statuses = gh.statuses.get(m["sha"], [])
    states = {s["state"] for s in statuses}
    # As GitHub: no statuses yet, or any still pending, is "pending".
    combined = (
        "failure"
        if states & {"failure", "error"}
        else "pending"
        if "pending" in states or not states
        else "success"
    )
    return _json(
        {
            "state": combined, "sha": m["sha"], "total_count": len(statuses),
            "statuses": [shapes.commit_status(st, i + 1) for i, st in enumerate(statuses)],
            "repository": gh.repository(), "commit_url": "https://github.test/commit",
            "url": "https://github.test/status",
        }
    )  # fmt: skip


def _review(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    review = gh.reviews.get(int(m["id"]))
    if review is None:
        return _json({"message": "Not Found"}, 404)
    return _json(shapes.review(review, gh.head_sha(gh.pulls[int(m["n"])]["head"])))


def _reviews(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    commit = gh.head_sha(gh.pulls[int(m["n"])]["head"])
    return _json([shapes.review(r, commit) for r in gh.reviews.values()])


def _review_comments(
    gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]
) -> httpx.Response:
    commit = gh.head_sha(gh.pulls[int(m["n"])]["head"])
    notes = gh.review_comments.get(int(m["id"]), [])
    return _json([shapes.review_comment(c, int(m["id"]), commit) for c in notes])


def _reply(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    body = json.loads(request.content)["body"]
    gh.replies.append((int(m["id"]), body))
    commit = gh.head_sha(gh.pulls[int(m["n"])]["head"])
    reply = {"id": gh._id(), "body": body, "in_reply_to_id": int(m["id"]),
             "user": {"login": f"{gh.slug}[bot]"}}  # fmt: skip
    return _json(shapes.review_comment(reply, 0, commit), 201)


def _get_comment(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    comment = gh.issue_comments.get(int(m["id"]))
    if comment is None and int(m["id"]) in gh.comments:
        return _json(gh.comment_view(int(m["id"])))
    if comment is None:
        return _json({"message": "Not Found"}, 404)
    return _json(shapes.comment(comment["id"], comment["body"], comment["user"]["login"]))


def _add_labels(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    names = json.loads(request.content)["labels"]
    current = gh.labels.setdefault(int(m["n"]), [])
    for name in names:
        if name not in current:
            current.append(name)
            gh.emit("label", {"action": "labeled", "number": int(m["n"]), "name": name})
    return _json([shapes.label(n) for n in current])


def _remove_label(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    current = gh.labels.get(int(m["n"]), [])
    name = unquote(m["name"])
    if name not in current:
        return _json({"message": "Label does not exist"}, 404)
    current.remove(name)
    gh.emit("label", {"action": "unlabeled", "number": int(m["n"]), "name": name})
    return _json([shapes.label(n) for n in current])


def _delete_ref(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    ref = unquote(m["ref"])
    gh.deleted_refs.append(ref)
    git_out("update-ref", "-d", f"refs/heads/{ref}", cwd=gh.origin)
    return httpx.Response(204)


def logs_host(gh: GitHubSimulator, request: httpx.Request) -> httpx.Response:
    job = int(request.url.path.rsplit("/", 1)[-1])
    gh.calls.append(
        Call("GET", f"LOGS {request.url.path}", None, request.headers.get("authorization", ""))
    )
    return httpx.Response(200, text=gh.job_logs.get(job, ""))


def _reviewers(gh: GitHubSimulator, request: httpx.Request, m: re.Match[str]) -> httpx.Response:
    wanted = json.loads(request.content)["reviewers"]
    gh.review_requests.setdefault(int(m["n"]), []).extend(wanted)
    return _json(pull_view(gh, int(m["n"])), 201)


REPO_RE = r"/repos/[^/]+/[^/]+"
ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", r"/app/installations/(?P<id>\d+)/access_tokens", _token),
    ("GET", r"/app", _app),
    ("GET", r"/app/installations", _installations),
    ("GET", r"/app/hook/config", _hook_config),
    ("GET", r"/app/hook/deliveries", _hook_deliveries),
    ("POST", r"/app/hook/deliveries/(?P<id>\d+)/attempts", _redeliver),
    ("GET", r"/users/[^/]+(%5Bbot%5D|\[bot\])", _bot),
    ("GET", REPO_RE, _repo),
    ("GET", REPO_RE + r"/contents/\.github/forgehand\.yml", _content),
    ("GET", REPO_RE + r"/collaborators/(?P<user>[^/]+)/permission", _permission),
    ("POST", REPO_RE + r"/issues/(?P<n>\d+)/reactions", _reaction),
    ("GET", REPO_RE + r"/issues/(?P<n>\d+)", _issue),
    ("POST", REPO_RE + r"/issues", _new_issue),
    ("PATCH", REPO_RE + r"/issues/(?P<n>\d+)", _edit_issue),
    ("GET", REPO_RE + r"/issues/(?P<n>\d+)/sub_issues", _sub_issues),
    ("POST", REPO_RE + r"/issues/(?P<n>\d+)/sub_issues", _add_sub_issue),
    ("GET", REPO_RE + r"/issues/(?P<n>\d+)/dependencies/blocked_by", _blocked_by),
    ("POST", REPO_RE + r"/issues/(?P<n>\d+)/dependencies/blocked_by", _add_blocked_by),
    ("POST", REPO_RE + r"/issues/(?P<n>\d+)/comments", _new_comment),
    ("GET", REPO_RE + r"/issues/(?P<n>\d+)/comments", _list_comments),
    ("PATCH", REPO_RE + r"/issues/comments/(?P<id>\d+)", _edit_comment),
    ("POST", REPO_RE + r"/pulls", _new_pull),
    ("GET", REPO_RE + r"/pulls", _pulls),
    ("GET", REPO_RE + r"/commits/(?P<sha>[0-9a-f]+)/check-runs", _check_runs),
    ("GET", REPO_RE + r"/commits/(?P<sha>[0-9a-f]+)/status", _status),
    ("GET", REPO_RE + r"/check-runs/(?P<id>\d+)/annotations", _annotations),
    ("POST", REPO_RE + r"/check-runs", _new_check_run),
    ("GET", REPO_RE + r"/check-runs/(?P<id>\d+)", _get_check_run),
    ("PATCH", REPO_RE + r"/check-runs/(?P<id>\d+)", _update_check_run),
    ("GET", REPO_RE + r"/actions/jobs/(?P<id>\d+)/logs", _job_logs),
    ("GET", REPO_RE + r"/pulls/(?P<n>\d+)/reviews", _reviews),
    ("GET", REPO_RE + r"/pulls/(?P<n>\d+)/reviews/(?P<id>\d+)", _review),
    ("GET", REPO_RE + r"/pulls/(?P<n>\d+)/reviews/(?P<id>\d+)/comments", _review_comments),
    ("POST", REPO_RE + r"/pulls/(?P<n>\d+)/comments/(?P<id>\d+)/replies", _reply),
    ("GET", REPO_RE + r"/issues/comments/(?P<id>\d+)", _get_comment),
    ("POST", REPO_RE + r"/issues/(?P<n>\d+)/labels", _add_labels),
    ("DELETE", REPO_RE + r"/issues/(?P<n>\d+)/labels/(?P<name>[^/]+)", _remove_label),
    ("DELETE", REPO_RE + r"/git/refs/heads/(?P<ref>.+)", _delete_ref),
    ("GET", REPO_RE + r"/pulls/(?P<n>\d+)", _pull),
    ("GET", REPO_RE + r"/pulls/(?P<n>\d+)/files", _pull_files),
    ("POST", REPO_RE + r"/pulls/(?P<n>\d+)/requested_reviewers", _reviewers),
]
