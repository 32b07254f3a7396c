"""The real OpenAI Codex CLI in forgehand's sandbox, against a scripted Responses API.

Skipped unless the CLI is installed under FORGEHAND_AGENTS_DIR, as

    npm install --prefix "$FORGEHAND_AGENTS_DIR/codex" @openai/codex@0.171.0

The npm package's `codex` is a Node wrapper that finds the native binary in the optional
dependency @openai/codex-linux-<arch> and execs it; the tests run that binary directly
(vendor/<target>/bin/codex), since the wrapper, run through bubblewrap from outside the
system directories, is shown without the node_modules it searches. Each test runs the CLI
through bubblewrap and the egress proxy, which lets through only the fake server
(tests/agents/models/openai_responses.py), with ~/.codex/config.toml written into the private
home first.
"""

from __future__ import annotations

import platform
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.agents import cli
from tests.agents.models.calc import BROKEN, FINAL, FIXED
from tests.agents.models.openai_responses import OpenAIResponses

PROMPT = "Fix the bug in calc.py: add() must return the sum of its arguments."
KEY = "sk-test-0000"
# Inside the sandbox HOME is /home/agent, the private home outside.
LAST_MESSAGE = "last-message.txt"
ARGV = (
    "exec",
    # An unknown key in config.toml is an error, not ignored.
    "--strict-config",
    "--json",
    "--color", "never",
    # Codex's own sandbox (bubblewrap/landlock) is off: forgehand's contains it.
    "--dangerously-bypass-approvals-and-sandbox",
    "--skip-git-repo-check",
    "--output-last-message", f"/home/agent/{LAST_MESSAGE}",
    "-",
)  # fmt: skip
TARGETS = {
    "x86_64": ("linux-x64", "x86_64-unknown-linux-musl"),
    "aarch64": ("linux-arm64", "aarch64-unknown-linux-musl"),
}


def config_toml(base_url: str) -> str:
    """~/.codex/config.toml: a provider of our own for the fake, no retries, no plugin sync,
    analytics or update check; an unreachable API fails at once instead of waiting."""
    return f"""\
model = "forgehand-fake"
model_provider = "forgehand"
check_for_update_on_startup = false

[model_providers.forgehand]
name = "forgehand"
base_url = "{base_url}"
env_key = "CODEX_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
stream_idle_timeout_ms = 20000

[analytics]
enabled = false

[features]
unbounded_connection_retries = false
plugins = false
remote_plugin = false
apps = false
"""


def codex_program() -> Path:
    package, target = TARGETS.get(platform.machine(), ("", ""))
    if not package:
        pytest.skip(f"no Codex binary for {platform.machine()}")
    parts = ("codex", "node_modules", "@openai", f"codex-{package}", "vendor", target, "bin")
    return cli.installed("Codex", *parts, "codex")


@pytest.fixture
def codex() -> Path:
    return codex_program()


def messages(run: cli.Run) -> list[str]:
    """The agent's messages: `item.completed` events whose item is an agent_message."""
    return [
        str(e["item"].get("text", ""))
        for e in run.events()
        if e.get("type") == "item.completed"
        and isinstance(e.get("item"), dict)
        and e["item"].get("type") == "agent_message"
    ]


def failure(run: cli.Run) -> str:
    """The message of the `turn.failed` event, or ""."""
    for e in run.events():
        if e.get("type") == "turn.failed" and isinstance(e.get("error"), dict):
            return str(e["error"].get("message", ""))
    return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_codex(
    codex: Path,
    scratch: Path,
    base_url: str,
    extra: Mapping[str, str],
    timeout: float = 120,
    idle_timeout: float | None = None,
    prompt: str = PROMPT,
) -> cli.Run:
    home = scratch / "home"
    (home / ".codex").mkdir(exist_ok=True)
    (home / ".codex" / "config.toml").write_text(config_toml(base_url))
    allow = [base_url.removeprefix("http://").split("/", 1)[0]]
    return cli.run_cli(scratch, [str(codex), *ARGV], extra, allow, prompt=prompt, timeout=timeout,
                   idle_timeout=idle_timeout)  # fmt: skip


def test_version(codex: Path) -> None:
    done = subprocess.run([str(codex), "--version"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("codex-cli "), done.stdout


def test_fixes_calc_and_reports(codex: Path, scratch: Path) -> None:
    with OpenAIResponses() as fake:
        run = run_codex(codex, scratch, fake.base_url, {"CODEX_API_KEY": KEY})
        turns = fake.turns
        requests = fake.requests
    tail = run.result.tail
    assert run.result.exit_code == 0 and run.result.killed is None, tail
    assert (run.work / "calc.py").read_text() == FIXED, tail
    assert messages(run)[-1:] == [FINAL], tail
    assert (run.home / LAST_MESSAGE).read_text().strip() == FINAL
    kinds = [e.get("type") for e in run.events()]
    assert kinds[0] == "thread.started" and kinds[-1] == "turn.completed", kinds
    # Only the model API: two turns (the tool call, then the answer to its output).
    assert run.refused == []
    assert [(r.method, r.path) for r in requests] == [("POST", "/v1/responses")] * 2
    assert len(turns) == 2
    assert all(r.headers.get("authorization") == f"Bearer {KEY}" for r in turns)
    second = turns[1].body or {}
    outputs = [i for i in second.get("input", []) if i.get("type") == "function_call_output"]
    assert outputs, second.get("input")


def test_slow_model_still_finishes(codex: Path, scratch: Path) -> None:
    with OpenAIResponses(delay=2.0) as fake:
        run = run_codex(codex, scratch, fake.base_url, {"CODEX_API_KEY": KEY})
    assert run.result.exit_code == 0, run.result.tail
    assert (run.work / "calc.py").read_text() == FIXED
    assert run.result.seconds >= 4.0
    assert messages(run)[-1:] == [FINAL]


def test_missing_key_fails_at_once(codex: Path, scratch: Path) -> None:
    with OpenAIResponses() as fake:
        run = run_codex(codex, scratch, fake.base_url, {}, timeout=60)
        requests = fake.requests
    assert run.result.exit_code == 1 and run.result.killed is None, run.result.tail
    assert failure(run) == "Missing environment variable: `CODEX_API_KEY`."
    assert requests == []
    assert run.result.seconds < 20
    assert (scratch / "work" / "calc.py").read_text() == BROKEN


def test_server_error_fails_without_retrying(codex: Path, scratch: Path) -> None:
    with OpenAIResponses(mode="error") as fake:
        run = run_codex(codex, scratch, fake.base_url, {"CODEX_API_KEY": KEY}, 60)
        turns = fake.turns
    assert run.result.exit_code == 1 and run.result.killed is None, run.result.tail
    assert failure(run), run.result.tail
    assert len(turns) == 1  # request_max_retries = 0, stream_max_retries = 0
    assert run.result.seconds < 20


def test_unreachable_api_fails_at_once(codex: Path, scratch: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    run = run_codex(codex, scratch, url, {"CODEX_API_KEY": KEY}, timeout=60)
    assert run.result.exit_code == 1 and run.result.killed is None, run.result.tail
    # The egress proxy answers for the upstream it could not reach.
    assert "502" in failure(run), run.result.tail
    assert run.result.seconds < 20


def test_stalled_stream_times_out(codex: Path, scratch: Path) -> None:
    with OpenAIResponses(mode="stall") as fake:
        run = run_codex(codex, scratch, fake.base_url, {"CODEX_API_KEY": KEY}, 90)
    assert run.result.exit_code == 1 and run.result.killed is None, run.result.tail
    assert "idle timeout" in failure(run), run.result.tail
    assert 15 < run.result.seconds < 60


def test_hung_api_is_left_to_the_idle_watchdog(codex: Path, scratch: Path) -> None:
    """No setting bounds the wait for response headers: Codex prints nothing and waits."""
    with OpenAIResponses(mode="hang") as fake:
        run = run_codex(codex, scratch, fake.base_url, {"CODEX_API_KEY": KEY}, 60, idle_timeout=8)
        turns = fake.turns
    assert run.result.killed == "idle", run.result.tail
    assert len(turns) == 1
    assert [e.get("type") for e in run.events()][-1] == "turn.started"


def test_writes_a_plan(codex: Path, scratch: Path) -> None:
    with OpenAIResponses(write=("forgehand-plan.yml", cli.PLAN_FILE)) as fake:
        run = run_codex(codex, scratch, fake.base_url, {"CODEX_API_KEY": KEY},
                        prompt=cli.planning_prompt(scratch / "work"))  # fmt: skip
    assert run.result.exit_code == 0 and run.result.killed is None, run.result.tail
    cli.read_back_plan(run.work)
    assert run.refused == []
