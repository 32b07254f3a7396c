"""A scripted stand-in for the Anthropic Messages API, for running real agent CLIs in tests.

    with FakeAnthropic() as api:            # listens on 127.0.0.1, a free port
        env["ANTHROPIC_BASE_URL"] = api.url # http://127.0.0.1:<port>
        ...run the CLI...
        api.requests                        # every request it got, in order

The "model" fixes `calc.py`, whose `add` returns `a - b`: on the first turn it calls one of
the tools the request offers — an edit tool (old/new string), a write tool (path, content)
or a shell tool (command), chosen by their JSON schemas — and once a tool result comes back
without error it answers FINAL_TEXT. A tool result marked as an error makes it try the next
way: it reads the file first when the error asks for that (as Claude Code's Edit may), else
falls back to the next tool; with none left it answers STUCK_TEXT. Requests that offer no
tools (titles, summaries, quota probes) get a short text answer.

It answers `POST /v1/messages` streamed (server-sent events: message_start,
content_block_start, content_block_delta with text_delta or input_json_delta,
content_block_stop, message_delta, message_stop) or as one JSON body, as the request asks;
`POST /v1/messages/count_tokens` with a rough count; anything else with a 404 in the API's
error shape. `delay` waits that many seconds before each answer to /v1/messages;
`mode="error"` answers 500 to every /v1/messages, `mode="hang"` never answers it.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.agents.models.server import FakeServer, Handler, Recorded

FINAL_TEXT = "Fixed add() to return a + b."
BROKEN = "return a - b"
FIXED = "return a + b"
FIXED_FILE = "def add(a, b):\n    return a + b\n"
SIDE_TEXT = "Fixing add() in calc.py"
STUCK_TEXT = "Could not fix add(): no tool offered worked."

Mode = Literal["script", "error", "hang"]

PATH_KEYS = ("file_path", "filePath", "path", "filename", "file")
OLD_KEYS = ("old_string", "oldString", "old_str", "old_text", "oldText", "search")
NEW_KEYS = ("new_string", "newString", "new_str", "new_text", "newText", "replace")
CONTENT_KEYS = ("content", "file_text", "text", "contents")
COMMAND_KEYS = ("command", "cmd", "script")
PATCH_KEYS = ("patch", "input")
# Where a system prompt names the working directory (Claude Code: "Primary working directory").
WORKDIR = re.compile(r"(?:[Ww]orking directory|cwd):\s*(/[^\s\"\\]+)")


@dataclass(frozen=True)
class Action:
    """A tool call the model makes: `kind` is edit, write, shell, patch or read."""

    kind: str
    tool: str
    input: dict[str, Any]


@dataclass(eq=False)
class FakeAnthropic(FakeServer):
    """The fake API server; a context manager that serves while inside it."""

    delay: float = 0.0
    mode: Mode = "script"
    file: str = "calc.py"
    # Set: the model writes `file` whole with this text (a new file: a plan), by a write tool
    # or the shell, instead of fixing calc.py.
    content: str | None = None
    final_text: str = FINAL_TEXT
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    def __post_init__(self) -> None:
        super().__init__(_handler(self), delay=self.delay)

    def next_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}_{next(self._ids):024d}"

    def messages(self) -> list[Recorded]:
        """The requests to /v1/messages (any query string)."""
        return [r for r in self.requests if _route(r.path) == "/v1/messages"]

    def tool_turns(self) -> list[Recorded]:
        """The requests to /v1/messages that offered tools: the agent's own turns."""
        return [r for r in self.messages() if isinstance(r.body, dict) and r.body.get("tools")]

    # The scripted model.

    def reply(self, body: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str]:
        """The content blocks and stop reason that answer `body`."""
        tools = [t for t in body.get("tools") or () if isinstance(t, dict)]
        if not tools:
            return [{"type": "text", "text": SIDE_TEXT}], "end_turn"
        action = self.plan(body, tools)
        if action is None:
            history = _history(body.get("messages") or ())
            done = bool(history) and not history[-1][1]
            return [{"type": "text", "text": self.final_text if done else STUCK_TEXT}], "end_turn"
        block = {
            "type": "tool_use",
            "id": self.next_id("toolu"),
            "name": action.tool,
            "input": action.input,
        }
        return [{"type": "text", "text": f"I will fix add() with {action.tool}."}, block], (
            "tool_use"
        )

    def plan(self, body: Mapping[str, Any], tools: Sequence[Mapping[str, Any]]) -> Action | None:
        """The next tool call, from the conversation so far; None when done (or stuck)."""
        path = self.target(body)
        if self.content is not None:
            ways = [a for a in (_write(tools, path, self.content),
                                _shell(tools, path, self.content)) if a]  # fmt: skip
        else:
            ways = [a for a in (_edit(tools, path), _write(tools, path), _shell(tools, path)) if a]
            ways += [a for a in (_patch(tools, path),) if a]
        read = _read(tools, path)
        history = _history(body.get("messages") or ())
        if not history:
            return ways[0] if ways else None
        (last, last_error, last_text) = history[-1]
        if not last_error:
            if read is not None and last == read.tool:
                # Read at our request: try again what failed before it.
                failed = [name for name, error, _ in history if error]
                again = [w for w in ways if failed and w.tool == failed[-1]]
                return again[0] if again else (ways[0] if ways else None)
            return None
        read_before = any(name == read.tool for name, _, _ in history) if read else True
        if read is not None and not read_before and "read" in last_text.lower():
            return read
        tried = {name for name, _, _ in history}
        rest = [w for w in ways if w.tool not in tried]
        return rest[0] if rest else None

    def target(self, body: Mapping[str, Any]) -> str:
        """The file to fix: `file` as given when absolute, else under the working directory
        the system prompt names (Claude Code's tools want absolute paths), else as given."""
        if self.file.startswith("/"):
            return self.file
        found = WORKDIR.search(json.dumps([body.get("system"), body.get("messages")]))
        if found:
            return f"{found.group(1).rstrip('/')}/{self.file}"
        return self.file


def _route(path: str) -> str:
    return path.split("?", 1)[0].rstrip("/")


def _text(value: Any) -> str:
    """The text of a system prompt or message content (a string or a list of blocks)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(
            _text(v.get("text") or v.get("content")) for v in value if isinstance(v, dict)
        )
    return ""


def _history(messages: Sequence[Any]) -> list[tuple[str, bool, str]]:
    """Each tool call of the conversation: its tool's name, whether its result was an error,
    and the result's text."""
    names: dict[str, str] = {}
    out: list[tuple[str, bool, str]] = []
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("content"), list):
            continue
        for block in message["content"]:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_use":
                names[str(block.get("id"))] = str(block.get("name"))
            elif block.get("type") == "tool_result":
                name = names.get(str(block.get("tool_use_id")), "")
                out.append((name, bool(block.get("is_error")), _text(block.get("content"))))
    return out


def _props(tool: Mapping[str, Any]) -> dict[str, Any]:
    schema = tool.get("input_schema") or tool.get("parameters") or {}
    props = schema.get("properties") if isinstance(schema, dict) else None
    return props if isinstance(props, dict) else {}


def _key(props: Mapping[str, Any], names: Sequence[str]) -> str | None:
    return next((n for n in names if n in props), None)


def _edit(tools: Sequence[Mapping[str, Any]], path: str) -> Action | None:
    for tool in tools:
        props = _props(tool)
        where, old, new = (_key(props, k) for k in (PATH_KEYS, OLD_KEYS, NEW_KEYS))
        if where and old and new and "edits" not in props:
            args = {where: path, old: BROKEN, new: FIXED}
            return Action("edit", str(tool["name"]), args)
    return None


def _write(tools: Sequence[Mapping[str, Any]], path: str, text: str = FIXED_FILE) -> Action | None:
    for tool in tools:
        props = _props(tool)
        where, content = _key(props, PATH_KEYS), _key(props, CONTENT_KEYS)
        if where and content and not _key(props, OLD_KEYS):
            return Action("write", str(tool["name"]), {where: path, content: text})
    return None


def _shell(tools: Sequence[Mapping[str, Any]], path: str, text: str | None = None) -> Action | None:
    script = f"sed -i 's/{BROKEN}/{FIXED}/' {shlex.quote(path)}"
    if text is not None:
        script = f"printf %s {shlex.quote(text)} > {shlex.quote(path)}"
    for tool in tools:
        props = _props(tool)
        key = _key(props, COMMAND_KEYS)
        if key is None or _key(props, PATH_KEYS):
            continue
        kind = props[key].get("type") if isinstance(props[key], dict) else None
        command: Any = ["bash", "-lc", script] if kind == "array" else script
        return Action("shell", str(tool["name"]), {key: command})
    return None


def _patch(tools: Sequence[Mapping[str, Any]], path: str) -> Action | None:
    patch = (
        f"*** Begin Patch\n*** Update File: {path}\n@@\n def add(a, b):\n"
        f"-    {BROKEN}\n+    {FIXED}\n*** End Patch\n"
    )
    for tool in tools:
        if "patch" not in str(tool.get("name", "")).lower():
            continue
        key = _key(_props(tool), PATCH_KEYS)
        if key:
            return Action("patch", str(tool["name"]), {key: patch})
    return None


def _read(tools: Sequence[Mapping[str, Any]], path: str) -> Action | None:
    for tool in tools:
        props = _props(tool)
        where = _key(props, PATH_KEYS)
        name = str(tool.get("name", ""))
        if where and name.lower() in ("read", "read_file", "view") and len(props) <= 4:
            return Action("read", name, {where: path})
    return None


def _usage(body: Mapping[str, Any], output: int) -> dict[str, int]:
    size = len(json.dumps(body.get("messages", ""))) + len(json.dumps(body.get("system", "")))
    return {
        "input_tokens": max(1, size // 4),
        "output_tokens": output,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def _handler(fake: FakeAnthropic) -> type[Handler]:
    class AnthropicHandler(Handler):
        owner = fake

        def _json(self, status: int, payload: Any) -> None:
            self.send_json(status, payload, headers={"request-id": fake.next_id("req")})

        def _error(self, status: int, kind: str, message: str) -> None:
            self._json(status, {"type": "error", "error": {"type": kind, "message": message}})

        def do_GET(self) -> None:
            self.recorded()
            self._error(404, "not_found_error", f"Not found: {self.command} {self.path}")

        do_HEAD = do_GET
        do_PUT = do_GET
        do_DELETE = do_GET

        def do_POST(self) -> None:
            body = self.recorded().body
            route = _route(self.path)
            if route == "/v1/messages/count_tokens" and isinstance(body, dict):
                self._json(200, {"input_tokens": _usage(body, 0)["input_tokens"]})
                return
            if route != "/v1/messages":
                self._error(404, "not_found_error", f"Not found: {self.command} {self.path}")
                return
            if not isinstance(body, dict):
                self._error(400, "invalid_request_error", "body: expected a JSON object")
                return
            if self.held(fake.mode == "hang", fake.delay):
                return
            if fake.mode == "error":
                self._error(500, "api_error", "Internal server error")
                return
            blocks, stop = fake.reply(body)
            fake.report(_usage(body, 0)["input_tokens"], 10 * len(blocks))
            if body.get("stream"):
                self._stream(body, blocks, stop)
            else:
                self._json(200, self._message(body, blocks, stop))

        def _message(
            self, body: Mapping[str, Any], blocks: list[dict[str, Any]], stop: str | None
        ) -> dict[str, Any]:
            return {
                "id": fake.next_id("msg"),
                "type": "message",
                "role": "assistant",
                "model": str(body.get("model", "claude-fake")),
                "content": blocks,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": _usage(body, 10 * len(blocks) if stop else 1),
            }

        def _stream(self, body: Mapping[str, Any], blocks: list[dict[str, Any]], stop: str) -> None:
            request_id = {"request-id": fake.next_id("req")}
            self.start_events("text/event-stream; charset=utf-8", request_id)
            self._event("message_start", {"message": self._message(body, [], None)})
            self._event("ping", {})
            for index, block in enumerate(blocks):
                if block["type"] == "text":
                    start: dict[str, Any] = {"type": "text", "text": ""}
                    text = block["text"]
                    cut = len(text) // 2
                    deltas = [{"type": "text_delta", "text": t} for t in (text[:cut], text[cut:])]
                else:
                    start = {**block, "input": {}}
                    data = json.dumps(block["input"])
                    cut = len(data) // 2
                    deltas = [
                        {"type": "input_json_delta", "partial_json": p}
                        for p in (data[:cut], data[cut:])
                    ]
                self._event("content_block_start", {"index": index, "content_block": start})
                for delta in deltas:
                    self._event("content_block_delta", {"index": index, "delta": delta})
                self._event("content_block_stop", {"index": index})
            self._event(
                "message_delta",
                {
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": 10 * len(blocks)},
                },
            )
            self._event("message_stop", {})

        def _event(self, name: str, data: Mapping[str, Any]) -> None:
            payload = json.dumps({"type": name, **data})
            self.wfile.write(f"event: {name}\ndata: {payload}\n\n".encode())
            self.wfile.flush()

    return AnthropicHandler
