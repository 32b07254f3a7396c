"""Enqueue tasks on RQ exactly once while they are live, and cancel them.

The task record and the RQ job are written together by one Lua script that first checks
nothing changed since they were read (the job's status, the record's run), so concurrent
deliveries for the same work make one job, and a record can never say "queued" for a job that
does not exist. A script rather than WATCH/MULTI: no per-command QUEUED replies to parse, and
the webhook reads what it checks in the same round trip as its delivery claim, so real work
costs two round trips in all. The job's hash is built here, field for field what RQ's own
enqueue writes (tests/app/test_dispatch.py compares them and runs the job on a real worker):
an RQ Job object costs more to build than the rest of the delivery.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.typing import EncodableT, FieldT
from rq import Queue
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import DefaultSerializer
from rq.utils import utcformat

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
class Seen:
    """What enqueueing a task checks and builds on, as read: its job's status, its record's
    run and creation time ("" for none)."""

    status: str = ""
    run: str = ""
    created: str = ""


def read_seen(pipe: Pipeline, task_id: str) -> None:
    """Queue the two reads `seen_from` turns into a Seen, on the caller's pipeline."""
    pipe.hget(Job.key_for(task_id), "status")
    pipe.hmget(task_key(task_id), ["run", "created"])


def seen_from(replies: list[Any]) -> Seen:
    status, (run, created) = replies
    return Seen(*(text(v) if v is not None else "" for v in (status, run, created)))


def job_hash(
    task_id: str, run: int, description: str, timeout: int, at: datetime
) -> dict[FieldT, EncodableT]:
    """The hash RQ 3's Queue.enqueue_call writes for run_task(task_id, run) on our queue."""
    stamp = utcformat(at)
    call: tuple[Any, ...] = (JOB_FUNCTION, None, (task_id, run), {})
    return {
        "created_at": stamp,
        "data": zlib.compress(DefaultSerializer.dumps(call)),
        "success_callback_name": "",
        "failure_callback_name": "",
        "stopped_callback_name": "",
        "started_at": "",
        "ended_at": "",
        "last_heartbeat": "",
        "worker_name": "",
        "group_id": "",
        "retries_left": len(RETRY_INTERVALS),
        "retry_intervals": json.dumps(RETRY_INTERVALS),
        "origin": QUEUE_NAME,
        "description": description,
        "enqueued_at": stamp,
        "timeout": timeout,
        "result_ttl": RESULT_TTL,
        "failure_ttl": FAILURE_TTL,
        "status": JobStatus.QUEUED.value,
    }


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

    def enqueue(
        self,
        task: Task,
        origin: str,
        seen: Seen | None = None,
        then: Callable[[Pipeline], None] | None = None,
    ) -> Outcome:
        """Queue `task` unless a job for the same id is still queued or running.

        `seen` is the task's state as the caller already read it (read_seen), saving a round
        trip; `then` queues more writes to make with ours, in the same round trip.
        """
        while True:
            if seen is None:
                with self.redis.pipeline(transaction=False) as read:
                    read_seen(read, task.id)
                    seen = seen_from(read.execute())
            if seen.status in LIVE_JOB_STATES:
                detail = f"already {seen.status}; {origin}"
                with self.redis.pipeline(transaction=False) as pipe:
                    self.store.audit_write(pipe, task.id, "duplicate", detail)
                    if then is not None:
                        then(pipe)
                    pipe.execute()
                self.store.audit_log(task.id, "duplicate", detail)
                return Outcome(task.id, False, f"already {seen.status}")
            run = int(seen.run) + 1 if seen.run else 1
            created = float(seen.created) if seen.created else None
            # Commands are queued on a pipeline that is never executed: the script runs them.
            # In MULTI mode because RQ insists on it when handed a pipeline (the stale delete).
            with self.redis.pipeline() as writes:
                writes.multi()
                stale = _fetch_job(self.redis, task.id) if seen.status else None
                if stale is not None:
                    # A finished run's job keeps its id until its TTL; re-running the same
                    # work (re-labelling after the PR closed) must be possible at once.
                    stale.delete(pipeline=writes)
                self.store.write_queued(writes, task, run, created)
                self.store.audit_write(writes, task.id, "queued", f"run {run}; {origin}")
                self._write_job(writes, task, run)
                if then is not None:
                    then(writes)
                applied = self._apply(
                    keys=[Job.key_for(task.id), task_key(task.id)],
                    args=[seen.status, seen.run, *_flatten(writes)],
                )
            if applied:
                self.store.audit_log(task.id, "queued", f"run {run}; {origin}")
                return Outcome(task.id, True, f"queued run {run}")
            seen = None

    def _write_job(self, writes: Pipeline, task: Task, run: int) -> None:
        """What RQ's enqueue writes, without building a Job: the hash, the queue, the queue's
        name in the set of queues."""
        description = f"{task.kind.value} {task.repo}#{task.number}"
        fields = job_hash(task.id, run, description, self.job_timeout, datetime.now(UTC))
        writes.sadd(self.queue.redis_queues_keys, self.queue.key)
        writes.hset(Job.key_for(task.id), mapping=fields)
        writes.rpush(self.queue.key, task.id)

    def cancel(self, cancel: Cancel) -> list[str]:
        """Cancel the live tasks on one issue or pull request; return their ids."""
        targets = self.store.on_target(cancel.repo_id, cancel.number)
        spare = cancel.spare_opened
        return [t for t in targets if self.cancel_task(t, cancel.reason, spare)]

    def cancel_task(self, task_id: str, reason: str, spare_opened: bool = False) -> bool:
        """Cancel one task if it is queued, running or waiting, stopping its job; False if it
        was not (or, with `spare_opened`, its running run has opened its pull request: it
        finishes)."""
        live = [s for s in State if s.active]
        if not self.store.transition(task_id, live, State.CANCELLED, reason, spare_opened):
            if spare_opened:
                self._spared(task_id, reason)
            return False
        self.store.audit(task_id, "cancelled", reason)
        self.stop_job(task_id)
        return True

    def _spared(self, task_id: str, reason: str) -> None:
        record = self.store.get(task_id)
        if record is not None and record.state is State.RUNNING and record.pull is not None:
            self.store.audit(
                task_id, reason, f"not cancelled: its pull request #{record.pull} is open"
            )

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
