"""Starting RQ workers: one in this process, or N in child processes."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from pathlib import Path
from types import FrameType
from typing import Any

from rq import Queue, Worker
from rq.job import Job

from app.dispatch import queue_for
from app.redis_conn import connect
from jobs.agent import kill_recorded
from jobs.pipeline import pgid_file_for
from jobs.workspace import Workspaces, pid_alive

log = logging.getLogger("forgehand.worker")


class ForgehandWorker(Worker):
    """An RQ worker that also stops the agent of a stopped job and cleans up after it.

    Agents run in process groups of their own (so a timeout kills all of an agent's
    children), which RQ's killing of the work-horse's group does not reach.
    """

    workspaces: Workspaces

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.horse_pid:
            kill_recorded(pgid_file_for(self.workspaces, self.horse_pid))
        super().kill_horse(sig)

    def execute_job(self, job: Job, queue: Queue) -> Any:
        try:
            return super().execute_job(job, queue)
        finally:
            # A horse that was killed (stop, timeout, crash) could not clean up itself.
            reap(self.workspaces)


def reap(workspaces: Workspaces) -> None:
    """Kill agents and remove worktrees whose work-horse on this machine is gone."""
    if workspaces.run_dir.is_dir():
        for pgid_file in workspaces.run_dir.glob("agent-*.pgid"):
            horse = int(pgid_file.stem.removeprefix("agent-"))
            if not pid_alive(horse):
                kill_recorded(pgid_file)
    removed = workspaces.prune_stale()
    if removed:
        log.info("removed stale worktrees: %s", ", ".join(removed))


def work(redis_url: str, burst: bool, log_level: str, workspaces_dir: Path) -> bool:
    redis = connect(redis_url)
    workspaces = Workspaces(workspaces_dir)
    reap(workspaces)
    worker = ForgehandWorker([queue_for(redis)], connection=redis)
    worker.workspaces = workspaces
    return worker.work(burst=burst, logging_level=log_level.upper(), with_scheduler=True)


def run_workers(
    redis_url: str, count: int, burst: bool, log_level: str, workspaces_dir: Path
) -> int:
    args = (redis_url, burst, log_level, workspaces_dir)
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
