"""Enqueue tasks on RQ exactly once while they are live, and cancel them.

The task record and the RQ job are written together by one Lua script that first checks
nothing changed since they were read (the job's status, the record's run), so concurrent
deliveries for the same work make one job, and a record can never say "queued" for a job that
does not exist. A script rather than WATCH/MULTI: two round trips instead of four on the
webhook's hot path, and no per-command QUEUED replies to parse.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass

from redis import Redis
from redis.client import Pipeline
from redis.typing import EncodableT
from rq import Queue, Retry
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus

from app.store import Store, task_key, text
from app.tasks import Cancel, State, Task

QUEUE_NAME = "forgehand"
JOB_FUNCTION = "jobs.entry.run_task"
LIVE_JOB_STATES = frozenset({"queued", "started", "deferred", "scheduled"})
RESULT_TTL = 24 * 3600
FAILURE_TTL = 7 * 24 * 3600
# An outage (Redis, git fetch, GitHub 5xx) fails the job, not the task: RQ runs it again after
# these waits. Failures a person must hear of are reported by the task and not retried.
RETRY_INTERVALS = [10, 60, 300]


def job_timeout(agent_timeout: int) -> int:
    """RQ's hard limit for one task: the agent may run twice (once more after a failed
    `test`), plus time for setup, tests, git and GitHub."""
    return 2 * agent_timeout + 900


# KEYS: the job hash, the task hash. ARGV: the job status and task run that were read ("" for
# none), then each queued command as its argument count followed by its arguments.
APPLY_IF_UNCHANGED = """
if (redis.call('HGET', KEYS[1], 'status') or '') ~= ARGV[1]
    or (redis.call('HGET', KEYS[2], 'run') or '') ~= ARGV[2] then
  return 0
end
local i = 3
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return 1
"""


@dataclass(frozen=True)
class Outcome:
    task_id: str
    enqueued: bool
    note: str


def queue_for(redis: Redis) -> Queue:
    return Queue(QUEUE_NAME, connection=redis)


class Dispatcher:
    def __init__(self, store: Store, job_timeout: int) -> None:
        self.store = store
        self.redis = store.redis
        self.queue = queue_for(store.redis)
        self.job_timeout = job_timeout
        self._apply = store.redis.register_script(APPLY_IF_UNCHANGED)

    def enqueue(self, task: Task, origin: str) -> Outcome:
        """Queue `task` unless a job for the same id is still queued or running."""
        job_key = Job.key_for(task.id)
        while True:
            with self.redis.pipeline(transaction=False) as read:
                read.hget(job_key, "status")
                read.hget(task_key(task.id), "run")
                read.hget(task_key(task.id), "created")
                raw_status, raw_run, raw_created = read.execute()
            status = text(raw_status) if raw_status is not None else ""
            if status in LIVE_JOB_STATES:
                self.store.audit(task.id, "duplicate", f"already {status}; {origin}")
                return Outcome(task.id, False, f"already {status}")
            run = int(raw_run) + 1 if raw_run is not None else 1
            created = float(raw_created) if raw_created is not None else None
            # Commands are queued on a pipeline that is never executed: the script runs them.
            # In MULTI mode because RQ insists on it when handed a pipeline.
            with self.redis.pipeline() as writes:
                writes.multi()
                stale = _fetch_job(self.redis, task.id) if status else None
                if stale is not None:
                    # A finished run's job keeps its id until its TTL; re-running the same
                    # work (re-labelling after the PR closed) must be possible at once.
                    stale.delete(pipeline=writes)
                self.store.write_queued(writes, task, run, created)
                self.store.audit_write(writes, task.id, "queued", f"run {run}; {origin}")
                self.queue.enqueue_call(
                    JOB_FUNCTION,
                    args=(task.id, run),
                    job_id=task.id,
                    timeout=self.job_timeout,
                    result_ttl=RESULT_TTL,
                    failure_ttl=FAILURE_TTL,
                    retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
                    description=f"{task.kind.value} {task.repo}#{task.number}",
                    pipeline=writes,
                )
                expected = [status, text(raw_run) if raw_run is not None else ""]
                applied = self._apply(
                    keys=[job_key, task_key(task.id)], args=expected + _flatten(writes)
                )
            if applied:
                self.store.audit_log(task.id, "queued", f"run {run}; {origin}")
                return Outcome(task.id, True, f"queued run {run}")

    def cancel(self, cancel: Cancel) -> list[str]:
        """Cancel the live tasks on one issue or pull request; return their ids."""
        cancelled = []
        live = (State.QUEUED, State.RUNNING, State.WAITING)
        for task_id in self.store.on_target(cancel.repo_id, cancel.number):
            if self.store.transition(task_id, live, State.CANCELLED, cancel.reason):
                self.store.audit(task_id, "cancelled", cancel.reason)
                self.stop_job(task_id)
                cancelled.append(task_id)
        return cancelled

    def stop_job(self, task_id: str) -> None:
        job = _fetch_job(self.redis, task_id)
        if job is None:
            return
        status = job.get_status(refresh=False)
        if status == JobStatus.STARTED:
            # It may finish between the two reads; the record already says cancelled.
            with suppress(InvalidJobOperation, NoSuchJobError):
                send_stop_job_command(self.redis, task_id)
        elif status in (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED):
            job.cancel()


def _flatten(pipe: Pipeline) -> list[EncodableT]:
    out: list[EncodableT] = []
    for args, _options in pipe.command_stack:
        out.append(len(args))
        out.extend(args)
    return out


def _fetch_job(redis: Redis, job_id: str) -> Job | None:
    try:
        return Job.fetch(job_id, connection=redis)
    except NoSuchJobError:
        return None
