"""What the real-CLI tests share: finding a CLI under FORGEHAND_AGENTS_DIR (or skipping), a
sandbox (or skipping), the scratch repository with its bug, and reading JSON event lines."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from app.settings import parse
from jobs.sandbox import Sandbox, SandboxUnavailable

BROKEN = "def add(a, b):\n    return a - b\n"


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
