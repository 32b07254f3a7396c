"""What the real-CLI tests share: finding a CLI under FORGEHAND_AGENTS_DIR (or skipping), a
sandbox (or skipping), the scratch repository with its bug, running a CLI in the sandbox as
forgehand does, and reading JSON event lines."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.fleet.epic_plan import check
from app.fleet.epic_plan import parse as parse_plan
from app.settings import parse
from jobs.agents import prompts
from jobs.agents import runner as agent
from jobs.boundary.sandbox import Sandbox, SandboxUnavailable
from jobs.kinds.planning import read_plan
from tests.agents.models.calc import BROKEN, FIXED


def installed(name: str, *relative: str) -> Path:
    """`FORGEHAND_AGENTS_DIR/<relative…>`; the test is skipped when it is not there."""
    root = os.environ.get("FORGEHAND_AGENTS_DIR")
    if not root:
        pytest.skip(f"FORGEHAND_AGENTS_DIR is not set: no real {name} to run")
    found = Path(root).joinpath(*relative)
    if not found.exists():
        pytest.skip(f"{name} is not installed at {found}")
    return found


def contained() -> Sandbox:
    """The sandbox tasks use; the test is skipped where it cannot be made."""
    box = Sandbox(parse({"AGENT_SANDBOX": "bwrap"}))
    try:
        box.check()
    except SandboxUnavailable as exc:
        pytest.skip(f"no sandbox here: {exc}")
    return box


def repository(work: Path) -> None:
    """A git repository in `work` holding calc.py with its bug, committed."""
    work.mkdir(exist_ok=True)
    (work / "calc.py").write_text(BROKEN)
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "calc.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)


def workspace(root: Path) -> Path:
    """`root` holding what a task's agent gets: `work` (the repository), `home` and `objects`."""
    repository(root / "work")
    for name in ("home", "objects"):
        (root / name).mkdir(exist_ok=True)
    return root


@dataclass
class Run:
    result: agent.AgentResult
    seen: list[tuple[float, str]]  # each output line with when the runner passed it on
    output: str  # the log, as forgehand keeps it
    refused: list[str]  # the connections the egress proxy refused
    work: Path
    home: Path

    @property
    def lines(self) -> list[str]:
        return [line for _, line in self.seen]

    def events(self) -> list[dict[str, Any]]:
        return events(self.lines)

    def fixed_calc(self) -> bool:
        """The CLI ended well and left calc.py as the scripted model's edit makes it."""
        assert self.result.exit_code == 0, self.output
        return (self.work / "calc.py").read_text() == FIXED


def run_cli(
    root: Path,
    argv: Sequence[str],
    variables: Mapping[str, str],
    allow: Sequence[str],
    *,
    prompt: str = "",
    files: Sequence[Path] = (),
    timeout: float = 120,
    idle_timeout: float | None = None,
    tail_lines: int = 60,
) -> Run:
    """`argv` run as forgehand runs an agent: a trusted command in the sandbox on the
    workspace `workspace(root)` made, its environment the basics and `variables`, reaching
    only the hosts in `allow`, given `prompt` on stdin and `files` read-only."""
    box = contained()
    work, home, objects = root / "work", root / "home", root / "objects"
    base = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    env = agent.agent_env(base, (), variables)
    seen: list[tuple[float, str]] = []
    refused: list[str] = []
    log = root / "agent.log"
    with box.jail(work, home, objects, allow, refused.append) as jail:
        launch = jail.command(argv, env, files=files, trusted=True)
        result = agent.run(
            launch.argv,
            workdir=work,
            prompt=prompt,
            env=launch.env,
            log_path=log,
            timeout=timeout,
            idle_timeout=timeout if idle_timeout is None else idle_timeout,
            on_output=lambda lines: seen.extend((time.monotonic(), line) for line in lines),
            preexec=launch.preexec,
            tail_lines=tail_lines,
        )
    return Run(result, seen, log.read_text(errors="replace"), refused, work, home)


def events(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The JSON objects among output lines (CLIs print plain warnings between them)."""
    found = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            found.append(event)
    return found


# What the scripted model writes when it is asked to plan: forgehand must read it back whole.
PLAN_FILE = """\
summary: Fix add() first, then document it.
issues:
  - key: fix-add
    title: add() subtracts
    body: Make add() return a + b.
    files: [calc.py]
    size: S
  - key: docs
    title: Document add()
    body: A README that says what add() does.
    files: [README.md]
    depends_on: [fix-add]
    size: S
"""


def planning_prompt(work: Path) -> str:
    """forgehand's planning prompt for the scratch repository's epic."""
    epic = prompts.Epic(
        repo="octo/calc", number=1, title="Make calc usable", body="add() is wrong; no docs.",
        comments=[], guidance="", files=sorted(p.name for p in work.iterdir() if p.is_file()),
        pulls={}, max_issues=8,
    )  # fmt: skip
    return prompts.plan_prompt(epic)


def planning_prompt_for(tmp_path: Path) -> str:
    """The planning prompt for the scratch repository `repository()` makes (calc.py)."""
    epic = prompts.Epic(
        repo="octo/calc", number=1, title="Make calc usable", body="add() is wrong; no docs.",
        comments=[], guidance="", files=["calc.py"], pulls={}, max_issues=8,
    )  # fmt: skip
    return prompts.plan_prompt(epic)


def read_back_plan(work: Path) -> None:
    """The plan the CLI wrote, read as forgehand reads it, is the model's plan."""
    plan = parse_plan(read_plan(work))
    assert [r.key for r in plan.rows] == ["fix-add", "docs"]
    assert check(plan, ["calc.py"], {}).waves == {"fix-add": 1, "docs": 2}
