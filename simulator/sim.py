"""A whole simulated GitHub: one repository, people acting on it, CI, and signed webhooks.

Webhooks are POSTed to the web process exactly as GitHub sends them: event, delivery GUID and
SHA-256 signature headers, a JSON body carrying the `installation` key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from simulator import shapes
from simulator.ci import run_checks
from simulator.github import GitHubSimulator, git_out, issue_view, merge, pull_view
from simulator.server import Server

ACTIONS_APP_ID = 15368  # GitHub Actions' own App id on github.com
HOOK_ID = 501  # the App's webhook, as GitHub numbers it


def bare_from(seed: Path, bare: Path, message: str) -> Path:
    """A new bare repository `bare` whose `main` is all of `seed` in one commit."""
    git_out("init", "--quiet", "-b", "main", cwd=seed)
    git_out("add", "-A", cwd=seed)
    git_out("commit", "--quiet", "-m", message, cwd=seed)
    git_out("clone", "--quiet", "--bare", str(seed), str(bare), cwd=seed.parent)
    return bare


def signed_headers(secret: str, event: str, raw: bytes) -> dict[str, str]:
    """The headers GitHub sends with a delivery of `raw`: event, a new GUID, the signature."""
    signature = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={signature}",
        "Content-Type": "application/json",
    }


@dataclass
class Delivery:
    guid: str
    event: str
    action: str
    status: int
    payload: dict[str, Any]
    headers: dict[str, str]


@dataclass
class Simulation:
    root: Path
    webhook_url: str
    secret: str
    app_id: int
    public_key: str
    test_command: str
    repo: str = "demo/calc"
    repo_id: int = 4101
    installation_id: int = 77
    host: str = "127.0.0.1"  # the address the API listens on (Server)
    deliveries: list[Delivery] = field(default_factory=list)
    sim: GitHubSimulator = field(init=False)
    server: Server = field(init=False)
    _outbox: queue.Queue[tuple[str, dict[str, Any]] | None] = field(default_factory=queue.Queue)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _seen_heads: dict[str, str] = field(default_factory=dict)
    _seen_refs: dict[str, str] | None = None  # branch → head, for `push` webhooks

    # --- set-up -----------------------------------------------------------------------------

    def start(self, files: dict[str, str]) -> None:
        origin = self._make_repository(files)
        placeholder_logs = "http://localhost:0/_logs"
        self.sim = GitHubSimulator(
            clone_url=f"file://{origin}",
            repo=self.repo,
            repo_id=self.repo_id,
            app_id=self.app_id,
            public_key=self.public_key,
            logs_url=placeholder_logs,
        )
        self.sim.permissions = {"carol": "admin", "alice": "write"}
        if shapes.PERMISSIONS.get("workflows") != "write":
            self.sim.guard_workflows()
        self.server = Server(self.sim, self.host)
        # Logs live on "another host", as on GitHub: the App must not send its token there.
        self.sim.logs_url = f"http://localhost:{self.server.port}/_logs"
        self.sim.listeners.append(self._app_did)
        for target in (self._send_loop, self._watch_loop):
            thread = threading.Thread(target=target, daemon=True, name=target.__name__)
            thread.start()
            self._threads.append(thread)

    @property
    def origin(self) -> Path:
        return self.root / "github" / f"{self.repo.split('/')[1]}.git"

    def _make_repository(self, files: dict[str, str]) -> Path:
        seed = self.root / "github" / "seed"
        seed.mkdir(parents=True)
        for name, text in files.items():
            (seed / name).parent.mkdir(parents=True, exist_ok=True)
            (seed / name).write_text(text)
        return bare_from(seed, self.origin, "Initial commit")

    def stop(self) -> None:
        self._stop.set()
        self._outbox.put(None)
        for thread in self._threads:
            thread.join(timeout=10)
        self.server.stop()

    # --- people -----------------------------------------------------------------------------

    def open_issue(self, number: int, title: str, body: str, author: str = "carol") -> None:
        self.sim.add_issue(number, title, body)
        self.sim.issues[number]["user"] = {"login": author, "type": "User"}
        self.sim.issues[number]["labels"] = []

    def label_issue(self, number: int, label: str, by: str = "carol") -> None:
        issue = self.sim.issues[number]
        issue["labels"].append({"name": label})
        payload = {"action": "labeled", "label": shapes.label(label), "issue": self._issue(number)}
        self.deliver("issues", payload, by)

    def comment(self, number: int, body: str, by: str = "carol") -> int:
        comment_id = self.sim._id()
        self.sim.issue_comments[comment_id] = {
            "id": comment_id,
            "body": body,
            "user": {"login": by},
            "issue": number,
        }
        comment = shapes.comment(comment_id, body, by) | {"author_association": "OWNER"}
        payload = {"action": "created", "issue": self._issue(number), "comment": comment}
        self.deliver("issue_comment", payload, by)
        return comment_id

    def edit_comment(self, comment_id: int, body: str, by: str = "carol") -> None:
        """A person edits one of the App's comments (people with write access may)."""
        comment = self.sim.comments[comment_id]
        before, comment["body"] = comment["body"], body
        view = self.sim.comment_view(comment_id) | {"author_association": "NONE"}
        payload = {"action": "edited", "issue": self._issue(comment["issue"]), "comment": view,
                   "changes": {"body": {"from": before}}}  # fmt: skip
        self.deliver("issue_comment", payload, by)

    def review(
        self, number: int, body: str, comments: list[tuple[str, int, str]], by: str = "carol"
    ) -> int:
        review_id = self.sim._id()
        pull = pull_view(self.sim, number)
        head = pull["head"]["sha"]
        self.sim.reviews[review_id] = {
            "id": review_id, "body": body, "state": "CHANGES_REQUESTED", "user": {"login": by},
            "commit_id": head,
        }  # fmt: skip
        self.sim.review_comments[review_id] = [
            {"id": self.sim._id(), "path": path, "line": line, "body": text,
             "diff_hunk": "@@ -1,4 +1,4 @@"}
            for path, line, text in comments
        ]  # fmt: skip
        review = shapes.review(self.sim.reviews[review_id], head) | {
            "state": "changes_requested", "author_association": "OWNER",
            "html_url": f"{pull['html_url']}#review", "pull_request_url": pull["url"],
            "_links": {"html": {"href": pull["html_url"]}, "pull_request": {"href": pull["url"]}},
        }  # fmt: skip
        payload = {"action": "submitted", "review": review, "pull_request": pull}
        self.deliver("pull_request_review", payload, by)
        return review_id

    def merge_pull(self, number: int, by: str = "carol") -> str:
        """Press the merge button: a merge commit on the base; the pull request and the issue
        its body says it fixes close, each with its webhook (the push comes from the watcher)."""
        commit = merge(self.sim, number)
        pull = pull_view(self.sim, number)
        self.deliver("pull_request", {"action": "closed", "number": number, "pull_request": pull},
                     by)  # fmt: skip
        for fixed in re.findall(r"(?im)^(?:fixes|closes|resolves) #(\d+)", pull.get("body") or ""):
            issue = self.sim.issues.get(int(fixed))
            if issue is not None and issue["state"] == "open":
                issue["state"] = "closed"
                self.deliver("issues", {"action": "closed", "issue": self._issue(int(fixed))}, by)
        return commit

    def rerun_check(self, run_id: int, by: str = "carol") -> None:
        """Press "Re-run" on a check run: GitHub tells the App that made it."""
        sha, run = next(
            (sha, r) for sha, runs in self.sim.check_runs.items() for r in runs if r["id"] == run_id
        )
        owner = run["app"]
        views = [
            pull_view(self.sim, n) for n, pr in self.sim.pulls.items() if pr["state"] == "open"
        ]
        pulls = [v for v in views if v["head"]["sha"] == sha]
        view = shapes.check_run(run, shapes.app(owner["id"], owner["slug"])) | {
            "pull_requests": [_pull_ref(p) for p in pulls]
        }
        self.deliver("check_run", {"action": "rerequested", "check_run": view}, by)

    def _issue(self, number: int) -> dict[str, Any]:
        view = issue_view(self.sim, number)
        if view is None:
            raise KeyError(f"no issue #{number}")
        return view

    # --- webhooks -----------------------------------------------------------------------------

    def deliver(self, event: str, payload: dict[str, Any], sender: str) -> None:
        kind = "Bot" if sender.endswith("[bot]") else "User"
        body = payload | {
            "repository": self.sim.repository(),
            "sender": shapes.user(sender, kind),
            "installation": {"id": self.installation_id, "node_id": "MDIzOkluc3RhbGxhdGlvbjc3"},
        }  # fmt: skip
        self._outbox.put((event, shapes.retarget(body, self.repo)))

    def _send_loop(self) -> None:
        with httpx.Client(timeout=10) as client:
            while (item := self._outbox.get()) is not None:
                event, payload = item
                raw = json.dumps(payload).encode()
                # What GitHub sends an App's webhook besides the signed basics.
                headers = signed_headers(self.secret, event, raw) | {
                    "X-GitHub-Hook-ID": str(HOOK_ID),
                    "X-GitHub-Hook-Installation-Target-Type": "integration",
                    "X-GitHub-Hook-Installation-Target-ID": str(self.app_id),
                    "User-Agent": "GitHub-Hookshot/5f3c0a1",
                }
                guid = headers["X-GitHub-Delivery"]
                try:
                    status = client.post(self.webhook_url, content=raw, headers=headers).status_code
                except httpx.HTTPError:
                    status = 0  # GitHub does not retry; `forgehand redeliver` would
                action = str(payload.get("action", ""))
                self.deliveries.append(Delivery(guid, event, action, status, payload, headers))

    def _app_did(self, event: str, data: dict[str, Any]) -> None:
        """Send the webhooks GitHub sends when the App acts: its own comments, edits, pull
        requests and labels come back to it, and it must ignore them."""
        bot = f"{self.sim.slug}[bot]"
        if event == "issue_comment":
            comment = self.sim.comment_view(data["id"]) | {"author_association": "NONE"}
            payload = {"action": data["action"], "issue": self._issue(data["number"]),
                       "comment": comment}  # fmt: skip
            if data["action"] == "edited":
                payload["changes"] = {"body": {"from": data["from"]}}
            self.deliver("issue_comment", payload, bot)
        elif event == "issues":
            payload = {"action": data["action"], "issue": self._issue(data["number"])}
            self.deliver("issues", payload, bot)
        elif event == "pull_request":
            pull = pull_view(self.sim, data["number"])
            payload = {"action": data["action"], "number": data["number"], "pull_request": pull}
            self.deliver("pull_request", payload, bot)
        elif event == "label":
            number, label = data["number"], shapes.label(data["name"])
            if number in self.sim.pulls:
                pull = pull_view(self.sim, number)
                payload = {"action": data["action"], "number": number, "pull_request": pull,
                           "label": label}  # fmt: skip
                self.deliver("pull_request", payload, bot)
            else:
                payload = {"action": data["action"], "issue": self._issue(number), "label": label}
                self.deliver("issues", payload, bot)
        elif event == "check_run":
            # GitHub tells the App of its own check runs too; forgehand must ignore them.
            check_run = shapes.check_run(data["run"], shapes.app(self.app_id, self.sim.slug))
            self.deliver("check_run", {"action": data["action"], "check_run": check_run}, bot)

    # --- CI -----------------------------------------------------------------------------------

    def _watch_loop(self) -> None:
        while not self._stop.wait(0.2):
            self._watch_pushes()
            for number, pull in list(self.sim.pulls.items()):
                if pull["state"] != "open":
                    continue
                head = pull_view(self.sim, number)["head"]["sha"]
                before = self._seen_heads.get(pull["head"])
                if before != head:
                    self._seen_heads[pull["head"]] = head
                    if before is not None:  # a push to an open pull request's branch
                        self._synchronize(number, before, head)
                    self._run_ci(number, head)

    def _synchronize(self, number: int, before: str, after: str) -> None:
        pull = pull_view(self.sim, number)
        payload = {"action": "synchronize", "number": number, "pull_request": pull,
                   "before": before, "after": after}  # fmt: skip
        # Only the App pushes to its branches here.
        self.deliver("pull_request", payload, f"{self.sim.slug}[bot]")

    def _watch_pushes(self) -> None:
        """A `push` webhook for every branch whose head moved since the last look, by whoever
        pushes there: the App on its own branches, people elsewhere."""
        out = git_out("for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads",
                      cwd=self.origin)  # fmt: skip
        heads = dict(line.split() for line in out.splitlines())
        seen, self._seen_refs = self._seen_refs, heads
        if seen is None:
            return  # the repository as it was created: nothing was pushed yet
        for branch, sha in heads.items():
            before = seen.get(branch, "0" * 40)
            if before == sha:
                continue
            pusher = f"{self.sim.slug}[bot]" if branch.startswith("agent/") else "carol"
            payload: dict[str, Any] = {
                "ref": f"refs/heads/{branch}", "before": before, "after": sha, "base_ref": None,
                "compare": f"https://github.test/{self.repo}/compare/{before[:12]}...{sha[:12]}",
                "created": branch not in seen, "deleted": False, "forced": False,
                "pusher": {"name": pusher, "email": None}, "commits": [], "head_commit": None,
            }  # fmt: skip
            self.deliver("push", payload, pusher)

    def _run_ci(self, number: int, sha: str) -> None:
        pull = pull_view(self.sim, number)
        run_id = self.sim.add_check_run(sha, "sim-ci / test", status="in_progress")
        app = shapes.app(ACTIONS_APP_ID, "github-actions")
        pr_ref = _pull_ref(pull)
        actions = "github-actions[bot]"
        suite = self._suite(run_id, sha, pull, app, pr_ref, status="queued", conclusion=None)
        self.deliver("check_suite", {"action": "requested", "check_suite": suite}, actions)
        started = self._check_run(run_id, sha, pull, app, pr_ref)
        self.deliver("check_run", {"action": "created", "check_run": started}, actions)
        outcome = run_checks(self.origin, sha, self.test_command)
        run = next(r for r in self.sim.check_runs[sha] if r["id"] == run_id)
        run.update(status="completed", conclusion=outcome.conclusion)
        run["output"] = {
            "title": "Tests passed" if outcome.conclusion == "success" else "Tests failed",
            "summary": outcome.log.splitlines()[-1] if outcome.log else "",
            "annotations_count": len(outcome.annotations),
        }
        self.sim.annotations[run_id] = outcome.annotations
        self.sim.job_logs[run_id] = outcome.log
        check_run = self._check_run(run_id, sha, pull, app, pr_ref)
        suite = self._suite(
            run_id, sha, pull, app, pr_ref, status="completed", conclusion=outcome.conclusion
        )
        self.deliver("check_run", {"action": "completed", "check_run": check_run}, actions)
        self.deliver("check_suite", {"action": "completed", "check_suite": suite}, actions)

    def _check_run(
        self, run_id: int, sha: str, pull: dict[str, Any], app: dict[str, Any], pr_ref: Any
    ) -> dict[str, Any]:
        run = next(r for r in self.sim.check_runs[sha] if r["id"] == run_id)
        view = shapes.check_run(run, app) | {"head_sha": sha, "pull_requests": [pr_ref]}
        view["check_suite"] |= {"id": run_id, "head_sha": sha, "head_branch": pull["head"]["ref"]}
        return view

    def _suite(
        self,
        run_id: int,
        sha: str,
        pull: dict[str, Any],
        app: dict[str, Any],
        pr_ref: Any,
        status: str,
        conclusion: str | None,
    ) -> dict[str, Any]:
        return shapes.shape(
            "check_suite", id=run_id, head_sha=sha, head_branch=pull["head"]["ref"],
            conclusion=conclusion, status=status, app=app, pull_requests=[pr_ref],
            before=None, after=sha,
        )  # fmt: skip

    # --- what happened ----------------------------------------------------------------------------

    def latest_check(self, number: int) -> str | None:
        """The head commit's check conclusion: None while running or before any."""
        head = pull_view(self.sim, number)["head"]["sha"]
        runs = [r for r in self.sim.check_runs.get(head, []) if r["app"]["id"] != self.app_id]
        return runs[-1]["conclusion"] if runs and runs[-1]["status"] == "completed" else None

    def wait(self, condition: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.1)


def _pull_ref(pull: dict[str, Any]) -> dict[str, Any]:
    """A pull request as check events name it: ids, refs and SHAs only."""
    return {
        "id": pull["id"], "number": pull["number"], "url": pull["url"],
        "head": {k: pull["head"][k] for k in ("ref", "sha")}
        | {"repo": {k: pull["head"]["repo"][k] for k in ("id", "url", "name")}},
        "base": {k: pull["base"][k] for k in ("ref", "sha")}
        | {"repo": {k: pull["base"]["repo"][k] for k in ("id", "url", "name")}},
    }  # fmt: skip
