"""One process of a task's in the sandbox, its model calls through a gateway of its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from jobs.agents import Preset, write_home
from jobs.agents import runner as agent
from jobs.boundary import (
    Admit,
    Gateway,
    Meter,
    Sandbox,
    agent_variables,
    new_placeholder,
    upstreams,
)
from jobs.errors import AgentConfigError, TaskFailed
from jobs.workspace import Worktree


def run_sandboxed(
    sandbox: Sandbox,
    tree: Worktree,
    argv: list[str],
    prompt: str,
    env: dict[str, str],
    *,
    files: tuple[Path, ...],
    trusted: bool,
    preset: Preset | None,
    repository_allow: tuple[str, ...],
    log_path: Path,
    timeout: float,
    idle_timeout: float,
    on_output: Callable[[list[str]], None],
    on_refused: Callable[[str], None],
    admit: Admit,
    meter: Meter,
    pgid_file: Path | None = None,
) -> agent.AgentResult:
    """One process of a task's — the agent, `setup` or `test` — in the sandbox, with its
    preset's config in its HOME, its output rendered for people and its final message read.
    Its model calls go through a gateway of its own: the model API keys in `env` are replaced
    by the gateway's placeholder and each API's base URL by the gateway's."""
    try:
        found = upstreams(env)
    except ValueError as exc:
        raise AgentConfigError(str(exc)) from None
    placeholder = new_placeholder()
    with Gateway(found, placeholder, admit, meter) as gateway:
        env = agent_variables(env, found, sandbox.gateway_url(gateway), placeholder)
        if preset is not None:
            env = preset.environment(env) | env
            write_home(preset, tree.home, env)
            # Folded into the config just written, under forgehand's safety settings: passed
            # on, they would take precedence over it.
            env = {k: v for k, v in env.items() if k not in preset.config_vars}
        allow = sandbox.settings.agent_allow_hosts
        with sandbox.jail(
            tree.path, tree.home, tree.objects, allow, on_refused, repository_allow, gateway
        ) as jail:
            launch = jail.command(argv, env, files, trusted)
            result = agent.run(
                launch.argv,
                workdir=tree.path,
                prompt=prompt,
                env=launch.env,
                log_path=log_path,
                timeout=timeout,
                idle_timeout=idle_timeout,
                on_output=on_output,
                pgid_file=pgid_file,
                preexec=launch.preexec,
                render=preset.render if preset is not None else None,
                disk=agent.DiskCap((tree.path, tree.home), sandbox.settings.agent_max_disk),
            )
        stopped = gateway.refused[0] if gateway.refused else ""
    if result.killed == "disk":
        raise TaskFailed(
            f"The files of the task's tree and the agent's home passed "
            f"{sandbox.settings.agent_max_disk} bytes (AGENT_MAX_DISK), so it was stopped.",
            result.tail,
        )
    summary = preset.summary(result.lines, tree.home) if preset else result.tail
    return replace(result, summary=summary.strip(), stopped=stopped)
