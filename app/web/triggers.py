"""The pure event → actions table (SPEC §4): which webhook deliveries start, stop or change work.

Nothing here does I/O. The facts it needs beyond the payload (is this pull request one the App
opened? which bots may trigger?) are read by the caller and passed in.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from app.fleet import COMMENT_MARKER
from app.tasks import (
    Action,
    Cancel,
    InstallationChange,
    Kind,
    ResetAttempts,
    Task,
    Wake,
)

TRUSTED_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})
FAILING_CONCLUSIONS = frozenset({"failure", "timed_out", "startup_failure"})
FAILING_STATES = frozenset({"failure", "error"})
REVIEW_STATES = frozenset({"changes_requested", "commented"})
SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1, or SHA-256 repositories

Payload = Mapping[str, Any]
T = TypeVar("T")


class PayloadError(ValueError):
    """A payload lacks a field its event must carry; the message names the field."""


@dataclass(frozen=True)
class Facts:
    """What the decision needs beyond the payload."""

    trigger_label: str = "agent"
    plan_label: str = "agent:plan"
    branch_prefix: str = "agent/"
    command_prefix: str = "/agent"
    escalation_label: str = "agent:needs-human"
    app_id: int | None = None
    app_slug: str | None = None
    # None: not known (the payload-only question below), so no bot is turned away for it.
    allowed_bots: frozenset[str] | None = frozenset()
    # Whether the pull request an issue_comment is on was opened by the App; the payload of
    # a comment does not carry the branch, so the caller looks it up.
    app_pull_request: bool = False
    # Whether the delivery's repository belongs to its installation, as installation events
    # told us; None when they never did (the App was installed before this Redis knew it).
    repo_installed: bool | None = None
    # The base branches of the repository's open agent pull requests, for a push; None when
    # not read (the payload-only question), so that no push is turned away for it.
    agent_bases: frozenset[str] | None = None


@dataclass(frozen=True)
class Decision:
    actions: tuple[Action, ...] = ()
    ignored: str | None = None

    @property
    def tasks(self) -> tuple[Task, ...]:
        return tuple(a for a in self.actions if isinstance(a, Task))


def ignore(reason: str) -> Decision:
    return Decision(ignored=reason)


def decide(event: str, payload: Payload, facts: Facts) -> Decision:
    """Turn one delivery into actions, or a reason to ignore it.

    Raises PayloadError when a handled event lacks a field it must have.
    """
    handler = _HANDLERS.get(event)
    if handler is None:
        return ignore(f"{event} events are not handled")
    return handler(payload, facts)


def early_decision(event: str, payload: Payload, facts: Facts) -> Decision | None:
    """The decision made from the payload alone, before Redis is asked; None when the payload
    is malformed (the full decision says how).

    Every fact read from Redis only ever turns work away (a self-sent delivery, a bot not
    allowed, a pull request not the App's, a repository not installed), so with the loosest
    facts: a delivery ignored is ignored whatever Redis knows, and the tasks found are the
    most the full decision can make.
    """
    loosest = replace(
        facts, app_slug=None, allowed_bots=None, app_pull_request=True, repo_installed=None,
        agent_bases=None,
    )  # fmt: skip
    try:
        return decide(event, payload, loosest)
    except PayloadError:
        return None


def starts_nothing(event: str, payload: Payload, facts: Facts) -> str | None:
    """Why the delivery is ignored whatever Redis knows, or None when it may start, stop or
    change work, or is malformed."""
    early = early_decision(event, payload, facts)
    return early.ignored if early is not None else None


def needs_pull_request_fact(event: str, payload: Payload) -> tuple[int, int] | None:
    """(repo id, number) when deciding needs to know if that pull request is the App's."""
    if event != "issue_comment":
        return None
    issue = payload.get("issue")
    repo = payload.get("repository")
    if not isinstance(issue, Mapping) or not isinstance(repo, Mapping):
        return None
    if issue.get("pull_request") is None:
        return None
    number, repo_id = issue.get("number"), repo.get("id")
    if isinstance(number, int) and isinstance(repo_id, int):
        return repo_id, number
    return None


# --- field access -------------------------------------------------------------------------


def _get(payload: Payload, path: str, kind: type[T]) -> T:
    node: Any = payload
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise PayloadError(f"payload has no {path}")
        node = node[part]
    # bool is an int in Python; a flag where a number belongs is malformed all the same.
    if not isinstance(node, kind) or (kind is int and isinstance(node, bool)):
        raise PayloadError(f"payload field {path} must be {kind.__name__}")
    return node


def _opt(payload: Payload, path: str, kind: type[T]) -> T | None:
    try:
        return _get(payload, path, kind)
    except PayloadError:
        return None


def _installation(payload: Payload) -> int | None:
    return _opt(payload, "installation.id", int)


def _sender_block(payload: Payload, facts: Facts) -> str | None:
    """Why the sender may not trigger work, or None when they may."""
    login = _get(payload, "sender.login", str)
    kind = _opt(payload, "sender.type", str)
    if _is_self(payload, facts):
        return "sent by the App itself"
    if kind == "Bot" or login.endswith("[bot]"):
        name = login.removesuffix("[bot]")
        allowed = facts.allowed_bots
        if allowed is not None and name not in allowed and login not in allowed:
            return f"sender {login} is a bot that is not in allowed_bots"
    return None


def _is_self(payload: Payload, facts: Facts) -> bool:
    login = _opt(payload, "sender.login", str)
    if facts.app_slug and login == f"{facts.app_slug}[bot]":
        return True
    # The App acts with its installation's token, as its bot. A person's edit of something
    # the App wrote still carries the App's mark (`performed_via_github_app` names who wrote
    # it), so the mark counts only when a bot sent the event.
    if _opt(payload, "sender.type", str) != "Bot":
        return False
    for via in ("issue", "comment", "review", "pull_request"):
        app = _opt(payload, f"{via}.performed_via_github_app.id", int)
        if app is not None and app == facts.app_id:
            return True
    return False


def _association_block(payload: Payload, path: str) -> str | None:
    association = _get(payload, path, str)
    if association not in TRUSTED_ASSOCIATIONS:
        return f"author_association {association} may not trigger work"
    return None


def _own_branch(payload: Payload, pr_path: str, facts: Facts) -> str | None:
    """Why a pull request is not one the App works on, or None when it is."""
    ref = _get(payload, f"{pr_path}.head.ref", str)
    if not ref.startswith(facts.branch_prefix):
        return f"branch {ref} is not under {facts.branch_prefix}"
    head_repo = _opt(payload, f"{pr_path}.head.repo.id", int)
    if head_repo != _get(payload, "repository.id", int):
        return FORK
    return None


FORK = "pull request from a fork"


def _task(
    payload: Payload, facts: Facts, kind: Kind, number: int, sender: str, **extra: Any
) -> Decision:
    installation = _installation(payload)
    if installation is None:
        return ignore("not delivered to an App installation")
    if facts.repo_installed is False:
        return ignore("the App is not installed on this repository")
    task = Task(
        kind=kind,
        installation_id=installation,
        repo_id=_get(payload, "repository.id", int),
        repo=_get(payload, "repository.full_name", str),
        number=number,
        sender=sender,
        **extra,
    )
    return Decision(actions=(task,))


def _cancel(payload: Payload, number: int, reason: str, spare_opened: bool = False) -> Cancel:
    repo_id = _get(payload, "repository.id", int)
    return Cancel(repo_id=repo_id, number=number, reason=reason, spare_opened=spare_opened)


# --- events -------------------------------------------------------------------------------


def _issues(payload: Payload, facts: Facts) -> Decision:
    action = _get(payload, "action", str)
    number = _get(payload, "issue.number", int)
    if action == "labeled":
        label = _get(payload, "label.name", str)
        if label == facts.plan_label and label != facts.trigger_label:
            return _plan_task(payload, facts, number)
        if label != facts.trigger_label:
            return ignore(f"label {label} is not {facts.trigger_label}")
        unfit = _unfit_issue(payload, facts, "the trigger label is for issues, not pull requests")
        if unfit:
            return ignore(unfit)
        return _task(payload, facts, Kind.ISSUE, number, _get(payload, "sender.login", str))
    if action == "unlabeled":
        label = _get(payload, "label.name", str)
        if label != facts.trigger_label:
            return ignore(f"label {label} is not {facts.trigger_label}")
        return Decision(actions=(_cancel(payload, number, "trigger label removed"),))
    if action in ("closed", "deleted", "transferred"):
        # Deleted or moved to another repository: its work here ends, as when it closes.
        wake = Wake(_get(payload, "repository.id", int), f"#{number} {action}")
        # Merging the task's pull request closes the issue while the task is still saying so
        # on GitHub: killed, that would be lost. A deleted or moved issue ends all its work.
        spare = action == "closed"
        return Decision(actions=(_cancel(payload, number, f"issue {action}", spare), wake))
    return ignore(f"issues.{action} is not a trigger")


def _unfit_issue(payload: Payload, facts: Facts, on_pull_request: str) -> str | None:
    """Why this issue may not start work (`on_pull_request` when it is a pull request), or
    None."""
    if _opt(payload, "issue.pull_request", dict) is not None:
        return on_pull_request
    if _get(payload, "issue.state", str) != "open":
        return "issue is not open"
    return _sender_block(payload, facts)


def _plan_task(payload: Payload, facts: Facts, number: int, comment_id: int = 0) -> Decision:
    """An epic asks for a plan: by its label, or by a `/agent plan` comment."""
    unfit = _unfit_issue(payload, facts, "plans are made for issues, not pull requests")
    if unfit:
        return ignore(unfit)
    sender = _get(payload, "sender.login", str)
    return _task(payload, facts, Kind.PLAN, number, sender, comment_id=comment_id)


def _plan_edited(payload: Payload, facts: Facts) -> Decision:
    """A person edited the App's plan comment: its YAML is checked again. Who may is the
    worker's question (write access); the App's own edits come back here too and are not.

    The payload tells the association of the comment's author (the App), not of whoever
    edited it; but only people with write access may edit another's comment. What a stranger
    can edit is a comment of their own that opens with the marker: it is no bot's, and once a
    worker has learnt the App's name, not the App's.
    """
    body = _get(payload, "comment.body", str)
    if not body.startswith(COMMENT_MARKER):
        return ignore("issue_comment.edited is not a trigger")
    if _opt(payload, "issue.pull_request", dict) is not None:
        return ignore("plans are made for issues, not pull requests")
    blocked = _sender_block(payload, facts)
    if blocked:
        return ignore(blocked)
    author = _opt(payload, "comment.user.login", str)
    by_bot = _opt(payload, "comment.user.type", str) == "Bot"
    if not by_bot or (facts.app_slug and author != f"{facts.app_slug}[bot]"):
        return ignore("the comment is not the App's plan")
    digest = hashlib.sha256(body.encode()).hexdigest()[:16]
    return _task(
        payload, facts, Kind.PLAN_EDIT, _get(payload, "issue.number", int),
        _get(payload, "sender.login", str), sha=digest, comment_id=_get(payload, "comment.id", int),
    )  # fmt: skip


def _comment_created(payload: Payload, facts: Facts) -> Decision:
    body = _get(payload, "comment.body", str)
    verb = command_verb(body, facts.command_prefix)
    if verb is None:
        return ignore(f"comment is not a {facts.command_prefix} command")
    number = _get(payload, "issue.number", int)
    on_issue = _opt(payload, "issue.pull_request", dict) is None
    # A hint, not a permission: the worker checks write access again.
    blocked = _sender_block(payload, facts) or _association_block(
        payload, "comment.author_association"
    )
    if blocked:
        return ignore(blocked)
    if on_issue and verb == "approve":
        # On any issue, labelled or not; a member without write access is answered in one line.
        sender = _get(payload, "sender.login", str)
        comment_id = _get(payload, "comment.id", int)
        return _task(payload, facts, Kind.APPROVE, number, sender, comment_id=comment_id)
    if on_issue and verb == "plan":
        return _plan_task(payload, facts, number, _get(payload, "comment.id", int))
    if _opt(payload, "issue.pull_request", dict) is not None:
        if not facts.app_pull_request:
            return ignore("pull request was not opened by the App")
    else:
        labels = _get(payload, "issue.labels", list)
        names = {lbl.get("name") for lbl in labels if isinstance(lbl, Mapping)}
        if facts.trigger_label not in names:
            return ignore(f"issue is not labelled {facts.trigger_label}")
    sender = _get(payload, "sender.login", str)
    decision = _task(
        payload, facts, Kind.COMMAND, number, sender, comment_id=_get(payload, "comment.id", int)
    )
    if verb == "stop" and decision.actions:
        stop = _cancel(payload, number, f"{facts.command_prefix} stop by {sender}")
        return Decision(actions=(stop, *decision.actions))
    return decision


def command_verb(body: str, prefix: str) -> str | None:
    """The first word after the command prefix ('' when none), or None if not a command."""
    first_line = body.strip().split("\n", 1)[0].strip()
    if first_line != prefix and not first_line.startswith(prefix + " "):
        return None
    rest = first_line[len(prefix) :].split()
    return rest[0].lower() if rest else ""


def _pr_task(payload: Payload, facts: Facts, kind: Kind, **extra: Any) -> Decision:
    """A task on the payload's pull request, started by its sender, on its head branch."""
    number = _get(payload, "pull_request.number", int)
    branch = _get(payload, "pull_request.head.ref", str)
    return _task(
        payload, facts, kind, number, _get(payload, "sender.login", str), branch=branch, **extra
    )


def _fork_notice(payload: Payload, facts: Facts) -> Decision:
    """A fork's pull request on a branch the App would work on: it is told, once, why not."""
    return _pr_task(payload, facts, Kind.FORK)


def _pull_request(payload: Payload, facts: Facts) -> Decision:
    action = _get(payload, "action", str)
    if action not in ("closed", "unlabeled", "opened", "reopened", "synchronize"):
        return ignore(f"pull_request.{action} is not a trigger")
    not_ours = _own_branch(payload, "pull_request", facts)
    if not_ours == FORK and action in ("opened", "reopened"):
        return _fork_notice(payload, facts)
    if not_ours:
        return ignore(not_ours)
    number = _get(payload, "pull_request.number", int)
    if action == "synchronize":
        # Whoever pushed, the App included: the files it changes may now overlap others'.
        # Bookkeeping, not agent work, so no sender is turned away.
        sha = _get(payload, "pull_request.head.sha", str)
        if not SHA.fullmatch(sha):
            raise PayloadError(f"payload has no commit SHA (got {sha[:50]!r})")
        return _pr_task(payload, facts, Kind.SYNC, sha=sha)
    if action == "unlabeled":
        label = _get(payload, "label.name", str)
        if label != facts.escalation_label:
            return ignore(f"label {label} is not {facts.escalation_label}")
        if _is_self(payload, facts):
            # `/agent retry` removes it after resetting the attempts itself: only the echo.
            return ignore("sent by the App itself")
        reset = ResetAttempts(_get(payload, "repository.id", int), number, f"{label} removed")
        return Decision(actions=(reset,))
    if action != "closed":
        return ignore(f"pull_request.{action} of the App's own branch needs no work")
    closed = _pr_task(payload, facts, Kind.CLOSED)
    wake = Wake(_get(payload, "repository.id", int), f"#{number} closed")
    cancel = _cancel(payload, number, "pull request closed")
    return Decision(actions=(cancel, *closed.actions, wake))


def _review_submitted(payload: Payload, facts: Facts) -> Decision:
    state = _get(payload, "review.state", str).lower()
    if state not in REVIEW_STATES:
        return ignore(f"a review that is {state} asks for no change")
    blocked = (
        _sender_block(payload, facts)
        or _association_block(payload, "review.author_association")
        or _own_branch(payload, "pull_request", facts)
    )
    if blocked == FORK:
        return _fork_notice(payload, facts)
    if blocked:
        return ignore(blocked)
    return _pr_task(
        payload,
        facts,
        Kind.REVIEW,
        review_id=_get(payload, "review.id", int),
        sha=_opt(payload, "review.commit_id", str) or "",
    )


def _ci_task(
    payload: Payload, facts: Facts, sha: str, branch: str | None, prs: list[Any]
) -> Decision:
    if not SHA.fullmatch(sha):
        raise PayloadError(f"payload has no commit SHA (got {sha[:50]!r})")
    if branch is None:
        return ignore("no branch for this commit")
    if not branch.startswith(facts.branch_prefix):
        return ignore(f"branch {branch} is not under {facts.branch_prefix}")
    repo_id = _get(payload, "repository.id", int)
    number = 0
    for pr in prs:
        if not isinstance(pr, Mapping):
            continue
        head = pr.get("head")
        base = pr.get("base")
        if not isinstance(head, Mapping) or not isinstance(base, Mapping):
            continue
        head_repo = head.get("repo")
        same_repo = isinstance(head_repo, Mapping) and head_repo.get("id") == repo_id
        if head.get("ref") == branch and same_repo and isinstance(pr.get("number"), int):
            number = pr["number"]
            break
    return _task(
        payload, facts, Kind.CI, number, _get(payload, "sender.login", str), sha=sha, branch=branch
    )


def _suite_completed(payload: Payload, facts: Facts) -> Decision:
    conclusion = _opt(payload, "check_suite.conclusion", str)
    # Before green is believed: forgehand's own check passing says nothing of CI.
    if facts.app_id is not None and _opt(payload, "check_suite.app.id", int) == facts.app_id:
        return ignore("check suite of the App itself")
    if conclusion == "success":
        return _green(payload, facts)
    if conclusion not in FAILING_CONCLUSIONS:
        return ignore(f"check suite concluded {conclusion}")
    return _suite_task(payload, facts)


def _checks_task(payload: Payload, facts: Facts, part: str, branch_at: str) -> Decision:
    """The CI task of a check suite or run: `part` is the payload's, `branch_at` where its
    branch is named."""
    return _ci_task(
        payload,
        facts,
        _get(payload, f"{part}.head_sha", str),
        _opt(payload, branch_at, str),
        _opt(payload, f"{part}.pull_requests", list) or [],
    )


def _suite_task(payload: Payload, facts: Facts) -> Decision:
    return _checks_task(payload, facts, "check_suite", "check_suite.head_branch")


def _green(payload: Payload, facts: Facts) -> Decision:
    found = _suite_task(payload, facts)
    if not found.tasks or not found.tasks[0].number:
        return ignore("check suite concluded success")
    task = found.tasks[0]
    reset = ResetAttempts(task.repo_id, task.number, "CI passed", sha=task.sha)
    # Whether a task of forgehand's pushed the commit is the verdict job's to find out: the
    # task may note its push only after CI has finished, and a read here would cost every
    # green suite a round trip.
    return Decision(actions=(reset, replace(task, kind=Kind.VERDICT)))


def _run_completed(payload: Payload, facts: Facts) -> Decision:
    conclusion = _opt(payload, "check_run.conclusion", str)
    if conclusion not in FAILING_CONCLUSIONS:
        return ignore(f"check run concluded {conclusion}")
    if facts.app_id is not None and _opt(payload, "check_run.app.id", int) == facts.app_id:
        return ignore("check run created by the App itself")
    return _checks_task(payload, facts, "check_run", "check_run.check_suite.head_branch")


def _rerun(payload: Payload, facts: Facts) -> Decision:
    """ "Re-run" on forgehand's own check run: its task is retried, as `/agent retry` would,
    once the worker has checked the sender's write access."""
    if _get(payload, "check_run.app.id", int) != facts.app_id:
        return ignore("a check run of another App is re-run by that App")
    blocked = _sender_block(payload, facts)
    if blocked:
        return ignore(blocked)
    run_id = _get(payload, "check_run.id", int)
    prs = _opt(payload, "check_run.pull_requests", list) or []
    numbers = [pr.get("number") for pr in prs if isinstance(pr, Mapping)]
    number = next((n for n in numbers if isinstance(n, int)), 0)
    sender = _get(payload, "sender.login", str)
    sha = _get(payload, "check_run.head_sha", str)
    return _task(payload, facts, Kind.RERUN, number, sender, sha=sha, check_run_id=run_id)


def _status(payload: Payload, facts: Facts) -> Decision:
    state = _get(payload, "state", str)
    if state not in FAILING_STATES:
        return ignore(f"commit status is {state}")
    branches = _get(payload, "branches", list)
    names = [b.get("name") for b in branches if isinstance(b, Mapping)]
    ours = [n for n in names if isinstance(n, str) and n.startswith(facts.branch_prefix)]
    branch = ours[0] if ours else (names[0] if names and isinstance(names[0], str) else None)
    return _ci_task(payload, facts, _get(payload, "sha", str), branch, [])


def _push(payload: Payload, facts: Facts) -> Decision:
    """The base branch moved: agent pull requests on it may no longer merge."""
    ref = _get(payload, "ref", str)
    if not ref.startswith("refs/heads/"):
        return ignore(f"push to {ref}, not a branch")
    branch = ref.removeprefix("refs/heads/")
    if branch.startswith(facts.branch_prefix):
        return ignore(f"push to {branch}, an agent branch, not a base")
    if _opt(payload, "deleted", bool):
        return ignore(f"branch {branch} deleted")
    # The default branch: where agent pull requests go unless a repository's config names
    # another base, which the worker reads (a push there is not seen: a known limit).
    if branch != _get(payload, "repository.default_branch", str):
        return ignore(f"push to {branch}, not the default branch")
    if facts.agent_bases is not None and branch not in facts.agent_bases:
        return ignore(f"no open agent pull request targets {branch}")
    after = _get(payload, "after", str)
    if not SHA.fullmatch(after):
        raise PayloadError(f"payload has no commit SHA (got {after[:50]!r})")
    sender = _get(payload, "sender.login", str)
    return _task(payload, facts, Kind.BASE, 0, sender, sha=after, branch=branch)


def _repos(payload: Payload, key: str) -> tuple[tuple[int, str], ...]:
    found = []
    for repo in _opt(payload, key, list) or []:
        if isinstance(repo, Mapping):
            repo_id, name = repo.get("id"), repo.get("full_name")
            if isinstance(repo_id, int) and isinstance(name, str):
                found.append((repo_id, name))
    return tuple(found)


def _installation_event(payload: Payload, facts: Facts) -> Decision:
    action = _get(payload, "action", str)
    installation = _get(payload, "installation.id", int)
    repos = _repos(payload, "repositories")
    if action in ("created", "unsuspend"):
        change = InstallationChange(installation, added=repos, removed=())
    elif action in ("deleted", "suspend"):
        ids = tuple(r[0] for r in repos)
        change = InstallationChange(installation, added=(), removed=ids, uninstalled=True)
    else:
        return ignore(f"installation.{action} changes nothing here")
    return Decision(actions=(change,))


def _installation_repositories(payload: Payload, facts: Facts) -> Decision:
    _get(payload, "action", str)
    installation = _get(payload, "installation.id", int)
    added = _repos(payload, "repositories_added")
    removed = tuple(r[0] for r in _repos(payload, "repositories_removed"))
    return Decision(actions=(InstallationChange(installation, added=added, removed=removed),))


Handler = Callable[[Payload, Facts], Decision]


def _by_action(event: str, handlers: Mapping[str, Handler]) -> Handler:
    """The handler of an event whose actions each have their own; other actions are not
    triggers."""

    def handle(payload: Payload, facts: Facts) -> Decision:
        action = _get(payload, "action", str)
        handler = handlers.get(action)
        if handler is None:
            return ignore(f"{event}.{action} is not a trigger")
        return handler(payload, facts)

    return handle


_HANDLERS: dict[str, Handler] = {
    "issues": _issues,
    "issue_comment": _by_action(
        "issue_comment", {"created": _comment_created, "edited": _plan_edited}
    ),
    "pull_request": _pull_request,
    "pull_request_review": _by_action("pull_request_review", {"submitted": _review_submitted}),
    "check_suite": _by_action("check_suite", {"completed": _suite_completed}),
    "check_run": _by_action("check_run", {"completed": _run_completed, "rerequested": _rerun}),
    "status": _status,
    "push": _push,
    "installation": _installation_event,
    "installation_repositories": _installation_repositories,
}

HANDLED_EVENTS = frozenset(_HANDLERS) | {"ping"}
