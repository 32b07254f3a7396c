from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis import Redis
from rq import Queue
from rq.worker import BaseWorker

from app.dispatch import job_timeout
from app.settings import Settings
from jobs.hand_back import delivering_file
from jobs.worker import HAND_BACK_GRACE, ForgehandWorker
from jobs.workspace import Workspaces
from simulator.sandbox import key_pair
from tests.fakes import BurstWorker


def stops_listening(worker: BaseWorker) -> bool:
    """Whether the worker stops listening for commands within 10 s (not RQ's minute) when its
    main thread is slow between unsubscribing and stopping the listening thread."""
    worker.subscribe()  # type: ignore[no-untyped-call]  # RQ leaves it untyped
    pubsub = worker.pubsub
    assert pubsub is not None
    sent = pubsub.unsubscribe

    def slowly(*args: Any) -> Any:
        # The window in which the listener reads the reply and loops, waiting for a new
        # subscription: widened, so that every run takes the path some runs take.
        answer = sent(*args)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        time.sleep(0.5)
        return answer

    pubsub.unsubscribe = slowly  # type: ignore[method-assign]
    stopping = threading.Thread(target=worker.unsubscribe, daemon=True)
    stopping.start()
    stopping.join(10)
    return not stopping.is_alive()


def test_a_worker_stops_listening_for_commands_at_once(redis: Redis) -> None:
    queue = Queue("stop-test", connection=redis)
    # RQ's own Worker fails this (checked by hand: its listener then waits out the minute).
    assert stops_listening(ForgehandWorker([queue], connection=redis))
    # The tests' in-process worker too: with RQ's order, 30 tests waited out that minute.
    assert stops_listening(BurstWorker([queue], connection=redis))


def test_each_of_several_workers_logs_in_the_log_format(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    # `worker -n 2` spawns its workers as new interpreters: they logged in RQ's own format,
    # and forgehand's lines (every step of a task) not at all, whatever LOG_FORMAT said.
    settings = {
        "REDIS_URL": redis_url,
        "LOG_FORMAT": "json",
        "APP_ID": "1",
        "PRIVATE_KEY": key_pair()[0],
        "WORKSPACES_DIR": str(tmp_path / "workspaces"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "app", "worker", "-n", "2", "--burst"], cwd=tmp_path,
        env=os.environ | settings, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines()]
    assert len([r for r in records if "started with PID" in r["msg"]]) == 2, done.stderr


def test_a_draining_worker_never_kills_a_run_that_has_pushed(
    redis: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Killed, its job would run again as a lost worker's: the agent again, the push again.
    monkeypatch.setattr(BaseWorker, "maintain_heartbeats", lambda *_: None)  # RQ's, in Redis
    monkeypatch.setattr("jobs.worker.HAND_BACK_GRACE", 0)
    killed: list[int] = []
    monkeypatch.setattr(ForgehandWorker, "kill_horse", lambda w, *_: killed.append(w.horse_pid))
    ignoring = "import signal; signal.signal(signal.SIGUSR1, signal.SIG_IGN); print(); input()"
    with subprocess.Popen(
        [sys.executable, "-c", ignoring], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as horse:
        try:
            assert horse.stdout is not None and horse.stdout.readline() == b"\n"
            queue = Queue("drain-test", connection=redis)
            worker = ForgehandWorker([queue], connection=redis)
            worker.workspaces = Workspaces(tmp_path)
            worker.workspaces.run_dir.mkdir(parents=True)
            worker.drain_deadline = 0.0
            worker._horse_pid = horse.pid
            job = queue.enqueue("jobs.entry.run_task", "issue-1-7", 1)
            worker.maintain_heartbeats(job, None)  # told to hand back, and ignoring it
            delivering = delivering_file(worker.workspaces.run_dir, horse.pid)
            delivering.touch()
            worker.maintain_heartbeats(job, None)
            assert killed == []
            delivering.unlink()
            worker.maintain_heartbeats(job, None)
            assert killed == [horse.pid]
        finally:
            horse.kill()


REAP = (
    "import sys; from pathlib import Path; from jobs.worker import reap; "
    "from jobs.workspace import Workspaces; reap(Workspaces(Path(sys.argv[1])))"
)


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1)")
def test_a_worker_in_another_pid_namespace_leaves_this_ones_runs_alone(tmp_path: Path) -> None:
    # Workers of several containers share the workspaces volume: a pid means another process
    # in each. Another's reap must not take this horse's pushing run for a dead one's.
    workspaces = Workspaces(tmp_path)
    workspaces.run_dir.mkdir(parents=True)
    with subprocess.Popen(["sleep", "60"]) as horse:
        try:
            delivering = delivering_file(workspaces.run_dir, horse.pid)
            delivering.touch()
            elsewhere = ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", REAP]
            done = subprocess.run(
                [*elsewhere, str(tmp_path)], capture_output=True, text=True, check=False
            )
            if done.returncode != 0 and "unshare failed" in done.stderr:
                pytest.skip(f"no new PID namespace here: {done.stderr.strip()}")
            assert done.returncode == 0, done.stderr
            assert delivering.exists()
        finally:
            horse.kill()


def test_composes_stop_timeout_outlasts_a_run_that_has_begun_to_push() -> None:
    # Such a run is not handed back but finishes, within its job timeout (RQ kills its horse a
    # minute past it); killed sooner, it would run again, its agent and push included. A
    # minute on top, for the worker's cleanup.
    compose = yaml.safe_load((Path(__file__).parents[2] / "compose.yaml").read_text())
    grace = compose["services"]["worker"]["stop_grace_period"]
    assert isinstance(grace, str) and grace.endswith("m")
    defaults = Settings()
    drained = defaults.worker_drain_timeout + HAND_BACK_GRACE
    needed = max(job_timeout(defaults.agent_timeout) + 60, drained) + 60
    assert int(grace.removesuffix("m")) * 60 >= needed
