"""A scripted fake of the OpenAI Chat Completions API, for running real agent CLIs in tests.

    with OpenAIChat() as fake:
        env = {"OPENAI_API_KEY": "sk-test", "OPENAI_API_BASE": fake.base_url}
        ...  # run the CLI
        assert fake.requests

Serves `POST /v1/chat/completions` (streaming SSE `chat.completion.chunk`s, or one
`chat.completion`), the legacy `POST /v1/completions` (which always answers FINAL) and
`GET /v1/models`, on 127.0.0.1 at a free port. The scripted model fixes
calc.py (`return a - b` becomes `return a + b`):

- when the request offers tools, it calls one on its first turn: an edit tool (old/new
  strings), a write tool (whole file), an apply-patch tool, or a shell tool, picked by the
  names and JSON schemas of the tools offered. When a tool result says the call failed, it
  tries the next candidate; once a call succeeded it answers FINAL.
- when it offers none (aider), it answers with text in the edit format the system prompt asks
  for: SEARCH/REPLACE blocks, a unified diff, or the whole file, followed by FINAL.

Completions need `Authorization: Bearer KEY` (any non-empty KEY, or `api_key` when given),
else HTTP 401 as the real API answers. `delay` sleeps before each answer (a slow model);
`mode="error"` answers every completion with HTTP 500, `mode="hang"` never answers (the
connection stays open until the server stops). Given a `cost`, it answers as OpenRouter does:
each call's usage carries its cost in USD (`usage.cost`), when the call asks for it
(`"usage": {"include": true}`).
"""

from __future__ import annotations

import json
import re
import shlex
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tests.agents.models.calc import FILE, FINAL, FIXED, PATCH, SHELL_COMMAND
from tests.agents.models.server import FakeServer, Handler, Recorded

COMMIT_MESSAGE = "fix: add() returns a + b"
TITLE = "Fix add() in calc.py"

Mode = Literal["ok", "error", "hang"]
Json = dict[str, Any]

FAILED = re.compile(
    r"\berror\b|\bfailed\b|must read|not found|no such file|denied|rejected|invalid",
    re.IGNORECASE,
)


class OpenAIChat(FakeServer):
    """The fake server; a context manager that starts and stops it."""

    def __init__(
        self,
        *,
        delay: float = 0.0,
        mode: Mode = "ok",
        models: Sequence[str] = ("gpt-4o", "gpt-4o-mini", "fake-model"),
        chunk_size: int = 12,
        api_key: str | None = None,
        write: tuple[str, str] | None = None,
        cost: float | None = None,
    ) -> None:
        self.api_key = api_key
        self.cost = cost
        self.mode: Mode = mode
        self.models = tuple(models)
        self.chunk_size = chunk_size
        super().__init__(_Handler, delay=delay, write=write)

    @property
    def completions(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def usage(self, body: Json) -> Json:
        """The usage an answer to `body` reports."""
        asked = body.get("usage")
        if self.cost is None or not isinstance(asked, dict) or asked.get("include") is not True:
            return _USAGE
        return _USAGE | {"cost": self.cost}

    def authorized(self, header: str | None) -> bool:
        """Like the real API: a bearer key is needed; `api_key`, when given, must match."""
        scheme, _, key = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return False
        return self.api_key is None or key.strip() == self.api_key


# -- the scripted model ----------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One assistant turn: text, tool calls, or both."""

    content: str | None = None
    tool_calls: tuple[Json, ...] = ()

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"


def answer(body: Mapping[str, Any], write: tuple[str, str] | None = None) -> Reply:
    """What the scripted model says to one chat request."""
    messages: list[Json] = [m for m in body.get("messages", []) if isinstance(m, dict)]
    system = "\n".join(_text(m.get("content")) for m in messages if m.get("role") == "system")
    if "commit message" in system.lower():
        return Reply(COMMIT_MESSAGE)
    if "title" in system.lower() and not body.get("tools"):
        return Reply(TITLE)  # opencode names its session with a separate request
    tools: list[Json] = [t for t in body.get("tools") or [] if isinstance(t, dict)]
    if not tools:
        return Reply(_edit_text(system, write))
    tried = _tried(messages)
    if tried and not _failed(messages[-1]):
        return Reply(FINAL)
    if tried and messages[-1].get("role") != "tool":
        return Reply(FINAL)  # a new user turn after the work was done
    names = [name for name, _ in tried]
    for call in _candidates(tools, _workdir(system), write):
        if call["function"]["name"] not in names:
            return Reply(None, (call,))
    return Reply("I could not edit calc.py with the tools offered.")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _tried(messages: Sequence[Json]) -> list[tuple[str, str]]:
    """The (tool name, call id) of every tool call the model already made."""
    calls: list[tuple[str, str]] = []
    for message in messages:
        if message.get("role") != "assistant":
            continue
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            calls.append((str(function.get("name")), str(call.get("id"))))
    return calls


def _failed(message: Json) -> bool:
    return message.get("role") == "tool" and bool(FAILED.search(_text(message.get("content"))))


def _workdir(system: str) -> str | None:
    """The working directory a CLI names in its system prompt, if it does."""
    found = re.search(r"[Ww]orking directory:\s*(/\S+)", system)
    return found.group(1).rstrip(".,") if found else None


def _properties(tool: Json) -> tuple[str, dict[str, Any], list[str]]:
    function = tool.get("function") or {}
    schema = function.get("parameters") or {}
    properties = schema.get("properties") or {}
    return str(function.get("name", "")), dict(properties), list(schema.get("required") or [])


def _pick(properties: Mapping[str, Any], *words: str) -> str | None:
    """The first property whose name contains one of `words` (in the order of `words`)."""
    for word in words:
        for name in properties:
            if word in name.lower():
                return name
    return None


def _candidates(
    tools: Sequence[Json], workdir: str | None, write: tuple[str, str] | None = None
) -> Iterator[Json]:
    """Tool calls that would fix calc.py (or write `write`), best first: edit, patch, write,
    shell."""
    name_, fixed, patch, shell = FILE, FIXED, PATCH, SHELL_COMMAND
    if write is not None:
        name_, fixed = write
        added = "".join(f"+{line}\n" for line in fixed.splitlines())
        patch = f"*** Begin Patch\n*** Add File: {name_}\n{added}*** End Patch\n"
        shell = f"printf %s {shlex.quote(fixed)} > {shlex.quote(name_)}"
    path = f"{workdir.rstrip('/')}/{name_}" if workdir else name_
    found: dict[str, list[Json]] = {"edit": [], "patch": [], "write": [], "shell": []}
    for tool in tools:
        name, properties, required = _properties(tool)
        lowered = name.lower()
        old = _pick(properties, "old")
        new = _pick(properties, "new")
        where = _pick(properties, "file_path", "filepath", "path", "file")
        arguments: Json
        if old and new and where and write is None:
            arguments = {where: path, old: "    return a - b", new: "    return a + b"}
            kind = "edit"
        elif "patch" in lowered and (text := _pick(properties, "patch", "input", "diff")):
            arguments = {text: patch}
            kind = "patch"
        elif where and (content := _pick(properties, "content", "text")) and "write" in lowered:
            arguments = {where: path, content: fixed}
            kind = "write"
        elif (command := _pick(properties, "command", "cmd")) and (
            lowered in ("bash", "shell", "sh", "exec", "run_shell_command")
            or "shell" in lowered
            or "bash" in lowered
        ):
            spec = properties[command]
            is_list = isinstance(spec, dict) and spec.get("type") == "array"
            arguments = {command: ["bash", "-lc", shell] if is_list else shell}
            if description := _pick(properties, "description"):
                arguments[description] = "Fix add() in calc.py"
            kind = "shell"
        else:
            continue
        for extra in required:
            if extra not in arguments:
                arguments[extra] = _filler(properties.get(extra))
        found[kind].append(
            {
                "id": f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
        )
    for kind in ("edit", "patch", "write", "shell"):
        yield from found[kind]


def _filler(spec: Any) -> Any:
    kind = spec.get("type") if isinstance(spec, dict) else None
    if isinstance(spec, dict) and spec.get("enum"):
        return spec["enum"][0]
    return {"boolean": False, "integer": 0, "number": 0, "array": [], "object": {}}.get(
        str(kind), ""
    )


def _edit_text(system: str, write: tuple[str, str] | None = None) -> str:
    """An aider-style answer in the edit format its system prompt describes."""
    if write is not None:
        path, text = write
        if "<<<<<<< SEARCH" in system:  # a new file: nothing to search for
            edit = f"{path}\n```yaml\n<<<<<<< SEARCH\n=======\n{text}>>>>>>> REPLACE\n```\n"
        else:
            edit = f"{path}\n```yaml\n{text}```\n"
        return f"Here is the plan.\n\n{edit}\nWrote the plan."
    if "<<<<<<< SEARCH" in system:
        edit = (
            f"{FILE}\n```python\n<<<<<<< SEARCH\n    return a - b\n=======\n"
            "    return a + b\n>>>>>>> REPLACE\n```\n"
        )
    elif "--- " in system and "+++ " in system and "@@" in system:
        edit = (
            f"```diff\n--- {FILE}\n+++ {FILE}\n@@ ... @@\n def add(a, b):\n"
            "-    return a - b\n+    return a + b\n```\n"
        )
    else:
        edit = f"{FILE}\n```python\n{FIXED}```\n"
    return f"add() subtracted instead of adding.\n\n{edit}\n{FINAL}"


# -- HTTP --------------------------------------------------------------------------------------


class _Handler(Handler):
    owner: OpenAIChat

    def do_GET(self) -> None:
        self.recorded()
        if self.path.rstrip("/").endswith("/models"):
            models = [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                for m in self.owner.models
            ]
            self.send_json(200, {"object": "list", "data": models})
        else:
            self.send_json(404, _error("not found", "invalid_request_error"))

    def do_POST(self) -> None:
        sent = self.recorded().body
        body: Json | None = sent if isinstance(sent, dict) else None
        path = self.path.rstrip("/")
        legacy = path.endswith("/v1/completions")
        if not path.endswith("/chat/completions") and not legacy:
            self.send_json(404, _error("not found", "invalid_request_error"))
            return
        if not self.owner.authorized(self.headers.get("Authorization")):
            self.send_json(401, _error(_NO_KEY, "invalid_request_error", "invalid_api_key"))
            return
        if self.held(self.owner.mode == "hang", self.owner.delay):
            return
        if self.owner.mode == "error":
            self.send_json(500, _error("The server had an error while processing your request.",
                                   "server_error"))  # fmt: skip
            return
        if body is None:
            self.send_json(400, _error("expected a JSON body", "invalid_request_error"))
            return
        reply = Reply(FINAL) if legacy else answer(body, self.owner.write)
        model = str(body.get("model") or "fake-model")
        if not body.get("stream") or (body.get("stream_options") or {}).get("include_usage"):
            self.owner.report(_USAGE["prompt_tokens"], _USAGE["completion_tokens"])
        if body.get("stream"):
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(reply, model, self.owner.usage(body) if usage else None, legacy)
        else:
            self.send_json(200, _completion(reply, model, self.owner.usage(body), legacy))

    def _stream(self, reply: Reply, model: str, usage: Json | None, legacy: bool) -> None:
        self.start_events()
        ident = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        for chunk in _chunks(reply, self.owner.chunk_size, legacy):
            self._event(_envelope(ident, model, chunk, legacy))
        if usage is not None:
            last = _envelope(ident, model, None, legacy)
            last["usage"] = usage
            self._event(last)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _event(self, payload: Json) -> None:
        self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
        self.wfile.flush()


_USAGE: Json = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}


_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)


def _error(message: str, kind: str, code: str | None = None) -> Json:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _completion(reply: Reply, model: str, usage: Json, legacy: bool = False) -> Json:
    choice: Json = {"index": 0, "logprobs": None, "finish_reason": reply.finish_reason}
    if legacy:
        choice["text"] = reply.content
    else:
        message: Json = {"role": "assistant", "content": reply.content}
        if reply.tool_calls:
            message["tool_calls"] = list(reply.tool_calls)
        choice["message"] = message
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "text_completion" if legacy else "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage,
    }


def _envelope(ident: str, model: str, choice: Json | None, legacy: bool = False) -> Json:
    return {
        "id": ident,
        "object": "text_completion" if legacy else "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [] if choice is None else [choice],
    }


def _chunks(reply: Reply, size: int, legacy: bool = False) -> Iterator[Json]:
    """The choices of a streamed reply: role, content pieces, tool call pieces, finish (a
    legacy completion's: text pieces, finish)."""
    if legacy:
        text = reply.content or ""
        for start in range(0, len(text), size):
            yield {"index": 0, "text": text[start : start + size], "finish_reason": None}
        yield {"index": 0, "text": "", "finish_reason": "stop"}
        return

    def choice(delta: Json, finish: str | None = None) -> Json:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    yield choice({"role": "assistant", "content": ""})
    text = reply.content or ""
    for start in range(0, len(text), size):
        yield choice({"content": text[start : start + size]})
    for index, call in enumerate(reply.tool_calls):
        function = call["function"]
        yield choice(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": function["name"], "arguments": ""},
                    }
                ]
            }
        )
        arguments = str(function["arguments"])
        for start in range(0, len(arguments), size * 4):
            piece = arguments[start : start + size * 4]
            yield choice({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield choice({}, reply.finish_reason)
