"""Benchmark 4: 200 labelled issues across 20 repositories with 1, 2 and 4 workers.

    .venv/bin/python bench/scale.py [--issues 200] [--repos 20] [--workers 1,2,4] [--repeat 3]

For each worker count: a fresh embedded Redis, forgehand's real web process and
`forgehand worker -n N`, against the GitHub simulator serving 20 repositories. Every issue is
labelled at once (signed issues.labeled deliveries); an agent that only appends one line runs
for each, and forgehand does the rest as for any task (access check, reaction, status comment,
mirror and worktree, commit, push, pull request). Measures tasks per minute from the first
delivery to the last task done, the scaling factor against one worker, Redis memory per task
(used_memory after, less before, over tasks) and the peak memory of the web process and of all
worker processes (proportional set size, so pages shared after fork count once). Prints a
Markdown table for docs/benchmarks.md. The limit beside it: the rate at which the machine's
cores, all busy all the time, would get through the CPU time the run spent per task (the whole
machine's busy time from /proc/stat: forgehand, git, agents, the simulator and Redis).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from app.store.redis_conn import connect, embedded_redis
from app.store.store import Store
from app.tasks import State
from simulator import shapes
from simulator.github import GitHubSimulator, git_out
from simulator.sandbox import APP_ID, free_port, key_pair, stop_process, wait_healthy
from simulator.server import Server
from simulator.sim import signed_headers

AGENT = """
import sys, time
sys.stdin.read()
with open("notes.md", "a") as f:
    f.write(f"{time.time()}\\n")
"""
REPO_PATH = re.compile(r"/api/v3/repos/([^/]+/[^/]+)(/|$)")


class Simulators(GitHubSimulator):
    """Several repositories behind one API: requests under /repos/{owner}/{name} go to that
    repository's simulator, the rest (App and installation routes) to this one."""

    def __init__(self, repos: list[GitHubSimulator]) -> None:
        first = repos[0]
        super().__init__(
            clone_url=first.clone_url, repo=first.repo, repo_id=first.repo_id,
            app_id=first.app_id, public_key=first.public_key, logs_url=first.logs_url,
        )  # fmt: skip
        self.by_name = {r.repo: r for r in repos}
        for r in repos:
            r.tokens = self.tokens  # one installation's tokens are good for all its repositories

    def handle(self, request: httpx.Request) -> httpx.Response:
        match = REPO_PATH.match(request.url.path)
        target = self.by_name.get(match.group(1)) if match else None
        return target.handle(request) if target is not None else super().handle(request)


def make_repos(root: Path, count: int, public_key: str) -> list[GitHubSimulator]:
    seed = root / "seed"
    seed.mkdir(parents=True)
    (seed / "README.md").write_text("# bench\n")
    author = ("-c", "user.name=Carol", "-c", "user.email=carol@example.com")
    git_out("init", "--quiet", "-b", "main", cwd=seed)
    git_out("add", "-A", cwd=seed)
    git_out(*author, "commit", "--quiet", "-m", "Initial commit", cwd=seed)
    repos = []
    for i in range(count):
        origin = root / f"repo{i}.git"
        git_out("clone", "--quiet", "--bare", str(seed), str(origin), cwd=root)
        sim = GitHubSimulator(
            clone_url=f"file://{origin}", repo=f"bench/repo{i}", repo_id=5000 + i,
            app_id=APP_ID, public_key=public_key, logs_url="http://localhost:0/_logs",
        )  # fmt: skip
        sim.permissions = {"carol": "admin"}
        repos.append(sim)
    return repos


def deliver(url: str, secret: str, sim: GitHubSimulator, number: int) -> None:
    sim.add_issue(number, f"Task {number}", "Add a line to notes.md.")
    payload = {
        "action": "labeled",
        "label": shapes.label("agent"),
        "issue": shapes.issue(sim.issues[number], sim.repository()),
        "repository": sim.repository(),
        "sender": shapes.user("carol"),
        "installation": {"id": 77},
    }
    raw = json.dumps(payload).encode()
    answer = httpx.post(url, content=raw, headers=signed_headers(secret, "issues", raw))
    answer.raise_for_status()


def busy_seconds() -> float:
    """CPU time the whole machine has spent busy (all cores, any process), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """pid and all its descendants."""
    out = [pid]
    try:  # any of them may exit while it is being read
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            out.extend(tree(int(child)))
    return out


def pss(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        found = re.search(r"^Pss:\s+(\d+) kB", rollup, re.M)
        total += int(found.group(1)) * 1024 if found else 0
    return total


class Peaks(threading.Thread):
    """Samples the memory of the web and worker process trees until stopped."""

    def __init__(self, web: int, worker: int) -> None:
        super().__init__(daemon=True)
        self.web, self.worker = web, worker
        self.web_peak = self.worker_peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.web_peak = max(self.web_peak, pss(tree(self.web)))
            self.worker_peak = max(self.worker_peak, pss(tree(self.worker)))
            time.sleep(0.2)


def one(workers: int, issues: int, repo_count: int, root: Path) -> dict[str, float]:
    root.mkdir(parents=True)
    private, public = key_pair()
    secret = secrets.token_hex(16)
    repos = make_repos(root / "github", repo_count, public)
    port = free_port()
    agent = root / "agent.py"
    agent.write_text(AGENT)
    with ExitStack() as stack:
        server = Server(Simulators(repos))
        stack.callback(server.stop)
        redis_url = stack.enter_context(embedded_redis())
        redis = connect(redis_url)
        env = dict(os.environ) | {
            "APP_ID": str(APP_ID), "PRIVATE_KEY": private, "WEBHOOK_SECRET": secret,
            "WORKSPACES_DIR": str(root / "workspaces"), "PORT": str(port), "HOST": "127.0.0.1",
            "GITHUB_API_URL": server.api_url, "REDIS_URL": redis_url, "AGENT": "command",
            "AGENT_COMMAND": shlex.join([sys.executable, str(agent)]), "LOG_LEVEL": "warning",
        }  # fmt: skip
        procs = []
        for command in (["web"], ["worker", "-n", str(workers)]):
            with (root / f"{command[0]}.log").open("ab") as out:
                procs.append(subprocess.Popen([sys.executable, "-m", "app", *command], env=env,
                                              stdout=out, stderr=subprocess.STDOUT))  # fmt: skip
        for proc in reversed(procs):
            stack.callback(stop_process, proc)
        wait_healthy(f"http://127.0.0.1:{port}/healthz")
        time.sleep(2)  # the workers register themselves
        memory_before = int(redis.info("memory")["used_memory"])
        peaks = Peaks(procs[0].pid, procs[1].pid)
        peaks.start()
        url = f"http://127.0.0.1:{port}/api/github/webhooks"
        started = time.monotonic()
        busy = busy_seconds()
        for n in range(issues):
            deliver(url, secret, repos[n % repo_count], 1 + n // repo_count)
        store = Store(redis)
        while True:
            records = store.recent(issues + 10)
            if len(records) == issues and not any(r.state.active for r in records):
                break
            if time.monotonic() - started > 1800:
                raise TimeoutError("tasks did not finish in 30 minutes")
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        cpu_per_task = (busy_seconds() - busy) / issues
        peaks.done.set()
        peaks.join()
        memory_after = int(redis.info("memory")["used_memory"])
        done = sum(r.state is State.DONE for r in records)
        pulls = sum(len(r.pulls) for r in repos)
        if done != issues or pulls != issues:
            sys.exit(f"{done} of {issues} tasks done, {pulls} pull requests: see {root}")
    return {
        "per_minute": issues / elapsed * 60,
        "seconds": elapsed,
        "cpu_per_task": cpu_per_task,
        # The rate if every core were busy all the time with what the run spent per task.
        "limit": (os.cpu_count() or 1) * 60 / cpu_per_task,
        "redis_per_task": (memory_after - memory_before) / issues,
        "web": peaks.web_peak,
        "worker": peaks.worker_peak,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--issues", type=int, default=200)
    parser.add_argument("--repos", type=int, default=20)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="forgehand-scale-"))
    counts = [int(w) for w in args.workers.split(",")]
    runs: dict[int, list[dict[str, float]]] = {n: [] for n in counts}
    for i in range(args.repeat):  # interleaved, so every count sees the same machine
        for n in counts:
            runs[n].append(one(n, args.issues, args.repos, root / f"run{i}-workers-{n}"))
            print(f"{n} workers: {runs[n][-1]}", file=sys.stderr)
    # Medians of each measure over the repetitions; memory is the largest peak seen.
    results = {
        n: {k: (max if k in ("web", "worker") else statistics.median)(x[k] for x in these)
            for k in these[0]}
        for n, these in runs.items()
    }  # fmt: skip
    base = results[counts[0]]["per_minute"]
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")  # fmt: skip
    print(f"date: {time.strftime('%Y-%m-%d')}, command: .venv/bin/python bench/scale.py "
          f"--issues {args.issues} --repos {args.repos} --workers {args.workers} "
          f"--repeat {args.repeat}")  # fmt: skip
    print()
    print("| workers | tasks/min | limit: all cores busy | CPU per task | seconds for all "
          "| scaling | Redis per task | web | workers |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for n, r in results.items():
        scaling = f"{r['per_minute'] / base:.2f}\N{MULTIPLICATION SIGN}"
        print(f"| {n} | {r['per_minute']:.0f} | {r['limit']:.0f} | "
              f"{r['cpu_per_task'] * 1000:.0f} ms | {r['seconds']:.1f} | {scaling} | "
              f"{r['redis_per_task'] / 1024:.1f} KiB | {r['web'] / 2**20:.0f} MiB | "
              f"{r['worker'] / 2**20:.0f} MiB |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
