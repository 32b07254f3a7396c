"""RQ entry point: moves a task through its states around the pipeline. Thin on purpose."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache

from rq import get_current_job

from app.github import App
from app.settings import Settings, SettingsError, load
from app.store import Store, count_task
from app.tasks import Kind, State, Task
from jobs import day_budget, hand_back, pipeline
from jobs.boundary import redactor_for
from jobs.errors import (
    HANDED_BACK,
    DayBudgetReached,
    Escalated,
    HandedBack,
    TaskFailed,
    permanent_reason,
)
from jobs.fleet import pulls as fleet
from jobs.kinds import (
    address_review,
    approve,
    check_base,
    closed,
    fix_ci,
    fork_notice,
    plan_epic,
    recheck,
    rerun,
    resolve_conflict,
    resolve_issue,
    run_command,
    tell_verdict,
)
from jobs.workspace import Workspaces

HANDLERS: dict[Kind, Callable[[Task, pipeline.Context], str]] = {
    Kind.ISSUE: resolve_issue,
    Kind.CI: fix_ci,
    Kind.REVIEW: address_review,
    Kind.COMMAND: run_command,
    Kind.CLOSED: closed,
    Kind.FORK: fork_notice,
    Kind.BASE: check_base,
    Kind.CONFLICT: resolve_conflict,
    Kind.PLAN: plan_epic,
    Kind.PLAN_EDIT: recheck,
    Kind.APPROVE: approve,
    Kind.RERUN: rerun,
    Kind.SYNC: fleet.pushed,
    Kind.VERDICT: tell_verdict,
}


@cache
def worker_settings() -> Settings:
    """Read once per worker process (work-horses inherit it)."""
    return load()


def run_task(task_id: str, run: int) -> str:
    job = get_current_job()
    if job is None:
        raise RuntimeError("run_task must run inside an RQ job")
    store = Store(job.connection)
    try:
        settings = worker_settings()
        ctx = pipeline.Context(
            store=store,
            settings=settings,
            app=App(settings, job.connection),
            workspaces=Workspaces(settings.workspaces_dir),
        )
    except SettingsError as exc:
        # No run can pass until someone sets it: fail at once instead of retrying.
        return fail_now(store, task_id, run, f"forgehand is not configured: {exc}")
    retries_left = job.retries_left or 0
    hand_back.listen(True)
    return execute(ctx, task_id, run, job.worker_name or "?", retries_left)


def execute(
    ctx: pipeline.Context, task_id: str, run: int, worker: str, retries_left: int = 0
) -> str:
    store = ctx.store
    record = store.get(task_id)
    if record is None or record.run != run:
        return "superseded"
    # RUNNING too: RQ runs a job again when the worker that had it died mid-way.
    if not store.transition(task_id, (State.QUEUED, State.RUNNING), State.RUNNING):
        return "not queued any more"
    resumed = " (again: the previous worker was lost)" if record.state is State.RUNNING else ""
    store.audit(task_id, "running", f"worker {worker}{resumed}")
    horse = ctx.workspaces.run_dir / f"horse-{os.getpid()}"
    horse.parent.mkdir(parents=True, exist_ok=True)
    horse.write_text(str(os.getppid()))
    try:
        try:
            waits = day_budget.hold(ctx, record.task)
            if waits is not None:
                return waits
            summary = HANDLERS[record.task.kind](record.task, ctx)
        finally:
            # Past this point the run's outcome is being recorded: too late to hand it back.
            hand_back.listen(False)
    except HandedBack:
        # The worker requeues the task once this returns (jobs/worker.py).
        if store.transition(task_id, (State.RUNNING,), State.QUEUED, HANDED_BACK):
            store.audit(task_id, "handed back", f"worker {worker} is stopping")
        return "handed back"
    except DayBudgetReached as exc:
        day_budget.wait(ctx, record.task, str(exc))
        return str(exc)
    except Escalated as exc:
        # It names the failing checks, which the repository's CI chose.
        reason = redactor_for(ctx.settings).text(str(exc))
        _finish(store, record.task, State.ESCALATED, reason)
        return reason
    except Exception as exc:
        # A failure people must fix (TaskFailed, or a permanent error) ends the task now.
        known = str(exc) if isinstance(exc, TaskFailed) else permanent_reason(exc)
        if known is not None:
            # Shown on the dashboard; it may name files the agent made, or quote git.
            reason = redactor_for(ctx.settings).text(known)
            _finish(store, record.task, State.FAILED, reason)
            return f"failed: {reason}"
        # Anything else is the infrastructure's: RQ keeps the traceback and runs the job again
        # while it has retries left; only then does the task fail.
        reason = redactor_for(ctx.settings).text(f"internal error: {type(exc).__name__}: {exc}")
        if retries_left > 0:
            if store.transition(task_id, (State.RUNNING,), State.QUEUED, reason):
                store.audit(task_id, "retrying", f"{reason}; {retries_left} retries left")
        else:
            _finish(store, record.task, State.FAILED, reason)
        raise
    finally:
        horse.unlink(missing_ok=True)
        hand_back.delivering_file(horse.parent, os.getpid()).unlink(missing_ok=True)
    _finish(store, record.task, State.DONE, summary)
    return summary


def fail_now(store: Store, task_id: str, run: int, reason: str) -> str:
    """Fail a task before it could start (no worker context to run it with)."""
    record = store.get(task_id)
    if record is None or record.run != run:
        return "superseded"
    _finish(store, record.task, State.FAILED, reason, (State.QUEUED, State.RUNNING))
    return f"failed: {reason}"


def _finish(
    store: Store, task: Task, state: State, detail: str, frm: tuple[State, ...] = (State.RUNNING,)
) -> None:
    # A task cancelled while it ran stays cancelled, whatever the pipeline reached.
    if store.transition(task.id, frm, state, "" if state is State.DONE else detail):
        if state is State.DONE:
            store.set_result(task.id, detail)
        store.audit(task.id, state.value, detail)
        count_task(store.redis, task.kind.value, state.value)
