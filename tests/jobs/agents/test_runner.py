from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from jobs.agents.presets import PRESETS
from jobs.agents.runner import agent_env, argv_for, check_keys, run
from jobs.errors import AgentConfigError

HELP = Path(__file__).resolve().parents[2] / "fixtures" / "agent-help"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_flag_is_in_that_cli_s_own_help(name: str) -> None:
    help_text = (HELP / f"{name}.txt").read_text()
    flags = [part for part in PRESETS[name].argv if part.startswith("-") and part != "-"]
    assert flags
    for flag in flags:
        assert re.search(rf"(^|[\s,]){re.escape(flag)}([\s,=]|$)", help_text, re.M), (name, flag)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("codex", "exec"), ("opencode", "run")],
)
def test_subcommands_exist(name: str, expected: str) -> None:
    assert PRESETS[name].argv[1] == expected
    assert (
        f"{name} {expected}" in (HELP / f"{name}.txt").read_text().lower()
        or expected in (HELP / f"{name}.txt").read_text()
    )


def test_presets_take_the_prompt_as_data_only() -> None:
    for name in PRESETS:
        built = argv_for(name, None, Path("/w/prompt.md"), Path("/w/work"))
        assert "{prompt_file}" not in " ".join(built)
        assert all("issue" not in part.lower() for part in built), name


def test_command_template_is_split_without_a_shell() -> None:
    argv = argv_for("command", "my-agent --in {prompt_file} --cwd '{workdir}' ';rm -rf /'",
                    Path("/t/p.md"), Path("/t/w"))  # fmt: skip
    assert argv == ["my-agent", "--in", "/t/p.md", "--cwd", "/t/w", ";rm -rf /"]


@pytest.mark.parametrize(
    ("name", "command", "message"),
    [
        ("command", None, "no agent_command"),
        ("command", "'unclosed", "cannot be parsed"),
        ("command", "   ", "empty"),
        ("copilot", None, "unknown agent 'copilot'"),
    ],
)
def test_bad_agent_configuration_is_a_clear_error(
    name: str, command: str | None, message: str
) -> None:
    with pytest.raises(AgentConfigError, match=message):
        argv_for(name, command, Path("p"), Path("w"))


def test_environment_is_clean_but_passes_named_variables() -> None:
    source = {
        "PATH": "/bin",
        "HOME": "/h",
        "GITHUB_TOKEN": "x",
        "PRIVATE_KEY": "k",
        "MODEL_KEY": "m",
    }
    env = agent_env(source, ["MODEL_KEY", "ABSENT"], {"GIT_AUTHOR_NAME": "bot"})
    assert env["PATH"] == "/bin" and env["HOME"] == "/h" and env["MODEL_KEY"] == "m"
    assert "GITHUB_TOKEN" not in env and "PRIVATE_KEY" not in env and "ABSENT" not in env
    assert env["GIT_AUTHOR_NAME"] == "bot" and env["GIT_TERMINAL_PROMPT"] == "0"


def test_runner_streams_output_and_feeds_stdin(tmp_path: Path) -> None:
    batches: list[list[str]] = []
    script = "import sys; data = sys.stdin.read(); print('got', len(data)); print('bye')"
    result = run(
        [sys.executable, "-c", script],
        workdir=tmp_path,
        prompt="x" * 100_000,
        env={"PATH": "/usr/bin:/bin"},
        log_path=tmp_path / "logs" / "a.log",
        timeout=30,
        idle_timeout=30,
        on_output=batches.append,
    )
    assert result.ok and result.exit_code == 0
    assert result.tail == "got 100000\nbye"
    assert [line for batch in batches for line in batch] == ["got 100000", "bye"]
    assert (tmp_path / "logs" / "a.log").read_text() == "got 100000\nbye\n"


def test_missing_program_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AgentConfigError, match="agent program not found: no-such-agent"):
        run(["no-such-agent"], workdir=tmp_path, prompt="", env={}, log_path=tmp_path / "l",
            timeout=5, idle_timeout=5)  # fmt: skip


def test_a_presets_key_must_be_named_and_set() -> None:
    check_keys("claude", ("ANTHROPIC_API_KEY",), {"ANTHROPIC_API_KEY": "k"})
    check_keys("command", (), {})
    with pytest.raises(AgentConfigError, match="AGENT_ENV lacks GEMINI_API_KEY:"):
        check_keys("gemini", (), {"GEMINI_API_KEY": "k"})
    with pytest.raises(AgentConfigError, match="named in AGENT_ENV but not set"):
        check_keys("codex", ("CODEX_API_KEY",), {})


def _silent(tmp_path: Path, script: str, idle_timeout: float) -> str | None:
    work = tmp_path / "work"
    work.mkdir()
    result = run([sys.executable, "-c", script], workdir=work, prompt="", env={},
                 log_path=tmp_path / "a.log", timeout=30, idle_timeout=idle_timeout)  # fmt: skip
    return result.killed


def test_a_silent_agent_that_changes_nothing_is_stopped_as_idle(tmp_path: Path) -> None:
    assert _silent(tmp_path, "import time; time.sleep(20)", idle_timeout=1) == "idle"


def test_a_silent_agent_editing_its_work_tree_is_not_idle(tmp_path: Path) -> None:
    edits = (
        "import pathlib, time\n"
        "for i in range(6):\n"
        "    time.sleep(0.5)\n"
        "    pathlib.Path('deep/er').mkdir(parents=True, exist_ok=True)\n"
        "    pathlib.Path('deep/er/f.py').write_text('x = %d\\n' % i)\n"
    )
    assert _silent(tmp_path, edits, idle_timeout=1) is None
    assert (tmp_path / "work" / "deep" / "er" / "f.py").read_text() == "x = 5\n"
