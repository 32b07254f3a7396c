"""The agent presets: how each released CLI is run, configured and read.

Each was proven by running the real CLI in the sandbox against a scripted model server
(tests/agents/test_<name>_cli.py): its argv (fixed text; the task travels on stdin or in a
file), the API key it needs (which reaches it as the gateway's placeholder, with its base URL
pointing at the gateway: jobs/boundary/gateway.py), the config forgehand writes into the
task's private home (update checks, telemetry and non-essential traffic off), how one line of
its output reads on the dashboard, and where its final message is.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Where a preset that writes its final message to a file puts it, under the agent's HOME.
LAST_MESSAGE = ".forgehand-last-message"
# How much of a file in the agent's home the worker reads for the agent's final message.
SUMMARY_LIMIT = 1024 * 1024


def _no_files(env: Mapping[str, str]) -> dict[str, str]:
    return {}


def _no_env(env: Mapping[str, str]) -> dict[str, str]:
    return {}


def _as_is(line: str) -> str | None:
    return line


def _last_lines(lines: Sequence[str], home: Path) -> str:
    return "\n".join(line for line in lines[-20:] if line.strip())


@dataclass(frozen=True)
class Preset:
    name: str
    argv: tuple[str, ...]  # `{prompt_file}` and `{home}` (the agent's HOME) are substituted
    keys: tuple[str, ...]  # one of these must be named in AGENT_ENV and set
    tested: str  # the CLI version it was proven with, as `--version` prints it
    install: str
    # Programs it looks for on PATH, each with how to install it: without them it would
    # download its own at run time, which the sandbox refuses.
    tools: tuple[tuple[str, str], ...] = ()
    # Files to write under the agent's HOME before it starts, from its environment.
    home_files: Callable[[Mapping[str, str]], dict[str, str]] = field(default=_no_files)
    # Variables to add to its environment; those named in AGENT_ENV win.
    environment: Callable[[Mapping[str, str]], dict[str, str]] = field(default=_no_env)
    # One line of output as the dashboard shows it; None leaves it out.
    render: Callable[[str], str | None] = field(default=_as_is)
    # Its final message, from its last lines of output and its HOME (outside the sandbox).
    summary: Callable[[Sequence[str], Path], str] = field(default=_last_lines)
    # Variables in which the operator gives the CLI's own configuration (a provider of their
    # choosing): forgehand folds them into the config it writes, under its safety settings,
    # and does not pass them on; given one, the key check is the configuration's to make.
    config_vars: tuple[str, ...] = ()

    def operator_config(self, env: Mapping[str, str]) -> bool:
        """Whether the operator gave the CLI's own configuration; ValueError when it cannot
        be read, saying why."""
        if not any(env.get(name) for name in self.config_vars):
            return False
        self.home_files(env)
        return True


def _event(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _own(path: Path, home: Path) -> bool:
    """Whether `path` is a file of the agent's HOME itself, not a link out of it: the worker
    reads it with its own rights after the agent has gone."""
    return path.is_file() and path.resolve().is_relative_to(home.resolve())


def _read(path: Path, end: bool = False) -> str:
    """At most SUMMARY_LIMIT bytes of a file the agent wrote, its start or its `end`: a
    transcript or message file may be of any size."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as file:
        if end:
            file.seek(max(0, os.fstat(fd).st_size - SUMMARY_LIMIT))
        return file.read(SUMMARY_LIMIT).decode(errors="replace")


def _first_line(text: str, width: int = 200) -> str:
    lines = text.strip().splitlines()
    return lines[0][:width] if lines else ""


# --- claude ---------------------------------------------------------------------------------


def _claude_files(env: Mapping[str, str]) -> dict[str, str]:
    quiet = {
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }
    return {".claude/settings.json": json.dumps({"env": quiet}, indent=2) + "\n"}


def _claude_env(env: Mapping[str, str]) -> dict[str, str]:
    # Its default, ten retries with backoff, keeps an unreachable API busy for three minutes.
    return {"CLAUDE_CODE_MAX_RETRIES": "3"}


def _claude_render(line: str) -> str | None:
    event = _event(line)
    if event is None:
        return line
    kind, sub = event.get("type"), event.get("subtype")
    if kind == "system" and sub == "init":
        return f"[start] claude {event.get('claude_code_version', '')} model={event.get('model')}"
    if kind == "system" and sub == "api_retry":
        tries = f"{event.get('attempt')}/{event.get('max_retries')}"
        return f"[retry {tries}] the API answered {event.get('error_status')}"
    if kind == "assistant":
        shown = []
        for block in (event.get("message") or {}).get("content") or []:
            if block.get("type") == "text":
                shown.append(block.get("text", ""))
            elif block.get("type") == "tool_use":
                shown.append(f"→ {block.get('name')} {json.dumps(block.get('input'))[:200]}")
        return "\n".join(shown) or None
    if kind == "user":
        content = (event.get("message") or {}).get("content")
        for block in content if isinstance(content, list) else []:
            if block.get("type") == "tool_result":
                body = block.get("content")
                text = (
                    body
                    if isinstance(body, str)
                    else " ".join(
                        part.get("text", "") for part in body or [] if isinstance(part, dict)
                    )
                )
                return f"← {'error: ' if block.get('is_error') else ''}{_first_line(text)}"
        return None
    if kind == "result":
        state = "error" if event.get("is_error") else "done"
        return f"[{state}] {event.get('num_turns')} turns: {_first_line(str(event.get('result')))}"
    return None


def _claude_summary(lines: Sequence[str], home: Path) -> str:
    for line in reversed(lines):
        event = _event(line)
        if event is not None and event.get("type") == "result":
            return str(event.get("result") or "")
    # A result line longer than the runner keeps: the session's transcript has it whole.
    found = [p for p in home.glob(".claude/projects/*/*.jsonl") if _own(p, home)]
    transcripts = sorted(found, key=lambda p: p.stat().st_mtime)
    for line in reversed(_read(transcripts[-1], end=True).splitlines() if transcripts else []):
        event = _event(line)
        if event is not None and event.get("type") == "assistant":
            blocks = (event.get("message") or {}).get("content") or []
            text = "\n".join(b.get("text", "") for b in blocks if b.get("type") == "text")
            if text.strip():
                return text
    return _last_lines(lines, home)


# The repository's own .claude/settings.json and .mcp.json are the repository author's: read,
# their `env` could send the API key to a host of the author's choosing, and their MCP servers
# would run. Only the settings forgehand writes into HOME count.
CLAUDE_ARGV = (
    "claude", "-p", "--output-format", "stream-json", "--verbose",
    "--permission-mode", "bypassPermissions", "--setting-sources", "user",
    "--strict-mcp-config",
)  # fmt: skip

CLAUDE = Preset(
    name="claude",
    argv=CLAUDE_ARGV,
    keys=("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"),
    tested="2.1.332",
    install="npm install -g @anthropic-ai/claude-code@2.1.332",
    home_files=_claude_files,
    environment=_claude_env,
    render=_claude_render,
    summary=_claude_summary,
)


# --- codex ----------------------------------------------------------------------------------


def _codex_files(env: Mapping[str, str]) -> dict[str, str]:
    base = env.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
    model = env.get("CODEX_MODEL")
    # A provider of our own: the built-in one tries WebSockets first and has no retry
    # settings; and without the plugin features every start reaches for github.com and
    # chatgpt.com.
    lines = [
        *([f"model = {json.dumps(model)}"] if model else []),
        'model_provider = "forgehand"',
        "check_for_update_on_startup = false",
        "",
        "[model_providers.forgehand]",
        'name = "forgehand"',
        f"base_url = {json.dumps(base)}",
        'env_key = "CODEX_API_KEY"',
        'wire_api = "responses"',
        "request_max_retries = 2",
        "stream_max_retries = 2",
        "stream_idle_timeout_ms = 300000",
        "",
        "[analytics]",
        "enabled = false",
        "",
        "[features]",
        "unbounded_connection_retries = false",
        "plugins = false",
        "remote_plugin = false",
        "apps = false",
    ]
    return {".codex/config.toml": "\n".join(lines) + "\n"}


def _codex_env(env: Mapping[str, str]) -> dict[str, str]:
    # `codex exec` reads CODEX_API_KEY only; an OpenAI key given by its usual name serves.
    key = env.get("CODEX_API_KEY") or env.get("OPENAI_API_KEY")
    return {"CODEX_API_KEY": key} if key else {}


def _codex_render(line: str) -> str | None:
    event = _event(line)
    if event is None:
        return line
    kind = event.get("type")
    item = event.get("item") or {}
    if kind == "item.started" and item.get("type") == "command_execution":
        return f"$ {item.get('command')}"
    if kind == "item.completed":
        shown = {
            "command_execution": f"  exit {item.get('exit_code')}",
            "agent_message": str(item.get("text") or ""),
            "error": f"warning: {item.get('message')}",
        }
        return shown.get(str(item.get("type")))
    if kind == "turn.failed":
        return f"error: {(event.get('error') or {}).get('message')}"
    if kind == "error":
        return f"error: {event.get('message')}"
    return None


def _codex_summary(lines: Sequence[str], home: Path) -> str:
    last = home / LAST_MESSAGE
    if _own(last, home):
        return _read(last)
    for line in reversed(lines):
        item = (_event(line) or {}).get("item") or {}
        if item.get("type") == "agent_message":
            return str(item.get("text") or "")
    return _last_lines(lines, home)


# forgehand's sandbox contains it: its own (bubblewrap again) cannot start inside ours, and
# with it codex exits 0 having written nothing.
CODEX_ARGV = (
    "codex", "exec", "--strict-config", "--json", "--color", "never",
    "--dangerously-bypass-approvals-and-sandbox", "--skip-git-repo-check",
    "--output-last-message", f"{{home}}/{LAST_MESSAGE}", "-",
)  # fmt: skip

CODEX = Preset(
    name="codex",
    argv=CODEX_ARGV,
    keys=("CODEX_API_KEY", "OPENAI_API_KEY"),
    tested="codex-cli 0.171.0",
    install="npm install -g @openai/codex@0.171.0",
    home_files=_codex_files,
    environment=_codex_env,
    render=_codex_render,
    summary=_codex_summary,
)


# --- aider ----------------------------------------------------------------------------------


def _aider_files(env: Mapping[str, str]) -> dict[str, str]:
    model = env.get("AIDER_MODEL") or "openai/gpt-4o"
    # Fresh model metadata, so that it does not fetch litellm's from GitHub at start.
    metadata = {model: {"max_input_tokens": 128000, "max_output_tokens": 16384,
                        "input_cost_per_token": 0, "output_cost_per_token": 0,
                        "litellm_provider": model.split("/")[0], "mode": "chat"}}  # fmt: skip
    analytics = {"uuid": "0" * 32, "permanently_disable": True, "asked_opt_in": True}
    return {
        ".aider/caches/model_prices_and_context_window.json": json.dumps(metadata) + "\n",
        ".aider/analytics.json": json.dumps(analytics) + "\n",
    }


def _aider_env(env: Mapping[str, str]) -> dict[str, str]:
    # litellm's own model list from the package, not from GitHub; a browser that opens nothing.
    return {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "BROWSER": "true"}


def _aider_summary(lines: Sequence[str], home: Path) -> str:
    """Its reply: what it printed after its banner and before `Tokens:`, less its edits."""
    end = max((i for i, line in enumerate(lines) if line.startswith("Tokens:")), default=len(lines))
    start = max((i for i, line in enumerate(lines[:end]) if line.startswith("Repo-map:")),
                default=-1)  # fmt: skip
    kept: list[str] = []
    fenced = False
    for line in lines[start + 1 : end]:
        if line.startswith("```"):
            fenced = not fenced
            if kept and fenced and "." in kept[-1] and " " not in kept[-1]:
                kept.pop()  # the name of the file the block edits
            continue
        if not fenced:
            kept.append(line)
    return "\n".join(kept).strip() or _last_lines(lines, home)


# Safe and quiet without a person: no URL scraping (a URL in an issue made it install a
# browser), no browser, no update check, no analytics, no commits of its own (forgehand
# commits), its history kept out of the work tree; `--stream` shows progress as it comes.
AIDER_ARGV = (
    "aider", "--yes-always", "--no-pretty", "--stream", "--no-check-update",
    "--no-show-release-notes", "--no-analytics", "--no-gitignore", "--no-detect-urls",
    "--disable-playwright", "--no-browser", "--no-show-model-warnings", "--no-fancy-input",
    "--no-auto-commits", "--no-dirty-commits", "--no-notifications",
    "--chat-history-file", "{home}/.aider/chat.history.md",
    "--input-history-file", "{home}/.aider/input.history",
    "--message-file", "{prompt_file}",
)  # fmt: skip

AIDER = Preset(
    name="aider",
    argv=AIDER_ARGV,
    keys=("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "OPENROUTER_API_KEY"),
    tested="aider 0.86.2",
    install="pip install aider-chat==0.86.2",
    home_files=_aider_files,
    environment=_aider_env,
    summary=_aider_summary,
)


# --- opencode -------------------------------------------------------------------------------


# What no configuration of the operator's changes: no self-update, no sharing of sessions.
OPENCODE_SAFETY: dict[str, Any] = {"autoupdate": False, "share": "disabled"}
OPENCODE_CONFIG_VARS = ("OPENCODE_CONFIG", "OPENCODE_CONFIG_CONTENT")


def _json_object(what: str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{what} is not JSON ({exc}); forgehand reads it as JSON") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not a JSON object")
    return value


def merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` laid on `base`, objects merged key by key, as OpenCode merges its configs."""
    out = dict(base)
    for key, value in over.items():
        below = out.get(key)
        both = isinstance(below, Mapping) and isinstance(value, Mapping)
        out[key] = merged(below, value) if both else value  # type: ignore[arg-type]
    return out


def opencode_operator_config(env: Mapping[str, str]) -> dict[str, Any]:
    """The operator's OpenCode configuration: the file OPENCODE_CONFIG names, then
    OPENCODE_CONFIG_CONTENT on top, as OpenCode layers them. ValueError says what is wrong."""
    config: dict[str, Any] = {}
    path = env.get("OPENCODE_CONFIG")
    if path:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ValueError(f"OPENCODE_CONFIG {path} cannot be read: {exc.strerror}") from None
        config = merged(config, _json_object(f"OPENCODE_CONFIG {path}", text))
    content = env.get("OPENCODE_CONFIG_CONTENT")
    if content:
        config = merged(config, _json_object("OPENCODE_CONFIG_CONTENT", content))
    return config


def _opencode_files(env: Mapping[str, str]) -> dict[str, str]:
    config: dict[str, Any] = {"$schema": "https://opencode.ai/config.json", **OPENCODE_SAFETY}
    if env.get("OPENAI_API_KEY"):
        # An OpenAI-compatible provider of forgehand's: the key and base URL from the
        # environment, a bounded wait for each answer.
        model = env.get("OPENCODE_MODEL") or "gpt-4o"
        base = (
            "{env:OPENAI_BASE_URL}" if env.get("OPENAI_BASE_URL") else "https://api.openai.com/v1"
        )
        config |= {
            "model": f"forgehand/{model}",
            "small_model": f"forgehand/{model}",
            "provider": {
                "forgehand": {
                    "npm": "@ai-sdk/openai-compatible",
                    "name": "forgehand",
                    "options": {"baseURL": base, "apiKey": "{env:OPENAI_API_KEY}",
                                "timeout": 300000},
                    "models": {model: {"name": model, "tool_call": True}},
                }
            },
        }  # fmt: skip
    # The operator's own provider and settings, then forgehand's safety settings over them.
    config = merged(merged(config, opencode_operator_config(env)), OPENCODE_SAFETY)
    # Without these it runs `npm install @opencode-ai/plugin` in its config directory.
    lock = {"lockfileVersion": 3, "packages": {"": {"dependencies": {"@opencode-ai/plugin": "*"}}}}
    return {
        ".config/opencode/opencode.json": json.dumps(config, indent=2) + "\n",
        ".config/opencode/package-lock.json": json.dumps(lock) + "\n",
        ".config/opencode/node_modules/.forgehand": "",
    }


def _opencode_env(env: Mapping[str, str]) -> dict[str, str]:
    names = ("MODELS_FETCH", "AUTOUPDATE", "DEFAULT_PLUGINS", "LSP_DOWNLOAD", "SHARE")
    return {f"OPENCODE_DISABLE_{name}": "1" for name in names}


def _opencode_render(line: str) -> str | None:
    event = _event(line)
    if event is None:
        return line
    kind, part = event.get("type"), event.get("part") or {}
    if kind == "text":
        return str(part.get("text") or "") or None
    if kind == "tool_use":
        state = part.get("state") or {}
        given = state.get("input") or {}
        target = given.get("filePath") or given.get("command") or given.get("pattern") or ""
        return f"→ {part.get('tool')} {state.get('status')} {target}"
    if kind == "error":
        data = (event.get("error") or {}).get("data") or {}
        return f"error: {data.get('message')}"
    return None


def _opencode_summary(lines: Sequence[str], home: Path) -> str:
    texts: list[str] = []
    for line in lines:
        event = _event(line) or {}
        if event.get("type") == "step_start":
            texts = []
        elif event.get("type") == "text":
            texts.append(str((event.get("part") or {}).get("text") or ""))
    return "\n".join(texts) or _last_lines(lines, home)


# The task on stdin: `--file` takes a list and would swallow a message after it.
OPENCODE_ARGV = ("opencode", "run", "--format", "json", "--auto")

OPENCODE = Preset(
    name="opencode",
    argv=OPENCODE_ARGV,
    keys=("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "OPENROUTER_API_KEY"),
    tested="1.18.33",
    install="npm install -g opencode-ai@1.18.33",
    tools=(("rg", "apt-get install ripgrep"),),
    home_files=_opencode_files,
    environment=_opencode_env,
    render=_opencode_render,
    summary=_opencode_summary,
    config_vars=OPENCODE_CONFIG_VARS,
)


# --- gemini ---------------------------------------------------------------------------------


def _gemini_files(env: Mapping[str, str]) -> dict[str, str]:
    settings = {
        # With GOOGLE_GEMINI_BASE_URL and no auth type chosen, headless mode exits 41.
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "general": {
            "enableAutoUpdate": False,
            "enableAutoUpdateNotification": False,
            # Its default, ten, keeps an unreachable API busy for three and a half minutes.
            "maxAttempts": 3,
        },
        # Unpinned ("auto"), every turn first asks a router model, with retries of its own.
        "model": {"name": env.get("GEMINI_MODEL") or "gemini-2.5-pro"},
    }
    return {".gemini/settings.json": json.dumps(settings, indent=2) + "\n"}


def _gemini_env(env: Mapping[str, str]) -> dict[str, str]:
    # It would start a second node process only to raise its heap limit.
    return {"GEMINI_CLI_NO_RELAUNCH": "1"}


def _gemini_render(line: str) -> str | None:
    event = _event(line)
    if event is None:
        return line
    kind = event.get("type")
    if kind == "init":
        return f"[start] gemini model={event.get('model')}"
    if kind == "tool_use":
        return f"→ {event.get('tool_name')} {json.dumps(event.get('parameters'))[:200]}"
    if kind == "tool_result":
        error = (event.get("error") or {}).get("message")
        return f"← {event.get('status')}" + (f": {_first_line(str(error))}" if error else "")
    if kind == "message" and event.get("role") == "assistant":
        return str(event.get("content") or "") or None
    if kind == "result":
        error = (event.get("error") or {}).get("message")
        return f"[{event.get('status')}]" + (f" {_first_line(str(error))}" if error else "")
    if kind == "error":
        return f"error: {event.get('message')}"
    return None


def _gemini_summary(lines: Sequence[str], home: Path) -> str:
    # The final message arrives in pieces; the last assistant turn is the run of them that
    # ends the output.
    pieces: list[str] = []
    for line in lines:
        event = _event(line) or {}
        if event.get("type") == "message" and event.get("role") == "assistant":
            pieces.append(str(event.get("content") or ""))
        elif event.get("type") in ("tool_use", "tool_result"):
            pieces = []
    return "".join(pieces) or _last_lines(lines, home)


# -p is appended to what arrives on stdin, which carries the task.
GEMINI_ARGV = (
    "gemini", "--approval-mode", "yolo", "--skip-trust", "--output-format", "stream-json",
    "-p", "Carry out the task given above.",
)  # fmt: skip

GEMINI = Preset(
    name="gemini",
    argv=GEMINI_ARGV,
    # GOOGLE_API_KEY counts only for Vertex AI.
    keys=("GEMINI_API_KEY",),
    tested="0.61.0",
    install="npm install -g @google/gemini-cli@0.61.0",
    home_files=_gemini_files,
    environment=_gemini_env,
    render=_gemini_render,
    summary=_gemini_summary,
)

PRESETS: dict[str, Preset] = {p.name: p for p in (CLAUDE, CODEX, AIDER, OPENCODE, GEMINI)}


def write_home(preset: Preset, home: Path, env: Mapping[str, str]) -> None:
    """Write the preset's config files into the agent's HOME.

    What is in HOME already may be the work of `setup` or of an earlier run of the agent: a
    link there must not steer the worker's writes elsewhere, so every directory and file on
    the way is made anew where it is anything but a real directory or file.
    """
    for relative, content in preset.home_files(env).items():
        path = home
        for part in Path(relative).parts[:-1]:
            path = path / part
            if path.is_symlink() or (path.exists() and not path.is_dir()):
                path.unlink()
            path.mkdir(exist_ok=True)
        path = path / Path(relative).name
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.exists():
            shutil.rmtree(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(content)
