"""`forgehand sandbox`: the whole loop offline — real web process, Redis, RQ worker, git
worktrees and agent processes — against the GitHub simulator, narrated as it happens."""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.dashboard import work_text
from app.settings import Settings
from app.store import Store, connect, embedded_redis
from app.tasks import State
from jobs.report import working_line
from simulator.sim import Simulation

APP_ID = 90210
# Beyond the agent's own limit, per task, for git, CI and GitHub.
SLACK = 120.0
# A line at least this often while an agent works and prints nothing new.
HEARTBEAT = 10.0

CALC = """\
def add(a, b):
    return a - b  # add


def sub(a, b):
    return a + b  # sub
"""
TESTS = """\
from calc import add, sub

assert add(2, 3) == 5, f"add(2, 3) returned {add(2, 3)}, expected 5"
assert sub(5, 3) == 2, f"sub(5, 3) returned {sub(5, 3)}, expected 2"
print("all tests passed")
"""
ISSUE = (
    "`add(2, 3)` returns -1. It should return 5.\n\n"
    "<!-- hidden text like this never reaches the agent -->"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def key_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


FLEET_AGENT = [sys.executable, str(Path(__file__).with_name("demo_agent.py")), "fleet"]


class Narrator:
    """Prints what changed since it last looked: tasks, agent output, commits, checks, PRs."""

    def __init__(self, sim: Simulation, store: Store, out: Any, stack: Stack | None = None) -> None:
        self.sim, self.store, self.out, self.stack = sim, store, out, stack
        self.states: dict[str, str] = {}
        self.log_lines: dict[str, int] = {}
        self.seen_pulls: set[int] = set()
        self.seen_checks: set[int] = set()
        self.seen_comments: set[int] = set()
        self.started = time.monotonic()
        self.last_said = self.started
        # Per running task: when it was seen running, and when its log last grew.
        self.running_since: dict[str, float] = {}
        self.last_output: dict[str, float] = {}
        self.failed: str | None = None  # the first task seen failed, with its reason
        self.worker_told = False

    def say(self, text: str) -> None:
        self.last_said = time.monotonic()
        print(f"[{self.last_said - self.started:6.1f}s] {text}", file=self.out, flush=True)

    def state_of(self, task_id: str) -> str | None:
        """A task's state, once what changed is told."""
        self.look()
        return state_in(self.store, task_id)

    def look(self) -> None:
        """Raises WorkerStopped, once, when the worker has exited: nothing queued would run."""
        worker = self.stack.worker if self.stack is not None else None
        if worker is not None and worker.poll() is not None and not self.worker_told:
            self.worker_told = True
            assert self.stack is not None
            log = self.stack.logs / "worker.log"
            tail = log.read_text(errors="replace").splitlines()[-5:] if log.exists() else []
            said = "\n".join(f"    {line}" for line in tail)
            raise WorkerStopped(
                f"the worker stopped (exit {worker.returncode}); the end of {log}:\n{said}"
            )
        now = time.monotonic()
        for record in reversed(self.store.recent(50)):
            lines = self.store.log_tail(record.id)
            shown = self.log_lines.get(record.id, 0)
            for line in lines[shown:] if len(lines) >= shown else lines:
                self.say(f"  agent │ {line}")
            if len(lines) != shown:
                self.last_output[record.id] = now
            self.log_lines[record.id] = len(lines)
            if self.states.get(record.id) != record.state.value:
                self.states[record.id] = record.state.value
                extra = f": {record.error}" if record.error else ""
                self.say(f"task {record.id} is {record.state.value}{extra}")
                if record.state is State.RUNNING:
                    self.running_since[record.id] = self.last_output[record.id] = now
                else:
                    self.running_since.pop(record.id, None)
                if record.state is State.FAILED and self.failed is None:
                    self.failed = f"task {record.id} failed: {record.error}"
        if self.running_since and now - self.last_said >= HEARTBEAT:
            task_id, since = min(self.running_since.items(), key=lambda kv: kv[1])
            self.say(working_line(now - since, now - self.last_output.get(task_id, since)))
        for number, pull in list(self.sim.sim.pulls.items()):
            if number not in self.seen_pulls:
                self.seen_pulls.add(number)
                self.say(f"pull request #{number} opened: {pull['title']} ({pull['head']} → main)")
        for sha, runs in list(self.sim.sim.check_runs.items()):
            for run in runs:
                if run["status"] == "completed" and run["id"] not in self.seen_checks:
                    self.seen_checks.add(run["id"])
                    what = "CI" if run["app"]["id"] != self.sim.app_id else "check"
                    self.say(f"{what} on {sha[:7]}: {run['name']} {run['conclusion']}")
        for comment_id, comment in list(self.sim.sim.comments.items()):
            if comment_id not in self.seen_comments:
                self.seen_comments.add(comment_id)
                first = comment["body"].split("\n")
                text = next((line for line in first if line and not line.startswith("<!--")), "")
                self.say(f"comment on #{comment['issue']}: {text[:100]}")


def state_in(store: Store, task_id: str) -> str | None:
    record = store.get(task_id)
    return record.state.value if record else None


class Stack:
    """The simulator plus forgehand's real processes: embedded (or given) Redis, web, worker."""

    def __init__(
        self,
        settings: Settings,
        root: Path,
        agent_command: list[str] | None,
        files: dict[str, str] | None = None,
    ) -> None:
        self.files = files or {"calc.py": CALC, "test_calc.py": TESTS, "README.md": "# calc\n"}
        self.settings = settings
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        private, public = key_pair()
        secret = secrets.token_hex(16)
        self.port = free_port()
        self.sim = Simulation(
            root=root,
            webhook_url=f"http://127.0.0.1:{self.port}{settings.webhook_path}",
            secret=secret,
            app_id=APP_ID,
            public_key=public,
            test_command="python3 test_calc.py",
        )
        self._stack = ExitStack()
        self.env = dict(os.environ) | {
            "APP_ID": str(APP_ID),
            "PRIVATE_KEY": private,
            "WEBHOOK_SECRET": secret,
            "WORKSPACES_DIR": str(root / "workspaces"),
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
        }
        if agent_command is not None:
            self.env |= {"AGENT": "command", "AGENT_COMMAND": shlex.join(agent_command)}
        self.web: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Stack:
        try:
            self.sim.start(self.files)
            self._stack.callback(self.sim.stop)
            self.sim.open_issue(1, "add() subtracts", ISSUE)
            redis_url = self.settings.redis_url or self._stack.enter_context(embedded_redis())
            self.env |= {"GITHUB_API_URL": self.sim.server.api_url, "REDIS_URL": redis_url}
            self.store = Store(connect(redis_url))
            self.web = self._start("web")
            self.worker = self._start("worker")
            wait_healthy(f"http://127.0.0.1:{self.port}/healthz", self.web)
        except BaseException:
            # What started before the failure stops with it (__exit__ does not run then).
            self.__exit__(None, None, None)
            raise
        return self

    def state_of(self, task_id: str) -> str | None:
        return state_in(self.store, task_id)

    def __exit__(self, *exc: object) -> None:
        for proc in (self.worker, self.web):
            if proc is not None:
                stop_process(proc)
        self._stack.close()

    def _start(self, command: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{command}.log").open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "app", command],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def start_worker(self) -> subprocess.Popen[bytes]:
        """One more worker process, with the stack's environment as it is now."""
        return self._start("worker")

    def restart_worker(self, sig: signal.Signals = signal.SIGTERM) -> None:
        assert self.worker is not None
        if sig == signal.SIGKILL:
            self.worker.kill()
            self.worker.wait()
        else:
            stop_process(self.worker)
        self.worker = self._start("worker")


class WorkerStopped(RuntimeError):
    """The sandbox's worker exited: what is queued would wait for ever."""


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def own_redis(settings: Settings, out: Any) -> Settings:
    """The sandbox's settings with a Redis it starts itself: what it queues must never reach
    the operator's own workers, which would run it against the real GitHub."""
    if settings.redis_url is not None:
        print("REDIS_URL is not used: the sandbox starts a Redis of its own.", file=out)
    return replace(settings, redis_url=None)


def run(
    settings: Settings, scenario: str, root: Path, out: Any = sys.stdout, keep: bool = False
) -> int:
    settings = own_redis(settings, out)
    if scenario == "fleet":
        return run_fleet(settings, root, out, keep)
    if scenario == "plan":
        return run_plan(settings, root, out, keep)
    demo = "hopeless" if scenario == "escalate" else "careful"
    # A real agent when AGENT is set; the demo agent otherwise.
    # By its file, not `-m`: the sandbox shows the agent its script, not forgehand's code.
    demo_agent = str(Path(__file__).with_name("demo_agent.py"))
    agent = None if "AGENT" in os.environ else [sys.executable, demo_agent, demo]
    with Stack(settings, root, agent) as stack:
        sim = stack.sim
        narrator = Narrator(sim, stack.store, out, stack)
        narrator.say(f"simulated GitHub at {sim.server.api_url}; repository {sim.repo}")
        shown = (
            stack.env["AGENT_COMMAND"]
            if stack.env.get("AGENT") == "command"
            else stack.env.get("AGENT", "claude")
        )
        contained = stack.env.get("AGENT_SANDBOX", "bwrap")
        dashboard = f"http://127.0.0.1:{stack.port}/"
        narrator.say(
            f"forgehand web on http://127.0.0.1:{stack.port}, one worker, agent: {shown} "
            f"(sandbox: {contained})"
        )
        narrator.say(f"dashboard: {dashboard}")
        narrator.say(f"carol labels issue #1 `{settings.trigger_label}`")
        sim.label_issue(1, settings.trigger_label)
        deadline = time.monotonic() + limit(settings)
        try:
            outcome = _until_done(sim, narrator, settings, deadline)
        except WorkerStopped as exc:
            outcome = f"stopped: {exc}"
        narrator.say(outcome)
        settle(stack.store, narrator, deadline)
        for comment in sim.sim.comments.values():
            if "stopped after" in comment["body"]:
                print("\n" + comment["body"], file=out)
        _print_work(stack, out)
        print(
            f"""
What to look at:
  the dashboard: {dashboard}{" (until Ctrl-C)" if keep else " (only while this runs: --keep)"}
  the repository, as the simulated GitHub holds it:
      git --git-dir {sim.origin} log --all --oneline --graph
  logs: {stack.logs}/web.log and worker.log; agent output in {root / "workspaces" / "logs"}
""",
            file=out,
            flush=True,
        )
        if keep:
            serve_until_interrupted(narrator, dashboard)
    expected = "escalated" if scenario == "escalate" else "green"
    return 0 if outcome.startswith(expected) else 1


def _print_work(stack: Stack, out: Any) -> None:
    """The work as it ended, as `forgehand tasks` shows it (the dashboard's main view)."""
    print("\nThe work as it ended (forgehand tasks):", file=out)
    for line in work_text.table(stack.store, stack.settings.max_attempts, 50):
        print(f"  {line}", file=out)


def limit(settings: Settings) -> float:
    """How long the whole sandbox may take: the agent's limit for the issue and for each
    CI-fix attempt, with time for git, CI and GitHub around each."""
    return (settings.max_attempts + 1) * (settings.agent_timeout + SLACK)


def serve_until_interrupted(narrator: Narrator, dashboard: str) -> None:
    narrator.say(f"still serving {dashboard} and the simulated GitHub; Ctrl-C to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        narrator.say("stopping")


def settle(store: Store, narrator: Narrator, deadline: float) -> None:
    """Wait for the tasks the scenario set going to finish (a task waiting on people is
    finished for now), so that none is left queued or half done when the sandbox stops."""
    busy = (State.QUEUED, State.RUNNING)
    live = []
    while time.monotonic() < deadline:
        if not narrator.worker_told:
            try:
                narrator.look()
            except WorkerStopped as exc:
                narrator.say(f"stopped: {exc}")
        live = [r for r in store.recent(200) if r.state in busy]
        if not live:
            return
        if narrator.worker_told:  # nothing will run them
            break
        time.sleep(0.2)
    narrator.say(f"stopping with {len(live)} task(s) unfinished: {', '.join(r.id for r in live)}")


def run_fleet(settings: Settings, root: Path, out: Any = sys.stdout, keep: bool = False) -> int:
    """Four issues at once, through dependencies, an overlap and a conflict, to merge."""
    from app.fleet import plan
    from simulator import fleet

    with Stack(settings, root, _fleet_agent(), fleet.FILES) as stack:
        sim = stack.sim
        narrator = Narrator(sim, stack.store, out, stack)
        narrator.say(f"simulated GitHub at {sim.server.api_url}; repository {sim.repo}")

        deadline = time.monotonic() + limit(settings)
        story = fleet.Story(sim, narrator.state_of, narrator.say, limit(settings))
        code = 0
        try:
            story.play(sim.repo_id)
        except (TimeoutError, AssertionError, WorkerStopped) as exc:
            narrator.say(f"stopped: {exc}")
            code = 1
        settle(stack.store, narrator, deadline)
        print(f"\nThe plan as it ended (forgehand tasks --plan {sim.repo}):", file=out)
        print(plan.text(plan.read(stack.store, sim.repo)), file=out)
        _print_work(stack, out)
        dashboard = f"http://127.0.0.1:{stack.port}/"
        print(f"\n  the dashboard: {dashboard}", file=out)
        print(f"  git --git-dir {sim.origin} log --all --oneline --graph", file=out, flush=True)
        if keep:
            serve_until_interrupted(narrator, dashboard)
    return code


def run_plan(settings: Settings, root: Path, out: Any = sys.stdout, keep: bool = False) -> int:
    """An epic → a plan → approved → three sub-issues → pull requests → merged."""
    from simulator import fleet
    from simulator.plan_story import EPIC, PlanStory

    with Stack(settings, root, _fleet_agent(), fleet.FILES) as stack:
        sim = stack.sim
        narrator = Narrator(sim, stack.store, out, stack)
        narrator.say(f"simulated GitHub at {sim.server.api_url}; repository {sim.repo}")
        dashboard = f"http://127.0.0.1:{stack.port}"
        narrator.say(f"dashboard: {dashboard}/ and the plan: {dashboard}/plan/{sim.repo}")

        deadline = time.monotonic() + limit(settings)
        story = PlanStory(sim, narrator.state_of, narrator.say, limit(settings))
        try:
            played = story.play(sim.repo_id)
        except (TimeoutError, AssertionError, WorkerStopped) as exc:
            narrator.say(f"stopped: {exc}")
            return 1
        settle(stack.store, narrator, deadline)
        print(f"\nThe plan comment on #{EPIC} as it ended:\n", file=out)
        print(played["plan"], file=out)
        _print_work(stack, out)
        print(f"\n  git --git-dir {sim.origin} log --all --oneline --graph", file=out, flush=True)
        if keep:
            serve_until_interrupted(narrator, f"{dashboard}/plan/{sim.repo}")
    return 0


def _fleet_agent() -> list[str] | None:
    """The demo agent in its fleet mode, unless AGENT names a real one."""
    return None if "AGENT" in os.environ else FLEET_AGENT


def wait_healthy(url: str, web: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if web is not None and web.poll() is not None:
            raise RuntimeError(f"forgehand web exited with status {web.returncode}; see web.log")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"forgehand web did not answer at {url}")


def _until_done(sim: Simulation, narrator: Narrator, settings: Settings, deadline: float) -> str:
    while time.monotonic() < deadline:
        narrator.look()
        if narrator.failed is not None:
            return f"stopped: {narrator.failed}"
        for number in list(sim.sim.pulls):
            if settings.escalation_label in sim.sim.labels.get(number, []):
                time.sleep(0.5)
                narrator.look()
                return f"escalated: pull request #{number} was handed to a human"
            if sim.latest_check(number) == "success":
                time.sleep(0.5)
                narrator.look()
                return f"green: pull request #{number} passes CI"
        time.sleep(0.2)
    return (
        f"stopped: nothing settled within {limit(settings):.0f}s "
        f"(AGENT_TIMEOUT {settings.agent_timeout}s)"
    )
