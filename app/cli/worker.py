"""`forgehand worker`: RQ workers running tasks, started only where the sandbox can be made
and the Redis layout is one this forgehand reads."""

from __future__ import annotations

import argparse

from app.cli.common import Command, check_schema, contain, positive, with_settings
from app.settings import Settings


def _options(worker: argparse.ArgumentParser) -> None:
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.add_argument("-n", type=positive, default=1, metavar="N", help="number of workers")


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    settings.require("REDIS_URL", "APP_ID", "PRIVATE_KEY")
    assert settings.redis_url is not None
    contain(settings)
    check_schema(settings.redis_url)
    from jobs.worker import run_workers

    return run_workers(
        settings.redis_url, args.n, args.burst, settings.log_level, settings.log_format,
        settings.workspaces_dir, settings.worker_drain_timeout,
    )  # fmt: skip


COMMAND = Command(
    "worker", "RQ workers that run tasks: git worktrees, the sandboxed agent, pushes.",
    "REDIS_URL, APP_ID, PRIVATE_KEY (or PRIVATE_KEY_PATH); the agent's CLI on PATH and "
    "its key named in AGENT_ENV.",
    with_settings(_worker), _options,
)  # fmt: skip
