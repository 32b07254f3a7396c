"""The dashboard's unit of work: an issue or a pull request with its tasks in order, and
what each attempt came to, in words a person reads.

A task's id stays in URLs; people see the issue or pull request, its title and the outcome.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from redis import Redis

from app.dashboard.task_rows import Row, row_from_hash
from app.store import TASKS_INDEX, Spend, Store, task_key, text, work_spend
from app.tasks import Kind

# The newest tasks the main view groups; older work is in the task list.
RECENT = 2000
_PUSHED = re.compile(r"^pushed ([0-9a-f]{7,40})\b")
LIVE_ORDER = ("running", "queued", "waiting")


@dataclass
class Item:
    repo: str
    repo_id: int
    number: int  # 0: the repository itself (its base branch moved, CI on no pull request)
    rows: list[Row] = field(default_factory=list)  # oldest first
    title: str = ""
    pull: bool = False
    linked: int | None = None  # the issue's pull request, or the pull request's issue
    attempts: list[dict[str, Any]] = field(default_factory=list)  # CI-fix attempts counting
    escalated: bool = False
    ci: dict[str, str] = field(default_factory=dict)  # SHA → what CI said of it
    linked_state: str = ""  # an issue's: the state of the work on its pull request

    @property
    def key(self) -> tuple[int, int]:
        return self.repo_id, self.number

    @property
    def updated(self) -> float:
        return max(r.updated for r in self.rows)

    @property
    def work(self) -> list[Row]:
        """Its tasks that did work people asked for: bookkeeping left out, unless that is all."""
        done = [r for r in self.rows if r.task.kind not in BOOKKEEPING]
        return done or self.rows

    @property
    def state(self) -> str:
        """What the work is doing now: the liveliest live task, else how the last ended (a
        pull request: merged or closed, once it is)."""
        states = {r.state for r in self.work}
        for live in LIVE_ORDER:
            if live in states:
                return live
        if self.escalated:
            return "escalated"
        last = self.work[-1]
        if last.task.kind is Kind.CLOSED and last.state == "done":
            return "merged" if last.result.startswith("merged") else "closed"
        return last.state

    @property
    def outcome(self) -> str:
        return outcome(self.work[-1], self.ci)

    @property
    def next_step(self) -> str:
        """What a person does next, if anything."""
        state = self.state
        if state in LIVE_ORDER:
            return "nothing yet: forgehand is on it" if state != "waiting" else (
                "nothing: it starts by itself when what it waits for is done")  # fmt: skip
        if state == "escalated":
            return "a human takes over: see the ways out"
        if state == "failed":
            return "read why, fix the cause, then Retry the task"
        if state == "cancelled":
            return "nothing, or Retry the task"
        if not self.number or state in ("merged", "closed"):
            return "nothing"
        if self.pull:
            return "review it on GitHub and merge it (or comment /agent … for changes)"
        if self.linked and self.linked_state in ("merged", "closed"):
            return f"nothing: its pull request #{self.linked} is {self.linked_state}"
        if self.linked and self.linked_state:
            return f"see pull request #{self.linked} ({self.linked_state})"
        if self.linked:
            return f"review pull request #{self.linked}"
        return "nothing"

    @property
    def path(self) -> str:
        return f"/work/{self.repo}/{self.number}"


def name(item: Item) -> str:
    if not item.number:
        return "(the repository)"
    return f"{'PR' if item.pull else 'issue'} #{item.number}"


def heading(item: Item) -> str:
    """Its title; work on no issue or pull request (the base moved) says what it is."""
    return item.title if item.number else "work on the repository, not on one issue or PR"


def tries(item: Item, max_attempts: int) -> str:
    tasks = f"{len(item.work)} task{'s' * (len(item.work) != 1)}"
    if item.attempts:
        return f"{tasks} · {len(item.attempts)}/{max_attempts} fix attempts"
    return tasks


def spend_of(redis: Redis, items: list[Item]) -> dict[tuple[int, int], Spend]:
    """Each item's model spend: all runs of all its tasks, in two round trips."""
    used = work_spend(redis, (r.id for item in items for r in item.rows))
    return {i.key: sum((used[r.id] for r in i.rows), Spend()) for i in items}


def kind_of(item: Item) -> str:
    if not item.number:
        return "repository"
    return "pull request" if item.pull else "issue"


# Tasks that keep forgehand's books (the files a push changed), not work people asked for.
BOOKKEEPING = frozenset({Kind.SYNC, Kind.VERDICT})
PULL_KINDS = frozenset(
    {Kind.CI, Kind.REVIEW, Kind.CLOSED, Kind.FORK, Kind.CONFLICT, Kind.SYNC, Kind.VERDICT}
)


def is_pull(row: Row) -> bool:
    """Whether a task's number is a pull request's, as far as the task alone says (a command
    or a Re-run may be on either: the title a worker noted says which)."""
    return row.task.kind in PULL_KINDS


def ci_words(sha: str, ci: dict[str, str]) -> str:
    """What CI said of a commit named by (a prefix of) its SHA."""
    return next((words for full, words in ci.items() if full.startswith(sha)), "pending")


def outcome(row: Row, ci: dict[str, str]) -> str:
    """What one task came to: "fix pushed as abc1234 — CI on it: failed (unit, lint)",
    "no change", "stopped: timeout"."""
    if row.state == "done":
        pushed = _PUSHED.match(row.result)
        if pushed:
            sha = pushed[1][:7]
            lead = "fix pushed as" if row.task.kind is Kind.CI else "pushed"
            return f"{lead} {sha} — CI on it: {ci_words(pushed[1], ci)}"
        opened = re.match(r"(opened|linked) #(\d+)$", row.result)
        if opened:
            return f"{opened[1]} pull request #{opened[2]}"
        return row.result or "done"
    if row.state == "failed":
        if "ran longer than" in row.error:
            return f"stopped: timeout — {row.error}"
        if "judged stuck" in row.error:
            return f"stopped: no output — {row.error}"
        return f"failed: {row.error}" if row.error else "failed"
    if row.state == "escalated":
        # "escalated after 3 failed attempts: …" reads "handed to a human after 3 …".
        said = row.error.removeprefix("escalated ")
        joint = " " if said.startswith("after ") else ": "
        return f"handed to a human{joint}{said}" if said else "handed to a human"
    if row.state in ("cancelled", "waiting"):
        return f"{row.state}: {row.error}" if row.error else row.state
    return row.state


def shown_state(row: Row, ci: dict[str, str]) -> str:
    """The state a task is shown in: "done" is not shown green for a task whose pushed
    commit CI then failed ("ci-failed")."""
    pushed = _PUSHED.match(row.result) if row.state == "done" else None
    if pushed and ci_words(pushed[1], ci).startswith("failed"):
        return "ci-failed"
    return row.state


def what(row: Row) -> str:
    """A task in words: what it set out to do."""
    task, sha = row.task, row.task.sha[:7]
    return {
        Kind.ISSUE: "resolve the issue",
        Kind.CI: f"fix CI failing on {sha}",
        Kind.REVIEW: f"address {task.sender}'s review",
        Kind.COMMAND: f"{task.sender}'s /agent comment",
        Kind.CLOSED: "clean up after it closed",
        Kind.FORK: "tell a fork's pull request it is not worked on",
        Kind.BASE: f"check agent pull requests after the base moved to {sha}",
        Kind.CONFLICT: f"merge the base ({sha}) and resolve conflicts",
        Kind.RERUN: f"Re-run pressed by {task.sender}",
        Kind.SYNC: f"see which files {sha} changes",
        Kind.VERDICT: f"say on its check run what CI made of {sha}",
    }.get(task.kind, task.kind.value)


def group(rows: list[Row]) -> list[Item]:
    """Rows (any order) as items, the most recently updated first, each with its rows oldest
    first."""
    items: dict[tuple[int, int], Item] = {}
    for row in sorted(rows, key=lambda r: r.created):
        key = (row.task.repo_id, row.task.number)
        item = items.setdefault(key, Item(row.task.repo, row.task.repo_id, row.task.number))
        item.rows.append(row)
        item.pull = item.pull or is_pull(row)
    return sorted(items.values(), key=lambda i: i.updated, reverse=True)


def recent_rows(redis: Redis, limit: int = RECENT) -> list[Row]:
    found = redis.zrevrange(TASKS_INDEX, 0, limit - 1)
    ids = [text(i) for i in found if isinstance(i, bytes | str)]
    with redis.pipeline(transaction=False) as pipe:
        for task_id in ids:
            pipe.hgetall(task_key(task_id))
        raws = pipe.execute()
    return [row_from_hash(raw) for raw in raws if raw]


def fill(store: Store, items: list[Item]) -> None:
    """Add what the tasks alone do not say: titles, links, attempts, CI on each commit."""
    noted = store.items([i.key for i in items if i.number])
    for item in items:
        if not item.number:
            continue
        seen = noted.get(item.key)
        if seen is not None:
            item.title, item.pull = str(seen.get("title") or ""), bool(seen.get("pull"))
        if item.pull:
            item.linked = store.issue_for_pull_request(item.repo_id, item.number)
            item.attempts = store.attempts(item.repo_id, item.number)
            item.escalated = store.escalated(item.repo_id, item.number)
            item.ci = store.ci_results(item.repo_id, item.number)
        else:
            item.linked = store.pull_request_for_issue(item.repo_id, item.number)


def read_items(store: Store, limit: int = RECENT) -> list[Item]:
    items = group(recent_rows(store.redis, limit))
    fill(store, items)
    follow(items)
    return items


def follow(items: list[Item]) -> None:
    """An issue's next step follows its pull request's work, where that is listed too."""
    pulls = {i.key: i for i in items if i.pull}
    for item in items:
        pull = pulls.get((item.repo_id, item.linked or 0)) if not item.pull else None
        if pull is not None and pull.state not in ("done", *LIVE_ORDER):
            item.linked_state = pull.state


def read_item(store: Store, repo: str, number: int) -> Item | None:
    found = [i for i in group(recent_rows(store.redis)) if i.repo == repo and i.number == number]
    if not found:
        return None
    fill(store, found)
    return found[0]
