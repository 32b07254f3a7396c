"""A scripted fake of the OpenAI Responses API, for running real agent CLIs (Codex) in tests.

    with OpenAIResponses() as fake:
        ...  # point the CLI's provider base_url at fake.base_url, then run it
        assert fake.turns

Serves `POST /v1/responses` (a `stream: true` request gets Server-Sent Events:
response.created, response.output_item.added, response.output_text.delta or
response.function_call_arguments.delta / response.custom_tool_call_input.delta,
response.output_item.done, response.completed; one without `stream` gets the response object
as JSON) and `GET /v1/models`, on 127.0.0.1 at a free port. Anything else, the WebSocket
upgrade of `GET /v1/responses` included, is recorded and answered 404.

The scripted model fixes calc.py (`return a - b` becomes `return a + b`). On its first turn it
calls one of the tools the request offers, picked by name and JSON schema, in this order:
apply_patch (a freeform custom tool, or a function taking `input`), a shell tool taking an argv
(`command: [..]`), one taking a command line (`cmd` or `command` string), or Codex's code-mode
`exec` (JavaScript that calls `tools.apply_patch`). Tools are read both from the request's
`tools` and from `additional_tools` items in its `input`. Once the input holds a tool's output
it answers FINAL; when that output says the call failed, it tries the next candidate first.

`delay` sleeps before each answer (a slow model); `mode="error"` answers every /v1/responses
request with HTTP 500, `mode="hang"` never answers (the connection stays open until the server
stops), `mode="stall"` sends the stream's headers and `response.created`, then nothing more.
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

from tests.agents.models.calc import FINAL, PATCH, SHELL_COMMAND
from tests.agents.models.server import FakeServer, Handler, Recorded

Mode = Literal["ok", "error", "hang", "stall"]
Json = dict[str, Any]

FAILED = re.compile(
    r"\berror\b|\bfailed\b|not found|no such file|denied|rejected|invalid|panicked"
    r"|exit code:? [1-9]|exited with code [1-9]",
    re.IGNORECASE,
)
OUTPUT_TYPES = ("function_call_output", "custom_tool_call_output", "local_shell_call_output")
CALL_TYPES = ("function_call", "custom_tool_call", "local_shell_call")


class OpenAIResponses(FakeServer):
    """The fake server; a context manager that starts and stops it."""

    def __init__(
        self,
        *,
        delay: float = 0.0,
        mode: Mode = "ok",
        models: Sequence[str] = ("forgehand-fake",),
        chunk_size: int = 12,
        write: tuple[str, str] | None = None,
    ) -> None:
        self.mode: Mode = mode
        self.models = tuple(models)
        self.chunk_size = chunk_size
        super().__init__(_Handler, delay=delay, write=write)

    @property
    def turns(self) -> list[Recorded]:
        """The POST /v1/responses requests: one per model turn (and per retry)."""
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/responses")]


# -- the scripted model ----------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """A tool call the model makes: a function call (JSON arguments) or a custom one (text)."""

    name: str
    kind: Literal["function_call", "custom_tool_call"]
    payload: str  # the JSON arguments, or the freeform input
    namespace: str | None = None


def answer(body: Mapping[str, Any], write: tuple[str, str] | None = None) -> Call | str:
    """What the scripted model says to one request: a tool call, or its final text."""
    items: list[Json] = [i for i in _input_items(body.get("input")) if isinstance(i, dict)]
    tools = offered_tools(body)
    tried = [_call_name(i) for i in items if i.get("type") in CALL_TYPES]
    outputs = [i for i in items if i.get("type") in OUTPUT_TYPES]
    if outputs and not _failed(outputs[-1]):
        return FINAL
    for call in candidates(tools, write):
        if call.name not in tried:
            return call
    if outputs:
        return "I could not edit calc.py: every tool call failed."
    return "I could not edit calc.py with the tools offered."


def offered_tools(body: Mapping[str, Any]) -> list[tuple[str | None, Json]]:
    """(namespace, tool) for each tool offered: in `tools` and in `additional_tools` items."""
    found: list[tuple[str | None, Json]] = []

    def walk(tools: Any, namespace: str | None) -> None:
        for tool in tools if isinstance(tools, list) else []:
            if not isinstance(tool, dict):
                continue
            if tool.get("type") == "namespace":
                walk(tool.get("tools"), str(tool.get("name") or "") or None)
            else:
                found.append((namespace, tool))

    walk(body.get("tools"), None)
    for item in _input_items(body.get("input")):
        if isinstance(item, dict) and item.get("type") == "additional_tools":
            walk(item.get("tools"), None)
    return found


def candidates(
    tools: Sequence[tuple[str | None, Json]], write: tuple[str, str] | None = None
) -> Iterator[Call]:
    """The calls that would fix calc.py with these tools (or write `write`), best first."""
    patch, shell = PATCH, SHELL_COMMAND
    if write is not None:
        path, text = write
        added = "".join(f"+{line}\n" for line in text.splitlines())
        patch = f"*** Begin Patch\n*** Add File: {path}\n{added}*** End Patch\n"
        shell = f"printf %s {shlex.quote(text)} > {shlex.quote(path)}"
    by_rank: list[tuple[int, Call]] = []
    for namespace, tool in tools:
        name = str(tool.get("name") or "")
        kind = tool.get("type")
        # "functions" is the default namespace: its calls carry no namespace.
        ns = None if namespace in (None, "functions") else namespace
        props = _properties(tool)
        if kind == "custom" and name == "apply_patch":
            by_rank.append((0, Call(name, "custom_tool_call", patch, ns)))
        elif kind == "function" and name == "apply_patch" and "input" in props:
            by_rank.append((0, Call(name, "function_call", _args(input=patch), ns)))
        elif kind == "function" and _is_array(props.get("command")):
            argv = ["bash", "-lc", shell]
            by_rank.append((1, Call(name, "function_call", _args(command=argv), ns)))
        elif kind == "function" and _is_string(props.get("cmd")):
            by_rank.append((2, Call(name, "function_call", _args(cmd=shell), ns)))
        elif kind == "function" and name in ("shell", "bash") and _is_string(props.get("command")):
            by_rank.append((2, Call(name, "function_call", _args(command=shell), ns)))
        elif kind == "custom" and name == "exec":
            script = f"text(await tools.apply_patch({json.dumps(patch)}));\n"
            by_rank.append((3, Call(name, "custom_tool_call", script, ns)))
    by_rank.sort(key=lambda pair: pair[0])
    for _, call in by_rank:
        yield call


def _input_items(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    return []


def _properties(tool: Mapping[str, Any]) -> Json:
    params = tool.get("parameters")
    if isinstance(params, dict) and isinstance(params.get("properties"), dict):
        return dict(params["properties"])
    return {}


def _is_array(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "array"


def _is_string(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "string"


def _args(**values: Any) -> str:
    return json.dumps(values)


def _call_name(item: Mapping[str, Any]) -> str:
    return str(item.get("name") or item.get("type") or "")


def _failed(output: Mapping[str, Any]) -> bool:
    value = output.get("output")
    if isinstance(value, list):
        text = " ".join(str(part.get("text", "")) for part in value if isinstance(part, dict))
    elif isinstance(value, dict):
        text = json.dumps(value)
    else:
        text = str(value or "")
    # Codex's shell tools report "Process exited with code N"; patches report "Success" / errors.
    if re.search(r"exited with code 0\b|\bSuccess\b", text):
        return False
    return bool(FAILED.search(text))


# -- the wire format -------------------------------------------------------------------------


def _ident(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def _usage() -> Json:
    return {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 20,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 120,
    }


def _response(rid: str, model: str, status: str, output: list[Json]) -> Json:
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model,
        "output": output,
        "usage": _usage() if status == "completed" else None,
    }


def _item_for(reply: Call | str) -> Json:
    if isinstance(reply, str):
        return {
            "type": "message",
            "id": _ident("msg"),
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": reply, "annotations": []}],
        }
    item: Json = {
        "type": reply.kind,
        "id": _ident("fc" if reply.kind == "function_call" else "ctc"),
        "status": "completed",
        "call_id": _ident("call"),
        "name": reply.name,
    }
    if reply.namespace:
        item["namespace"] = reply.namespace
    item["arguments" if reply.kind == "function_call" else "input"] = reply.payload
    return item


def events(reply: Call | str, model: str, chunk_size: int) -> Iterator[Json]:
    """The SSE events of one streamed response carrying `reply`."""
    rid = _ident("resp")
    done = _item_for(reply)
    yield {"type": "response.created", "response": _response(rid, model, "in_progress", [])}
    yield {"type": "response.in_progress", "response": _response(rid, model, "in_progress", [])}
    added = dict(done, status="in_progress")
    if isinstance(reply, str):
        added["content"] = []
        text, delta_type = reply, "response.output_text.delta"
    elif reply.kind == "function_call":
        added["arguments"] = ""
        text, delta_type = reply.payload, "response.function_call_arguments.delta"
    else:
        added["input"] = ""
        text, delta_type = reply.payload, "response.custom_tool_call_input.delta"
    yield {"type": "response.output_item.added", "output_index": 0, "item": added}
    if isinstance(reply, str):
        part = {"type": "output_text", "text": "", "annotations": []}
        yield {
            "type": "response.content_part.added",
            "item_id": done["id"],
            "output_index": 0,
            "content_index": 0,
            "part": part,
        }
    step = max(1, chunk_size)
    for start in range(0, len(text), step):
        yield {
            "type": delta_type,
            "item_id": done["id"],
            "output_index": 0,
            "content_index": 0,
            "delta": text[start : start + step],
        }
    if isinstance(reply, str):
        yield {
            "type": "response.output_text.done",
            "item_id": done["id"],
            "output_index": 0,
            "content_index": 0,
            "text": text,
        }
        yield {
            "type": "response.content_part.done",
            "item_id": done["id"],
            "output_index": 0,
            "content_index": 0,
            "part": {"type": "output_text", "text": text, "annotations": []},
        }
    yield {"type": "response.output_item.done", "output_index": 0, "item": done}
    yield {"type": "response.completed", "response": _response(rid, model, "completed", [done])}


class _Handler(Handler):
    owner: OpenAIResponses

    def _not_found(self) -> None:
        self.send_json(404, {"error": {"message": f"no route {self.command} {self.path}"}})

    def do_GET(self) -> None:
        self.recorded()
        path = self.path.split("?", 1)[0].rstrip("/")
        if path.endswith("/models"):
            models = self.owner.models
            data = [{"id": m, "object": "model", "owned_by": "forgehand"} for m in models]
            self.send_json(200, {"object": "list", "data": data})
        else:
            self._not_found()

    def do_POST(self) -> None:
        body = self.recorded().body
        if not self.path.split("?", 1)[0].rstrip("/").endswith("/responses"):
            self._not_found()
            return
        owner = self.owner
        if self.held(owner.mode == "hang", owner.delay):
            return
        if owner.mode == "error":
            error = {"message": "scripted failure", "type": "server_error", "code": None}
            self.send_json(500, {"error": error})
            return
        request: Json = body if isinstance(body, dict) else {}
        reply = answer(request, owner.write)
        model = str(request.get("model") or owner.models[0])
        owner.report(_usage()["input_tokens"], _usage()["output_tokens"])
        if not request.get("stream"):
            self.send_json(200, _response(_ident("resp"), model, "completed", [_item_for(reply)]))
            return
        self.start_events()
        for event in events(reply, model, owner.chunk_size):
            chunk = f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"
            self.wfile.write(chunk.encode())
            self.wfile.flush()
            if owner.mode == "stall":
                owner.wait_stopping()
                return
