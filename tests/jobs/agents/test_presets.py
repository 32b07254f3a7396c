"""The presets as forgehand ships them. With the real CLIs (skipped for one not installed
under FORGEHAND_AGENTS_DIR; `make test-agents` installs them), against each vendor's scripted
model server: through `forgehand try-agent`, and through the real pipeline from a labelled
issue to its pull request. Without them: how each preset reads its CLI's output."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.settings import parse
from app.store import TaskRecord, spend
from jobs.agents.presets import LAST_MESSAGE, PRESETS, SUMMARY_LIMIT, write_home
from jobs.agents.runner import check_keys
from jobs.errors import AgentConfigError
from jobs.try_agent import try_agent
from jobs.workspace import Workspaces
from tests import fakes
from tests.agents.models.anthropic import FakeAnthropic
from tests.agents.models.gemini import GeminiFake
from tests.agents.models.openai_chat import OpenAIChat
from tests.agents.models.openai_responses import OpenAIResponses
from tests.jobs.conftest import BRANCH, World

FINAL = "Fixed add() to return a + b."


@dataclass(frozen=True)
class Case:
    name: str
    program: str  # where the CLI's program lies under FORGEHAND_AGENTS_DIR
    server: Callable[..., AbstractContextManager[Any]]  # takes delay=
    env: dict[str, str]  # {url} and {base_url} are the fake's


# The operator's real key, which only the gateway holds; the CLI gets a placeholder.
KEY = "sk-real-operator-key-5f0c2a9e71"

CASES = [
    Case("claude", "claude/node_modules/.bin/claude", FakeAnthropic,
         {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": "{url}"}),
    Case("codex",
         "codex/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex",
         OpenAIResponses,
         {"CODEX_API_KEY": KEY, "OPENAI_BASE_URL": "{base_url}",
          "CODEX_MODEL": "forgehand-fake"}),
    Case("aider", "aider/bin/aider", OpenAIChat,
         {"OPENAI_API_KEY": KEY, "OPENAI_API_BASE": "{base_url}",
          "AIDER_MODEL": "openai/gpt-4o"}),
    Case("opencode", "opencode/node_modules/.bin/opencode", OpenAIChat,
         {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": "{base_url}"}),
    Case("gemini", "gemini/node_modules/.bin/gemini", GeminiFake,
         {"GEMINI_API_KEY": KEY, "GOOGLE_GEMINI_BASE_URL": "{url}"}),
]  # fmt: skip


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Case, Path]]:
    root = os.environ.get("FORGEHAND_AGENTS_DIR")
    if not root:
        pytest.skip("FORGEHAND_AGENTS_DIR is not set: no real agent CLIs are installed")
    chosen: Case = request.param
    program = Path(root) / chosen.program
    if not program.exists():
        pytest.skip(f"{chosen.name} is not installed at {program}")
    yield chosen, program


@contextmanager
def installed(
    chosen: Case, program: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    serving: bool = True, delay: float = 0.0,
) -> Iterator[tuple[dict[str, str], Any]]:  # fmt: skip
    """The CLI on PATH, its fake model server running (or, not `serving`, stopped: its port
    refuses connections; `delay` seconds a turn), its variables set; yields them and the
    server."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / chosen.name).symlink_to(program)
    with chosen.server(delay=delay) as server:
        env = {k: v.format(url=server.url, base_url=getattr(server, "base_url", server.url))
               for k, v in chosen.env.items()}  # fmt: skip
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
        if serving:
            yield env, server
    if not serving:
        yield env, server


def issue_through_pipeline(
    case: tuple[Case, Path], world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    timeout: int, idle: int, serving: bool = True, delay: float = 0.0,
) -> tuple[TaskRecord, Any]:  # fmt: skip
    """A labelled issue's task, run by the real worker with the case's CLI, sandboxed; and
    its model server."""
    chosen, program = case
    with installed(chosen, program, tmp_path, monkeypatch, serving, delay) as (env, server):
        world.setenv("AGENT", chosen.name)
        world.setenv("AGENT_ENV", ",".join(env))
        world.setenv("AGENT_SANDBOX", "bwrap")
        world.setenv("AGENT_TIMEOUT", str(timeout))
        world.setenv("AGENT_IDLE_TIMEOUT", str(idle))
        return world.run(world.issue_task()), server


def test_try_agent_with_each_preset_fixes_the_bug_and_gives_its_summary(
    case: tuple[Case, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen, program = case
    with installed(chosen, program, tmp_path, monkeypatch) as (env, server):
        settings = parse({"AGENT": chosen.name, "AGENT_ENV": ",".join(env),
                          "AGENT_TIMEOUT": "120", "AGENT_IDLE_TIMEOUT": "60"})  # fmt: skip
        seen: list[str] = []
        trial = try_agent(settings, chosen.name, seen.append)
    assert trial.fixed, "\n".join(seen)
    assert trial.result.ok, trial.result.tail
    assert FINAL in trial.result.summary
    assert trial.refused == ()
    # Its calls went through the gateway, metered as the server reported them.
    assert [(c.input + c.cached, c.output) for c in trial.calls] == server.reported
    assert not any(line.lstrip().startswith("{") for line in seen)  # readable, not raw JSON


def test_each_preset_takes_a_labelled_issue_to_a_pull_request(
    case: tuple[Case, Path], world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record, server = issue_through_pipeline(
        case, world, tmp_path, monkeypatch, timeout=120, idle=600
    )
    lines = world.store.log_tail(record.id)
    assert record.state.value == "done", record.error + "\n" + "\n".join(lines)
    assert "return a + b" in fakes.show(world.origin, BRANCH, "calc.py")
    (pr,) = world.github.pulls.values()
    assert FINAL in pr["body"]
    assert not any(line.lstrip().startswith('{"') for line in lines)  # readable, not raw JSON
    assert not any("refused" in line for line in lines)
    # Nothing of the CLI's own state in the pushed tree: it lives in the private home.
    pushed = fakes.sh_git("ls-tree", "-r", "--name-only", BRANCH, cwd=world.origin).split()
    assert sorted(pushed) == sorted([".github/workflows/ci.yml", "README.md", "calc.py"])
    # Through the gateway: the model got the real key on every call (the sandbox reaches no
    # model host by itself), and the task's spend is what the model reported.
    assert server.requests and all(KEY in json.dumps(r.headers) for r in server.requests)
    used = spend.task_spend(world.redis, record.id, record.run)
    reported = server.reported
    assert used.calls == len(reported) > 0
    assert (used.input + used.cached, used.output) == tuple(map(sum, zip(*reported, strict=True)))
    # The real key is nowhere the agent could leave it: the pushed tree, the log.
    public = [fakes.show(world.origin, BRANCH, f) for f in pushed] + lines
    assert not any(KEY in text for text in public)
    log = Workspaces(world.workspaces).log_path(record.id)
    assert KEY not in log.read_text(errors="replace")


def test_each_preset_is_stopped_by_its_budget(
    case: tuple[Case, Path], world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.setenv("MAX_COST_PER_TASK", "0")
    record, server = issue_through_pipeline(case, world, tmp_path, monkeypatch, 120, 60)
    assert record.state.value == "failed"
    assert "stopped at $0.00 of the $0.00 budget" in record.error, record.error
    assert server.reported == []  # no call reached the model
    assert world.github.pulls == {}


def test_each_preset_finishes_with_a_slow_model_whose_turns_add_up_past_the_idle_limit(
    case: tuple[Case, Path], world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two turns or more of 6 s each pass the 12 s idle limit in all; a turn and the CLI's
    # silent start stay below it.
    record, _ = issue_through_pipeline(case, world, tmp_path, monkeypatch, 300, 12, delay=6)
    assert record.state.value == "done", record.error
    assert "return a + b" in fakes.show(world.origin, BRANCH, "calc.py")


def test_each_preset_fails_on_its_own_when_the_model_api_is_unreachable(
    case: tuple[Case, Path], world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record, _ = issue_through_pipeline(case, world, tmp_path, monkeypatch, 600, 300, serving=False)
    assert record.state.value == "failed"
    # The CLI gave up by itself, well inside forgehand's limits, and the reason says so: its
    # exit status, or (aider exits 0) its own error line, never a bare "no changes".
    assert "was stopped" not in record.error and "judged stuck" not in record.error
    assert "made no changes" not in record.error, record.error
    assert ": " in record.error, record.error  # the agent's own words follow
    assert world.github.pulls == {}


# --- reading each CLI's output, from lines the real CLIs printed ----------------------------

CLAUDE_RUN = [
    '{"type":"system","subtype":"init","claude_code_version":"2.1.332","model":"m"}',
    '{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Edit",'
    '"input":{"file_path":"calc.py"}}]}}',
    '{"type":"user","message":{"content":[{"type":"tool_result","content":"updated"}]}}',
    '{"type":"result","subtype":"success","is_error":false,"num_turns":2,"result":"' + FINAL + '"}',
]
CODEX_RUN = [
    '{"type":"thread.started","thread_id":"t"}',
    '{"type":"item.started","item":{"type":"command_execution","command":"sed -i s/-/+/ calc.py"}}',
    '{"type":"item.completed","item":{"type":"command_execution","exit_code":0}}',
    '{"type":"item.completed","item":{"type":"agent_message","text":"' + FINAL + '"}}',
    '{"type":"turn.completed","usage":{}}',
]
GEMINI_RUN = [
    '{"type":"init","model":"gemini-2.5-pro"}',
    '{"type":"message","role":"assistant","content":"Looking.","delta":true}',
    '{"type":"tool_use","tool_name":"replace","parameters":{"file_path":"calc.py"}}',
    '{"type":"tool_result","status":"success"}',
    '{"type":"message","role":"assistant","content":"Fixed add() to ","delta":true}',
    '{"type":"message","role":"assistant","content":"return a + b.","delta":true}',
    '{"type":"result","status":"success","stats":{}}',
]
OPENCODE_RUN = [
    '{"type":"step_start","part":{}}',
    '{"type":"tool_use","part":{"tool":"edit","state":{"status":"completed",'
    '"input":{"filePath":"calc.py"}}}}',
    '{"type":"step_start","part":{}}',
    '{"type":"text","part":{"type":"text","text":"' + FINAL + '"}}',
    '{"type":"step_finish","part":{"reason":"stop"}}',
]
AIDER_RUN = [
    "Aider v0.86.2",
    "Repo-map: using 4096 tokens, auto refresh",
    "calc.py",
    "```python",
    "<<<<<<< SEARCH",
    "    return a - b",
    "=======",
    "    return a + b",
    ">>>>>>> REPLACE",
    "```",
    FINAL,
    "Tokens: 2.6k sent, 44 received.",
    "Applied edit to calc.py",
]


@pytest.mark.parametrize(
    ("name", "lines"),
    [("claude", CLAUDE_RUN), ("codex", CODEX_RUN), ("gemini", GEMINI_RUN),
     ("opencode", OPENCODE_RUN), ("aider", AIDER_RUN)],
)  # fmt: skip
def test_each_preset_finds_the_final_message_and_shows_readable_steps(
    name: str, lines: list[str], tmp_path: Path
) -> None:
    preset = PRESETS[name]
    assert preset.summary(lines, tmp_path).strip() == FINAL
    shown = [out for line in lines if (out := preset.render(line))]
    assert shown and not any(out.lstrip().startswith("{") for out in shown)


def test_a_final_message_file_that_links_out_of_home_is_not_read(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "secret").write_text("the worker's secret")
    (home / LAST_MESSAGE).symlink_to(tmp_path / "secret")
    assert "secret" not in PRESETS["codex"].summary(CODEX_RUN, home)


def test_final_message_files_of_any_size_are_read_with_a_cap(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with (home / LAST_MESSAGE).open("wb") as f:
        f.truncate(8 * SUMMARY_LIMIT)  # sparse: a huge file that costs no disk
    assert len(PRESETS["codex"].summary([], home)) == SUMMARY_LIMIT
    transcript = home / ".claude" / "projects" / "p" / "s.jsonl"
    transcript.parent.mkdir(parents=True)
    said = {"type": "assistant", "message": {"content": [{"type": "text", "text": FINAL}]}}
    with transcript.open("wb") as f:
        f.write(b"x" * (4 * SUMMARY_LIMIT) + b"\n" + json.dumps(said).encode() + b"\n")
    assert PRESETS["claude"].summary([], home) == FINAL


def test_claude_never_reads_the_repositorys_own_settings() -> None:
    argv = PRESETS["claude"].argv
    assert argv[argv.index("--setting-sources") + 1] == "user"
    assert "--strict-mcp-config" in argv


# --- the operator's own configuration of a CLI ----------------------------------------------


def mine(base_url: str = "{env:OPENAI_BASE_URL}") -> str:
    """An OpenCode configuration with a provider of the operator's, as OpenCode documents it;
    by default at the base URL and with the key the gateway gives the agent."""
    return json.dumps({
        "model": "mine/gpt-4o",
        "provider": {
            "mine": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "mine",
                "options": {"baseURL": base_url, "apiKey": "{env:OPENAI_API_KEY}"},
                "models": {"gpt-4o": {"name": "gpt-4o", "tool_call": True}},
            }
        },
        "autoupdate": True,  # what forgehand's safety settings overrule
        "share": "auto",
    })  # fmt: skip


def test_opencode_runs_with_the_operators_own_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPENCODE_CONFIG_CONTENT naming a custom provider, as OpenCode documents it, at the
    operator's own OpenAI-compatible server: try-agent runs the real CLI with it, sandboxed,
    and the provider is reached through the gateway, which alone holds the real key."""
    root = os.environ.get("FORGEHAND_AGENTS_DIR")
    program = Path(root or "/nonexistent") / "opencode/node_modules/.bin/opencode"
    if not program.exists():
        pytest.skip("opencode is not installed under FORGEHAND_AGENTS_DIR")
    chosen = Case("opencode", str(program), OpenAIChat, {})
    with (
        installed(chosen, program, tmp_path, monkeypatch) as _env,
        OpenAIChat(api_key="sk-mine") as fake,
    ):
        monkeypatch.setenv("OPENCODE_CONFIG_CONTENT", mine())
        for name in PRESETS["opencode"].keys:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-mine")
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        names = "OPENCODE_CONFIG_CONTENT,OPENAI_API_KEY,OPENAI_BASE_URL"
        settings = parse({"AGENT": "opencode", "AGENT_ENV": names,
                          "AGENT_TIMEOUT": "120", "AGENT_IDLE_TIMEOUT": "60"})  # fmt: skip
        seen: list[str] = []
        trial = try_agent(settings, "opencode", seen.append)
        asked = list(fake.completions)
    assert trial.fixed, "\n".join(seen)
    assert trial.refused == ()  # nothing tried to go round the gateway
    assert asked and all(c.headers.get("authorization") == "Bearer sk-mine" for c in asked)
    assert all((c.body or {}).get("model") == "gpt-4o" for c in asked)  # the operator's model


def opencode_home(tmp_path: Path, env: dict[str, str]) -> dict[str, Any]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    write_home(PRESETS["opencode"], home, env)
    return dict(json.loads((home / ".config/opencode/opencode.json").read_text()))


def test_the_operators_opencode_config_is_merged_under_forgehands_safety(tmp_path: Path) -> None:
    given = tmp_path / "opencode.json"
    given.write_text(json.dumps({"model": "file/m", "provider": {"file": {"name": "f"}}}))
    content = mine("https://llm.example.com:8443/v1")
    config = opencode_home(tmp_path, {"OPENCODE_CONFIG": str(given),
                                      "OPENCODE_CONFIG_CONTENT": content})  # fmt: skip
    assert config["model"] == "mine/gpt-4o"  # the inline config over the file, as OpenCode does
    assert set(config["provider"]) == {"file", "mine"}
    assert (config["autoupdate"], config["share"]) == (False, "disabled")  # forgehand's word


def test_a_bad_opencode_config_is_one_clear_line_and_stands_in_for_the_key() -> None:
    passthrough = ("OPENCODE_CONFIG_CONTENT",)
    with pytest.raises(AgentConfigError) as bad:
        check_keys("opencode", passthrough, {"OPENCODE_CONFIG_CONTENT": "{not json"})
    assert str(bad.value).startswith(
        "the opencode agent's configuration: OPENCODE_CONFIG_CONTENT is not JSON"
    )
    with pytest.raises(AgentConfigError, match="cannot be read"):
        check_keys("opencode", ("OPENCODE_CONFIG",), {"OPENCODE_CONFIG": "/nonexistent.json"})
    # A readable one is the operator's word on the provider and its key.
    check_keys("opencode", passthrough, {"OPENCODE_CONFIG_CONTENT": '{"model": "mine/m"}'})
    with pytest.raises(AgentConfigError, match="AGENT_ENV lacks"):
        check_keys("opencode", (), {"OPENCODE_CONFIG_CONTENT": '{"model": "mine/m"}'})
