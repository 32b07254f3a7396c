"""`forgehand dev`: the web process and workers in one command, on an embedded Redis unless
REDIS_URL names one; Ctrl-C or SIGTERM stops the workers, then the web process, then Redis."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

from app.cli.common import (
    DEV_REDIS_POINTER,
    Command,
    check_port,
    contain,
    exit_on_signal,
    log,
    positive,
    serve,
    with_settings,
)
from app.settings import Settings
from app.store import embedded_redis

# How long `dev`'s worker gets for each step of stopping: finish, then stop its job, then die.
WORKER_STOP_GRACE = 1.0


def _options(dev: argparse.ArgumentParser) -> None:
    dev.add_argument("-n", type=positive, default=1, metavar="N", help="number of workers")


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
    check_port(settings)
    contain(settings)
    from jobs.worker import run_in_own_session

    # uvicorn re-raises SIGTERM once it has shut down; as an exception it lets the worker and
    # the embedded Redis below be stopped too, instead of being orphaned.
    signal.signal(signal.SIGTERM, exit_on_signal)
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
            serve(settings, url, lambda: _stop_worker(worker))
        finally:
            _stop_worker(worker)
    return 0


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


COMMAND = Command(
    "dev", "The web process and a worker in one command, for trying forgehand by hand. "
    "Prints the webhook, dashboard and /setup URLs; Ctrl-C stops it all.",
    "WEBHOOK_SECRET. REDIS_URL is optional (unset: an embedded Redis); without APP_ID and "
    "PRIVATE_KEY tasks fail when they call GitHub (/setup registers the App).",
    with_settings(_dev), _options,
)  # fmt: skip
