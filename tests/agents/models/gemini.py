"""A scripted stand-in for the Gemini API (generativelanguage v1beta), for the real Gemini CLI.

    with GeminiFake() as fake:
        env = {"GOOGLE_GEMINI_BASE_URL": fake.url, "GEMINI_API_KEY": "test-key"}
        ...  # run `gemini` against it
        fake.requests  # what the CLI sent, in order

The "model" is stateless and reads each request's history. On the first turn it answers with
one functionCall that fixes calc.py (`return a - b` -> `return a + b`), chosen by the JSON
schemas of the tools the request offers: an edit tool (a path and old_string/new_string, the
CLI's `replace`), else a whole-file write (a path and content, `write_file`), else a shell
tool (command, `run_shell_command`). When that tool's result carries an error it tries the
next way; once a result without error is in the history it answers FINAL_TEXT. A request that
asks for JSON (generationConfig.responseMimeType, as the CLI's model router does when no model
is named) gets an object filled from its schema.

Answers stream as server-sent events for `:streamGenerateContent?alt=sse` (a text in two
chunks, a function call in one) and come whole for `:generateContent`; `:countTokens` gets an
estimate; anything else a 404 in the API's error shape. Every request is recorded.

`delay` makes the model think that many seconds per turn (after the stream's headers, before
its first chunk); `mode="error"` answers every model call with HTTP 500 (after `delay`),
`mode="hang"` never answers one: the connection stays open until the fake stops.
"""

from __future__ import annotations

import json
import re
import shlex
import socket
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.agents.models.server import FakeServer, Handler, Recorded

FINAL_TEXT = "Fixed add() to return a + b."
TARGET = "calc.py"
OLD = "return a - b"
NEW = "return a + b"
FIXED_FILE = "def add(a, b):\n    return a + b\n"
SHELL_FIX = "sed -i 's/return a - b/return a + b/' calc.py"
MODEL_VERSION = "gemini-2.5-pro"
# The CLI's session context: "- **Workspace Directories:**\n  - /path/to/work".
WORKSPACE = re.compile(r"Workspace Directories:\**\s*\n\s*- (/[^\n]*)")

Mode = Literal["ok", "error", "hang"]
Json = dict[str, Any]


def action(request: Recorded) -> str:
    """What a model call asks for: `streamGenerateContent`, `countTokens`, ... or ''."""
    last = request.route.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


@dataclass
class ToolCall:
    name: str
    args: Json = field(default_factory=dict)


def declarations(body: Any) -> list[Json]:
    """The function declarations a generateContent request offers."""
    if not isinstance(body, dict):
        return []
    found: list[Json] = []
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            found += [d for d in tool.get("functionDeclarations") or [] if isinstance(d, dict)]
    return found


def _schema(decl: Json) -> tuple[dict[str, Any], list[str]]:
    schema = decl.get("parametersJsonSchema") or decl.get("parameters") or {}
    props = schema.get("properties") or {}
    required = [str(r) for r in schema.get("required") or []]
    return props, required


def _path_key(props: dict[str, Any]) -> str | None:
    for key in ("file_path", "absolute_path", "path", "filePath", "filename"):
        if key in props:
            return key
    return None


def choose_tool(
    decls: list[Json], workdir: str | None, new_file: tuple[str, str] | None = None
) -> ToolCall | None:
    """A call that fixes calc.py (or writes `new_file`, (path, text)) with one of the offered
    tools, or None if none fits."""
    name_, text, script = TARGET, FIXED_FILE, SHELL_FIX
    if new_file is not None:
        name_, text = new_file
        script = f"printf %s {shlex.quote(text)} > {shlex.quote(name_)}"
    target = f"{workdir.rstrip('/')}/{name_}" if workdir else name_
    edit = write = shell = None
    for decl in decls:
        props, _ = _schema(decl)
        name = str(decl.get("name", ""))
        path = _path_key(props)
        fits_edit = path is not None and {"old_string", "new_string"} <= props.keys()
        if path and fits_edit and edit is None and new_file is None:
            edit = ToolCall(name, {path: target, "old_string": OLD, "new_string": NEW})
        elif fits_edit:
            continue
        elif path and "content" in props and write is None:
            write = ToolCall(name, {path: target, "content": text})
        elif "command" in props and shell is None:
            shell = ToolCall(name, {"command": script})
    chosen = edit or write or shell
    if chosen is None:
        return None
    props, required = _schema(next(d for d in decls if d.get("name") == chosen.name))
    for key in required:
        if key not in chosen.args and props.get(key, {}).get("type") in ("string", "STRING"):
            chosen.args[key] = "Make add() return the sum a + b instead of the difference."
    if "dir_path" in props and workdir and chosen is shell:
        chosen.args["dir_path"] = workdir
    return chosen


def _texts(body: Any) -> list[str]:
    out: list[str] = []
    if not isinstance(body, dict):
        return out
    system = body.get("systemInstruction")
    items = [system] if isinstance(system, dict) else []
    items += [c for c in body.get("contents") or [] if isinstance(c, dict)]
    for item in items:
        out += [p["text"] for p in item.get("parts") or [] if isinstance(p.get("text"), str)]
    return out


def workdir_of(body: Any) -> str | None:
    """The working directory the CLI names in its context, if it does."""
    for text in _texts(body):
        found = WORKSPACE.search(text)
        if found:
            return found.group(1)
    return None


def _parts(body: Any) -> list[Json]:
    if not isinstance(body, dict):
        return []
    found: list[Json] = []
    for content in body.get("contents") or []:
        if isinstance(content, dict):
            found += [p for p in content.get("parts") or [] if isinstance(p, dict)]
    return found


def called(body: Any) -> list[str]:
    """The tools the model has called so far in this conversation."""
    return [str(p["functionCall"].get("name")) for p in _parts(body) if "functionCall" in p]


def last_call_failed(body: Any) -> bool:
    """Whether the latest tool result reports an error (the CLI puts it under `error`)."""
    results = [p["functionResponse"] for p in _parts(body) if "functionResponse" in p]
    if not results:
        return False
    response = results[-1].get("response")
    return isinstance(response, dict) and "error" in response


def sample(schema: Any) -> Any:
    """A value that fits a JSON schema (the API's OBJECT/STRING/... spelling or JSON Schema's)."""
    if not isinstance(schema, dict):
        return "ok"
    if schema.get("enum"):
        return schema["enum"][0]
    kind = str(schema.get("type", "string")).lower()
    if kind == "object":
        props = schema.get("properties") or {}
        return {key: sample(value) for key, value in props.items()}
    if kind == "array":
        return [sample(schema.get("items"))]
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return False
    return "scripted answer"


def reply_parts(body: Any, new_file: tuple[str, str] | None = None) -> list[Json]:
    """The scripted model's answer to one generateContent request."""
    config = body.get("generationConfig") if isinstance(body, dict) else None
    if isinstance(config, dict) and config.get("responseMimeType") == "application/json":
        # A side request (the CLI's model router, loop check, ...) that wants JSON back.
        schema = config.get("responseJsonSchema") or config.get("responseSchema")
        return [{"text": json.dumps(sample(schema))}]
    decls = declarations(body)
    tried = called(body)
    if decls and (not tried or last_call_failed(body)):
        # The first turn, or the last tool failed: the next way not yet tried.
        left = [d for d in decls if d.get("name") not in tried]
        call = choose_tool(left, workdir_of(body), new_file)
        if call is not None:
            return [{"functionCall": {"name": call.name, "args": call.args}}]
    return [{"text": FINAL_TEXT}]


def response(parts: list[Json], prompt_tokens: int, *, last: bool = True) -> Json:
    """One GenerateContentResponse; only the last chunk of a stream has a finishReason."""
    candidate: Json = {"content": {"role": "model", "parts": parts}, "index": 0}
    if last:
        candidate["finishReason"] = "STOP"
    return {
        "candidates": [candidate],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": 12 if last else 0,
            "totalTokenCount": prompt_tokens + (12 if last else 0),
        },
        "modelVersion": MODEL_VERSION,
        "responseId": "fake-response",
    }


def stream(parts: list[Json], prompt_tokens: int) -> list[Json]:
    """The answer as the chunks of a stream: a text in two pieces, as the API cuts text
    (the CLI prints each as its own delta), a function call whole."""
    text = parts[0].get("text") if len(parts) == 1 else None
    if not isinstance(text, str) or " " not in text:
        return [response(parts, prompt_tokens)]
    cut = text.index(" ", len(text) // 2) + 1
    return [
        response([{"text": text[:cut]}], prompt_tokens, last=False),
        response([{"text": text[cut:]}], prompt_tokens),
    ]


def error_body(code: int, status: str, message: str) -> Json:
    return {"error": {"code": code, "message": message, "status": status}}


class GeminiFake(FakeServer):
    """The fake API server; a context manager that serves on 127.0.0.1 on a free port."""

    def __init__(
        self, *, mode: Mode = "ok", delay: float = 0.0, write: tuple[str, str] | None = None
    ) -> None:
        self.mode: Mode = mode
        super().__init__(_handler(self), delay=delay, write=write)

    def model_calls(self, asked: str = "") -> list[Recorded]:
        with self._lock:
            calls = [r for r in self.requests if action(r)]
        return [r for r in calls if not asked or action(r) == asked]


def _handler(fake: GeminiFake) -> type[Handler]:
    class GeminiHandler(Handler):
        owner = fake

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def _handle(self) -> None:
            recorded = self.recorded()
            body, asked = recorded.body, action(recorded)
            if asked not in ("streamGenerateContent", "generateContent", "countTokens"):
                self._json(404, error_body(404, "NOT_FOUND", f"no such method: {recorded.route}"))
                return
            if self.held(fake.mode == "hang", 0):
                return
            tokens = max(1, int(self.headers.get("Content-Length") or 0) // 4)
            if asked == "countTokens":
                self._json(200, {"totalTokens": tokens})
            elif fake.mode == "error":
                if not fake.wait_stopping(fake.delay):
                    self._json(500, error_body(500, "INTERNAL", "scripted failure"))
            elif asked == "generateContent":
                if not fake.wait_stopping(fake.delay):
                    fake.report(tokens, 12)
                    self._json(200, response(reply_parts(body, fake.write), tokens))
            else:
                fake.report(tokens, 12)
                self._sse(stream(reply_parts(body, fake.write), tokens), fake)

        def _json(self, status: int, payload: Json) -> None:
            self.send_json(status, payload, "application/json; charset=UTF-8")

        def _sse(self, chunks: list[Json], fake: GeminiFake) -> None:
            # No length: the stream ends when the connection closes, as the API's does. The
            # headers go out at once and the model "thinks" (`delay`) before its first chunk:
            # the CLI gives up on a response whose headers take 60 s.
            self.start_events()
            try:
                self.wfile.flush()
                if fake.wait_stopping(fake.delay):
                    return
                for chunk in chunks:
                    self.wfile.write(f"data: {json.dumps(chunk)}\r\n\r\n".encode())
                    self.wfile.flush()
            except OSError:
                pass

    return GeminiHandler


def free_port() -> int:
    """A port nothing listens on (for the "API not listening" case)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
