"""`forgehand try-agent`: run the configured agent, sandboxed, on a scratch repository with a
one-line task and say whether it fixed it; no GitHub or Redis."""

from __future__ import annotations

import argparse

from app.cli.common import Command, with_settings
from app.settings import Settings, SettingsError


def _options(try_agent: argparse.ArgumentParser) -> None:
    try_agent.add_argument(
        "--agent", help="a preset or `command` (default: AGENT)",
        choices=("claude", "codex", "aider", "opencode", "gemini", "command"),
    )  # fmt: skip


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


COMMAND = Command(
    "try-agent", "Run the agent, sandboxed, on a scratch repository with a one-line "
    "task, and say whether it fixed it.",
    "AGENT (and AGENT_COMMAND for `command`), the agent's key named in AGENT_ENV. No "
    "GitHub or Redis.",
    with_settings(_try_agent), _options,
)  # fmt: skip
