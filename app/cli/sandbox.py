"""`forgehand sandbox`: the whole loop offline against a simulated GitHub, kept in a directory
of its own; a SIGTERM stops everything it started, as Ctrl-C does."""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path

from app.cli.common import Command, exit_on_signal, with_settings
from app.settings import Settings, SettingsError


def _options(sandbox: argparse.ArgumentParser) -> None:
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


def _sandbox(settings: Settings, args: argparse.Namespace) -> int:
    # The simulator is not part of forgehand proper; only this command loads it.
    from simulator import sandbox

    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = sandbox_dir(args.dir or Path(".forgehand"), f"sandbox-{stamp}", args.dir is None)
    print(f"Keeping it all in {root}", flush=True)
    # SIGTERM unwinds like Ctrl-C, so the web process, worker and Redis it started stop too.
    signal.signal(signal.SIGTERM, exit_on_signal)
    try:
        return sandbox.run(settings, args.scenario, root, keep=args.keep)
    except SystemExit as exc:
        print(f"stopped by signal {_signal_name(exc.code)}; everything it started is stopped")
        raise


def _signal_name(code: object) -> str:
    number = code - 128 if isinstance(code, int) else 0
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(code)


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


COMMAND = Command(
    "sandbox", "The whole loop offline against a simulated GitHub, narrated: an issue "
    "labelled, the agent's work, a pull request, CI. Exit 0 on the expected ending; it "
    "stops at the first task that fails, saying why.",
    "nothing (an embedded Redis, a generated App key). AGENT (and AGENT_ENV) to run a "
    "real agent instead of the demo one. It never uses REDIS_URL: it starts a Redis of its "
    "own, so nothing it queues reaches your workers.",
    with_settings(_sandbox), _options,
)  # fmt: skip
