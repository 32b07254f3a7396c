"""The command line: `forgehand <command>` or `python -m app <command>` (SPEC §2)."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import math
import multiprocessing
import os
import signal
import socket
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from types import FrameType

from redis import Redis
from redis.exceptions import RedisError

from app import logs
from app.dashboard import work_text
from app.settings import Settings, SettingsError, load
from app.store import Store, connect, embedded_redis, spend
from jobs.boundary import printable

log = logging.getLogger("forgehand")

# Where `dev` leaves the address of its embedded Redis, so `forgehand tasks` run from the same
# directory finds it without REDIS_URL.
DEV_REDIS_POINTER = Path(".forgehand/dev-redis-url")


def _positive(raw: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, does: str, needs: str
) -> argparse.ArgumentParser:
    """A subcommand whose --help says what it does and which settings it needs."""
    return sub.add_parser(
        name, help=does.split(". ")[0].rstrip("."),
        description=f"{textwrap.fill(does, 80)}\n\n{textwrap.fill(f'Needs: {needs}', 80)}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forgehand",
        description="A GitHub App that puts coding agents to work. Settings come from the "
        "environment and .env (see the README's Configuration).",
    )
    parser.add_argument("--version", action="version", version=f"forgehand {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    _command(
        sub, "web", "The webhook receiver, dashboard and /metrics, on HOST:PORT.",
        "WEBHOOK_SECRET, REDIS_URL, APP_ID, PRIVATE_KEY (or PRIVATE_KEY_PATH).",
    )  # fmt: skip
    worker = _command(
        sub, "worker", "RQ workers that run tasks: git worktrees, the sandboxed agent, pushes.",
        "REDIS_URL, APP_ID, PRIVATE_KEY (or PRIVATE_KEY_PATH); the agent's CLI on PATH and "
        "its key named in AGENT_ENV.",
    )  # fmt: skip
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.add_argument("-n", type=_positive, default=1, metavar="N", help="number of workers")
    dev = _command(
        sub, "dev", "The web process and a worker in one command, for trying forgehand by hand. "
        "Prints the webhook, dashboard and /setup URLs; Ctrl-C stops it all.",
        "WEBHOOK_SECRET. REDIS_URL is optional (unset: an embedded Redis); without APP_ID and "
        "PRIVATE_KEY tasks fail when they call GitHub (/setup registers the App).",
    )  # fmt: skip
    dev.add_argument("-n", type=_positive, default=1, metavar="N", help="number of workers")
    sandbox = _command(
        sub, "sandbox", "The whole loop offline against a simulated GitHub, narrated: an issue "
        "labelled, the agent's work, a pull request, CI. Exit 0 on the expected ending; it "
        "stops at the first task that fails, saying why.",
        "nothing (an embedded Redis, a generated App key). AGENT (and AGENT_ENV) to run a "
        "real agent instead of the demo one. It never uses REDIS_URL: it starts a Redis of its "
        "own, so nothing it queues reaches your workers.",
    )  # fmt: skip
    sandbox.add_argument(
        "--scenario", choices=("fix", "escalate", "fleet", "plan"), default="fix",
        help="fix: the demo agent fixes the bug (default); escalate: it cannot, and gives up; "
        "fleet: four issues at once through dependencies, an overlap and a conflict; plan: an "
        "epic split by the agent into a plan, approved, filed as sub-issues and run to merge",
    )  # fmt: skip
    sandbox.add_argument(
        "--dir", type=Path,
        help="where to keep it all (default: a new one); a used one gets a fresh subdirectory",
    )  # fmt: skip
    sandbox.add_argument(
        "--keep", action="store_true",
        help="keep the dashboard and simulated GitHub running at the end, until Ctrl-C",
    )  # fmt: skip
    redeliver = _command(
        sub, "redeliver", "Ask GitHub to redeliver webhook deliveries that never reached "
        "forgehand.", "APP_ID, PRIVATE_KEY (or PRIVATE_KEY_PATH), REDIS_URL.",
    )  # fmt: skip
    redeliver.add_argument(
        "--since", default="3d", help="how far back: 90m, 6h, 2d (default and most: 3d)"
    )
    _command(
        sub, "setup", "Register the GitHub App from app.yml (manifest flow) and write .env; "
        "open the printed /setup URL in a browser.",
        "HOST and PORT where your browser and GitHub reach this machine.",
    )  # fmt: skip
    _command(
        sub, "doctor", "Check settings, key, GitHub, installations, webhook URL, Redis, git, "
        "disk, agent and sandbox: one line each; non-zero exit on any problem.",
        "whatever the other commands need; it says which are missing.",
    )  # fmt: skip
    try_agent = _command(
        sub, "try-agent", "Run the agent, sandboxed, on a scratch repository with a one-line "
        "task, and say whether it fixed it.",
        "AGENT (and AGENT_COMMAND for `command`), the agent's key named in AGENT_ENV. No "
        "GitHub or Redis.",
    )  # fmt: skip
    try_agent.add_argument(
        "--agent", help="a preset or `command` (default: AGENT)",
        choices=("claude", "codex", "aider", "opencode", "gemini", "command"),
    )  # fmt: skip
    tasks = _command(
        sub, "tasks", "List the work, most recently updated first: each issue and pull "
        "request forgehand worked on, with its title, state, attempts, last outcome, what to "
        "do next and its model spend. --json lists the tasks themselves, with their ids.",
        "REDIS_URL, or a `forgehand dev` running in this directory.",
    )  # fmt: skip
    tasks.add_argument("--json", action="store_true", help="one JSON array")
    tasks.add_argument(
        "--limit", type=_positive, default=50,
        help="how many issues and pull requests (with --json: tasks), newest first (default 50)",
    )  # fmt: skip
    tasks.add_argument("--plan", metavar="REPO", help="the fleet of one repository (owner/name)")
    usage = _command(
        sub, "usage", "Tokens and cost of the agents' model calls, by day, repository and "
        "agent, as forgehand's gateway metered them.",
        "REDIS_URL, or a `forgehand dev` running in this directory.",
    )  # fmt: skip
    usage.add_argument(
        "--since", default="7d", help="how far back, in whole UTC days: 1d, 7d, 30d (default 7d)"
    )
    usage.add_argument("--json", action="store_true", help="one JSON array")
    return parser


def _version() -> str:
    try:
        return metadata.version("forgehand")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "doctor":
        # Doctor reports a bad setting as one of its checks instead of stopping at it.
        from app.cli import doctor

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
    _check_port(settings)
    _check_schema(settings.redis_url)
    _serve(settings, settings.redis_url)
    return 0


def _serve(
    settings: Settings, redis_url: str, before_exit: Callable[[], None] | None = None
) -> None:
    import uvicorn

    from app.web import create_app, serving

    app = create_app(settings, connect(redis_url))
    # Given explicitly, so that FORWARDED_ALLOW_IPS in .env counts as it does in the environment.
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level="warning",
        proxy_headers=True, forwarded_allow_ips=settings.forwarded_allow_ips,
    )  # fmt: skip
    serving.run(serving.Server(config, before_exit))


def _check_schema(redis_url: str) -> None:
    """Refuse a Redis written by a newer forgehand; bring an older one up to date."""
    from app.store import SchemaError, ensure

    redis = connect(redis_url)
    try:
        ensure(redis)
    except SchemaError as exc:
        raise SettingsError(str(exc)) from None
    except RedisError as exc:
        # Not up yet: the web process answers 503 meanwhile, and workers check once it is.
        log.warning("Redis does not answer yet (%s): its layout is checked later", exc)
    finally:
        redis.close()


def _check_port(settings: Settings) -> None:
    """Stop with the fix when HOST:PORT cannot be listened on, before anything starts."""
    with socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET) as probe:
        # As uvicorn binds: a port left in TIME_WAIT by a process just stopped is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((settings.host, settings.port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise SettingsError(
                    f"port {settings.port} on {settings.host} is in use by another program "
                    f"(another forgehand?): stop it, or set PORT to a free port, e.g. "
                    f"PORT={settings.port + 1 if settings.port < 65535 else 3000}"
                ) from None
            raise SettingsError(
                f"cannot listen on {settings.host}:{settings.port}: {exc.strerror} "
                "(check HOST and PORT)"
            ) from None


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    settings.require("REDIS_URL", "APP_ID", "PRIVATE_KEY")
    assert settings.redis_url is not None
    _contain(settings)
    _check_schema(settings.redis_url)
    from jobs.worker import run_workers

    return run_workers(
        settings.redis_url, args.n, args.burst, settings.log_level, settings.log_format,
        settings.workspaces_dir, settings.worker_drain_timeout,
    )  # fmt: skip


def _contain(settings: Settings) -> None:
    """Refuse to run agents where the sandbox cannot be made; warn when it is turned off."""
    from jobs.boundary import UNSAFE_WARNING, Sandbox, SandboxUnavailable

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
    _check_port(settings)
    _contain(settings)
    from jobs.worker import run_in_own_session

    # uvicorn re-raises SIGTERM once it has shut down; as an exception it lets the worker and
    # the embedded Redis below be stopped too, instead of being orphaned.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    with _redis_for_dev(settings) as url:
        ctx = multiprocessing.get_context("spawn")
        worker = ctx.Process(
            target=run_in_own_session, name="worker",
            args=(url, args.n, settings.log_level, settings.log_format,
                  settings.workspaces_dir, settings.worker_drain_timeout),
        )  # fmt: skip
        try:
            # Until it is in a session of its own, the worker is in the terminal's foreground
            # group: a Ctrl-C then would stop it mid-start with a traceback. A new interpreter
            # keeps an ignored SIGINT ignored, so it starts deaf to it; `dev` stops it itself.
            heard = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                worker.start()
            finally:
                signal.signal(signal.SIGINT, heard)
            base = settings.web_url
            print(
                f"forgehand dev on {settings.host}:{settings.port} (Ctrl-C stops it)\n"
                f"  webhook:   {base}{settings.webhook_path}\n"
                f"  dashboard: {base}/\n"
                f"  setup:     {base}/setup (registers the GitHub App while APP_ID is unset)",
                flush=True,
            )
            # Ctrl-C stops the worker first, then the web process, then Redis (below).
            _serve(settings, url, lambda: _stop_worker(worker))
        finally:
            _stop_worker(worker)
    return 0


# How long `dev`'s worker gets for each step of stopping: finish, then stop its job, then die.
WORKER_STOP_GRACE = 1.0


def _stop_worker(worker: multiprocessing.process.BaseProcess) -> None:
    """Stop `dev`'s worker: a warm stop (RQ's first signal), a cold one (its second: the job
    and its agent are killed), then a kill; quick enough for Ctrl-C."""
    for _ in range(2):
        if not worker.is_alive() or worker.pid is None:
            return
        os.kill(worker.pid, signal.SIGTERM)
        worker.join(timeout=WORKER_STOP_GRACE)
    if worker.is_alive():
        worker.kill()
        worker.join()


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _signal_name(code: object) -> str:
    number = code - 128 if isinstance(code, int) else 0
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(code)


def _local_redis_url(settings: Settings) -> str:
    """REDIS_URL, or the embedded Redis of a `forgehand dev` running in this directory."""
    url = settings.redis_url
    if url is None and DEV_REDIS_POINTER.is_file():
        url = DEV_REDIS_POINTER.read_text().strip()
    if url is None:
        raise SettingsError(
            "REDIS_URL is required (or run `forgehand dev` in this directory first)"
        )
    return url


def _tasks(settings: Settings, args: argparse.Namespace) -> int:
    url = _local_redis_url(settings)
    try:
        if args.plan:
            return _plan(Store(connect(url)), args.plan)
        redis = connect(url)
        if args.json:
            return _tasks_json(redis, args.limit)
        lines = work_text.table(Store(redis), settings.max_attempts, args.limit)
    except RedisError as exc:
        raise SettingsError(f"Redis at {url} does not answer: {exc}") from None
    print("\n".join(lines))
    return 0


def _tasks_json(redis: Redis, limit: int) -> int:
    records = Store(redis).recent(limit)
    spent = spend.tasks_spend(redis, [(r.id, r.run) for r in records])
    out = [r.as_json() | {"usage": u.as_json()} for r, u in zip(records, spent, strict=True)]
    print(json.dumps(out, indent=2))
    return 0


def _usage(settings: Settings, args: argparse.Namespace) -> int:
    from app.parsing import parse_duration

    try:
        days = max(1, math.ceil(parse_duration(args.since).total_seconds() / 86400))
    except ValueError as exc:
        raise SettingsError(f"--since: {exc}") from None
    url = _local_redis_url(settings)
    try:
        rows = spend.by_day(connect(url), days)
    except RedisError as exc:
        raise SettingsError(f"Redis at {url} does not answer: {exc}") from None
    if args.json:
        out = [{"day": r.day, "repo": r.repo, "agent": r.agent} | r.spend.as_json() for r in rows]
        print(json.dumps(out, indent=2))
        return 0
    print("\n".join(printable(line) for line in spend.usage_table(rows)))
    return 0


def _plan(store: Store, repo: str) -> int:
    from app.fleet import plan

    rows = plan.read(store, repo)
    if not rows:
        print(f"(no tasks on {repo})")
        return 0
    print("\n".join(printable(line) for line in plan.text(rows).splitlines()))
    return 0


def _redeliver(settings: Settings, args: argparse.Namespace) -> int:
    settings.require("APP_ID", "PRIVATE_KEY", "REDIS_URL")
    assert settings.redis_url is not None
    from app.github import App, GitHubError
    from app.parsing import parse_duration
    from app.redeliver import redeliver

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

    from app.web import configured, serving, setup_app

    if configured(settings):
        print("forgehand is already registered: APP_ID and a private key are set.")
        return 0
    _check_port(settings)
    server: serving.Server | None = None
    registered = False

    def done() -> None:
        nonlocal registered
        registered = True
        assert server is not None
        server.should_exit = True

    env = Path(".env")
    config = uvicorn.Config(
        setup_app(settings, env, done), host=settings.host, port=settings.port,
        log_level="warning",
    )  # fmt: skip
    server = serving.Server(config)
    print(f"Open http://{settings.host}:{settings.port}/setup in a browser on this machine.")
    print("(GitHub sends the browser back here, so use the address GitHub should reach.)")
    try:
        serving.run(server)
    finally:
        if not registered:
            print(f"Stopped before the App was registered; {env} was not written.",
                  file=sys.stderr)  # fmt: skip
    if not registered:
        return 1
    print(f"Registered: {env} now holds APP_ID, PRIVATE_KEY and WEBHOOK_SECRET.")
    return 0


def _sandbox(settings: Settings, args: argparse.Namespace) -> int:
    # The simulator is not part of forgehand proper; only this command loads it.
    from simulator import sandbox

    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = sandbox_dir(args.dir or Path(".forgehand"), f"sandbox-{stamp}", args.dir is None)
    print(f"Keeping it all in {root}", flush=True)
    # SIGTERM unwinds like Ctrl-C, so the web process, worker and Redis it started stop too.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        return sandbox.run(settings, args.scenario, root, keep=args.keep)
    except SystemExit as exc:
        print(f"stopped by signal {_signal_name(exc.code)}; everything it started is stopped")
        raise


def sandbox_dir(given: Path, fresh: str, always_fresh: bool) -> Path:
    """The sandbox's directory: `given` itself when new or empty, else a new `fresh` one in
    it; a SettingsError saying why when neither can be made."""
    given = given.resolve()
    if given.exists() and not given.is_dir():
        raise SettingsError(f"--dir {given} is a file, not a directory")
    root = given
    if always_fresh or (given.is_dir() and any(given.iterdir())):
        root = given / fresh
        n = 1
        while root.exists():
            n += 1
            root = given / f"{fresh}-{n}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".forgehand-write-test"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise SettingsError(f"--dir {given}: cannot make {root}: {exc.strerror}") from None
    return root


def _try_agent(settings: Settings, args: argparse.Namespace) -> int:
    from jobs.boundary import SandboxUnavailable
    from jobs.errors import AgentConfigError
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
    "usage": _usage,
    "sandbox": _sandbox,
    "redeliver": _redeliver,
    "setup": _setup,
    "try-agent": _try_agent,
}

if __name__ == "__main__":
    sys.exit(main())
