"""The whole loop across real processes: simulator, web, worker, agents, git.

Each scenario asserts on what the simulated GitHub recorded and on the repository's refs.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from subprocess import Popen
from typing import Any

import httpx
import pytest
from redis import Redis

from app.settings import parse
from simulator import sandbox
from simulator.github import git_out
from simulator.sandbox import SLACK, Stack, limit
from tests.jobs.conftest import gone

ROOT = Path(__file__).resolve().parents[2]
SCRIPTED = ROOT / "tests" / "agents" / "scripted.py"
DEMO = [sys.executable, str(ROOT / "simulator" / "demo_agent.py")]


def stack_for(tmp_path: Path, agent: list[str]) -> Stack:
    # Each test gets its own embedded Redis: worker processes must never share one by accident.
    return Stack(parse({"MAX_ATTEMPTS": "3"}), tmp_path / "sandbox", agent)


@pytest.fixture
def careful(tmp_path: Path) -> Iterator[Stack]:
    with stack_for(tmp_path, [*DEMO, "careful"]) as stack:
        yield stack


def branch_log(stack: Stack, branch: str) -> list[str]:
    out = git_out("log", "--format=%s", f"main..{branch}", cwd=stack.sim.origin)
    return out.splitlines()


def _state(stack: Stack, task_id: str) -> str | None:
    record = stack.store.get(task_id)
    return record.state.value if record else None


def only_pull(stack: Stack) -> int:
    stack.sim.wait(lambda: stack.sim.sim.pulls, 60, "a pull request")
    (number,) = stack.sim.sim.pulls
    return number


def test_labelled_issue_to_green_pull_request_through_a_ci_fix(careful: Stack) -> None:
    sim = careful.sim
    sim.label_issue(1, "agent")
    number = only_pull(careful)
    sim.wait(lambda: sim.latest_check(number) == "success", 60, "green CI")
    pull = sim.sim.pulls[number]
    assert pull["body"].startswith("Fixes #1")
    assert branch_log(careful, pull["head"]) == [
        "Fix CI: sim-ci / test",
        "Resolve #1: add() subtracts",
    ]
    assert sim.sim.reactions == [(1, "eyes")]
    # Every webhook the simulator sent was accepted; the App's own comments started nothing.
    assert {d.status for d in sim.deliveries} <= {202}

    # The fix's push to the pull request has its files read again (a sync task).
    def kinds() -> list[str]:
        return sorted(r.task.kind.value for r in careful.store.recent())

    sim.wait(lambda: "sync" in kinds(), 30, "the push's sync task")
    assert kinds() == ["ci", "issue", "sync"]

    # The CI fix showed itself as a `forgehand` check run; GitHub told the App of it (as it
    # does), and that started nothing. The task completes it after its push, which CI (and the
    # sync task) may answer first.
    def check_runs() -> list[dict[str, Any]]:
        return [r for runs in sim.sim.check_runs.values() for r in runs if r["name"] == "forgehand"]

    def completed() -> bool:
        return bool(check_runs()) and all(r["status"] == "completed" for r in check_runs())

    sim.wait(completed, 30, "the check run to complete")
    ours = check_runs()
    # On the commit whose CI failed it is never green: neutral, saying what it pushed.
    assert [(r["status"], r["conclusion"]) for r in ours] == [("completed", "neutral")]
    assert ours[0]["output"]["title"].startswith("Fix pushed as ")
    assert (
        ours[0]["details_url"] == f"http://127.0.0.1:{careful.port}/tasks/{ours[0]['external_id']}"
    )
    own_events = [d for d in sim.deliveries if d.event == "check_run" and
                  d.payload["check_run"]["app"]["id"] == sim.app_id]  # fmt: skip
    assert {d.action for d in own_events} == {"created", "completed"}
    # No token or key in any log of any process.
    logs_of = [*careful.logs.glob("*.log"), *(careful.root / "workspaces" / "logs").glob("*.log")]
    key_line = careful.env["PRIVATE_KEY"].splitlines()[1]
    for path in logs_of:
        text = path.read_text()
        assert not any(t in text for t in sim.sim.tokens) and key_line not in text, path
    # The hidden comment in the issue never reached the agent.
    agent_logs = (careful.root / "workspaces" / "logs").glob("*.log")
    logs = "".join(path.read_text() for path in agent_logs)
    assert "hidden text" not in logs


def test_review_with_comments_gets_a_fix_and_thread_replies(careful: Stack) -> None:
    sim = careful.sim
    sim.label_issue(1, "agent")
    number = only_pull(careful)
    sim.wait(lambda: sim.latest_check(number) == "success", 60, "green CI")
    review = sim.review(
        number, "Two nits.", [("calc.py", 2, "Name this."), ("calc.py", 5, "And this.")]
    )
    sim.wait(lambda: len(sim.sim.replies) == 2, 60, "replies to both threads")
    roots = {c["id"] for c in sim.sim.review_comments[review]}
    assert {r[0] for r in sim.sim.replies} == roots
    branch = sim.sim.pulls[number]["head"]
    head = sim.sim.head_sha(branch)
    assert {r[1] for r in sim.sim.replies} == {f"Addressed in {head[:7]}."}
    assert branch_log(careful, branch)[0] == "Address review by carol"
    sim.wait(lambda: sim.latest_check(number) == "success", 60, "CI on the review's fix")


def test_hopeless_agent_escalates_after_max_attempts(tmp_path: Path) -> None:
    with stack_for(tmp_path, [*DEMO, "hopeless"]) as stack:
        sim = stack.sim
        sim.label_issue(1, "agent")
        number = only_pull(stack)
        sim.wait(lambda: "agent:needs-human" in sim.sim.labels.get(number, []), 90, "escalation")
        branch = sim.sim.pulls[number]["head"]
        fixes = [s for s in branch_log(stack, branch) if s.startswith("Fix CI")]
        assert len(fixes) == 3
        (escalation,) = [c for c in sim.sim.comments.values() if "stopped after" in c["body"]]
        assert escalation["body"].count("| sim-ci / test (failure) |") == 3
        # The task that gave up says so, and so does its check run on the head.
        head = sim.sim.head_sha(branch)
        sim.wait(lambda: _state(stack, f"ci-4101-{head}") == "escalated", 30, "escalated state")
        record = stack.store.get(f"ci-4101-{head}")
        assert record is not None and record.error.startswith("escalated after 3 failed attempts")
        (check,) = [r for r in sim.sim.check_runs[head] if r["name"] == "forgehand"]
        assert (check["status"], check["conclusion"]) == ("completed", "failure")
        attempts = sorted(r.attempt for r in stack.store.recent() if r.task.kind.value == "ci")
        assert attempts == [0, 1, 2, 3]  # each fix task its own attempt; the last made none
        # Silence afterwards: CI on the last push fails, and nothing more is pushed.
        time.sleep(2)
        assert len([s for s in branch_log(stack, branch) if s.startswith("Fix CI")]) == 3
        # "Re-run" on that check run is `/agent retry`: the label goes, one more round runs.
        sim.rerun_check(check["id"])
        sim.wait(lambda: "agent:needs-human" not in sim.sim.labels.get(number, []), 60, "reset")
        sim.wait(
            lambda: sum(s.startswith("Fix CI") for s in branch_log(stack, branch)) == 4,
            90,
            "a fourth fix after Re-run",
        )


def test_stop_command_mid_run(tmp_path: Path) -> None:
    with stack_for(tmp_path, [sys.executable, str(SCRIPTED), "hang"]) as stack:
        sim = stack.sim
        sim.label_issue(1, "agent")
        sim.wait(lambda: any(r.state.value == "running" for r in stack.store.recent()), 30, "start")
        time.sleep(1)  # the agent is running now
        sim.comment(1, "/agent stop")
        sim.wait(lambda: _state(stack, "issue-4101-1") == "cancelled", 30, "cancel")
        sim.wait(
            lambda: not (stack.root / "workspaces" / "tasks" / "issue-4101-1").exists(),
            30,
            "the worktree to go",
        )
        assert sim.sim.pulls == {}
        assert set(git_out("branch", "--format=%(refname:short)", cwd=sim.origin).split()) == {
            "main"
        }


def test_worker_killed_mid_agent_is_retried_from_a_clean_worktree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The agent marks its first run outside its tree, which the sandbox would forbid.
    monkeypatch.setenv("AGENT_SANDBOX", "none")
    marker = tmp_path / "first-run"
    slow_once = [
        sys.executable,
        "-c",
        (
            "import os, pathlib, subprocess, sys, time\n"
            f"m = pathlib.Path({str(marker)!r})\n"
            "if not m.exists():\n"
            "    m.write_text(str(os.getpid()))\n"
            "    print('slow first run', flush=True)\n"
            "    time.sleep(600)\n"
            f"subprocess.run([*{DEMO!r}, 'careful'], stdin=sys.stdin, check=True)\n"
        ),
    ]
    with stack_for(tmp_path, slow_once) as stack:
        sim = stack.sim
        sim.label_issue(1, "agent")
        sim.wait(marker.exists, 30, "the first agent run")
        time.sleep(0.5)
        stack.restart_worker(signal.SIGKILL)
        # Within the bound the README gives for a lost worker (about a minute), plus RQ's retry.
        stack.sim.wait(lambda: stack.sim.sim.pulls, 120, "the task to be taken over")
        number = only_pull(stack)
        branch = sim.sim.pulls[number]["head"]
        assert branch_log(stack, branch)[-1] == "Resolve #1: add() subtracts"
        assert len([s for s in branch_log(stack, branch) if s.startswith("Resolve")]) == 1
        assert len(sim.sim.pulls) == 1
        status = [c for c in sim.sim.comments.values() if c["issue"] == 1]
        assert len(status) == 1  # the retried task kept its one status comment
        # The orphaned work-horse of the killed worker and its agent were stopped.
        assert gone(int(marker.read_text()))


def test_every_delivery_is_a_valid_github_webhook(careful: Stack) -> None:
    from githubkit.webhooks import parse_obj

    sim = careful.sim
    sim.label_issue(1, "agent")
    number = only_pull(careful)
    sim.wait(lambda: sim.latest_check(number) == "success", 60, "green CI")
    sim.comment(number, "/agent help")
    sim.wait(lambda: len(sim.deliveries) >= 10, 30, "deliveries")
    events = {d.event for d in sim.deliveries}
    assert {"issues", "issue_comment", "pull_request", "check_run", "check_suite"} <= events
    for delivery in sim.deliveries:
        parse_obj(delivery.event, delivery.payload)
        assert delivery.status == 202


def run_sandbox(tmp_path: Path, env: dict[str, str]) -> tuple[int, str]:
    """`forgehand sandbox` as a user runs it, in a directory already used once."""
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "github").mkdir()
    clean = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "AGENT_ENV")}
    done = subprocess.run(
        [sys.executable, "-m", "app", "sandbox", "--dir", str(tmp_path / "used")],
        env=clean | env | {"PYTHONPATH": str(ROOT)}, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
    )  # fmt: skip
    return done.returncode, done.stdout


def test_sandbox_stops_at_the_first_failed_task_with_its_reason(tmp_path: Path) -> None:
    code, out = run_sandbox(tmp_path, {"AGENT": "command", "AGENT_COMMAND": "no-such-agent -p"})
    assert code == 1, out
    assert "stopped: task issue-4101-1 failed: agent program not found: no-such-agent" in out
    assert re.search(r"dashboard: http://127\.0\.0\.1:\d+/", out)
    assert f"Keeping it all in {tmp_path / 'used' / 'sandbox-'}" in out  # a fresh one
    assert "Traceback" not in out


def test_sandbox_shows_a_heartbeat_while_the_agent_is_silent(tmp_path: Path) -> None:
    agent = shlex.join([sys.executable, str(SCRIPTED), "hang"])
    env = {"AGENT": "command", "AGENT_COMMAND": agent, "AGENT_TIMEOUT": "25"}
    code, out = run_sandbox(tmp_path, env)
    assert code == 1, out
    assert re.search(r"agent working · \d+ s · last output \d+ s ago", out), out
    assert "stopped: task issue-4101-1 failed: The agent ran longer than" in out


@contextmanager
def kept_sandbox(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[Popen[str], list[str]]]:
    """`forgehand sandbox --keep` with a missing agent, in its own session, once it serves;
    yields it and the lines it printed so far. Killed, whole group, if still running."""
    clean = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "AGENT_ENV")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "sandbox", "--keep", "--dir", str(tmp_path / "sb")],
        env=clean | {"AGENT": "command", "AGENT_COMMAND": "no-such-agent",
                     "PYTHONPATH": str(ROOT)} | env,
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C to stop" in line:
                break
        yield proc, lines
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_sandbox_keep_serves_the_dashboard_until_ctrl_c(tmp_path: Path) -> None:
    with kept_sandbox(tmp_path, {}) as (proc, lines):
        found = re.search(r"still serving (http://127\.0\.0\.1:\d+/)", "".join(lines))
        assert found, "".join(lines)
        assert httpx.get(found[1], timeout=10).status_code == 200  # the dashboard, still up
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C
        rest, _ = proc.communicate(timeout=60)
    out = "".join(lines) + rest
    assert proc.returncode == 1, out  # the run itself failed: its agent is missing
    assert "stopping" in rest and "Traceback" not in out


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, from /proc."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found.add(child)
            todo.append(child)
    return found


def test_sigterm_stops_the_sandbox_and_all_it_started_and_your_redis_is_untouched(
    tmp_path: Path, redis: Redis, redis_url: str
) -> None:
    with kept_sandbox(tmp_path, {"REDIS_URL": redis_url}) as (proc, lines):
        started = descendants(proc.pid)
        assert len(started) >= 3, started  # Redis, the web process, the worker
        proc.send_signal(signal.SIGTERM)  # as a service manager or `kill` stops it
        rest, _ = proc.communicate(timeout=60)
    out = "".join(lines) + rest
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "stopped by signal SIGTERM" in rest and "Traceback" not in out
    deadline = time.monotonic() + 10
    while any(not gone(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(gone(pid) for pid in started), [p for p in started if not gone(p)]
    # The Redis REDIS_URL names got nothing: no task, no job a worker of yours would run.
    assert "REDIS_URL is not used: the sandbox starts a Redis of its own." in out
    assert redis.dbsize() == 0


def test_a_stack_that_fails_to_start_stops_what_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never_healthy(url: str, web: object = None) -> None:
        raise RuntimeError("forgehand web did not answer")

    monkeypatch.setattr(sandbox, "wait_healthy", never_healthy)
    stack = stack_for(tmp_path, [*DEMO, "careful"])
    with pytest.raises(RuntimeError, match="did not answer"):
        stack.__enter__()
    assert stack.web is not None and stack.worker is not None
    assert stack.web.poll() is not None and stack.worker.poll() is not None


def test_the_sandboxs_limit_follows_the_agents_timeout() -> None:
    assert limit(parse({"AGENT_TIMEOUT": "60", "MAX_ATTEMPTS": "2"})) == 3 * (60 + SLACK)
    assert limit(parse({})) == 4 * (1800 + SLACK)  # the issue, then up to three fixes
