"""Reading a call's usage from each API's answer, in any pieces (pure); pricing it."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from app.parsing import parse_prices
from jobs.boundary.usage import WINDOW, Usage, UsageReader
from jobs.spend.prices import cost_of


def sse(*events: Mapping[str, object], named: bool = False) -> bytes:
    out = b""
    for event in events:
        if named:
            out += f"event: {event.get('type')}\n".encode()
        out += b"data: " + json.dumps(event).encode() + b"\n\n"
    return out


def read(reader: UsageReader, data: bytes, piece: int) -> Usage | None:
    for start in range(0, len(data), piece):
        reader.feed(data[start : start + piece])
    return reader.finish()


ANTHROPIC = sse(
    {"type": "message_start", "message": {"model": "claude-sonnet-4-5", "usage": {
        "input_tokens": 12, "output_tokens": 1, "cache_read_input_tokens": 30,
        "cache_creation_input_tokens": 5}}},
    {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "hi"}},
    {"type": "message_delta", "usage": {"output_tokens": 42}},
    named=True,
)  # fmt: skip


@pytest.mark.parametrize("piece", [1, 7, 64, 100_000])
def test_an_anthropic_stream_in_any_pieces(piece: int) -> None:
    usage = read(UsageReader("anthropic", "asked", True), ANTHROPIC, piece)
    assert usage == Usage("claude-sonnet-4-5", 12, 42, 30, 5)


def test_chat_completions_usage_comes_from_the_last_chunk_and_cached_input_is_apart() -> None:
    chunks = sse(
        {"model": "gpt-4o", "choices": [{"delta": {"content": "x"}}], "usage": None},
        {"model": "gpt-4o", "choices": [], "usage": {
            "prompt_tokens": 100, "completion_tokens": 20,
            "prompt_tokens_details": {"cached_tokens": 60}}},
    ) + b"data: [DONE]\n\n"  # fmt: skip
    assert read(UsageReader("openai", "gpt-4o", True), chunks, 5) == Usage("gpt-4o", 40, 20, 60)


def test_openrouter_reports_its_own_cost() -> None:
    body = json.dumps({"model": "openai/gpt-4o", "usage": {
        "prompt_tokens": 10, "completion_tokens": 2, "cost": 0.0031}}).encode()  # fmt: skip
    usage = read(UsageReader("openrouter", "x", False), body, 3)
    assert usage is not None and usage.cost == 0.0031
    assert cost_of(usage, "openrouter", {}) == 0.0031


@pytest.mark.parametrize("cost", ["NaN", "Infinity", "-1.5", "true", '"0.01"'])
def test_a_cost_that_is_not_a_sum_of_dollars_is_not_taken(cost: str) -> None:
    # A NaN spend never reaches a cap (NaN >= cap is false); a negative one lowers the spend.
    body = b'{"usage": {"prompt_tokens": 10, "completion_tokens": 2, "cost": %s}}' % cost.encode()
    usage = read(UsageReader("openrouter", "x", False), body, 7)
    assert usage == Usage("x", 10, 2)


def test_a_huge_responses_completed_event_is_read_from_its_tail() -> None:
    text = "y" * (3 * WINDOW)
    done = {"type": "response.completed", "response": {"model": "gpt-5", "output": [
        {"type": "message", "content": [{"type": "output_text", "text": text}]}],
        "usage": {"input_tokens": 7, "output_tokens": 9000,
                  "input_tokens_details": {"cached_tokens": 0}}}}  # fmt: skip
    reader = UsageReader("openai", "gpt-5", True)
    usage = read(reader, sse(done, named=True), 65536)
    assert usage == Usage("gpt-5", 7, 9000)
    assert not reader._line and not reader._tail  # nothing held after the answer


def test_gemini_as_server_sent_events_and_as_one_json_array() -> None:
    last = {"usageMetadata": {"promptTokenCount": 50, "candidatesTokenCount": 8,
                              "thoughtsTokenCount": 4, "cachedContentTokenCount": 20},
            "modelVersion": "gemini-2.5-pro"}  # fmt: skip
    first = {"usageMetadata": {"promptTokenCount": 50}}
    expected = Usage("gemini-2.5-pro", 30, 12, 20)
    assert read(UsageReader("gemini", "g", True), sse(first, last), 9) == expected
    array = json.dumps([first, last], indent=2).encode()
    assert read(UsageReader("gemini", "g", False), array, 9) == expected


def test_an_answer_without_usage_says_nothing() -> None:
    assert read(UsageReader("anthropic", "m", False), b'{"type":"error"}', 4) is None
    assert read(UsageReader("openai", "m", True), b"data: [DONE]\n\n", 4) is None


def test_prices_come_from_the_override_or_the_table_or_are_unknown() -> None:
    usage = Usage("gpt-4o", input=1_000_000, output=1_000_000)
    assert cost_of(usage, "openai", {"gpt-4o": (1.0, 2.0)}) == 3.0
    table = cost_of(usage, "openai", {})
    assert table is not None and table > 0
    assert cost_of(Usage("no-such-model-anywhere", 10, 10), "openai", {}) is None
    assert parse_prices("a=1/2, vendor/b=0.5/3") == {"a": (1.0, 2.0), "vendor/b": (0.5, 3.0)}
    for bad in ("a=1", "a", "=1/2", "a=x/2", "a=-1/2"):
        with pytest.raises(ValueError, match="model=IN/OUT"):
            parse_prices(bad)


def test_a_long_stream_is_read_at_its_start_and_its_end_only() -> None:
    start, *_, end = sse(
        {"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": 3}}},
        {"type": "message_delta", "usage": {"output_tokens": 9}},
        named=True,
    ).partition(b"\n\n")  # fmt: skip
    middle = sse(*[{"type": "content_block_delta", "delta": {"text": "x" * 100}}] * 2000)
    stream = start + b"\n\n" + middle + end
    assert len(middle) > 3 * WINDOW
    assert read(UsageReader("anthropic", "m", True), stream, 4096) == Usage("m", 3, 9)


def framed(*chunks: bytes, extension: bytes = b"") -> bytes:
    """An event stream as it comes on the wire in chunked framing."""
    return b"".join(b"%x%s\r\n%s\r\n" % (len(c), extension, c) for c in chunks) + b"0\r\n\r\n"


@pytest.mark.parametrize("piece", [1, 7, 64, 100_000])
def test_a_usage_event_split_across_chunks_is_read_from_the_framed_stream(piece: int) -> None:
    """The gateway passes a stream in the upstream's own chunked framing, which may cut an
    event, its usage with it, anywhere; at the stream's start and at its end."""
    start, delta = ANTHROPIC.split(b"\n\n")[0] + b"\n\n", ANTHROPIC.split(b"\n\n", 2)[2]
    cut, end = start.index(b"input_tokens") + 3, delta.index(b"output_tokens") + 5
    stream = framed(start[:cut], start[cut:], delta[:end], delta[end:])
    assert read(UsageReader("anthropic", "m", True), stream, piece) == Usage(
        "claude-sonnet-4-5", 12, 42, 30, 5)  # fmt: skip
    middle = sse(*[{"type": "content_block_delta", "delta": {"text": "x" * 100}}] * 2000)
    end = delta.index(b'"usage"') + 3  # the key itself cut, in the window kept to the end
    long = framed(start[:cut], start[cut:] + middle, delta[:end], delta[end:], extension=b";x=1")
    assert read(UsageReader("anthropic", "m", True), long, max(piece, 4096)) == Usage(
        "claude-sonnet-4-5", 12, 42, 30, 5)  # fmt: skip
