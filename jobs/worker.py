"""Starting RQ workers: one in this process, or N in child processes."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.job import Job
from rq.worker import BaseWorker

from app import logs
from app.dispatch import Dispatcher, job_timeout, queue_for
from app.store import Store, connect, schema
from app.tasks import State
from jobs.agents import kill_recorded
from jobs.entry import worker_settings
from jobs.hand_back import HAND_BACK_SIGNAL, delivering_file
from jobs.housekeeping import housekeeping
from jobs.pipeline import pgid_file_for
from jobs.workspace import Workspaces, pid_alive

log = logging.getLogger("forgehand.worker")


# A job whose worker died is noticed once its heartbeat lapses (HEARTBEAT + GRACE) at another
# worker's next maintenance pass, which an idle worker reaches at least every MAINTENANCE
# seconds: about a minute in all, after which RQ runs the job again.
HEARTBEAT = 10
GRACE = 15
MAINTENANCE = 30
# How long a work-horse told to hand its task back gets to say so (check run, status comment)
# before it is killed; RQ then runs the job again as it would a lost worker's.
HAND_BACK_GRACE = 60


class ListenerFirstWorker(BaseWorker):
    """RQ's worker, of either kind, stopping its command listener at once when it stops."""

    def unsubscribe(self) -> None:
        # RQ unsubscribes first and then stops the listening thread, which redis-py 8 joins
        # without a limit: a thread that loops between the two waits up to a minute for a
        # subscription that never comes back (seen as a worker, `dev` or the sandbox taking
        # a minute to stop). Stopped first, the thread leaves at the unsubscribe's reply.
        if self.pubsub_thread is not None:
            self.pubsub_thread.stop(timeout=0)
        super().unsubscribe()  # type: ignore[no-untyped-call]  # RQ leaves it untyped


class ForgehandWorker(ListenerFirstWorker, Worker):
    """An RQ worker that also stops the agent of a stopped job and cleans up after it.

    Agents run in process groups of their own (so a timeout kills all of an agent's
    children), which RQ's killing of the work-horse's group does not reach.
    """

    workspaces: Workspaces
    drain_timeout: float
    # Set on SIGTERM: when the running task must be handed back, then when its horse is killed.
    drain_deadline: float | None = None
    handing_back: str | None = None
    kill_deadline: float = 0.0

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        if self.drain_deadline is None:
            self.drain_deadline = time.monotonic() + self.drain_timeout
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]  # RQ: untyped

    def maintain_heartbeats(self, job: Job, execution: Any) -> None:
        super().maintain_heartbeats(job, execution)
        if self.drain_deadline is None or time.monotonic() < self.drain_deadline:
            return
        if self.handing_back != job.id:
            log.warning("WORKER_DRAIN_TIMEOUT passed: handing %s back to the queue", job.id)
            self.handing_back = job.id
            self.kill_deadline = time.monotonic() + HAND_BACK_GRACE
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.horse_pid, HAND_BACK_SIGNAL)
        elif time.monotonic() >= self.kill_deadline and not self.delivering():
            log.warning("%s was not handed back in %s s: killing it", job.id, HAND_BACK_GRACE)
            self.kill_horse()

    def delivering(self) -> bool:
        # A run that has pushed keeps its task (jobs/hand_back.py): killed, RQ would run it
        # again, agent and push included. The job's timeout still bounds it.
        return delivering_file(self.workspaces.run_dir, self.horse_pid).exists()

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        # RQ's own grace is a minute; a dead worker's job is taken over sooner with this.
        remaining = (job.timeout or HEARTBEAT) - working_time
        return int(min(remaining, HEARTBEAT)) + GRACE

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.horse_pid:
            kill_recorded(pgid_file_for(self.workspaces, self.horse_pid))
        super().kill_horse(sig)

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()  # type: ignore[no-untyped-call]  # RQ leaves it untyped
        try:
            housekeeping(worker_settings(), self.connection)
        except Exception:
            # Housekeeping must never take the worker down; it runs again next interval.
            log.exception("housekeeping failed")

    def execute_job(self, job: Job, queue: Queue) -> Any:
        try:
            return super().execute_job(job, queue)
        finally:
            # A horse that was killed (stop, timeout, crash) could not clean up itself.
            reap(self.workspaces)
            if self.handing_back == job.id:
                requeue(self.connection, job, self.name)


def requeue(redis: Redis, job: Job, worker: str) -> None:
    """Queue again the task a draining worker's horse handed back (its record says queued,
    for the run this job was): a new run, on a new job, for whichever worker is next."""
    task_id, run = job.args
    store = Store(redis)
    record = store.get(task_id)
    if record is None or record.state is not State.QUEUED or record.run != run:
        return  # finished, cancelled or re-queued by someone else meanwhile
    timeout = job_timeout(worker_settings().agent_timeout)
    Dispatcher(store, timeout).enqueue(record.task, f"handed back by worker {worker}")


def reap(workspaces: Workspaces) -> None:
    """Kill what a dead worker on this machine left running, and remove its worktrees.

    A work-horse whose worker was killed runs on as an orphan; RQ will run its job again, so
    the orphan and its agent are stopped before they push a second time.
    """
    if workspaces.run_dir.is_dir():
        for horse_file in workspaces.run_dir.glob("horse-*"):
            horse = int(horse_file.name.removeprefix("horse-"))
            try:
                parent = int(horse_file.read_text())
            except (OSError, ValueError):
                parent = 0
            if pid_alive(horse) and not pid_alive(parent):
                kill_recorded(pgid_file_for(workspaces, horse))
                with contextlib.suppress(ProcessLookupError):
                    os.kill(horse, signal.SIGKILL)
            if not pid_alive(horse) or not pid_alive(parent):
                horse_file.unlink(missing_ok=True)
        for said in workspaces.run_dir.glob("delivering-*"):
            if not pid_alive(int(said.name.removeprefix("delivering-"))):
                said.unlink(missing_ok=True)
        for pgid_file in workspaces.run_dir.glob("agent-*.pgid"):
            horse = int(pgid_file.stem.removeprefix("agent-"))
            if not pid_alive(horse):
                kill_recorded(pgid_file)
    removed = workspaces.prune_stale()
    if removed:
        log.info("removed stale worktrees: %s", ", ".join(removed))
    idle = workspaces.prune_pool()
    if idle:
        log.info("removed kept worktrees unused for a day: %s", ", ".join(idle))


def work(
    redis_url: str,
    burst: bool,
    log_level: str,
    log_format: str,
    workspaces_dir: Path,
    drain_timeout: int,
) -> bool:
    """Run a worker until it is asked to stop (or, with burst, the queue is empty).

    Asked to stop (SIGTERM) while a task runs, it takes no more jobs and lets the task go on
    for `drain_timeout` seconds, then hands it back to the queue, unless it has begun to push,
    when it lets it finish; a second SIGTERM stops it at once.

    RQ's worker quits when Redis vanishes in the middle of a job; this one waits for Redis to
    come back and carries on, so an outage needs no restart by hand.
    """
    # A worker of several is a new interpreter (spawned), with no logging of its own yet.
    logs.configure(log_level, log_format)
    workspaces = Workspaces(workspaces_dir)
    while True:
        redis = connect(redis_url)
        _wait_for_redis(redis)
        try:
            schema.ensure(redis)
        except schema.SchemaError as exc:
            log.error("%s", exc)
            raise SystemExit(2) from None
        reap(workspaces)
        worker = ForgehandWorker(
            [queue_for(redis)],
            connection=redis,
            # Also how often a draining worker looks at its deadline.
            job_monitoring_interval=max(1, min(HEARTBEAT, drain_timeout)),
            maintenance_interval=MAINTENANCE,
            # An idle worker waits for jobs this long less 15 s before it looks at maintenance.
            worker_ttl=MAINTENANCE + 15,
        )
        worker.workspaces = workspaces
        worker.drain_timeout = drain_timeout
        try:
            worked = worker.work(burst=burst, logging_level=log_level.upper(), with_scheduler=True)
        except (RedisError, OSError) as exc:
            # Its teardown, talking to a Redis that is gone, can fail too.
            log.warning("the worker lost Redis: %s", exc)
            worked = False
        if burst or worker._shutdown_requested_date is not None:
            return worked
        log.warning("the worker stopped on an error (was Redis lost?); starting it again")
        time.sleep(1)


def _wait_for_redis(redis: Redis) -> None:
    delay = 0.5
    while True:
        try:
            redis.ping()
            return
        except RedisError as exc:
            log.warning("waiting for Redis: %s", exc)
            time.sleep(delay)
            delay = min(delay * 2, 10)


def run_workers(
    redis_url: str,
    count: int,
    burst: bool,
    log_level: str,
    log_format: str,
    workspaces_dir: Path,
    drain_timeout: int,
) -> int:
    args = (redis_url, burst, log_level, log_format, workspaces_dir, drain_timeout)
    if count == 1:
        work(*args)
        return 0
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=work, args=args, name=f"forgehand-worker-{i}") for i in range(count)
    ]
    for proc in procs:
        proc.start()

    def forward(signum: int, _frame: FrameType | None) -> None:
        # Each RQ worker treats the signal as it would alone: the first finishes the
        # current job and exits, a second one kills it.
        for proc in procs:
            if proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for proc in procs:
        proc.join()
    return max(proc.exitcode or 0 for proc in procs)


def run_in_own_session(
    redis_url: str,
    count: int,
    log_level: str,
    log_format: str,
    workspaces_dir: Path,
    drain_timeout: int,
) -> None:
    """`forgehand dev`'s workers, in a session of their own: the terminal's Ctrl-C reaches
    `dev` alone, which stops them itself, in order, while Redis is still there."""
    os.setsid()
    sys.exit(
        run_workers(redis_url, count, False, log_level, log_format, workspaces_dir, drain_timeout)
    )
