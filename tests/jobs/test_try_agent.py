from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from app.__main__ import main

SCRIPTED = Path(__file__).resolve().parents[1] / "agents" / "scripted.py"

# An agent command and try-agent's further arguments → its exit code, stdout and stderr.
TryAgent = Callable[[list[str], list[str]], tuple[int, str, str]]


def scripted(mode: str) -> list[str]:
    return [sys.executable, str(SCRIPTED), mode]


@pytest.fixture
def try_agent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> TryAgent:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENT", "command")
    monkeypatch.delenv("AGENT_SANDBOX", raising=False)

    def run(command: list[str], argv: list[str]) -> tuple[int, str, str]:
        monkeypatch.setenv("AGENT_COMMAND", shlex.join(command))
        code = main(["try-agent", *argv])
        said = capsys.readouterr()
        return code, said.out, said.err

    return run


def test_an_agent_that_fixes_the_scratch_bug_passes(try_agent: TryAgent) -> None:
    code, out, _ = try_agent(scripted("fix"), [])
    assert code == 0
    assert "│ Changed add() to return a + b." in out
    assert "changed: calc.py, and the bug is fixed" in out
    assert "summary: Changed add() to return a + b." in out
    assert out.rstrip().endswith("ok: the agent works here")


def test_the_shipped_demo_agent_passes(try_agent: TryAgent) -> None:
    demo = Path(__file__).resolve().parents[2] / "simulator" / "demo_agent.py"
    code, out, _ = try_agent([sys.executable, str(demo), "careful"], [])
    assert code == 0, out
    assert "changed: calc.py, and the bug is fixed" in out
    assert out.rstrip().endswith("ok: the agent works here")


def test_an_agent_that_changes_nothing_fails(try_agent: TryAgent) -> None:
    code, out, _ = try_agent(scripted("noop"), [])
    assert code == 1
    assert "changed: nothing" in out and "not ok" in out


def test_a_preset_without_its_key_is_refused_at_once(
    try_agent: TryAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENT_ENV", raising=False)
    code, _, err = try_agent(scripted("fix"), ["--agent", "codex"])
    assert code == 2
    assert "AGENT_ENV lacks CODEX_API_KEY" in err
