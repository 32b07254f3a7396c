"""What one model call used, read from the answer as each API reports it: pure, fed in pieces.

Each vendor's own fields, streamed or not:
- Anthropic Messages: `usage` of the message (JSON) or of `message_start` and `message_delta`
  (a stream; the later figure of a field wins).
- OpenAI Chat Completions (and OpenRouter, which adds `usage.cost` in USD): `usage` of the body
  or of the stream's last chunk (sent only when `stream_options.include_usage` is asked for).
- OpenAI Responses: `usage` of the response (JSON) or of `response.completed`'s response.
- Gemini: `usageMetadata` of the body or of the stream's last chunk.

The answer is never held whole: a line of a stream (or a body) is parsed when it is small; of
a larger one only its last LARGE_TAIL bytes are kept, where these APIs put their usage.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

Api = Literal["anthropic", "openai", "gemini", "openrouter"]
APIS: tuple[Api, ...] = ("anthropic", "openai", "gemini", "openrouter")

# A line (or body) up to this size is parsed whole; of a larger one the last LARGE_TAIL bytes.
SMALL = 256 * 1024
LARGE_TAIL = 64 * 1024
USAGE_KEY = re.compile(rb'"(usage|usageMetadata)"\s*:\s*\{')


@dataclass(frozen=True)
class Usage:
    """Tokens of one call (input excludes cached input), and the API's own cost if it gave one."""

    model: str
    input: int = 0
    output: int = 0
    cached: int = 0  # input read from the API's cache
    cache_write: int = 0  # input written to it (Anthropic bills it apart)
    cost: float | None = None  # USD, as the API reported it

    @property
    def tokens(self) -> int:
        return self.input + self.output + self.cached + self.cache_write


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class UsageReader:
    """Fed an answer's bytes as they pass, says what the call used (None if it said nothing)."""

    def __init__(self, api: Api, model: str, streamed: bool) -> None:
        self.api = api
        self.model = model
        self.streamed = streamed
        self._line = bytearray()
        self._large = False
        self._start = b""  # how a line cut to its tail began (`data:` or not)
        self._fields: dict[str, Any] = {}

    def feed(self, data: bytes) -> None:
        if not self.streamed:
            self._keep(data)
            return
        last = data.rfind(b"\n")
        if last < 0:
            self._keep(data)
            return
        # Only lines that carry a usage object are looked at one by one: most of a long
        # answer passes with one search of each chunk.
        head = bytes(self._line) + data[:last] if self._line else data[:last]
        large, start = self._large, self._start
        self._line.clear()
        self._large = False
        if USAGE_KEY.search(head):
            for i, line in enumerate(head.split(b"\n")):
                self._end_line(line, large and i == 0, start)
        self._keep(data[last + 1 :])

    def _keep(self, data: bytes) -> None:
        self._line += data
        if len(self._line) > SMALL:
            if not self._large:
                self._start = bytes(self._line[:5])
            self._large = True
            del self._line[:-LARGE_TAIL]

    def _end_line(self, line: bytes, cut: bool, start: bytes = b"") -> None:
        """One whole line of a stream; `cut`: only its tail was kept, and it began `start`."""
        if self.api != "gemini" and not (start if cut else line).startswith(b"data:"):
            # Anthropic and OpenAI send `event:` lines too; Gemini's SSE is data lines only.
            return
        text = line.removeprefix(b"data:").strip()
        if text and USAGE_KEY.search(text):
            self._read(text, cut or len(text) > SMALL)

    def _read(self, text: bytes, large: bool) -> None:
        found = _usage_objects(text, large)
        for value in found:
            self._take(value)

    def _take(self, value: dict[str, Any]) -> None:
        api = self.api
        if api == "anthropic":
            message = _dict(value.get("message"))
            usage = _dict(value.get("usage")) or _dict(message.get("usage"))
            if isinstance(message.get("model"), str) or isinstance(value.get("model"), str):
                self.model = str(message.get("model") or value.get("model"))
        elif api == "gemini":
            usage = _dict(value.get("usageMetadata"))
            if isinstance(value.get("modelVersion"), str):
                self.model = value["modelVersion"]
        else:
            response = _dict(value.get("response"))
            usage = _dict(value.get("usage")) or _dict(response.get("usage"))
            model = value.get("model") or response.get("model")
            if isinstance(model, str) and model:
                self.model = model
        # A later figure of a field replaces an earlier one: streams repeat or complete them.
        self._fields |= {k: v for k, v in usage.items() if v is not None}

    def finish(self) -> Usage | None:
        if self._line:
            if self.streamed:
                self._end_line(bytes(self._line), self._large, self._start)
                self._line.clear()
            else:
                self._read(bytes(self._line), self._large)
                self._line.clear()
        if not self._fields:
            return None
        return _usage(self.api, self.model, self._fields)


def _usage(api: Api, model: str, f: dict[str, Any]) -> Usage:
    if api == "anthropic":
        return Usage(
            model,
            input=_int(f.get("input_tokens")),
            output=_int(f.get("output_tokens")),
            cached=_int(f.get("cache_read_input_tokens")),
            cache_write=_int(f.get("cache_creation_input_tokens")),
        )
    if api == "gemini":
        cached = _int(f.get("cachedContentTokenCount"))
        return Usage(
            model,
            input=max(0, _int(f.get("promptTokenCount")) - cached),
            # Thinking is billed as output.
            output=_int(f.get("candidatesTokenCount")) + _int(f.get("thoughtsTokenCount")),
            cached=cached,
        )
    # Chat Completions name them prompt/completion; Responses input/output.
    details = _dict(f.get("prompt_tokens_details")) or _dict(f.get("input_tokens_details"))
    cached = _int(details.get("cached_tokens"))
    given = _int(f.get("prompt_tokens")) or _int(f.get("input_tokens"))
    cost = f.get("cost")
    return Usage(
        model,
        input=max(0, given - cached),
        output=_int(f.get("completion_tokens")) or _int(f.get("output_tokens")),
        cached=cached,
        cost=float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None,
    )


def _usage_objects(text: bytes, large: bool) -> list[dict[str, Any]]:
    """The JSON objects that may carry usage: the whole value when it was kept whole, else
    the last usage object found in its tail, with what model the tail names."""
    if not large:
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return [value]
        if isinstance(value, list):  # Gemini's non-SSE stream: an array of chunks
            return [v for v in value if isinstance(v, dict)]
    found = list(USAGE_KEY.finditer(text))
    if not found:
        return []
    last = found[-1]
    body = _balanced(text, last.end() - 1)
    if body is None:
        return []
    try:
        usage = json.loads(body)
    except ValueError:
        return []
    return [{last.group(1).decode(): usage}] if isinstance(usage, dict) else []


def _balanced(text: bytes, start: int) -> bytes | None:
    """The JSON object that starts at text[start] (`{`), or None if it does not end."""
    depth, quoted, escaped = 0, False, False
    for i in range(start, len(text)):
        c = text[i]
        if quoted:
            if escaped:
                escaped = False
            elif c == 0x5C:  # backslash
                escaped = True
            elif c == 0x22:
                quoted = False
        elif c == 0x22:
            quoted = True
        elif c == 0x7B:
            depth += 1
        elif c == 0x7D:
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    return None
