"""The real Gemini CLI in forgehand's sandbox, against the scripted Gemini API.

Runs only where the CLI is installed under FORGEHAND_AGENTS_DIR, as
`npm install --prefix "$FORGEHAND_AGENTS_DIR/gemini" @google/gemini-cli@0.61.0`
(the program is then `$FORGEHAND_AGENTS_DIR/gemini/node_modules/.bin/gemini`); skipped
otherwise, and where bubblewrap cannot make a sandbox.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import pytest

from jobs.agents import PRESETS
from tests.agents import cli
from tests.agents.models.gemini import FINAL_TEXT, GeminiFake, Mode, action, free_port

VERSION = "0.61.0"
PROMPT = "Fix add() in calc.py: it must return a + b, not a - b."
# As the preset runs it: headless (-p, appended to the task read from stdin), every tool
# approved, the workspace trusted, one JSON event per line on stdout.
ARGS = (
    "--approval-mode", "yolo", "--skip-trust", "--output-format", "stream-json",
    "-p", "Carry out the task given above.",
)  # fmt: skip
# ~/.gemini/settings.json in the sandbox's private home. With GOOGLE_GEMINI_BASE_URL set the
# CLI picks the "gateway" auth type, which headless mode rejects (exit 41): the API key's
# type must be named. Usage statistics (play.googleapis.com) are on by default; telemetry and
# update checks are off here whatever their defaults. A named model skips the router's extra
# classifier call; maxAttempts bounds the retries on a failing API (10 by default, ~200 s).
MAX_ATTEMPTS = 2
# The preset's own settings file, as forgehand writes it into the agent's home, with fewer
# retries so that the failing-API test ends sooner.
SETTINGS = json.loads(PRESETS["gemini"].home_files({})[".gemini/settings.json"])
SETTINGS["general"]["maxAttempts"] = MAX_ATTEMPTS


def gemini_program() -> Path:
    return cli.installed("Gemini CLI", "gemini", "node_modules", ".bin", "gemini")


@pytest.fixture
def program() -> Path:
    return gemini_program()


def run_gemini(
    program: Path,
    scratch: Path,
    port: int,
    *,
    args: tuple[str, ...] = ARGS,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    prompt: str = PROMPT,
) -> cli.Run:
    home = scratch / "home"
    (home / ".gemini").mkdir(exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps(SETTINGS, indent=2))
    keys = {"GOOGLE_GEMINI_BASE_URL": f"http://127.0.0.1:{port}", "GEMINI_API_KEY": "test-key"}
    allow = [f"127.0.0.1:{port}"]
    return cli.run_cli(scratch, [str(program), *args], keys if env is None else env, allow,
                   prompt=prompt, timeout=timeout)  # fmt: skip


def with_fake(
    program: Path, scratch: Path, mode: Mode = "ok", delay: float = 0.0
) -> tuple[cli.Run, GeminiFake]:
    with GeminiFake(mode=mode, delay=delay) as fake:
        run = run_gemini(program, scratch, fake.port)
    return run, fake


def said(events: list[dict[str, object]]) -> str:
    """The agent's final words: its assistant messages' deltas, joined."""
    return "".join(
        str(e["content"]) for e in events if e["type"] == "message" and e["role"] == "assistant"
    )


def test_fixes_calc_and_reports(program: Path, scratch: Path) -> None:
    run, fake = with_fake(program, scratch)
    assert run.fixed_calc()
    events = run.events()
    kinds = [e["type"] for e in events]
    assert kinds[0] == "init" and kinds[-1] == "result", kinds
    assert "tool_use" in kinds and "tool_result" in kinds
    assert said(events) == FINAL_TEXT
    assert events[-1]["status"] == "success"
    # Nothing but the model API: no usage statistics, telemetry or update check.
    assert run.refused == []
    calls = fake.model_calls()
    assert calls and len(calls) == len(fake.requests)
    assert {c.route for c in calls} == {"/v1beta/models/gemini-2.5-pro:streamGenerateContent"}
    assert all(c.headers.get("x-goog-api-key") == "test-key" for c in calls)
    assert "gemini-2.5-pro" in str(calls[0].headers.get("user-agent", ""))


def test_progress_streams_while_the_model_is_slow(program: Path, scratch: Path) -> None:
    """Each event is printed when it happens, not at the end: an idle watchdog sees the tool
    call a model turn before the result."""
    run, _fake = with_fake(program, scratch, delay=3.0)
    assert run.result.exit_code == 0, run.output
    when = {json.loads(line)["type"]: t for t, line in run.seen if line.startswith('{"type"')}
    assert when["result"] - when["tool_use"] >= 2.0
    assert said(run.events()) == FINAL_TEXT


def test_version(program: Path, scratch: Path) -> None:
    run = run_gemini(program, scratch, free_port(), args=("--version",), timeout=60)
    assert run.result.exit_code == 0, run.output
    assert run.output.strip().splitlines()[-1] == VERSION


def test_missing_key_fails_at_once(program: Path, scratch: Path) -> None:
    port = free_port()
    started = time.monotonic()
    run = run_gemini(
        program, scratch, port, env={"GOOGLE_GEMINI_BASE_URL": f"http://127.0.0.1:{port}"}
    )
    assert run.result.exit_code == 41, run.output
    assert "GEMINI_API_KEY" in run.output
    assert time.monotonic() - started < 30


def test_server_error_gives_up(program: Path, scratch: Path) -> None:
    started = time.monotonic()
    run, fake = with_fake(program, scratch, mode="error")
    assert run.result.exit_code not in (0, None), run.output
    assert run.result.killed is None
    assert len(fake.model_calls()) == MAX_ATTEMPTS
    assert '"status":"error"' in run.output
    assert time.monotonic() - started < 60
    assert (run.work / "calc.py").read_text() == "def add(a, b):\n    return a - b\n"


def test_api_not_listening_gives_up(program: Path, scratch: Path) -> None:
    started = time.monotonic()
    run = run_gemini(program, scratch, free_port())
    assert run.result.exit_code not in (0, None), run.output
    assert "fetch failed" in run.output
    assert time.monotonic() - started < 60


# The fake itself, without the CLI: these always run.

REPLACE = {
    "name": "replace",
    "parametersJsonSchema": {
        "type": "object",
        "properties": {
            "file_path": {"type": "string"},
            "instruction": {"type": "string"},
            "old_string": {"type": "string"},
            "new_string": {"type": "string"},
        },
        "required": ["file_path", "instruction", "old_string", "new_string"],
    },
}
WRITE = {
    "name": "write_file",
    "parametersJsonSchema": {
        "type": "object",
        "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}},
        "required": ["file_path", "content"],
    },
}
CONTEXT = "<session_context>\n- **Workspace Directories:**\n  - /w/repo\n</session_context>"


def post(url: str, body: object) -> tuple[int, str]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def sse_parts(text: str) -> list[dict[str, object]]:
    chunks = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    return [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]


def test_fake_edits_then_reports() -> None:
    user = {"role": "user", "parts": [{"text": CONTEXT}, {"text": "fix it"}]}
    contents: list[object] = [user]
    body = {"contents": contents, "tools": [{"functionDeclarations": [WRITE, REPLACE]}]}
    with GeminiFake() as fake:
        url = f"{fake.url}/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
        status, text = post(url, body)
        assert status == 200
        (call,) = sse_parts(text)
        assert call["functionCall"] == {
            "name": "replace",
            "args": {
                "file_path": "/w/repo/calc.py",
                "old_string": "return a - b",
                "new_string": "return a + b",
                "instruction": "Make add() return the sum a + b instead of the difference.",
            },
        }
        failed = {"functionResponse": {"name": "replace", "response": {"error": "no match"}}}
        contents += [{"role": "model", "parts": [call]}, {"role": "user", "parts": [failed]}]
        (retry,) = sse_parts(post(url, body)[1])
        assert retry["functionCall"] == {
            "name": "write_file",
            "args": {
                "file_path": "/w/repo/calc.py",
                "content": "def add(a, b):\n    return a + b\n",
            },
        }
        done = {"functionResponse": {"name": "write_file", "response": {"output": "ok"}}}
        contents += [{"role": "model", "parts": [retry]}, {"role": "user", "parts": [done]}]
        assert "".join(str(p["text"]) for p in sse_parts(post(url, body)[1])) == FINAL_TEXT
        whole = post(f"{fake.url}/v1beta/models/gemini-2.5-pro:generateContent", body)
        assert json.loads(whole[1])["candidates"][0]["content"]["parts"] == [{"text": FINAL_TEXT}]
        count = post(f"{fake.url}/v1beta/models/gemini-2.5-pro:countTokens", body)
        assert count[0] == 200 and json.loads(count[1])["totalTokens"] > 0
        assert post(f"{fake.url}/v1beta/models", {})[0] == 404
    assert [action(r) for r in fake.requests] == [
        "streamGenerateContent", "streamGenerateContent", "streamGenerateContent",
        "generateContent", "countTokens", "",
    ]  # fmt: skip


def test_fake_answers_json_requests_from_their_schema() -> None:
    schema = {
        "type": "OBJECT",
        "properties": {
            "complexity_reasoning": {"type": "STRING"},
            "complexity_score": {"type": "INTEGER"},
        },
    }
    body = {
        "contents": [{"role": "user", "parts": [{"text": "route"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": schema},
    }
    with GeminiFake() as fake:
        status, text = post(f"{fake.url}/v1beta/models/flash-lite:generateContent", body)
    assert status == 200
    answer = json.loads(json.loads(text)["candidates"][0]["content"]["parts"][0]["text"])
    assert answer == {"complexity_reasoning": "scripted answer", "complexity_score": 1}


def test_fake_failure_modes() -> None:
    url = "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    with GeminiFake(mode="error") as fake:
        status, text = post(fake.url + url, {"contents": []})
    assert status == 500 and json.loads(text)["error"]["status"] == "INTERNAL"
    with GeminiFake(mode="hang") as fake, pytest.raises(TimeoutError):
        urllib.request.urlopen(
            urllib.request.Request(fake.url + url, b"{}", method="POST"), timeout=0.5
        )
    started = time.monotonic()
    with GeminiFake(delay=0.5) as fake:
        assert post(fake.url + url, {"contents": []})[0] == 200
    assert time.monotonic() - started >= 0.5


def test_gemini_writes_a_plan(program: Path, scratch: Path) -> None:
    with GeminiFake(write=("forgehand-plan.yml", cli.PLAN_FILE)) as fake:
        run = run_gemini(program, scratch, fake.port,
                         prompt=cli.planning_prompt(scratch / "work"))  # fmt: skip
    assert run.result.exit_code == 0, run.output
    cli.read_back_plan(run.work)
    assert run.refused == []
