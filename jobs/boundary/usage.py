"""What one model call used, read from the answer as each API reports it: pure, fed in pieces.

Each vendor's own fields, streamed or not:
- Anthropic Messages: `usage` of the message (JSON) or of `message_start` and `message_delta`
  (a stream; the later figure of a field wins).
- OpenAI Chat Completions (and OpenRouter, which adds `usage.cost` in USD): `usage` of the body
  or of the stream's last chunk (sent only when `stream_options.include_usage` is asked for).
- OpenAI Responses: `usage` of the response (JSON) or of `response.completed`'s response.
- Gemini: `usageMetadata` of the body or of the stream's last chunk.

The answer is never held whole, nor scanned whole: these APIs report usage at a stream's start
(Anthropic's `message_start`) and at its end (everything else, cumulative), so only the lines
of its first WINDOW bytes are read as they pass, and of the rest only the last WINDOW bytes
are kept, to be read at its end. A body is kept whole up to WINDOW, else its last WINDOW bytes,
where its usage lies.

A stream may be fed as it came on the wire, in its chunked framing (the gateway passes a 2xx
stream so): an event data line holds no CR or LF, so a CRLF, hex digits (and an extension) and
a CRLF seen where lines are read can only be a chunk's framing, and are taken out there first.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

Api = Literal["anthropic", "openai", "gemini", "openrouter"]
APIS: tuple[Api, ...] = ("anthropic", "openai", "gemini", "openrouter")

WINDOW = 64 * 1024
USAGE_KEY = re.compile(rb'"(usage|usageMetadata)"\s*:\s*\{')
# The end of one chunk and the size line of the next, which may cut a line anywhere.
FRAMING = re.compile(rb"\r\n[0-9a-fA-F]+(?:;[^\r\n]*)?\r\n")
# What may be the start of one, at the end of what came so far (an extension longer than this
# is not looked for: the APIs send none).
MAX_SIZE_LINE = 256
OPEN_FRAMING = re.compile(rb"\r(?:\n[0-9a-fA-F]*(?:;[^\r\n]*)?\r?)?\Z")


@dataclass(frozen=True)
class Usage:
    """Tokens of one call (input excludes cached input), and the API's own cost if it gave one."""

    model: str
    input: int = 0
    output: int = 0
    cached: int = 0  # input read from the API's cache
    cache_write: int = 0  # input written to it (Anthropic bills it apart)
    cost: float | None = None  # USD, as the API reported it
    said: bool = True  # False: the answer said nothing of what the call used

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
        self._seen = 0
        self._line = bytearray()  # the stream's line in progress, while its start is read
        # Then the last pieces of the answer (or of a body), WINDOW bytes at least when it has
        # them: kept by reference, never copied until the end.
        self._tail: list[bytes] = []
        self._tail_size = 0
        self._cut = False  # whether the start of what is kept was dropped
        self._fields: dict[str, Any] = {}

    def feed(self, data: bytes) -> None:
        if self.streamed and self._seen < WINDOW:
            first = WINDOW - self._seen
            if len(data) > first:
                # Of a large read only the window's part is read now; the rest is kept as any
                # later read (a stream's first read may hold a whole socket's worth).
                self._start(data[:first])
                data = data[first:]
            else:
                self._start(data)
                return
        self._seen += len(data)
        self._tail.append(data)
        self._tail_size += len(data)
        while self._tail_size - len(self._tail[0]) >= WINDOW:
            self._tail_size -= len(self._tail.pop(0))
            self._line.clear()  # older still than what was dropped
            self._cut = True

    def _start(self, data: bytes) -> None:
        """The stream's first lines: each whole line that carries usage is read now."""
        self._seen += len(data)
        self._line += data
        self._line[:] = FRAMING.sub(b"", self._line)
        # A line is read once it has come whole: not up to a LF that may be a framing's.
        opened = OPEN_FRAMING.search(self._line, max(0, len(self._line) - MAX_SIZE_LINE))
        last = self._line.rfind(b"\n", 0, opened.start() if opened else len(self._line))
        if last >= 0:
            self._lines(bytes(self._line[:last]), self._cut)
            del self._line[: last + 1]
            self._cut = False
        if len(self._line) > WINDOW:
            del self._line[:-WINDOW]
            self._cut = True

    def _lines(self, text: bytes, cut: bool) -> None:
        """The lines of `text` that carry usage, read; not the others (a thousand in a window
        of small events)."""
        text = FRAMING.sub(b"", text)  # first: it may cut a usage key too
        end = 0
        for found in USAGE_KEY.finditer(text):
            if found.start() < end:
                continue  # on the line just read
            start = text.rfind(b"\n", 0, found.start()) + 1
            end = text.find(b"\n", found.end())
            end = len(text) if end < 0 else end
            line = text[start:end]
            if start == 0 and cut:
                # The end of a line whose start was dropped: its last usage object, if any.
                self._read(line, True)
            elif self.api == "gemini" or line.startswith(b"data:"):
                # Anthropic and OpenAI send `event:` lines too; Gemini's are data lines only.
                self._read(line.removeprefix(b"data:").strip(), False)

    def _read(self, text: bytes, cut: bool) -> None:
        if text and USAGE_KEY.search(text):
            for value in _usage_objects(text, cut):
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
        kept = bytes(self._line) + b"".join(self._tail)
        self._line.clear()
        self._tail.clear()
        if self.streamed:
            self._lines(kept, self._cut)
        else:
            self._read(kept, self._cut)
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
        cost=_dollars(cost),
    )


def _dollars(value: Any) -> float | None:
    # A NaN cost would never reach a cap (NaN >= cap is false), a negative one would lower it.
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if number and math.isfinite(value) and value >= 0 else None


def _usage_objects(text: bytes, cut: bool) -> list[dict[str, Any]]:
    """The JSON objects that may carry usage: the whole value when it was kept whole, else
    the last usage object found in what is left of it."""
    if not cut:
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
