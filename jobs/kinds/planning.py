"""An epic becomes a plan a person approves, then a fleet (SPEC §4 Planning).

The planning task runs the agent sandboxed on the base branch and reads back one file,
`forgehand-plan.yml`, as bounded data; nothing is committed or pushed. The plan is posted as
one comment on the epic, which a person with write access may edit; `/agent approve` files
the plan as it stands in that comment, row by row, never twice.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from redis.exceptions import LockError

from app.budget import lowest, plan_ceiling
from app.dispatch import Dispatcher, job_timeout
from app.fleet import (
    FILE_NAME,
    MAX_BYTES,
    Checked,
    Epic,
    EpicState,
    FleetState,
    PlanError,
    check,
    order,
    parse,
)
from app.github import GitHubError, Installation
from app.tasks import Kind, State, Task
from jobs.agents import prompts
from jobs.boundary import Redactor, redactor_for
from jobs.errors import TaskFailed
from jobs.fleet import post_or_edit
from jobs.pipeline import (
    Context,
    Repo,
    Run,
    check_sender,
    prepare,
    reported,
    run_agent,
    status_for,
)
from jobs.report import MARKER, Heartbeat, Progress, code, extract_yaml, render

FIRST_LINES = 20  # of a bad plan file, shown with the reason
# GitHub answers these where sub-issues or issue dependencies do not exist (GitHub Enterprise
# Server before they came, or turned off).
MISSING_API = (403, 404, 410)
TASK_LIST_MARKER = "<!-- forgehand:plan-issues -->"
GHES_NOTE = (
    "This GitHub has no sub-issue or issue-dependency API, so a task list in the epic's "
    "description and `Depends on #n` lines in each issue stand in for them."
)


def plan_epic(task: Task, ctx: Context) -> str:
    """The planning task: the agent proposes, forgehand checks and posts the plan comment."""
    api, repo = prepare(task, ctx)
    status = status_for(api, ctx, task)
    with reported(status, ctx, task):
        issue = api.get(f"/repos/{task.repo}/issues/{task.number}")
        if issue.get("state") != "open":
            raise TaskFailed("The issue was closed before planning started.")
        status.update("⏳ Planning: the agent is splitting this issue into a plan…")
        identity = ctx.app.identity(api)
        ctx.store.set_app_slug(identity.slug)
        pulls = {p.number: sorted(p.files) for p in FleetState(ctx.store.redis).pulls(task.repo_id)}
        with ctx.workspaces.worktree(
            task.id, task.repo_id, repo.clone_url, api.token(), repo.base_branch,
            repo.base_branch, new_branch=False, identity=(identity.login, identity.email),
            installation=task.installation_id,
        ) as tree:  # fmt: skip
            ctx.store.audit(task.id, "worktree", f"{repo.base_branch} at {tree.base[:7]}")
            files = [f for f in tree.git(["ls-files", "-z"]).split("\0") if f]
            # A plan committed to the repository is not this agent's plan.
            stale = tree.path / FILE_NAME
            if stale.is_symlink() or stale.is_file():
                stale.unlink()
            epic = prompts.Epic(
                repo=task.repo, number=task.number, title=issue.get("title") or "",
                body=issue.get("body"), comments=_comments(api, task, identity.login),
                guidance=_guidance(api, ctx, task), files=files, pulls=pulls,
                max_issues=repo.config.plan_max_issues,
            )  # fmt: skip

            def progress(beat: Heartbeat) -> None:
                status.update(f"⏳ Planning… {beat.line()}")

            work = Run(task, ctx, repo, tree, identity, Heartbeat(progress))
            result = run_agent(work, prompts.plan_prompt(epic))
            raw = read_plan(tree.path, result.tail)
        # The agent's words go on GitHub: redacted before they are even parsed.
        text = status.redactor.text(raw)
        try:
            plan = parse(text, repo.config.plan_max_issues)
        except PlanError as exc:
            raise TaskFailed(
                f"The agent's {FILE_NAME} is not a valid plan:\n"
                + "\n".join(f"- {p}" for p in exc.problems),
                first_lines(text),
            ) from None
        checked = check(plan, files, pulls)
        state = EpicState(ctx.store.redis)
        with state.lock(task.repo_id, task.number):
            known = state.get(task.repo_id, task.number) or Epic(0)
            body = _render(ctx, task, text, checked, [], known, repo)
            comment = post_or_edit(api, task.repo, task.number, known.comment or None, body)
            state.planned(task.repo_id, task.number, comment, files, text)
        waves = max(checked.waves.values(), default=0)
        pairs = len(checked.shared) + sum(len(v) for v in checked.pull_collisions.values())
        status.update(
            f"📋 Plan posted: {len(plan.rows)} rows in {waves} waves, {pairs} predicted "
            f"collisions. `{ctx.settings.command_prefix} approve` files it."
        )
        return f"planned {len(plan.rows)} rows"


def read_plan(root: Path, agent_tail: str = "") -> str:
    """The plan file at the root of the agent's tree, read as data: a regular file (no link is
    followed, no pipe or device opened), at most MAX_BYTES, UTF-8."""
    path = root / FILE_NAME
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise TaskFailed(
            f"The agent wrote no `{FILE_NAME}` at the root of its tree, so there is no plan.",
            agent_tail,
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise TaskFailed(f"`{FILE_NAME}` is not a regular file (a link, a directory or a pipe); "
                         "it was not read.")  # fmt: skip
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise TaskFailed(f"`{FILE_NAME}` is not a regular file; it was not read.")
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise TaskFailed(f"`{FILE_NAME}` is larger than {MAX_BYTES // 1024} KiB; it was not read.",
                         first_lines(data[:4096].decode(errors="replace")))  # fmt: skip
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise TaskFailed(f"`{FILE_NAME}` is not UTF-8 text.") from None


def first_lines(text: str) -> str:
    return "\n".join(text.splitlines()[:FIRST_LINES])


def _comments(api: Installation, task: Task, app_login: str) -> list[tuple[str, str]]:
    """People's comments on the epic, oldest first; the App's own (status, plan) are left out."""
    found = api.get(f"/repos/{task.repo}/issues/{task.number}/comments", per_page=100) or []
    said = []
    for comment in found:
        who = (comment.get("user") or {}).get("login") or "someone"
        if who != app_login and comment.get("id") != task.comment_id:
            said.append((who, str(comment.get("body") or "")))
    return said


def _guidance(api: Installation, ctx: Context, task: Task) -> str:
    """What `/agent plan <guidance>` asked for; empty for the label."""
    if not task.comment_id:
        return ""
    comment = api.get(f"/repos/{task.repo}/issues/comments/{task.comment_id}")
    body = str(comment.get("body") or "").strip()
    first, _, rest = body.partition("\n")
    words = first.strip()[len(ctx.settings.command_prefix) :].strip().split(maxsplit=1)
    return "\n".join(part for part in (words[1] if len(words) > 1 else "", rest.strip()) if part)


def _render(
    ctx: Context,
    task: Task,
    text: str,
    checked: Checked | None,
    problems: list[str],
    epic: Epic,
    repo: Repo | None = None,
) -> str:
    """The plan comment; with the repository's config known, what the plan may cost."""
    ceiling = ""
    if checked is not None and repo is not None:
        config, settings = repo.config, ctx.settings
        cap = lowest(settings.max_cost_per_task, config.max_cost_per_task)
        attempts = config.max_attempts or settings.max_attempts
        ceiling = plan_ceiling(len(checked.plan.rows), cap, attempts)
    return render(
        text, checked, problems, prefix=ctx.settings.command_prefix, filed=epic.filed,
        progress=_progress(ctx, task.repo_id, epic), notes=epic.notes, ceiling=ceiling,
    )  # fmt: skip


def _progress(ctx: Context, repo_id: int, epic: Epic) -> dict[str, Progress]:
    """Each filed row's issue and what became of it: its pull request's fate as the fleet
    recorded it, else its task's state."""
    found = {}
    for key, number in epic.filed.items():
        step = epic.progress.get(number, {})
        record = ctx.store.get(f"issue-{repo_id}-{number}")
        state = step.get("state") or (record.state.value if record else State.QUEUED.value)
        changed = step.get("changed")
        found[key] = Progress(number, step.get("pull"), state,
                              tuple(changed) if changed is not None else None)  # fmt: skip
    return found


def _reply(api: Installation, task: Task, text: str) -> None:
    api.post(f"/repos/{task.repo}/issues/{task.number}/comments", {"body": text})


def _read_comment(
    api: Installation, ctx: Context, task: Task, repo: Repo, epic: Epic, redactor: Redactor
) -> tuple[str, Checked | None, list[str]]:
    """The plan as the comment now says: its YAML (redacted: whoever edited it may have pasted
    a secret), the plan worked out, or why it is not a plan."""
    try:
        comment = api.get(f"/repos/{task.repo}/issues/comments/{epic.comment}")
    except GitHubError as exc:
        if exc.status != 404:
            raise
        prefix = ctx.settings.command_prefix
        return "", None, [f"the plan comment was deleted; `{prefix} plan` makes a new one"]
    body = str(comment.get("body") or "")
    found = extract_yaml(body) if body.startswith(MARKER) else None
    if found is None:
        return "", None, ["the plan comment no longer has its YAML block"]
    text = redactor.text(found)
    try:
        plan = parse(text, repo.config.plan_max_issues)
    except PlanError as exc:
        return text, None, exc.problems
    pulls = {p.number: sorted(p.files) for p in FleetState(ctx.store.redis).pulls(task.repo_id)}
    return text, check(plan, epic.files, pulls), []


NOT_THE_PLAN = "not this epic's plan comment"


def _edited_epic(state: EpicState, task: Task) -> Epic | None:
    """The epic whose plan comment the task's edited comment is, or None."""
    epic = state.get(task.repo_id, task.number)
    return epic if epic is not None and epic.comment == task.comment_id else None


def recheck(task: Task, ctx: Context) -> str:
    """A person edited the plan comment: check the edited plan and update its table."""
    state = EpicState(ctx.store.redis)
    # Asked of Redis before GitHub: an edit of any other comment costs no call.
    if _edited_epic(state, task) is None:
        return NOT_THE_PLAN
    api, repo = prepare(task, ctx)
    with state.lock(task.repo_id, task.number):
        epic = _edited_epic(state, task)  # read again where it cannot change under us
        if epic is None:
            return NOT_THE_PLAN
        redactor = redactor_for(ctx.settings, api.token())
        text, checked, problems = _read_comment(api, ctx, task, repo, epic, redactor)
        body = _render(ctx, task, text, checked, problems, epic, repo)
        api.patch(f"/repos/{task.repo}/issues/comments/{epic.comment}", {"body": body})
        if checked is not None:  # the plan page shows the last plan that was valid
            state.set_plan(task.repo_id, task.number, text)
    return "edited plan is valid" if checked is not None else "edited plan is not valid"


def approve(task: Task, ctx: Context) -> str:
    """`/agent approve`: file the plan in the comment as it stands, each row once."""
    api, repo = prepare(task, ctx, check=False)
    state = EpicState(ctx.store.redis)
    try:
        check_sender(api, task, repo)
    except TaskFailed:
        if state.refused_once(task.repo_id, task.number, task.sender):
            _reply(api, task, f"@{task.sender}: only people with write access may approve a "
                              "plan; nothing was filed.")  # fmt: skip
        return f"refused: {task.sender} has no write access"
    with state.lock(task.repo_id, task.number):
        epic = state.get(task.repo_id, task.number)
        if epic is None or not epic.comment:
            prefix = ctx.settings.command_prefix
            _reply(api, task, f"There is no plan on this issue yet: `{prefix} plan` makes one.")
            return "no plan"
        redactor = redactor_for(ctx.settings, api.token())
        text, checked, problems = _read_comment(api, ctx, task, repo, epic, redactor)
        if checked is None or checked.blocking:
            why = (problems or (checked.blocking if checked else []))[0]
            _reply(api, task, f"The plan cannot be filed as it stands ({why}); nothing was "
                              "filed. The plan comment says what to fix.")  # fmt: skip
            return "plan not valid"
        state.set_plan(task.repo_id, task.number, text)
        filed, failed, notes = _file(api, ctx, task, repo, checked, epic, state)
        epic = state.get(task.repo_id, task.number) or epic
        body = _render(ctx, task, text, checked, [], epic, repo)
        api.patch(f"/repos/{task.repo}/issues/comments/{epic.comment}", {"body": body})
    lines = []
    if filed:
        lines.append("✅ Filed " + ", ".join(f"#{n} (`{k}`)" for k, n in filed.items())
                     + "; the fleet starts on them now.")  # fmt: skip
    elif not failed:
        lines.append("Every row of this plan is already filed; nothing new was filed.")
    for key, reason in failed.items():
        lines.append(f"❌ Row `{key}` could not be filed: {redactor.text(reason)}")
    lines += notes
    _reply(api, task, "\n".join(lines))
    return f"filed {len(filed)}" + (f", {len(failed)} failed" if failed else "")


def _file(
    api: Installation, ctx: Context, task: Task, repo: Repo, checked: Checked, epic: Epic,
    state: EpicState,
) -> tuple[dict[str, int], dict[str, str], list[str]]:  # fmt: skip
    """Create the rows not filed yet, dependencies first; link, label and start them. Returns
    (row → issue filed now, row → why it failed, notes)."""
    numbers, ids = dict(epic.filed), dict(epic.ids)
    made: dict[str, int] = {}
    failed: dict[str, str] = {}
    for row in order(checked.plan):
        if row.key in numbers:
            continue
        blockers = [numbers[d] for d in row.depends_on if d in numbers]
        lost = [d for d in row.depends_on if d not in numbers]
        body = _issue_body(row.body, row.files, task.number, row.key, blockers, lost)
        try:
            created = api.post(f"/repos/{task.repo}/issues", {"title": row.title, "body": body})
        except GitHubError as exc:
            if not exc.permanent:
                raise
            failed[row.key] = str(exc)
            continue
        numbers[row.key], ids[row.key] = int(created["number"]), int(created["id"])
        state.filed(task.repo_id, task.number, row.key, numbers[row.key], ids[row.key])
        made[row.key] = numbers[row.key]
    fallback = False
    for key in made:
        fallback |= not _link(api, f"/repos/{task.repo}/issues/{task.number}/sub_issues",
                              {"sub_issue_id": ids[key]})  # fmt: skip
    for row in checked.plan.rows:
        # New rows, and rows filed before whose blocker was filed only now (it had failed).
        for dep in row.depends_on:
            if row.key in numbers and dep in ids and (row.key in made or dep in made):
                fallback |= not _link(
                    api, f"/repos/{task.repo}/issues/{numbers[row.key]}/dependencies/blocked_by",
                    {"issue_id": ids[dep]},
                )  # fmt: skip
    notes = list(epic.notes)
    if fallback:
        _task_list(api, task, numbers)
        notes = [GHES_NOTE]
        state.set_notes(task.repo_id, task.number, notes)
    # The rows filed now, and any filed before whose start was cut short (an outage between
    # filing and labelling): an issue with a task of its own is never started twice.
    waiting = {
        k: n for k, n in numbers.items() if ctx.store.get(f"issue-{task.repo_id}-{n}") is None
    }
    _start(api, ctx, task, waiting)
    return made, failed, notes


def _issue_body(
    text: str, files: tuple[str, ...], epic: int, key: str, blockers: list[int], lost: list[str]
) -> str:
    parts = [text.strip() or "(no description)", ""]
    parts.append("Files this issue is expected to change: " + ", ".join(code(f) for f in files))
    parts += ["", f"Part of #{epic} (row `{key}` of its plan)."]
    if blockers:
        parts.append("Depends on " + ", ".join(f"#{n}" for n in blockers))
    if lost:
        parts.append("(Its dependency on " + ", ".join(f"`{k}`" for k in lost)
                     + " is not recorded: that row could not be filed.)")  # fmt: skip
    return "\n".join(parts)


def _link(api: Installation, path: str, body: dict[str, Any]) -> bool:
    """POST a sub-issue or dependency link; False when this GitHub has no such API."""
    try:
        api.post(path, body)
    except GitHubError as exc:
        if exc.status in MISSING_API:
            return False
        if exc.status != 422:  # already linked
            raise
    return True


def _task_list(api: Installation, task: Task, numbers: dict[str, int]) -> None:
    """The epic's description ends with a task list of its filed issues, kept up to date."""
    issue = api.get(f"/repos/{task.repo}/issues/{task.number}")
    body = str(issue.get("body") or "").split(TASK_LIST_MARKER)[0].rstrip()
    items = "\n".join(f"- [ ] #{n}" for n in numbers.values())
    new = f"{body}\n\n{TASK_LIST_MARKER}\n**Plan**\n\n{items}\n"
    api.patch(f"/repos/{task.repo}/issues/{task.number}", {"body": new})


def _start(api: Installation, ctx: Context, task: Task, made: dict[str, int]) -> None:
    """Label the new issues for the fleet and queue their tasks, as the approver. The label's
    own webhook comes from the App and starts nothing, so the tasks are queued here."""
    dispatcher = Dispatcher(ctx.store, job_timeout(ctx.settings.agent_timeout))
    for key, number in made.items():
        labels = {"labels": [ctx.settings.trigger_label]}
        api.post(f"/repos/{task.repo}/issues/{number}/labels", labels)
        work = Task(Kind.ISSUE, task.installation_id, task.repo_id, task.repo, number, task.sender)
        dispatcher.enqueue(work, f"row `{key}` of #{task.number}'s plan, approved by {task.sender}")


# --- the epic follows its fleet -------------------------------------------------------------


def follow(api: Installation, ctx: Context, task: Task, issue: int, step: dict[str, Any]) -> None:
    """One of an epic's issues moved on (its pull request opened, merged, closed or was
    escalated): record it, and bring the epic's plan comment up to date. Issues of no plan are
    left alone; a failure here never fails the task that moved on."""
    state = EpicState(ctx.store.redis)
    epic = state.epic_of(task.repo_id, issue)
    if epic is None:
        return
    state.progressed(task.repo_id, epic, issue, step)
    try:
        # A re-render takes a few requests; held longer, its holder was killed mid-way (its
        # issue closed as its pull request merged), and the close's own re-render waits.
        with state.lock(task.repo_id, epic, hold=60):
            known = state.get(task.repo_id, epic)
            if known is None or not known.comment:
                return
            path = f"/repos/{task.repo}/issues/comments/{known.comment}"
            body = str(api.get(path).get("body") or "")
            found = extract_yaml(body) if body.startswith(MARKER) else None
            if found is None:
                return
            try:
                # Checked when it was approved; its size is no question any more.
                checked: Checked | None = check(parse(found, max_issues=10**6), known.files, {})
            except PlanError:
                checked = None
            new = _render(ctx, replace(task, number=epic), found, checked, [], known)
            if new != body:
                api.patch(path, {"body": new})
    except (GitHubError, LockError) as exc:
        # LockError: the re-render outlasted its hold and another may have begun.
        ctx.store.audit(task.id, "plan comment not updated", str(exc) or type(exc).__name__)


@contextmanager
def failing(api: Installation, ctx: Context, task: Task) -> Iterator[None]:
    """An epic's issue task that fails shows as failed in the epic's checklist."""
    try:
        yield
    except TaskFailed:
        follow(api, ctx, task, task.number, {"state": "failed"})
        raise
