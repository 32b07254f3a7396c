""" "Re-run" pressed on a `forgehand` check run: the task behind it is tried again, as
`/agent retry` would, once the person who pressed it is known to have write access."""

from __future__ import annotations

from dataclasses import replace

from app.tasks import Kind, Task
from jobs.errors import TaskFailed
from jobs.kinds.commands import dispatcher_for, retry_pull_request
from jobs.pipeline import Context, prepare


def rerun(task: Task, ctx: Context) -> str:
    api, _repo = prepare(task, ctx)  # fails the task unless the sender has write access
    run = api.get(f"/repos/{task.repo}/check-runs/{task.check_run_id}")
    if (run.get("app") or {}).get("id") != ctx.settings.app_id:
        raise TaskFailed(f"check run {task.check_run_id} is not forgehand's; nothing was done.")
    origin = f"Re-run by {task.sender} on check run {task.check_run_id}"
    # The task id forgehand gave the check run when it made it.
    record = ctx.store.get(str(run.get("external_id") or ""))
    if record is not None and record.task.kind not in (Kind.CI, Kind.RERUN):
        if record.state.active:
            return f"{record.id} is {record.state.value} already"
        outcome = dispatcher_for(ctx).enqueue(record.task, origin)
        return f"{record.id} {outcome.note}"
    number = record.task.number if record is not None else task.number
    if not number or not ctx.store.is_app_pull_request(task.repo_id, number):
        raise TaskFailed(
            f"check run {task.check_run_id} is on no pull request forgehand opened, and its "
            "task is no longer known; nothing was done."
        )
    return retry_pull_request(replace(task, number=number), ctx, api, origin)
