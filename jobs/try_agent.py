"""`forgehand try-agent`: the configured agent, sandboxed, on a scratch repository with a
one-line task — the operator's proof that it works before the App is installed anywhere.

No GitHub and no Redis: a local repository stands in for the remote, and the agent runs
through the same workspace, sandbox and runner a task uses.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.settings import Settings
from jobs.agents import PRESETS, prompts
from jobs.agents import runner as agent
from jobs.boundary import Sandbox, Usage
from jobs.pipeline import run_sandboxed
from jobs.workspace import Workspaces

BUGGY = "def add(a, b):\n    return a - b\n"
TITLE = "add() subtracts"
BODY = "In calc.py, `add(2, 3)` returns -1. Make add() return the sum of its arguments."
IDENTITY = {
    "GIT_AUTHOR_NAME": "forgehand",
    "GIT_AUTHOR_EMAIL": "forgehand@localhost",
    "GIT_COMMITTER_NAME": "forgehand",
    "GIT_COMMITTER_EMAIL": "forgehand@localhost",
}


@dataclass(frozen=True)
class Trial:
    name: str
    changed: bool
    fixed: bool
    result: agent.AgentResult
    refused: tuple[str, ...]
    calls: tuple[Usage, ...] = ()  # the model calls it made through the gateway

    @property
    def ok(self) -> bool:
        return self.result.ok and self.changed


def try_agent(settings: Settings, name: str, say: Callable[[str], None]) -> Trial:
    """Run agent `name` once on the scratch task; `say` gets its output as it comes."""
    command = settings.agent_command if name == settings.agent else None
    agent.check_keys(name, settings.agent_env, os.environ)
    sandbox = Sandbox(settings)
    sandbox.check()
    with tempfile.TemporaryDirectory(prefix="forgehand-try-") as scratch:
        root = Path(scratch)
        origin = _origin(root)
        workspaces = Workspaces(root / "workspaces")
        refused: list[str] = []
        calls: list[Usage] = []
        with workspaces.worktree(
            "try-agent", 1, f"file://{origin}", None, "agent/try", "main", new_branch=True
        ) as tree:
            prompt = prompts.issue_prompt("scratch/calc", 1, TITLE, BODY, tree.branch)
            prompt_file = tree.task_dir / "prompt.md"
            prompt_file.write_text(prompt)
            argv = agent.argv_for(name, command, prompt_file, tree.path)
            env = agent.agent_env(os.environ, settings.agent_env, IDENTITY)
            result = run_sandboxed(
                sandbox, tree, argv, prompt, env,
                files=(prompt_file,), trusted=True, preset=PRESETS.get(name),
                repository_allow=(), log_path=root / "agent.log",
                admit=lambda api, model: None, meter=lambda api, call: calls.append(call),
                timeout=settings.agent_timeout,
                idle_timeout=min(settings.agent_idle_timeout, settings.agent_timeout),
                on_output=lambda lines: _each(say, lines), on_refused=refused.append,
            )  # fmt: skip
            source = (tree.path / "calc.py").read_text(errors="replace")
    fixed = "return a + b" in source or "return b + a" in source
    return Trial(name, source != BUGGY, fixed, result, tuple(refused), tuple(calls))


def _each(say: Callable[[str], None], lines: list[str]) -> None:
    for line in lines:
        say(line)


def _origin(root: Path) -> Path:
    """A bare repository holding calc.py with its bug, on `main`."""
    seed = root / "seed"
    seed.mkdir()
    (seed / "calc.py").write_text(BUGGY)
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(root), **IDENTITY}
    for step in (["init", "-q", "-b", "main"], ["add", "calc.py"], ["commit", "-qm", "calc"]):
        subprocess.run(["git", *step], cwd=seed, env=env, check=True, capture_output=True)
    origin = root / "origin.git"
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(seed), str(origin)],
        env=env,
        check=True,
        capture_output=True,
    )
    return origin


def report(trial: Trial) -> list[str]:
    """What `try-agent` prints once the agent is done."""
    result = trial.result
    how = f"stopped: {result.killed}" if result.killed else f"exited with status {result.exit_code}"
    if trial.fixed:
        changed = "calc.py, and the bug is fixed"
    elif trial.changed:
        changed = "calc.py, but add() still does not return the sum"
    else:
        changed = "nothing"
    lines = ["", f"agent:   {trial.name}, {how}, in {result.seconds:.1f}s", f"changed: {changed}"]
    summary = [line for line in result.summary.splitlines() if line.strip()][-5:]
    lines += ["summary: " + (summary[0] if summary else "(no output)")]
    lines += [f"         {line}" for line in summary[1:]]
    tokens = sum(call.tokens for call in trial.calls)
    lines += [f"model:   {len(trial.calls)} calls through the gateway, {tokens} tokens"]
    lines += [f"refused: {line}" for line in trial.refused]
    lines.append("ok: the agent works here" if trial.ok else "not ok: see above")
    return lines
