"""The command line: `forgehand <command>` or `python -m app <command>` (SPEC §2)."""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from redis.exceptions import RedisError

from app import logs
from app.redis_conn import connect, embedded_redis
from app.settings import Settings, SettingsError, load
from app.store import Store

log = logging.getLogger("forgehand")

# Where `dev` leaves the address of its embedded Redis, so `forgehand tasks` run from the same
# directory finds it without REDIS_URL.
DEV_REDIS_POINTER = Path(".forgehand/dev-redis-url")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forgehand", description="A GitHub App that puts coding agents to work."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    sub.add_parser("web", help="the webhook receiver (uvicorn)")
    worker = sub.add_parser("worker", help="RQ worker(s) that run tasks")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.add_argument("-n", type=int, default=1, metavar="N", help="number of workers")
    dev = sub.add_parser("dev", help="web + worker in one command (embedded Redis if needed)")
    dev.add_argument("-n", type=int, default=1, metavar="N", help="number of workers")
    sandbox = sub.add_parser(
        "sandbox", help="the whole loop offline against a simulated GitHub, narrated"
    )
    sandbox.add_argument(
        "--scenario", choices=("fix", "escalate", "fleet"), default="fix",
        help="fix: the demo agent fixes the bug (default); escalate: it cannot, and gives up; "
        "fleet: four issues at once through dependencies, an overlap and a conflict",
    )  # fmt: skip
    sandbox.add_argument("--dir", type=Path, help="where to keep it all (default: a new one)")
    redeliver = sub.add_parser("redeliver", help="ask GitHub to redeliver failed deliveries")
    redeliver.add_argument(
        "--since", default="3d", help="how far back: 90m, 6h, 2d (default and most: 3d)"
    )
    sub.add_parser("setup", help="register the GitHub App from app.yml and write .env")
    sub.add_parser("doctor", help="check settings, key, GitHub, Redis, git, disk and agent")
    try_agent = sub.add_parser(
        "try-agent", help="run the agent, sandboxed, on a scratch repository with a small task"
    )
    try_agent.add_argument(
        "--agent", help="a preset or `command` (default: AGENT)",
        choices=("claude", "codex", "aider", "opencode", "gemini", "command"),
    )  # fmt: skip
    tasks = sub.add_parser("tasks", help="list tasks")
    tasks.add_argument("--json", action="store_true", help="one JSON array")
    tasks.add_argument("--limit", type=int, default=50, help="how many, newest first")
    tasks.add_argument("--plan", metavar="REPO", help="the fleet of one repository (owner/name)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "doctor":
        # Doctor reports a bad setting as one of its checks instead of stopping at it.
        from app import doctor

        checks = doctor.run()
        for check in checks:
            print(check.line())
        return 0 if all(c.ok for c in checks) else 1
    try:
        settings = load()
        logs.configure(settings.log_level, settings.log_format)
        return _COMMANDS[args.command](settings, args)
    except SettingsError as exc:
        print(f"forgehand: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _web(settings: Settings, args: argparse.Namespace) -> int:
    settings.require("WEBHOOK_SECRET", "REDIS_URL", "APP_ID", "PRIVATE_KEY")
    assert settings.redis_url is not None
    _serve(settings, settings.redis_url)
    return 0


def _serve(settings: Settings, redis_url: str) -> None:
    import uvicorn

    from app.main import create_app

    app = create_app(settings, connect(redis_url))
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    settings.require("REDIS_URL", "APP_ID", "PRIVATE_KEY")
    assert settings.redis_url is not None
    if args.n < 1:
        raise SettingsError("-n must be at least 1")
    _contain(settings)
    from jobs.worker import run_workers

    return run_workers(
        settings.redis_url, args.n, args.burst, settings.log_level, settings.workspaces_dir
    )


def _contain(settings: Settings) -> None:
    """Refuse to run agents where the sandbox cannot be made; warn when it is turned off."""
    from jobs.sandbox import UNSAFE_WARNING, Sandbox, SandboxUnavailable

    sandbox = Sandbox(settings)
    if not sandbox.contained:
        log.warning(UNSAFE_WARNING)
        return
    try:
        sandbox.check()
    except SandboxUnavailable as exc:
        raise SettingsError(str(exc)) from None


@contextmanager
def _redis_for_dev(settings: Settings) -> Iterator[str]:
    if settings.redis_url is not None:
        yield settings.redis_url
        return
    with embedded_redis() as url:
        DEV_REDIS_POINTER.parent.mkdir(parents=True, exist_ok=True)
        DEV_REDIS_POINTER.write_text(url)
        log.info("embedded Redis at %s (set REDIS_URL to use your own)", url)
        try:
            yield url
        finally:
            DEV_REDIS_POINTER.unlink(missing_ok=True)


def _dev(settings: Settings, args: argparse.Namespace) -> int:
    settings.require("WEBHOOK_SECRET")
    if settings.app_id is None or settings.private_key is None:
        log.warning("APP_ID or PRIVATE_KEY is unset: tasks will fail when they call GitHub")
    _contain(settings)
    from jobs.worker import run_workers

    # uvicorn re-raises SIGTERM once it has shut down; as an exception it lets the worker and
    # the embedded Redis below be stopped too, instead of being orphaned.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    with _redis_for_dev(settings) as url:
        ctx = multiprocessing.get_context("spawn")
        worker = ctx.Process(
            target=run_workers,
            args=(url, args.n, False, settings.log_level, settings.workspaces_dir),
            name="worker",
        )
        worker.start()
        log.info("listening on http://%s:%s%s", settings.host, settings.port, settings.webhook_path)
        try:
            _serve(settings, url)
        finally:
            worker.terminate()
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    return 0


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _tasks(settings: Settings, args: argparse.Namespace) -> int:
    url = settings.redis_url
    if url is None and DEV_REDIS_POINTER.is_file():
        url = DEV_REDIS_POINTER.read_text().strip()
    if url is None:
        raise SettingsError(
            "REDIS_URL is required (or run `forgehand dev` in this directory first)"
        )
    try:
        if args.plan:
            return _plan(Store(connect(url)), args.plan)
        records = Store(connect(url)).recent(args.limit)
    except RedisError as exc:
        raise SettingsError(f"Redis at {url} does not answer: {exc}") from None
    if args.json:
        print(json.dumps([r.as_json() for r in records], indent=2))
        return 0
    rows = [("ID", "KIND", "REPO", "NUMBER", "STATE", "ATTEMPT", "UPDATED")]
    for r in records:
        updated = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.updated))
        rows.append(
            (r.id, r.task.kind.value, r.task.repo, f"#{r.task.number}", r.state.value,
             str(r.attempt), updated)
        )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if not records:
        print("(no tasks yet)")
    return 0


def _plan(store: Store, repo: str) -> int:
    from app import plan

    rows = plan.read(store, repo)
    if not rows:
        print(f"(no tasks on {repo})")
        return 0
    print(plan.text(rows))
    return 0


def _redeliver(settings: Settings, args: argparse.Namespace) -> int:
    settings.require("APP_ID", "PRIVATE_KEY", "REDIS_URL")
    assert settings.redis_url is not None
    from app.github import App, GitHubError
    from app.redeliver import parse_duration, redeliver

    try:
        since = parse_duration(args.since)
    except ValueError as exc:
        raise SettingsError(f"--since: {exc}") from None
    redis = connect(settings.redis_url)
    try:
        asked = redeliver(App(settings, redis), redis, since)
    except GitHubError as exc:
        print(f"forgehand: {exc}", file=sys.stderr)
        return 1
    for delivery in asked:
        print(f"redelivering {delivery.guid} ({delivery.event}, failed {delivery.delivered_at})")
    print(f"{len(asked)} deliveries asked for again")
    return 0


def _setup(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from app.setup import configured, setup_app

    if configured(settings):
        print("forgehand is already registered: APP_ID and a private key are set.")
        return 0
    server: uvicorn.Server | None = None

    def done() -> None:
        assert server is not None
        server.should_exit = True

    config = uvicorn.Config(
        setup_app(settings, Path(".env"), done), host=settings.host, port=settings.port,
        log_level="warning",
    )  # fmt: skip
    server = uvicorn.Server(config)
    print(f"Open http://{settings.host}:{settings.port}/setup in a browser on this machine.")
    print("(GitHub sends the browser back here, so use the address GitHub should reach.)")
    server.run()
    print("Registered: .env now holds APP_ID, PRIVATE_KEY and WEBHOOK_SECRET.")
    return 0


def _sandbox(settings: Settings, args: argparse.Namespace) -> int:
    # The simulator is not part of forgehand proper; only this command loads it.
    from simulator import sandbox

    root = args.dir or Path(".forgehand") / f"sandbox-{time.strftime('%Y%m%d-%H%M%S')}"
    return sandbox.run(settings, args.scenario, root.resolve())


def _try_agent(settings: Settings, args: argparse.Namespace) -> int:
    from jobs.agent import AgentConfigError
    from jobs.sandbox import SandboxUnavailable
    from jobs.try_agent import report, try_agent

    name = args.agent or settings.agent
    print(f"Running the {name} agent, sandboxed, on a scratch repository: fix add() in calc.py")
    try:
        trial = try_agent(settings, name, lambda line: print(f"  │ {line}", flush=True))
    except (AgentConfigError, SandboxUnavailable) as exc:
        raise SettingsError(str(exc)) from None
    for line in report(trial):
        print(line)
    return 0 if trial.ok else 1


_COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "web": _web,
    "worker": _worker,
    "dev": _dev,
    "tasks": _tasks,
    "sandbox": _sandbox,
    "redeliver": _redeliver,
    "setup": _setup,
    "try-agent": _try_agent,
}

if __name__ == "__main__":
    sys.exit(main())
