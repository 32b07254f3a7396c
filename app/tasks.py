"""Task kinds, states and ids: one id per unit of work.

The id is the dedupe key, the RQ job id, the lock owner and the dashboard row, so it is built
only from the values that make two events "the same work" and uses only `[A-Za-z0-9_-]`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum


class Kind(StrEnum):
    ISSUE = "issue"  # resolve a labelled issue with a new pull request
    CI = "ci"  # fix a failing head commit of one of the App's pull requests
    REVIEW = "review"  # address one submitted review
    COMMAND = "command"  # a `/agent …` comment
    CLOSED = "closed"  # a pull request of the App's was closed: clean up after it
    FORK = "fork"  # a pull request from a fork asked for work: say once that it cannot
    BASE = "base"  # the base branch moved: find agent pull requests that no longer merge
    CONFLICT = "conflict"  # merge the base into one of them and resolve the conflicts
    PLAN = "plan"  # an epic: the agent proposes a plan, posted for a person to approve
    PLAN_EDIT = "plan-edit"  # a person edited the plan comment: check it again
    APPROVE = "approve"  # `/agent approve` on an epic: file its plan as issues
    RERUN = "rerun"  # "Re-run" pressed on a `forgehand` check run: retry its task
    SYNC = "sync"  # someone (or the App) pushed to an agent pull request: its files changed
    # CI finished on a commit a task pushed: that task's check run says what CI made of it
    VERDICT = "verdict"

    @property
    def on_issue(self) -> bool:
        """Whether its number is an issue's (else a pull request's, or none)."""
        return self in (Kind.ISSUE, Kind.PLAN, Kind.PLAN_EDIT, Kind.APPROVE)


class State(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    # Out of CI-fix attempts: the pull request waits for a human.
    ESCALATED = "escalated"
    CANCELLED = "cancelled"
    WAITING = "waiting"  # held by a dependency or the review cap; woken when that changes

    @property
    def active(self) -> bool:
        return self in (State.QUEUED, State.RUNNING, State.WAITING)


@dataclass(frozen=True)
class Task:
    """What a job needs to find its work again; never a whole payload."""

    kind: Kind
    installation_id: int
    repo_id: int
    repo: str  # owner/name, for people and logs; the id is what identifies
    number: int  # the issue or pull request; 0 when a CI event names no pull request
    sender: str  # who started it: the labeller, reviewer or commenter
    sha: str = ""
    branch: str = ""
    review_id: int = 0
    comment_id: int = 0
    check_run_id: int = 0

    @property
    def id(self) -> str:
        match self.kind:
            case Kind.ISSUE:
                return f"issue-{self.repo_id}-{self.number}"
            case Kind.CI:
                # Keyed by the commit alone: every failing check of one head SHA is one task,
                # whether or not its event named the pull request.
                return f"ci-{self.repo_id}-{self.sha}"
            case Kind.REVIEW:
                return f"review-{self.repo_id}-{self.number}-{self.review_id}"
            case Kind.COMMAND:
                return f"command-{self.repo_id}-{self.number}-{self.comment_id}"
            case Kind.CLOSED:
                return f"closed-{self.repo_id}-{self.number}"
            case Kind.FORK:
                return f"fork-{self.repo_id}-{self.number}"
            case Kind.BASE:
                return f"base-{self.repo_id}-{self.sha}"
            case Kind.CONFLICT:
                # One per pull request and base commit: the base moving again is new work.
                return f"conflict-{self.repo_id}-{self.number}-{self.sha}"
            case Kind.PLAN:
                # Each `/agent plan` comment is new work (0: the label); so is each approval.
                return f"plan-{self.repo_id}-{self.number}-{self.comment_id}"
            case Kind.PLAN_EDIT:
                # Keyed by what the comment now says: an edit made while the last one is being
                # checked is checked after it, not dropped as a duplicate.
                return f"plan-edit-{self.repo_id}-{self.number}-{self.sha}"
            case Kind.APPROVE:
                return f"approve-{self.repo_id}-{self.number}-{self.comment_id}"
            case Kind.RERUN:
                return f"rerun-{self.repo_id}-{self.check_run_id}"
            case Kind.SYNC:
                return f"sync-{self.repo_id}-{self.number}-{self.sha}"
            case Kind.VERDICT:
                # Keyed by the commit: the job reads CI as it is when it runs, so a suite that
                # finishes while it is still queued needs no job of its own.
                return f"verdict-{self.repo_id}-{self.sha}"

    def to_fields(self) -> dict[str, str]:
        # Not asdict(): it deep-copies, and this runs for every queued task.
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> Task:
        return cls(
            kind=Kind(fields["kind"]),
            installation_id=int(fields["installation_id"]),
            repo_id=int(fields["repo_id"]),
            repo=fields["repo"],
            number=int(fields["number"]),
            sender=fields["sender"],
            sha=fields.get("sha", ""),
            branch=fields.get("branch", ""),
            review_id=int(fields.get("review_id", "0")),
            comment_id=int(fields.get("comment_id", "0")),
            check_run_id=int(fields.get("check_run_id", "0")),
        )


@dataclass(frozen=True)
class Cancel:
    """Stop every queued or running task on one issue or pull request; with `spare_opened`,
    not those that have opened their pull request (they finish, the cancel noted)."""

    repo_id: int
    number: int
    reason: str
    spare_opened: bool = False


@dataclass(frozen=True)
class InstallationChange:
    """Repositories the App was added to or removed from."""

    installation_id: int
    added: tuple[tuple[int, str], ...]  # (repo id, full name)
    removed: tuple[int, ...]
    uninstalled: bool = False


@dataclass(frozen=True)
class ResetAttempts:
    """Forget a pull request's failed CI-fix attempts (green CI, or a human lifted the
    escalation)."""

    repo_id: int
    number: int
    reason: str
    sha: str = ""  # green CI on this commit; a commit known to fail resets nothing


@dataclass(frozen=True)
class Wake:
    """Something the repository's waiting tasks may wait for changed (an issue or an agent
    pull request closed): each looks again."""

    repo_id: int
    reason: str


Action = Task | Cancel | InstallationChange | ResetAttempts | Wake
