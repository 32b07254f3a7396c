"""What failed on a commit: check runs, their annotations and job logs, and commit statuses."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.github import HEADERS, Installation

FAILING = frozenset({"failure", "timed_out", "startup_failure", "action_required"})
LOG_LINES = 80
LOG_CHARS = 6000
ANNOTATIONS = 20


@dataclass(frozen=True)
class Failure:
    name: str
    conclusion: str
    summary: str = ""
    annotations: tuple[str, ...] = ()
    log: str = ""
    url: str = ""


@dataclass
class Checks:
    pending: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


def read_checks(
    api: Installation, repo: str, sha: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    runs = api.get(f"/repos/{repo}/commits/{sha}/check-runs", per_page=100)["check_runs"]
    # The App's own check run shows a task's progress: it is never CI to wait for or to fix.
    own = api.app.settings.app_id
    runs = [r for r in runs if (r.get("app") or {}).get("id") != own]
    statuses = api.get(f"/repos/{repo}/commits/{sha}/status")["statuses"]
    return runs, statuses


def pending(runs: list[dict[str, Any]], statuses: list[dict[str, Any]]) -> list[str]:
    names = [r["name"] for r in runs if r.get("status") != "completed"]
    return names + [s["context"] for s in statuses if s.get("state") == "pending"]


def wait_for_checks(
    api: Installation, repo: str, sha: str, limit: float, poll: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The commit's checks once none is still running, or as they are when `limit` runs out."""
    deadline = time.monotonic() + limit
    while True:
        runs, statuses = read_checks(api, repo, sha)
        if not pending(runs, statuses) or time.monotonic() >= deadline:
            return runs, statuses
        time.sleep(poll)


def _failed_run(run: dict[str, Any]) -> bool:
    return run.get("status") == "completed" and run.get("conclusion") in FAILING


def _failed_status(status: dict[str, Any]) -> bool:
    return status.get("state") in ("failure", "error")


def failing(runs: list[dict[str, Any]], statuses: list[dict[str, Any]]) -> bool:
    """Whether any check failed — without reading annotations or logs, as `failures` does."""
    return any(map(_failed_run, runs)) or any(map(_failed_status, statuses))


@dataclass(frozen=True)
class Verdict:
    """What is known of CI on one commit, for the words forgehand shows about it."""

    state: str  # "failed", "pending", "passed", or "none" (no check has reported)
    failed: tuple[str, ...] = ()

    @property
    def words(self) -> str:
        if self.state == "failed":
            return f"failed ({', '.join(self.failed)})" if self.failed else "failed"
        return {"none": "no checks yet"}.get(self.state, self.state)


def verdict(runs: list[dict[str, Any]], statuses: list[dict[str, Any]]) -> Verdict:
    """Red as soon as any check failed, even while others still run."""
    failed = [r["name"] for r in runs if _failed_run(r)]
    failed += [s["context"] for s in statuses if _failed_status(s)]
    if failed:
        return Verdict("failed", tuple(dict.fromkeys(failed)))
    if pending(runs, statuses):
        return Verdict("pending")
    return Verdict("passed" if runs or statuses else "none")


def failures(
    api: Installation, repo: str, runs: list[dict[str, Any]], statuses: list[dict[str, Any]]
) -> list[Failure]:
    found = []
    for run in runs:
        if not _failed_run(run):
            continue
        output = run.get("output") or {}
        notes: tuple[str, ...] = ()
        if output.get("annotations_count"):
            raw = api.get(f"/repos/{repo}/check-runs/{run['id']}/annotations", per_page=ANNOTATIONS)
            notes = tuple(_annotation(a) for a in raw[:ANNOTATIONS])
        log = ""
        if (run.get("app") or {}).get("slug") == "github-actions":
            log = job_log(api, repo, int(run["id"]))
        summary = "\n".join(x for x in (output.get("title"), output.get("summary")) if x)
        found.append(
            Failure(run["name"], run["conclusion"], summary, notes, log, run.get("html_url", ""))
        )
    for status in statuses:
        if _failed_status(status):
            found.append(
                Failure(
                    status["context"], status["state"], status.get("description") or "",
                    url=status.get("target_url") or "",
                )
            )  # fmt: skip
    return found


def _annotation(a: dict[str, Any]) -> str:
    line = a.get("start_line")
    where = f"{a.get('path', '?')}:{line}" if line else str(a.get("path", "?"))
    return f"{where}: {a.get('annotation_level', 'failure')}: {a.get('message', '').strip()}"


def job_log(api: Installation, repo: str, job_id: int) -> str:
    """The tail of a GitHub Actions job's log.

    GitHub answers with a redirect to a signed URL on another host; the token is sent only
    to GitHub, never to that host.
    """
    base = api.app.settings.github_api_url
    headers = {"Authorization": f"token {api.token()}"}
    try:
        with httpx.Client(timeout=30, follow_redirects=False, headers=HEADERS) as client:
            first = client.get(f"{base}/repos/{repo}/actions/jobs/{job_id}/logs", headers=headers)
            if first.status_code in (301, 302, 303, 307, 308):
                response = client.get(first.headers["location"])
            else:
                response = first
    except httpx.HTTPError:
        return ""
    if response.status_code != 200:
        return ""
    lines = response.text.splitlines()[-LOG_LINES:]
    return "\n".join(lines)[-LOG_CHARS:]
