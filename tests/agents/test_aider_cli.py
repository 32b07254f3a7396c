"""The real aider CLI, run through the sandbox against the scripted OpenAI Chat Completions fake.

Skipped unless FORGEHAND_AGENTS_DIR names a directory holding aider in a virtualenv:

    python3 -m venv $FORGEHAND_AGENTS_DIR/aider
    $FORGEHAND_AGENTS_DIR/aider/bin/pip install aider-chat==0.86.2

aider is run as `<venv>/bin/python -m aider`: the sandbox shows a trusted program's virtualenv
(its lib and pyvenv.cfg) and the interpreter it was made from, but not the rest of its bin/, so
the `aider` script's shebang (`<venv>/bin/python3`) would not be found inside.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.agents import cli
from tests.agents.models.calc import BROKEN, FINAL
from tests.agents.models.openai_chat import OpenAIChat

VERSION = "0.86.2"
KEY = "sk-test-aider-0123"
PROMPT = (
    "Fix the bug in calc.py: add() returns a - b; it must return a + b.\n"
    "Reported at https://example.com/issues/1\n"
)
# Headless, quiet and offline but for the model: every prompt answered yes, no URL scraping
# (it would offer to install Playwright), no browser, no update check, no analytics, plain
# output, streamed replies (progress for the idle watchdog), no commits (forgehand commits),
# no .gitignore edit, history files in the private home instead of the work tree.
FLAGS = (
    "--yes-always", "--no-pretty", "--stream", "--no-check-update",
    "--no-show-release-notes", "--no-analytics", "--no-gitignore", "--no-detect-urls",
    "--disable-playwright", "--no-browser", "--no-show-model-warnings", "--no-fancy-input",
    "--no-auto-commits", "--no-dirty-commits", "--no-notifications",
    "--chat-history-file", "/home/agent/.aider/chat.history.md",
    "--input-history-file", "/home/agent/.aider/input.history",
)  # fmt: skip
MODEL_INFO = {
    "openai/gpt-4o": {
        "max_input_tokens": 128000,
        "max_output_tokens": 16384,
        "input_cost_per_token": 0,
        "output_cost_per_token": 0,
        "litellm_provider": "openai",
        "mode": "chat",
    }
}


def python() -> Path:
    return cli.installed("aider", "aider", "bin", "aider").with_name("python")


def write_home(home: Path) -> None:
    """What forgehand writes into the private home before aider starts."""
    (home / ".aider" / "caches").mkdir(parents=True)
    # A fresh, non-empty model-info cache: without it aider fetches litellm's price list from
    # raw.githubusercontent.com (5 s timeout, three tries) before its first request.
    (home / ".aider" / "caches" / "model_prices_and_context_window.json").write_text(
        json.dumps(MODEL_INFO)
    )
    (home / ".aider" / "analytics.json").write_text(
        json.dumps({"uuid": "0" * 32, "permanently_disable": True, "asked_opt_in": True})
    )
    # Without an identity aider writes "Your Name <you@example.com>" into the repository's
    # own .git/config.
    (home / ".gitconfig").write_text(
        "[user]\n\tname = forgehand agent\n\temail = agent@forgehand.invalid\n"
    )


def run_aider(tmp_path: Path, port: int, key: str | None, prompt: str = PROMPT) -> cli.Run:
    program = python()
    root = cli.workspace(tmp_path)
    write_home(root / "home")
    prompt_file = tmp_path / "prompt.md"
    prompt_file.write_text(prompt)
    extra = {
        "OPENAI_API_BASE": f"http://127.0.0.1:{port}/v1",
        "AIDER_MODEL": "openai/gpt-4o",
        # litellm fetches its price list from GitHub at import unless told to use its own copy.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    if key is not None:
        extra["OPENAI_API_KEY"] = key
    argv = [str(program), "-m", "aider", *FLAGS, "--message-file", str(prompt_file)]
    allow = [f"127.0.0.1:{port}"]
    return cli.run_cli(root, argv, extra, allow, files=[prompt_file], timeout=300, idle_timeout=120,
                   tail_lines=200)  # fmt: skip


def test_aider_fixes_calc_and_says_so(tmp_path: Path) -> None:
    python()
    with OpenAIChat(api_key=KEY) as fake:
        run = run_aider(tmp_path, fake.port, KEY)
    assert run.fixed_calc()
    # The reply is printed as it streams; the same text ends the chat history in the home.
    assert FINAL in run.output
    assert "Applied edit to calc.py" in run.output
    assert FINAL in (run.home / ".aider" / "chat.history.md").read_text()
    assert "\x1b" not in run.output
    assert run.refused == []  # nothing but the model was tried
    completions = fake.completions
    assert len(completions) == 1  # no commit message asked for: --no-auto-commits
    body = completions[0].body or {}
    assert body.get("stream") is True
    assert body.get("model") == "gpt-4o"
    assert completions[0].headers.get("authorization") == f"Bearer {KEY}"
    log = subprocess.run(
        ["git", "log", "--format=%s"], cwd=run.work, capture_output=True, text=True, check=True
    )
    assert log.stdout.split() == ["init"]
    config = (run.work / ".git" / "config").read_text()
    assert "you@example.com" not in config


def test_aider_without_a_key_changes_nothing_yet_exits_0(tmp_path: Path) -> None:
    python()
    with OpenAIChat(api_key=KEY) as fake:
        run = run_aider(tmp_path, fake.port, None)
    assert run.result.exit_code == 0, run.output  # aider reports the error but exits 0
    assert "OPENAI_API_KEY" in run.output
    assert (run.work / "calc.py").read_text() == BROKEN
    assert fake.completions == []


def test_aider_version(tmp_path: Path) -> None:
    program = python()
    out = subprocess.run(
        [str(program), "-m", "aider", "--version"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    # "__main__.py 0.86.2" when run as `python -m aider`, "aider 0.86.2" as the script.
    assert out.stdout.split()[-1] == VERSION


def test_aider_writes_a_plan(tmp_path: Path) -> None:
    python()
    with OpenAIChat(api_key=KEY, write=("forgehand-plan.yml", cli.PLAN_FILE)) as fake:
        run = run_aider(tmp_path, fake.port, KEY, prompt=cli.planning_prompt_for(tmp_path))
    assert run.result.exit_code == 0, run.output
    cli.read_back_plan(run.work)
    assert run.refused == []
