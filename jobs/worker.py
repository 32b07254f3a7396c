"""Starting RQ workers: one in this process, or N in child processes."""

from __future__ import annotations

import multiprocessing
import os
import signal
from types import FrameType

from rq import Worker

from app.dispatch import queue_for
from app.redis_conn import connect


def work(redis_url: str, burst: bool, log_level: str) -> bool:
    redis = connect(redis_url)
    worker = Worker([queue_for(redis)], connection=redis)
    return worker.work(burst=burst, logging_level=log_level.upper(), with_scheduler=True)


def run_workers(redis_url: str, count: int, burst: bool, log_level: str) -> int:
    if count == 1:
        work(redis_url, burst, log_level)
        return 0
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=work, args=(redis_url, burst, log_level), name=f"forgehand-worker-{i}")
        for i in range(count)
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
