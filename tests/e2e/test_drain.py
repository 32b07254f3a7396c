"""Upgrades with real processes: SIGTERM drains a worker, a rolling restart of two workers in
the middle of two agent runs loses neither task, and a run that has pushed is never handed back."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import httpx
import pytest
from rq import Queue

from app.dispatch import QUEUE_NAME
from app.settings import parse
from app.tasks import State
from simulator.sandbox import Stack, stop_process
from tests.jobs.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
HANG = [sys.executable, str(ROOT / "tests" / "agents" / "scripted.py"), "hang"]
DEMO = [sys.executable, str(ROOT / "simulator" / "demo_agent.py"), "careful"]
TASKS = ("issue-4101-1", "issue-4101-2")


def _thinking(stack: Stack, task_id: str) -> bool:
    """Whether the hanging agent of `task_id` has started (it says so, then hangs)."""
    return any("thinking" in line for line in stack.store.log_tail(task_id))


def _done(stack: Stack, task_id: str) -> bool:
    record = stack.store.get(task_id)
    return record is not None and record.state is State.DONE


def _handed_back(stack: Stack) -> int:
    return sum(
        e["event"] == "handed back" for task_id in TASKS for e in stack.store.events(task_id)
    )


def _drain(stack: Stack, worker: subprocess.Popen[bytes]) -> None:
    """SIGTERM `worker`, which runs a hanging agent: it must hand its task back within
    WORKER_DRAIN_TIMEOUT and exit by itself."""
    before = _handed_back(stack)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    assert _handed_back(stack) == before + 1


def _said_handed_back(stack: Stack) -> list[str]:
    return [b for n in (1, 2) for b in stack.sim.sim.comment_bodies(n) if "Handed back" in b]


def test_a_rolling_restart_of_two_workers_mid_run_loses_no_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKER_DRAIN_TIMEOUT", "1")
    with Stack(parse({}), tmp_path / "sandbox", HANG) as stack:
        sim = stack.sim
        first = stack.worker
        assert first is not None
        second = stack.start_worker()
        replacements: list[subprocess.Popen[bytes]] = []
        try:
            sim.open_issue(2, "sub() adds", "sub(3, 1) should be 2.")
            for number in (1, 2):
                sim.label_issue(number, "agent")
            for task_id in TASKS:
                wait_until(partial(_thinking, stack, task_id), f"{task_id}'s agent", 60)
            # One worker at a time: stop it, then start its replacement (with an agent that
            # finishes), as a rolling upgrade does.
            stack.env["AGENT_COMMAND"] = shlex.join(DEMO)
            _drain(stack, first)
            # The status comment says so; no worker is free to take the task up yet.
            assert len(_said_handed_back(stack)) == 1
            replacements.append(stack.start_worker())
            _drain(stack, second)
            replacements.append(stack.start_worker())

            sim.wait(lambda: len(sim.sim.pulls) == 2, 120, "both pull requests")
            for task_id, number in zip(TASKS, (1, 2), strict=True):
                sim.wait(partial(_done, stack, task_id), 60, f"{task_id} done")
                # One status comment per issue, edited to its last word.
                (comment,) = sim.sim.comment_bodies(number)
                assert "Opened #" in comment
                history = [e["event"] for e in stack.store.events(task_id)]
                assert history.count("handed back") == 1, history
                assert "failed" not in history
            # What the pull requests' green CI queues after them (its verdicts, their files)
            # is taken up too: nothing is left waiting for a worker that went.
            queue = Queue(QUEUE_NAME, connection=stack.store.redis)
            sim.wait(lambda: queue.count == 0, 60, "the queue empty")
        finally:
            stack.worker = None  # stopped here with the others
            for proc in (first, second, *replacements):
                stop_process(proc)


def test_a_run_that_has_pushed_is_not_handed_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Handed back after its push, the task would run its agent again and push again.
    monkeypatch.setenv("WORKER_DRAIN_TIMEOUT", "1")
    with Stack(parse({}), tmp_path / "sandbox", DEMO) as stack:
        sim, worker = stack.sim, stack.worker
        assert worker is not None
        github = sim.sim
        opening, go_on = threading.Event(), threading.Event()
        answer = github.handle

        def held(request: httpx.Request) -> httpx.Response:
            # The pull request is opened only once the worker has told its horse to hand back.
            if request.method == "POST" and request.url.path.endswith("/pulls"):
                opening.set()
                go_on.wait(60)
            return answer(request)

        monkeypatch.setattr(github, "handle", held)
        sim.label_issue(1, "agent")
        assert opening.wait(120), "the pull request was never asked for"
        assert github.head_sha("agent/issue-1-add-subtracts")
        worker.send_signal(signal.SIGTERM)
        log = stack.logs / "worker.log"
        wait_until(lambda: "WORKER_DRAIN_TIMEOUT passed" in log.read_text(), "the hand-back", 30)
        go_on.set()
        assert worker.wait(timeout=60) == 0
        record = stack.store.get("issue-4101-1")
        assert record is not None and record.state is State.DONE, record
        history = [e["event"] for e in stack.store.events("issue-4101-1")]
        assert "handed back" not in history, history
        assert len(github.pulls) == 1
        (comment,) = github.comment_bodies(1)
        assert "Opened #" in comment
