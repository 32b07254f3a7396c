from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from app.__main__ import main

SCRIPTED = Path(__file__).resolve().parents[1] / "agents" / "scripted.py"


def use(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mode: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENT", "command")
    monkeypatch.setenv("AGENT_COMMAND", shlex.join([sys.executable, str(SCRIPTED), mode]))
    monkeypatch.delenv("AGENT_SANDBOX", raising=False)


def test_an_agent_that_fixes_the_scratch_bug_passes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use(monkeypatch, tmp_path, "fix")
    assert main(["try-agent"]) == 0
    out = capsys.readouterr().out
    assert "│ Changed add() to return a + b." in out
    assert "changed: calc.py, and the bug is fixed" in out
    assert "summary: Changed add() to return a + b." in out
    assert out.rstrip().endswith("ok: the agent works here")


def test_the_shipped_demo_agent_passes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = Path(__file__).resolve().parents[2] / "simulator" / "demo_agent.py"
    use(monkeypatch, tmp_path, "fix")
    monkeypatch.setenv("AGENT_COMMAND", shlex.join([sys.executable, str(demo), "careful"]))
    assert main(["try-agent"]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "changed: calc.py, and the bug is fixed" in out
    assert out.rstrip().endswith("ok: the agent works here")


def test_an_agent_that_changes_nothing_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use(monkeypatch, tmp_path, "noop")
    assert main(["try-agent"]) == 1
    out = capsys.readouterr().out
    assert "changed: nothing" in out and "not ok" in out


def test_a_preset_without_its_key_is_refused_at_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use(monkeypatch, tmp_path, "fix")
    monkeypatch.delenv("AGENT_ENV", raising=False)
    assert main(["try-agent", "--agent", "codex"]) == 2
    assert "AGENT_ENV lacks CODEX_API_KEY" in capsys.readouterr().err
