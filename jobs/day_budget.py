"""The day budget: a task that would start once its installation's model spend today has
reached MAX_COST_PER_DAY, or its repository's its own `max_cost_per_day`, waits (state
`waiting`) for the next UTC day, when the workers' housekeeping queues it again by itself."""

from __future__ import annotations

import time

from app import budget
from app.dispatch import Dispatcher
from app.github import GitHubError
from app.store import Store
from app.tasks import State, Task
from jobs.pipeline import Context, status_for
from jobs.spend import AGENT_KINDS, Caps, day_refusal

WAITING = "fh:budget:day-waiting"  # task ids, scored by when they may start again


def hold(ctx: Context, task: Task, now: float | None = None) -> str | None:
    """None when the operator's day cap allows the task to start; else it is now waiting,
    and why. (The repository's is checked once its config is read: jobs/pipeline.py.)"""
    if task.kind not in AGENT_KINDS:
        return None
    caps = Caps(day=ctx.settings.max_cost_per_day)
    why = day_refusal(ctx.store.redis, task.installation_id, task.repo, caps)
    if why is None:
        return None
    wait(ctx, task, why, now)
    return why


def wait(ctx: Context, task: Task, why: str, now: float | None = None) -> None:
    """The task waits for the next UTC day, saying `why` on its status comment."""
    store = ctx.store
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
