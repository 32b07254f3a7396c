"""The plan: a repository's fleet as one table — issue, branch, pull request, files owned,
depends on, overlaps, state, suggested merge order — for the dashboard and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, replace

from app.fleet.decisions import Pull, merge_order, overlaps
from app.fleet.state import FleetState
from app.store import Store, TaskRecord
from app.tasks import Kind


@dataclass(frozen=True)
class Row:
    issue: int
    branch: str
    pull: int | None
    files: tuple[str, ...]
    depends_on: tuple[int, ...]
    overlaps: tuple[int, ...]
    state: str  # the task's, or "open" for a pull request whose task is gone from Redis
    why: str  # what a waiting task waits for, or why it failed
    merge_order: int | None  # place in the suggested order, among pull requests that overlap


def rows(
    tasks: list[TaskRecord], pulls: list[Pull], depends: dict[int, tuple[int, ...]]
) -> list[Row]:
    """Open pull requests in the suggested merge order, then the issues still without one."""
    shared = overlaps(pulls)
    order = [n for n in merge_order(pulls) if n in shared]
    by_issue = {r.task.number: r for r in tasks if r.task.kind is Kind.ISSUE}
    found = []
    for number in merge_order(pulls):
        pull = next(p for p in pulls if p.number == number)
        record = by_issue.pop(pull.issue, None)
        found.append(
            Row(
                issue=pull.issue,
                branch=pull.branch,
                pull=number,
                files=tuple(sorted(pull.files)),
                depends_on=depends.get(pull.issue, ()),
                overlaps=tuple(sorted(shared.get(number, {}))),
                state=record.state.value if record else "open",
                why=record.error if record else "",
                merge_order=order.index(number) + 1 if number in order else None,
            )
        )
    for issue, record in sorted(by_issue.items()):
        found.append(
            Row(issue, "", None, (), depends.get(issue, ()), (), record.state.value,
                record.error, None)
        )  # fmt: skip
    return found


def read(store: Store, repo: str, limit: int = 1000) -> list[Row]:
    """The plan of `repo` (owner/name) from what Redis knows."""
    tasks = [r for r in store.recent(limit) if r.task.repo == repo]
    if not tasks:
        return []
    repo_id = tasks[0].task.repo_id
    fleet = FleetState(store.redis)
    plan = rows(tasks, fleet.pulls(repo_id), fleet.depends(repo_id))
    # The issue's task is done once its pull request opened; a pull request out of CI-fix
    # attempts is what the row's state must say then.
    plan = [
        replace(r, state="escalated", why="out of CI-fix attempts; a human takes over")
        if r.pull and store.escalated(repo_id, r.pull)
        else r
        for r in plan
    ]
    return with_closed(plan, fleet.closed_pulls(repo_id))


def with_closed(plan: list[Row], closed: list[tuple[Pull, bool]]) -> list[Row]:
    """The plan with its closed pull requests filled in — branch, number, files, merged or
    closed — where the rows of their issues would otherwise be blank."""
    shown = {row.pull for row in plan if row.pull}
    out = list(plan)
    for pull, merged in closed:
        if pull.number in shown:
            continue  # reopened: the open one's row stands
        at = next((i for i, r in enumerate(out) if r.issue == pull.issue and not r.pull), None)
        depends = out[at].depends_on if at is not None else ()
        row = Row(pull.issue, pull.branch, pull.number, tuple(sorted(pull.files)), depends, (),
                  "merged" if merged else "closed", "", None)  # fmt: skip
        if at is None:
            out.append(row)
        else:
            out[at] = row
    return out


def repo_id_of(store: Store, repo: str, limit: int = 1000) -> int | None:
    """The id of `repo` (owner/name), as its tasks recorded it."""
    return next((r.task.repo_id for r in store.recent(limit) if r.task.repo == repo), None)


def numbers(values: tuple[int, ...]) -> str:
    return ", ".join(f"#{n}" for n in values) or "—"


def text(plan: list[Row]) -> str:
    """The plan as aligned columns, for `forgehand tasks --plan`."""
    head = ("ISSUE", "BRANCH", "PR", "FILES", "DEPENDS ON", "OVERLAPS", "STATE", "MERGE")
    lines = [head]
    for row in plan:
        lines.append((
            f"#{row.issue}", row.branch or "—", f"#{row.pull}" if row.pull else "—",
            ", ".join(row.files) or "—", numbers(row.depends_on), numbers(row.overlaps),
            row.state + (f" ({row.why})" if row.why else ""),
            str(row.merge_order) if row.merge_order else "—",
        ))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )
