"""The installation's day budget: a task that would start once its installation's model
spend today has reached MAX_COST_PER_DAY waits (state `waiting`) for the next UTC day, when
the workers' housekeeping queues it again by itself."""

from __future__ import annotations

import time

from app import budget
from app.dispatch import Dispatcher
from app.github import GitHubError
from app.store import Store
from app.tasks import Kind, State, Task
from jobs.pipeline import Context, status_for
from jobs.spend import day_refusal

WAITING = "fh:budget:day-waiting"  # task ids, scored by when they may start again
# The kinds that run an agent; the others (clean-ups, notices) make no model call.
AGENT_KINDS = frozenset({Kind.ISSUE, Kind.CI, Kind.REVIEW, Kind.COMMAND, Kind.CONFLICT})


def hold(ctx: Context, task: Task, now: float | None = None) -> str | None:
    """None when the day allows the task to start; else it is now waiting, and why."""
    store = ctx.store
    cap = ctx.settings.max_cost_per_day
    why = day_refusal(store.redis, task.installation_id, task.repo, cap, None)
    if why is None or task.kind not in AGENT_KINDS:
        return None
    resume = budget.next_day(time.time() if now is None else now)
    store.redis.zadd(WAITING, {task.id: resume})
    if store.transition(task.id, (State.RUNNING,), State.WAITING, why):
        store.audit(task.id, "waiting", why)
        try:
            api = ctx.app.installation(task.installation_id)
            status_for(api, ctx, task).update(f"⏸️ Waiting: {why}.")
        except GitHubError as exc:
            # Saying so is a courtesy: the task waits and starts again all the same.
            store.audit(task.id, "status not updated", str(exc))
    return why


def wake_due(store: Store, dispatcher: Dispatcher, now: float | None = None) -> list[str]:
    """Queue again the tasks whose new day has come; return their ids."""
    due = store.redis.zrangebyscore(WAITING, 0, time.time() if now is None else now)
    woken = []
    for raw in due:
        task_id = raw.decode() if isinstance(raw, bytes) else str(raw)
        store.redis.zrem(WAITING, task_id)
        record = store.get(task_id)
        if record is None or record.state is not State.WAITING:
            continue  # cancelled meanwhile, or woken by something else
        if dispatcher.enqueue(record.task, "a new UTC day: the daily budget allows it").enqueued:
            woken.append(task_id)
    return woken
