"""The `forgehand` command line (SPEC §2), one module per command, each naming its --help and
flags in its COMMAND; what they share is in common.py. This face builds the parser from them and
runs the one asked for. The composition root, so it may import anything.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence
from importlib import metadata

from app.cli import dev, doctor, redeliver, sandbox, setup, tasks, try_agent, usage, web, worker

# In the order `forgehand --help` lists them.
COMMANDS = (
    web.COMMAND, worker.COMMAND, dev.COMMAND, sandbox.COMMAND, redeliver.COMMAND,
    setup.COMMAND, doctor.COMMAND, try_agent.COMMAND, tasks.COMMAND, usage.COMMAND,
)  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forgehand",
        description="A GitHub App that puts coding agents to work. Settings come from the "
        "environment and .env (see the README's Configuration).",
    )
    parser.add_argument("--version", action="version", version=f"forgehand {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for command in COMMANDS:
        # Its --help says what it does and which settings it needs.
        command.options(
            sub.add_parser(
                command.name, help=command.does.split(". ")[0].rstrip("."),
                description=f"{textwrap.fill(command.does, 80)}\n\n"
                f"{textwrap.fill(f'Needs: {command.needs}', 80)}",
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
        )  # fmt: skip
    return parser


def _version() -> str:
    try:
        return metadata.version("forgehand")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    (command,) = (c for c in COMMANDS if c.name == args.command)
    return command.run(args)


__all__ = [
    "doctor",
    "main",
]
