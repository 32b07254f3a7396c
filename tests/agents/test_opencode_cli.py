"""The real OpenCode CLI, run through the sandbox against the scripted OpenAI Chat Completions
fake, as an OpenAI-compatible provider.

Skipped unless FORGEHAND_AGENTS_DIR names a directory holding OpenCode (and, for its grep
tool, ripgrep from PyPI):

    npm install --prefix $FORGEHAND_AGENTS_DIR/opencode opencode-ai@1.18.33
    pip install --target $FORGEHAND_AGENTS_DIR/ripgrep ripgrep==14.1.0

OpenCode looks for `rg` on PATH, then in ~/.cache/opencode/bin, and only then downloads it from
GitHub: the sandbox shows no PATH directory outside the system's, so forgehand copies the
binary into the private home.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.agents import cli
from tests.agents.models.calc import BROKEN, FINAL
from tests.agents.models.openai_chat import OpenAIChat

VERSION = "1.18.33"
KEY = "sk-test-opencode-0123"
PROMPT = (
    "Fix the bug in calc.py: add() returns a - b; it must return a + b.\n"
    "Reported at https://example.com/issues/1\n"
)
# The prompt arrives on stdin; `--auto` approves the tools' permission asks (the sandbox is
# the boundary); `--format json` prints one JSON event per line.
ARGV = ("run", "--format", "json", "--auto")
ENV = {
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_MODELS_FETCH": "1",  # else it fetches models.dev's catalogue
    "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "OPENCODE_DISABLE_SHARE": "1",
}


# The provider's URL and key come from the environment through opencode's `{env:NAME}`
# substitution, so the file is the same for every task.
CONFIG: dict[str, Any] = {
    "$schema": "https://opencode.ai/config.json",
    "autoupdate": False,
    "share": "disabled",
    "model": "forgehand/gpt-4o",
    "small_model": "forgehand/gpt-4o",
    "provider": {
        "forgehand": {
            "npm": "@ai-sdk/openai-compatible",
            "name": "forgehand",
            "options": {"baseURL": "{env:OPENAI_BASE_URL}", "apiKey": "{env:OPENAI_API_KEY}"},
            "models": {"gpt-4o": {"name": "gpt-4o", "tool_call": True}},
        }
    },
}


def agents_dir() -> Path:
    root = os.environ.get("FORGEHAND_AGENTS_DIR")
    if not root:
        pytest.skip("FORGEHAND_AGENTS_DIR is not set: no real opencode to run")
    return Path(root)


def program() -> Path:
    return cli.installed("opencode", "opencode", "node_modules", ".bin", "opencode")


def ripgrep() -> Path | None:
    bundled = agents_dir() / "ripgrep" / "bin" / "rg"
    if bundled.is_file():
        return bundled
    system = shutil.which("rg")
    return Path(system) if system else None


def write_home(home: Path, timeout_ms: int | None = None) -> None:
    """What forgehand writes into the private home before opencode starts."""
    settings = home / ".config" / "opencode"
    settings.mkdir(parents=True)
    config = json.loads(json.dumps(CONFIG))
    if timeout_ms is not None:
        config["provider"]["forgehand"]["options"]["timeout"] = timeout_ms
    (settings / "opencode.json").write_text(json.dumps(config, indent=2))
    # For every config directory opencode runs `npm install @opencode-ai/plugin` in the
    # background unless node_modules exists and package-lock.json lists the package.
    (settings / "node_modules").mkdir()
    lock = {"lockfileVersion": 3, "packages": {"": {"dependencies": {"@opencode-ai/plugin": "*"}}}}
    (settings / "package-lock.json").write_text(json.dumps(lock))
    rg = ripgrep()
    if rg is not None:
        (home / ".cache" / "opencode" / "bin").mkdir(parents=True)
        shutil.copy2(rg, home / ".cache" / "opencode" / "bin" / "rg")


def final(run: cli.Run) -> str:
    """The text of the last step: what opencode said when it was done."""
    text: list[str] = []
    for event in run.events():
        if event.get("type") == "step_start":
            text = []
        elif event.get("type") == "text":
            text.append(str(event["part"]["text"]))
    return "".join(text)


def run_opencode(
    tmp_path: Path, port: int, key: str | None, timeout_ms: int | None = None,
    prompt: str = PROMPT,
) -> cli.Run:  # fmt: skip
    opencode = program()
    root = cli.workspace(tmp_path)
    write_home(root / "home", timeout_ms)
    extra = dict(ENV) | {"OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1"}
    if key is not None:
        extra["OPENAI_API_KEY"] = key
    return cli.run_cli(root, [str(opencode), *ARGV], extra, [f"127.0.0.1:{port}"], prompt=prompt,
                   timeout=300, idle_timeout=120, tail_lines=200)  # fmt: skip


def test_opencode_fixes_calc_and_says_so(tmp_path: Path) -> None:
    program()
    with OpenAIChat(api_key=KEY) as fake:
        run = run_opencode(tmp_path, fake.port, KEY)
    assert run.fixed_calc()
    assert final(run) == FINAL
    tools = [e["part"] for e in run.events() if e.get("type") == "tool_use"]
    assert [(t["tool"], t["state"]["status"]) for t in tools] == [("edit", "completed")]
    assert "\x1b" not in run.output
    assert run.refused == []  # nothing but the model was tried
    completions = fake.completions
    assert completions, "opencode never asked the model"
    assert all((c.body or {}).get("stream") is True for c in completions)
    assert all(c.headers.get("authorization") == f"Bearer {KEY}" for c in completions)
    offered = {t["function"]["name"] for c in completions for t in (c.body or {}).get("tools", [])}
    assert {"edit", "write", "bash", "grep"} <= offered


def test_opencode_without_a_key_fails_with_the_apis_401(tmp_path: Path) -> None:
    program()
    with OpenAIChat(api_key=KEY) as fake:
        run = run_opencode(tmp_path, fake.port, None)
    assert run.result.exit_code == 1, run.output
    errors = [e for e in run.events() if e.get("type") == "error"]
    assert errors and errors[-1]["error"]["data"]["statusCode"] == 401
    assert (run.work / "calc.py").read_text() == BROKEN
    assert all("authorization" not in c.headers for c in fake.completions)


def test_opencode_gives_up_on_a_silent_api_after_the_providers_timeout(tmp_path: Path) -> None:
    """Without `timeout` opencode waits 300 s per request and then asks again; with it, the
    run fails once that time has passed, without a retry."""
    program()
    with OpenAIChat(mode="hang", api_key=KEY) as fake:
        run = run_opencode(tmp_path, fake.port, KEY, timeout_ms=5000)
    assert run.result.exit_code == 1, run.output
    assert run.result.seconds < 60
    errors = [e for e in run.events() if e.get("type") == "error"]
    assert errors and errors[-1]["error"]["data"]["message"] == "The operation timed out."
    assert (run.work / "calc.py").read_text() == BROKEN


def test_opencode_version(tmp_path: Path) -> None:
    out = subprocess.run(
        [str(program()), "--version"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert out.stdout.strip() == VERSION


def test_opencode_writes_a_plan(tmp_path: Path) -> None:
    program()
    with OpenAIChat(api_key=KEY, write=("forgehand-plan.yml", cli.PLAN_FILE)) as fake:
        prompt = cli.planning_prompt_for(tmp_path)
        run = run_opencode(tmp_path, fake.port, KEY, prompt=prompt)
    assert run.result.exit_code == 0, run.output
    cli.read_back_plan(run.work)
    assert run.refused == []
