"""Benchmark 1: webhook intake under load, beside a bare Starlette route and Probot.

    npm install --prefix bench/probot && .venv/bin/python bench/intake.py [--repeat 3]

With REDIS_URL set, forgehand uses that Redis server (database 12, flushed between runs);
without it, an embedded one.

Needs `wrk` (Debian: apt install wrk). Starts, each as its own process on 127.0.0.1:
forgehand's real web process (`python -m app web`: verify, dedupe, decide, enqueue) against
Redis; a bare Starlette route that reads the body and answers 202 under the same
uvicorn; and Probot (bench/probot/server.js) verifying and dispatching to an empty handler.
wrk drives each with bench/intake.lua: signed `issues.labeled` deliveries, each with its own
delivery id and issue number. Runs are interleaved so all three see the same machine; medians
of --repeat runs. Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
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
from urllib.parse import urlsplit, urlunsplit

from app.redis_conn import connect, embedded_redis
from app.store import TASKS_INDEX
from simulator import shapes
from simulator.sandbox import free_port, key_pair, stop_process

BENCH = Path(__file__).resolve().parent
PATH = "/api/github/webhooks"
SECRET = "bench-secret"
TARGETS = ("forgehand", "bare Starlette route", "Probot")


@dataclass(frozen=True)
class Run:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def template() -> str:
    """An issues.labeled body as GitHub sends it, with __N__ where the issue number goes."""
    repo = shapes.repository("octo/bench", 4242, "main", "https://github.test/octo/bench.git")
    data = {"number": 1, "title": "Make it faster", "body": "The intake is slow.",
            "labels": [{"name": "agent"}]}  # fmt: skip
    issue = shapes.issue(data, repo) | {"number": "__N__", "id": "__N__"}
    payload = {
        "action": "labeled",
        "issue": issue,
        "label": shapes.label("agent"),
        "repository": repo,
        "sender": shapes.user("carol"),
        "installation": {"id": 77, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNzc="},
    }
    return json.dumps(payload).replace('"__N__"', "__N__")


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


def wrk(port: int, connections: int, seconds: int, body: Path) -> Run:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
         "-s", str(BENCH / "intake.lua"), f"http://127.0.0.1:{port}{PATH}", "--", SECRET,
         str(body)],
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
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", default="1,16,64")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt install wrk)")
    if not (BENCH / "probot" / "node_modules" / "probot").is_dir():
        sys.exit("Probot is not installed: npm install --prefix bench/probot")
    connections = [int(c) for c in args.connections.split(",")]
    root = Path(tempfile.mkdtemp(prefix="forgehand-intake-"))
    body = root / "body.json"
    body.write_text(template())
    private, _ = key_pair()
    ports = {target: free_port() for target in TARGETS}
    # Probot would take REDIS_URL as a request to cluster through Redis.
    base = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    base |= {"WEBHOOK_SECRET": SECRET, "PRIVATE_KEY": private, "APP_ID": "1"}
    runs: dict[tuple[str, int], list[Run]] = {}
    with ExitStack() as stack:
        # A Redis server of the machine's when REDIS_URL names one (its database 12, flushed
        # between runs), as in production; else an embedded one.
        shared = os.environ.get("REDIS_URL")
        redis_url = with_db(shared, 12) if shared else stack.enter_context(embedded_redis())
        redis = connect(redis_url)
        server = redis.info("server")
        redis_desc = f"Redis {server['redis_version']} ({'REDIS_URL' if shared else 'embedded'})"
        # The same uvicorn, with the options `forgehand web` gives it.
        bare = [sys.executable, "-m", "uvicorn", "bare_route:app", "--app-dir", str(BENCH),
                "--host", "127.0.0.1", "--port", str(ports["bare Starlette route"]),
                "--log-level", "warning"]  # fmt: skip
        commands = {
            "forgehand": [sys.executable, "-m", "app", "web"],
            "bare Starlette route": bare,
            "Probot": ["node", str(BENCH / "probot" / "server.js")],
        }
        for target, command in commands.items():
            env = base | {"PORT": str(ports[target]), "HOST": "127.0.0.1"}
            if target == "forgehand":
                env["REDIS_URL"] = redis_url
            log = root / f"{target.split()[0].lower()}.log"
            stack.enter_context(process(command, env, ports[target], log))
        for target in TARGETS:  # warm up: imports, connection pools, JIT
            wrk(ports[target], 16, 2, body)
        for _ in range(args.repeat):
            for c in connections:
                for target in TARGETS:
                    redis.flushdb()
                    run = wrk(ports[target], c, args.seconds, body)
                    if target == "forgehand":
                        # Requests still in flight when wrk stops are served but not counted.
                        queued = redis.zcard(TASKS_INDEX)
                        if not 0 <= queued - (run.requests - run.errors) <= c:
                            sys.exit(f"{run.requests} answered but {queued} tasks queued")
                    runs.setdefault((target, c), []).append(run)
                    print(f"{target} c={c}: {run.rate:.0f}/s p99 {run.p99_ms:.1f} ms "
                          f"errors {run.errors}", file=sys.stderr)  # fmt: skip
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, node {node_version()}, {wrk_version()}, "
          f"{redis_desc}")  # fmt: skip
    print(f"date: {time.strftime('%Y-%m-%d')}, command: .venv/bin/python bench/intake.py "
          f"--repeat {args.repeat} --seconds {args.seconds}")  # fmt: skip
    print()
    print("| connections | server | requests/s | p50 | p99 | errors | ÷ bare route | ÷ Probot |")
    print("|---|---|---|---|---|---|---|---|")
    for c in connections:
        rate = {t: statistics.median(r.rate for r in runs[(t, c)]) for t in TARGETS}
        for target in TARGETS:
            these = runs[(target, c)]
            p50 = statistics.median(r.p50_ms for r in these)
            p99 = statistics.median(r.p99_ms for r in these)
            errors = sum(r.errors for r in these)
            print(f"| {c} | {target} | {rate[target]:.0f} | {p50:.2f} ms | {p99:.2f} ms | "
                  f"{errors} | {rate[target] / rate['bare Starlette route']:.2f} | "
                  f"{rate[target] / rate['Probot']:.2f} |")  # fmt: skip
    return 0


def node_version() -> str:
    return subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()


def wrk_version() -> str:
    done = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return (done.stdout or done.stderr).split(" [")[0].strip()


if __name__ == "__main__":
    sys.exit(main())
