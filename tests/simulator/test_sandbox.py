"""simulator/sandbox.py: the sandbox says so at once when its worker stops, instead of
waiting for ever on work nothing will run."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from redis import Redis

from app.store import Store
from app.tasks import Kind, Task
from simulator.sandbox import Narrator, Stack, WorkerStopped, settle
from simulator.sim import Simulation


def test_a_stopped_worker_is_told_once_with_the_end_of_its_log(
    tmp_path: Path, redis: Redis
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "worker.log").write_text("starting\nnamespaces cannot be created here\n")
    worker = subprocess.Popen([sys.executable, "-c", "raise SystemExit(2)"])
    worker.wait()
    stack = Stack.__new__(Stack)
    stack.worker, stack.logs = worker, logs
    store = Store(redis)
    sim = Simulation.__new__(Simulation)
    out = io.StringIO()
    narrator = Narrator(sim, store, out, stack)
    with pytest.raises(WorkerStopped, match=r"exit 2(.|\n)*namespaces cannot be created here"):
        narrator.look()
    # A task left queued is named, not waited on until the deadline.
    pipe = redis.pipeline()
    store.write_queued(pipe, Task(Kind.ISSUE, 1, 2, "o/r", 3, "carol"), 1, None)
    pipe.execute()
    settle(store, narrator, deadline=float("inf"))
    assert "stopping with 1 task(s) unfinished: issue-2-3" in out.getvalue()
