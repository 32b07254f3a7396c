"""Benchmark 1: webhook intake under a realistic mix, beside a bare Starlette route and Probot.

    npm install --prefix bench/probot
    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/intake.py [--repeat 3]

forgehand talks to a Redis server over TCP, as in production: REDIS_URL's (its database 12,
flushed between runs), else a redis-server this benchmark starts on a free port.

Needs `wrk` (Debian: apt install wrk). Starts, each as its own process on 127.0.0.1:
forgehand's real web process (`python -m app web`), a bare Starlette route that reads the body
and answers 202 under the same uvicorn, and Probot (bench/probot/server.js) verifying and
dispatching to an empty handler. wrk drives each with bench/intake.lua through four schedules
of signed deliveries in GitHub's shapes (simulator/shapes):

- ignored: deliveries that start nothing (an issue opened, another App's green check run, a
  comment that is no command), in turn;
- new issue: `issues.labeled` with the trigger label, a new issue each;
- CI storm: one pull request's failing `check_run.completed`, 20 check runs a SHA;
- mix: of every 20 deliveries 16 ignored, 3 of a CI storm and 1 new issue.

After each forgehand run the tasks queued are checked against what the schedule should make.
Runs are interleaved so all three servers see the same machine; medians of --repeat runs.
Prints Markdown for docs/benchmarks.md. --profile FILE then runs the mix once more with
forgehand under pyinstrument and writes its report there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from app.store import TASKS_INDEX
from app.store.redis_conn import connect, embedded_redis
from simulator import shapes
from simulator.sandbox import free_port, key_pair, stop_process

BENCH = Path(__file__).resolve().parent
PATH = "/api/github/webhooks"
SECRET = "bench-secret"
TARGETS = ("forgehand", "bare Starlette route", "Probot")
BARE = "bare Starlette route"
REPO = "octo/bench"
REPO_ID = 4242
BRANCH = "agent/issue-7-fix"


@dataclass(frozen=True)
class Run:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    expected_tasks: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def _payload(**body: Any) -> str:
    """A delivery's JSON with GitHub's envelope; "__N__" and "__SHA__" left for wrk to fill."""
    repo = shapes.repository(REPO, REPO_ID, "main", f"https://github.test/{REPO}.git")
    envelope = {
        "repository": repo,
        "sender": shapes.user("carol"),
        "installation": {"id": 77, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNzc="},
    }
    text = json.dumps(shapes.retarget(body | envelope, REPO))
    return text.replace('"__N__"', "__N__")


def _issue(labels: list[str]) -> dict[str, Any]:
    repo = shapes.repository(REPO, REPO_ID, "main", "")
    data = {"number": 1, "title": "Make it faster", "body": "The intake is slow.",
            "labels": [{"name": n} for n in labels]}  # fmt: skip
    return shapes.issue(data, repo) | {"number": "__N__", "id": "__N__"}


def _check_run(conclusion: str, sha: str, branch: str, app_id: int) -> dict[str, Any]:
    app = shapes.app(app_id, "github-actions" if app_id == 15368 else "other-ci")
    data = {
        "id": "__N__",
        "name": "tests",
        "head_sha": sha,
        "status": "completed",
        "conclusion": conclusion,
        "output": {"title": "tests", "summary": "1 failing"},
    }
    run = shapes.check_run(data, app)
    run["check_suite"] |= {"head_branch": branch, "head_sha": sha}
    ref = {
        "id": 20012,
        "number": 12,
        "url": f"https://api.github.com/repos/{REPO}/pulls/12",
        "head": {
            "ref": branch,
            "sha": sha,
            "repo": {"id": REPO_ID, "name": "bench", "url": "https://api.github.com/repos/x"},
        },
        "base": {
            "ref": "main",
            "sha": "b" * 40,
            "repo": {"id": REPO_ID, "name": "bench", "url": "https://api.github.com/repos/x"},
        },
    }
    run["pull_requests"] = [ref] if branch == BRANCH else []
    return run


def templates() -> dict[str, tuple[str, str]]:
    """Each kind of delivery: its event and its body."""
    comment = shapes.comment(1, "Looks good to me", "alice") | {"author_association": "MEMBER"}
    return {
        "opened": ("issues", _payload(action="opened", issue=_issue([]))),
        "green": ("check_run", _payload(action="completed", check_run=_check_run(
            "success", "c" * 40, "main", 9999))),
        "comment": ("issue_comment", _payload(action="created", issue=_issue([]),
                                              comment=comment)),
        "labeled": ("issues", _payload(action="labeled", issue=_issue(["agent"]),
                                       label=shapes.label("agent"))),
        "failing": ("check_run", _payload(action="completed", check_run=_check_run(
            "failure", "__SHA__", BRANCH, 15368))),
    }  # fmt: skip


IGNORED = ["opened", "green", "comment"]


def _mix() -> list[str]:
    """Of 20 deliveries: one new issue, three of a CI storm, sixteen that start nothing."""
    kinds = [IGNORED[i % len(IGNORED)] for i in range(16)]
    for at in (4, 10, 16):
        kinds.insert(at, "failing")
    return ["labeled", *kinds]


SCHEDULES = {
    "ignored": IGNORED,
    "new issue": ["labeled"],
    "CI storm": ["failing"],
    # Of 20: one new issue, three of a CI storm, sixteen that start nothing.
    "mix": _mix(),
}  # fmt: skip


def with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {port}")


@contextmanager
def process(args: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[None]:
    with log.open("ab") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_listening(port, proc)
        yield
    finally:
        stop_process(proc)


def wrk(port: int, connections: int, seconds: int, schedule: Path) -> Run:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
         "-s", str(BENCH / "intake.lua"), f"http://127.0.0.1:{port}{PATH}", "--", SECRET,
         str(schedule)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    found = json.loads(line.removeprefix("RESULT "))
    return Run(
        requests=found["requests"],
        seconds=found["duration_us"] / 1e6,
        errors=found["status_errors"] + found["socket_errors"],
        p50_ms=found["p50_us"] / 1000,
        p99_ms=found["p99_us"] / 1000,
        expected_tasks=found["expected_tasks"],
    )


def write_schedules(root: Path) -> dict[str, Path]:
    bodies = {}
    for kind, (event, body) in templates().items():
        bodies[kind] = (event, root / f"{kind}.json")
        bodies[kind][1].write_text(body)
    files = {}
    for name, kinds in SCHEDULES.items():
        files[name] = root / f"{name.replace(' ', '-')}.schedule"
        files[name].write_text("".join(f"{bodies[k][0]}\t{bodies[k][1]}\n" for k in kinds))
    return files


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", default="16,64")
    parser.add_argument("--only", default=",".join(SCHEDULES), help="schedules to run")
    parser.add_argument("--profile", type=Path, help="pyinstrument report of forgehand, mix")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt install wrk)")
    if not (BENCH / "probot" / "node_modules" / "probot").is_dir():
        sys.exit("Probot is not installed: npm install --prefix bench/probot")
    connections = [int(c) for c in args.connections.split(",")]
    names = args.only.split(",")
    root = Path(tempfile.mkdtemp(prefix="forgehand-intake-"))
    schedules = write_schedules(root)
    private, _ = key_pair()
    ports = {target: free_port() for target in TARGETS}
    # Probot would take REDIS_URL as a request to cluster through Redis.
    base = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    base |= {"WEBHOOK_SECRET": SECRET, "PRIVATE_KEY": private, "APP_ID": "1"}
    runs: dict[tuple[str, int, str], list[Run]] = {}
    with ExitStack() as stack:
        shared = os.environ.get("REDIS_URL")
        redis_url = (
            with_db(shared, 12) if shared else stack.enter_context(embedded_redis(free_port()))
        )
        redis = connect(redis_url)
        server = redis.info("server")
        origin = "REDIS_URL" if shared else "started by the benchmark"
        redis_desc = f"Redis {server['redis_version']} over TCP ({origin})"
        env = {t: base | {"PORT": str(ports[t]), "HOST": "127.0.0.1"} for t in TARGETS}
        env["forgehand"]["REDIS_URL"] = redis_url
        for target, command in commands(ports).items():
            log = root / f"{target.split()[0].lower()}.log"
            stack.enter_context(process(command, env[target], ports[target], log))
        for target in TARGETS:  # warm up: imports, connection pools, JIT
            wrk(ports[target], 16, 2, schedules["mix"])
        for _ in range(args.repeat):
            for name in names:
                for c in connections:
                    for target in TARGETS:
                        redis.flushdb()
                        run = wrk(ports[target], c, args.seconds, schedules[name])
                        if target == "forgehand":
                            check_tasks(redis.zcard(TASKS_INDEX), run, c)
                        runs.setdefault((name, c, target), []).append(run)
                        print(
                            f"{name} c={c} {target}: {run.rate:.0f}/s p99 "
                            f"{run.p99_ms:.1f} ms errors {run.errors}",
                            file=sys.stderr,
                        )
        if args.profile:
            stack.close()  # the servers stop; one forgehand comes back under the profiler
            profile(args.profile, redis_url, env["forgehand"], ports["forgehand"],
                    schedules["mix"], args.seconds, root)  # fmt: skip
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, node {node_version()}, {wrk_version()}, "
          f"{redis_desc}")  # fmt: skip
    print(f"date: {time.strftime('%Y-%m-%d')}, command: .venv/bin/python bench/intake.py "
          f"--repeat {args.repeat} --seconds {args.seconds}")  # fmt: skip
    report(runs, names, connections)
    return 0


def commands(ports: dict[str, int]) -> dict[str, list[str]]:
    # The same uvicorn, with the options `forgehand web` gives it.
    bare = [
        sys.executable,
        "-m",
        "uvicorn",
        "bare_route:app",
        "--app-dir",
        str(BENCH),
        "--host",
        "127.0.0.1",
        "--port",
        str(ports[BARE]),
        "--log-level",
        "warning",
    ]
    return {
        "forgehand": [sys.executable, "-m", "app", "web"],
        BARE: bare,
        "Probot": ["node", str(BENCH / "probot" / "server.js")],
    }


def check_tasks(queued: int, run: Run, connections: int) -> None:
    """The tasks forgehand queued are those the schedule makes, give or take the requests
    still in flight when wrk stopped: up to two a connection (one sent and not answered, one
    made by the script and not sent)."""
    if run.errors or abs(queued - run.expected_tasks) > 2 * connections:
        sys.exit(f"{run.requests} answered ({run.errors} errors): {queued} tasks queued, "
                 f"{run.expected_tasks} expected")  # fmt: skip


def profile(
    out: Path, redis_url: str, env: dict[str, str], port: int, schedule: Path, seconds: int,
    root: Path,
) -> None:  # fmt: skip
    """forgehand under pyinstrument through one run of the mix at 16 connections."""
    connect(redis_url).flushdb()
    command = [sys.executable, "-m", "pyinstrument", "-r", "text", "--show-all", "-o",
               str(out), "-m", "app", "web"]  # fmt: skip
    with (root / "profile.log").open("ab") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_listening(port, proc)
        wrk(port, 16, seconds, schedule)
    finally:
        proc.send_signal(signal.SIGINT)  # pyinstrument writes its report on the way out
        proc.wait(timeout=60)


def report(runs: dict[tuple[str, int, str], list[Run]], names: list[str], conns: list[int]) -> None:
    rate: dict[tuple[str, int, str], float] = {}
    p99: dict[tuple[str, int, str], float] = {}
    print()
    print("| deliveries | connections | server | requests/s | p50 | p99 | errors "
          "| ÷ bare route | ÷ Probot |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        for c in conns:
            for target in TARGETS:
                these = runs[(name, c, target)]
                key = (name, c, target)
                rate[key] = statistics.median(r.rate for r in these)
                p99[key] = statistics.median(r.p99_ms for r in these)
            for target in TARGETS:
                key = (name, c, target)
                these = runs[key]
                p50 = statistics.median(r.p50_ms for r in these)
                errors = sum(r.errors for r in these)
                print(f"| {name} | {c} | {target} | {rate[key]:.0f} | {p50:.2f} ms | "
                      f"{p99[key]:.2f} ms | {errors} | {rate[key] / rate[(name, c, BARE)]:.2f} | "
                      f"{rate[key] / rate[(name, c, 'Probot')]:.2f} |")  # fmt: skip
    print()
    checks: list[tuple[str, float, float, bool]] = []  # what, value, bound, at least?

    def ratio(a: tuple[str, int, str], b: tuple[str, int, str]) -> float:
        return rate[a] / rate[b]

    if ("ignored", 16, BARE) in rate:
        value = ratio(("ignored", 16, "forgehand"), ("ignored", 16, BARE))
        checks.append(("ignored ÷ bare route at 16 connections", value, 0.5, True))
    if ("mix", 16, BARE) in rate:
        value = ratio(("mix", 16, "forgehand"), ("mix", 16, BARE))
        checks.append(("mix ÷ bare route at 16 connections", value, 0.35, True))
        value = ratio(("mix", 16, "forgehand"), ("mix", 16, "Probot"))
        checks.append(("mix ÷ Probot at 16 connections", value, 0.4, True))
    for name in names:
        if (name, 64, BARE) in p99:
            value = p99[(name, 64, "forgehand")] / p99[(name, 64, BARE)]
            checks.append((f"{name}: p99 ÷ the bare route's at 64 connections", value, 3, False))
    for what, value, bound, at_least in checks:
        met = value >= bound if at_least else value <= bound
        sign = ">=" if at_least else "<="
        print(f"- {what}: {value:.2f} (target {sign} {bound:g}): {'met' if met else 'MISSED'}")


def node_version() -> str:
    return subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()


def wrk_version() -> str:
    done = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return (done.stdout or done.stderr).split(" [")[0].strip()


if __name__ == "__main__":
    sys.exit(main())
