"""A whole world for worker-side tests: origin repository, fake GitHub, settings, worker."""

from __future__ import annotations

import multiprocessing
import multiprocessing.process
import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis

from app.dispatch import Dispatcher, queue_for
from app.github import App
from app.store import Store, TaskRecord
from app.tasks import Kind, State, Task
from jobs import pipeline
from jobs.entry import execute, worker_settings
from jobs.worker import work
from jobs.workspace import Workspaces
from tests import fakes
from tests import payloads as p

AGENT = Path(__file__).resolve().parents[1] / "agents" / "scripted.py"
BRANCH = "agent/issue-7-addition-subtracts"


@dataclass
class World:
    tmp: Path
    origin: Path
    github: fakes.FakeGitHub
    redis: Redis
    store: Store
    dispatcher: Dispatcher
    workspaces: Path
    monkeypatch: pytest.MonkeyPatch

    def setenv(self, name: str, value: str) -> None:
        self.monkeypatch.setenv(name, value)
        worker_settings.cache_clear()

    def hanging_agent(self) -> Path:
        """The agent hangs, and a child of its own too, once it has written both their pids
        beside the path this returns (`agent_pids` reads them)."""
        out = self.tmp / "agent.json"
        self.use_agent("hang", "--out", str(out))
        return out

    def use_agent(self, mode: str, *extra: str) -> None:
        """The scripted agent in `mode`. Agents run sandboxed, as in production, except those
        given paths outside their tree to report through (--out, --mark, --origin): reaching
        outside is what the sandbox forbids."""
        argv = [sys.executable, str(AGENT), mode, *extra]
        self.setenv("AGENT_COMMAND", shlex.join(argv))
        reaching_out = any(arg in extra for arg in ("--out", "--mark", "--origin"))
        self.setenv("AGENT_SANDBOX", "none" if reaching_out else "bwrap")

    def issue_task(self, number: int = 7, sender: str = "alice") -> Task:
        return Task(Kind.ISSUE, p.INSTALLATION, p.REPO_ID, p.REPO, number, sender)

    def enqueue(self, task: Task) -> None:
        assert self.dispatcher.enqueue(task, "test").enqueued

    def work(self) -> None:
        fakes.work_burst(queue_for(self.redis))

    def run(self, task: Task) -> TaskRecord:
        self.enqueue(task)
        self.work()
        record = self.store.get(task.id)
        assert record is not None
        return record

    def open_pull_request(self) -> int:
        """Run the labelled issue to its pull request; return the pull request's number."""
        record = self.run(self.issue_task())
        assert record.state.value == "done", record.error
        (number,) = self.github.pulls
        return number

    def escalate_ci(self) -> tuple[int, TaskRecord]:
        """CI fails on the pull request and its fix agent always fails: the pull request's
        number, and its CI task's record once that task has handed it to a human."""
        number = self.open_pull_request()
        self.use_agent("fail")
        self.github.add_check_run(self.github.head_sha(BRANCH), "tests")
        record = self.run(self.ci_task(number))
        assert record.state is State.ESCALATED, record.error
        return number, record

    def ci_task(self, number: int, sha: str | None = None, branch: str = BRANCH) -> Task:
        sha = sha or self.github.head_sha(branch)
        return Task(Kind.CI, p.INSTALLATION, p.REPO_ID, p.REPO, number, "github-actions[bot]",
                    sha=sha, branch=branch)  # fmt: skip

    def fail_ci(self, number: int, rounds: int = 1) -> None:
        """CI fails on the pull request's head, and its fix task runs; `rounds` times."""
        for _ in range(rounds):
            head = self.github.head_sha(BRANCH)
            self.github.add_check_run(head, "tests")
            self.run(self.ci_task(number, head))

    def execute_together(self, tasks: list[Task]) -> dict[str, str]:
        """Run the tasks' jobs at the same time, in threads, as parallel workers would."""
        for task in tasks:
            self.enqueue(task)
        ctx = self.context()
        results: dict[str, str] = {}

        def go(task_id: str) -> None:
            results[task_id] = execute(ctx, task_id, 1, f"thread-{task_id}")

        threads = [threading.Thread(target=go, args=(t.id,)) for t in tasks]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        return results

    @contextmanager
    def forked_worker(self, redis_url: str) -> Iterator[multiprocessing.process.BaseProcess]:
        """The real forking worker, as `forgehand worker` runs it (the fake GitHub forks too);
        killed on leaving if it is still running."""
        proc = multiprocessing.get_context("fork").Process(
            target=work, args=(redis_url, True, "warning", "pretty", self.workspaces, 1800)
        )
        proc.start()
        try:
            yield proc
        finally:
            if proc.is_alive():
                proc.kill()

    def context(self) -> pipeline.Context:
        settings = worker_settings()
        return pipeline.Context(
            store=self.store,
            settings=settings,
            app=App(settings, self.redis),
            workspaces=Workspaces(settings.workspaces_dir),
        )

    def leftovers(self) -> list[str]:
        """Anything a task left on disk besides mirrors, logs and the run directory."""
        tasks = self.workspaces / "tasks"
        return sorted(str(p.relative_to(tasks)) for p in tasks.iterdir()) if tasks.exists() else []


@pytest.fixture
def world(tmp_path: Path, redis: Redis, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    origin = fakes.make_origin(tmp_path / "remote")
    github = fakes.FakeGitHub(clone_url=f"file://{origin}")
    github.add_issue(7, "Addition subtracts", "`add(2, 3)` returns -1 instead of 5.")
    private, _ = fakes.app_key()
    workspaces = tmp_path / "workspaces"
    for name, value in {
        "APP_ID": str(p.APP_ID),
        "PRIVATE_KEY": private,
        "GITHUB_API_URL": fakes.API,
        "WORKSPACES_DIR": str(workspaces),
        "AGENT": "command",
        "AGENT_TIMEOUT": "60",
        "AGENT_IDLE_TIMEOUT": "30",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AGENT_ENV", raising=False)
    store = Store(redis)
    w = World(
        tmp_path, origin, github, redis, store, Dispatcher(store, 600), workspaces, monkeypatch
    )
    w.use_agent("fix")
    for _router in fakes.mocked(github):
        yield w
    worker_settings.cache_clear()


def wait_until(condition: Callable[[], object], message: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


def agent_pids(out: Path) -> tuple[int, int]:
    """The pids a `hang` agent wrote: itself and its child, once it is running."""
    pids = Path(f"{out}.pids")
    wait_until(pids.exists, "the agent never started")
    agent, child = map(int, pids.read_text().split())
    return agent, child


def gone(pid: int) -> bool:
    """Dead, or a zombie waiting for its parent (the test) to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] == "Z"
    except FileNotFoundError:
        return True
