"""Budgets (pure): which cap applies, and how a stop or a wait is worded.

The operator's MAX_COST_PER_TASK and MAX_COST_PER_DAY bound everything; a repository's
`max_cost_per_task` / `max_cost_per_day` may only lower them; `/agent budget <USD>` on an issue
or pull request sets that target's task cap, up to the operator's and no further.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def lowest(*caps: float | None) -> float | None:
    given = [c for c in caps if c is not None]
    return min(given) if given else None


def task_cap(
    operator: float | None, repository: float | None, raised: float | None
) -> float | None:
    """The cap of one task: a raise for its target replaces the repository's, never passing
    the operator's."""
    if raised is not None:
        return lowest(operator, raised)
    return lowest(operator, repository)


def plan_ceiling(rows: int, cap: float | None, max_attempts: int) -> str:
    """What a plan of `rows` issues may cost at most once filed: each row's task and its CI
    fixes, each stopped at the task cap `cap`."""
    if cap is None:
        return (
            "No cost ceiling: no per-task cap is set (`MAX_COST_PER_TASK`, or "
            "`max_cost_per_task` in .github/forgehand.yml)."
        )
    tasks = 1 + max_attempts
    return (
        f"Worst-case model cost: {dollars(rows * tasks * cap)}: {rows} rows of {tasks} tasks "
        f"each (the issue and up to {max_attempts} CI fixes), each stopped at the "
        f"{dollars(cap)} task cap; reviews and `/agent` requests come on top."
    )


def dollars(amount: float) -> str:
    return f"${amount:.2f}"


def stopped(spent: float, cap: float) -> str:
    return f"stopped at {dollars(spent)} of the {dollars(cap)} budget"


def day_reached(spent: float, cap: float) -> str:
    return f"daily budget reached ({dollars(spent)} of {dollars(cap)} today), resumes at 00:00 UTC"


def next_day(now: float) -> float:
    """The next 00:00 UTC after `now`, as a timestamp."""
    today = datetime.fromtimestamp(now, UTC).date()
    midnight = datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=1)
    return midnight.timestamp()
