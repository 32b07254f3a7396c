"""The model gateway against the scripted model servers and hostile upstreams: keys, usage,
streaming, faults. Served on its own loopback port (as under AGENT_SANDBOX=none); the
sandboxed path, through the bridge and the egress socket, is proven in test_gateway_attacks."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from jobs.boundary.gateway import (
    MAX_CALLS,
    Admit,
    Gateway,
    agent_variables,
    new_placeholder,
    upstreams,
)
from jobs.boundary.usage import Api, Usage
from simulator.server import read_request
from tests.agents.models.anthropic import FakeAnthropic
from tests.agents.models.calc import FINAL
from tests.agents.models.gemini import GeminiFake
from tests.agents.models.openai_chat import OpenAIChat
from tests.agents.models.openai_responses import OpenAIResponses

REAL = "sk-real-key-0123456789abcdef"


@contextmanager
def gateway(
    env: dict[str, str], admit: Admit = lambda api, model: None
) -> Iterator[tuple[Gateway, str, list[tuple[Api, Usage]]]]:
    calls: list[tuple[Api, Usage]] = []
    found = upstreams(env)
    with Gateway(found, new_placeholder(), admit, lambda a, u: calls.append((a, u))) as gw:
        yield gw, gw.listen(), calls


def post(
    url: str, path: str, body: Any, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    data = json.dumps(body).encode()
    connection.request("POST", path, data, {"Content-Type": "application/json", **headers})
    response = connection.getresponse()
    out = response.read()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, out


def sse_data(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for line in raw.decode().splitlines():
        if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
            out.append(json.loads(line[5:]))
    return out


ANTHROPIC_BODY = {"model": "claude-sonnet-4-5", "max_tokens": 100,
                  "messages": [{"role": "user", "content": "hello"}]}  # fmt: skip


def test_an_anthropic_stream_passes_with_the_real_key_and_is_metered_as_reported() -> None:
    with (
        FakeAnthropic() as api,
        gateway({"ANTHROPIC_API_KEY": REAL, "ANTHROPIC_BASE_URL": api.url}) as (gw, url, calls),
    ):
        body = ANTHROPIC_BODY | {"stream": True}
        status, headers, raw = post(url, "/anthropic/v1/messages", body,
                                    {"x-api-key": gw.placeholder})  # fmt: skip
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = sse_data(raw)
    assert [e["type"] for e in events][-1] == "message_stop"
    reported = events[0]["message"]["usage"]
    output = next(e for e in events if e["type"] == "message_delta")["usage"]["output_tokens"]
    # The upstream saw the real key, never the placeholder.
    assert api.requests[0].headers["x-api-key"] == REAL
    assert gw.placeholder not in json.dumps(api.requests[0].headers)
    (api_name, usage), = calls  # fmt: skip
    assert api_name == "anthropic" and usage.model == "claude-sonnet-4-5"
    assert (usage.input, usage.output) == (reported["input_tokens"], output)


def test_an_anthropic_answer_in_one_body_is_metered_too() -> None:
    with (
        FakeAnthropic() as api,
        gateway({"ANTHROPIC_API_KEY": REAL, "ANTHROPIC_BASE_URL": api.url}) as (gw, url, calls),
    ):
        status, _, raw = post(url, "/anthropic/v1/messages", ANTHROPIC_BODY,
                              {"x-api-key": gw.placeholder})  # fmt: skip
    assert status == 200
    reported = json.loads(raw)["usage"]
    assert calls[0][1].input == reported["input_tokens"]
    assert calls[0][1].output == reported["output_tokens"]


def test_a_chat_completions_stream_is_asked_for_its_usage() -> None:
    with (
        OpenAIChat() as api,
        gateway({"OPENAI_API_KEY": REAL, "OPENAI_BASE_URL": api.base_url}) as (gw, url, calls),
    ):
        body = {"model": "gpt-4o", "stream": True,
                "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
        status, _, raw = post(url, "/openai/chat/completions", body,
                              {"Authorization": f"Bearer {gw.placeholder}"})  # fmt: skip
    assert status == 200
    sent = api.requests[-1]
    assert sent.body is not None and sent.body["stream_options"] == {"include_usage": True}
    assert sent.headers.get("authorization") == f"Bearer {REAL}"
    reported = [c["usage"] for c in sse_data(raw) if c.get("usage")][-1]
    usage = calls[0][1]
    assert (usage.input, usage.output) == (reported["prompt_tokens"], reported["completion_tokens"])


def test_a_responses_stream_is_metered_from_its_completed_event() -> None:
    with (
        OpenAIResponses() as api,
        gateway({"OPENAI_API_KEY": REAL, "OPENAI_BASE_URL": api.base_url}) as (gw, url, calls),
    ):
        body = {"model": "gpt-5", "stream": True, "input": "hi"}
        status, _, raw = post(url, "/openai/responses", body,
                              {"Authorization": f"Bearer {gw.placeholder}"})  # fmt: skip
    assert status == 200, raw
    done = [e for e in sse_data(raw) if e.get("type") == "response.completed"][-1]
    reported = done["response"]["usage"]
    usage = calls[0][1]
    cached = reported["input_tokens_details"]["cached_tokens"]
    assert (usage.input + usage.cached, usage.output) == (
        reported["input_tokens"], reported["output_tokens"])  # fmt: skip
    assert usage.cached == cached


def test_a_gemini_stream_is_metered_from_its_last_chunk() -> None:
    with (
        GeminiFake() as api,
        gateway({"GEMINI_API_KEY": REAL, "GOOGLE_GEMINI_BASE_URL": api.url}) as (gw, url, calls),
    ):
        body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
        status, _, raw = post(
            url,
            "/gemini/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
            body,
            {"x-goog-api-key": gw.placeholder},
        )
    assert status == 200, raw
    last = sse_data(raw)[-1]["usageMetadata"]
    usage = calls[0][1]
    assert usage.model == "gemini-2.5-pro"
    assert (usage.input, usage.output) == (last["promptTokenCount"], last["candidatesTokenCount"])
    assert api.requests[-1].headers.get("x-goog-api-key") == REAL


def test_a_gemini_call_is_admitted_for_the_model_its_path_runs_not_one_its_body_names() -> None:
    """Gemini runs the model its URL names: a priced model named in the body must not let a
    call to an unpriced one past a cost cap (its cost would go unmetered)."""
    asked: list[str | None] = []

    def admit(api: Api, model: str | None) -> str | None:
        asked.append(model)
        return None if model == "gemini-2.5-pro" else f"no price is known for the model {model!r}"

    with (
        GeminiFake() as api,
        gateway({"GEMINI_API_KEY": REAL, "GOOGLE_GEMINI_BASE_URL": api.url}, admit) as (
            gw,
            url,
            _,
        ),
    ):
        body = {
            "model": "gemini-2.5-pro",
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        }
        status, _, _ = post(
            url, "/gemini/v1beta/models/unpriced-model:generateContent", body,
            {"x-goog-api-key": gw.placeholder},
        )  # fmt: skip
    assert asked == ["unpriced-model"]
    assert status == 402 and api.requests == []


@pytest.mark.parametrize("presented", ["", "sk-forged", "fh-gw-another-task", "Bearer x"])
def test_a_missing_forged_or_other_placeholder_gets_401_and_reaches_nothing(
    presented: str,
) -> None:
    with (
        FakeAnthropic() as api,
        gateway({"ANTHROPIC_API_KEY": REAL, "ANTHROPIC_BASE_URL": api.url}) as (_gw, url, calls),
        gateway({"ANTHROPIC_API_KEY": REAL}) as (other, _, _),
    ):
        key = other.placeholder if presented.startswith("fh-gw") else presented
        status, _, raw = post(url, "/anthropic/v1/messages", ANTHROPIC_BODY, {"x-api-key": key})
    assert status == 401
    assert json.loads(raw)["error"]["type"] == "authentication_error"
    assert api.requests == [] and calls == []
    assert REAL.encode() not in raw


def test_a_placeholder_after_its_task_ended_gets_401() -> None:
    with (
        FakeAnthropic() as api,
        gateway({"ANTHROPIC_API_KEY": REAL, "ANTHROPIC_BASE_URL": api.url}) as (gw, _, _),
    ):
        client, server = socket.socketpair()
        gw.close()
        serving = threading.Thread(target=gw.serve, args=(server, b""))
        serving.start()
        body = json.dumps(ANTHROPIC_BODY).encode()
        client.sendall(
            b"POST /anthropic/v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: "
            + gw.placeholder.encode()
            + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
            + body
        )
        answer = client.recv(65536)
        client.close()
        serving.join(10)
        server.close()
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert api.requests == []


def test_an_upstream_error_reaches_the_cli_as_sent() -> None:
    with (
        FakeAnthropic(mode="error") as api,
        gateway({"ANTHROPIC_API_KEY": REAL, "ANTHROPIC_BASE_URL": api.url}) as (gw, url, calls),
    ):
        status, _, raw = post(url, "/anthropic/v1/messages", ANTHROPIC_BODY,
                              {"x-api-key": gw.placeholder})  # fmt: skip
    assert status == 500
    error = {"type": "api_error", "message": "Internal server error"}
    assert json.loads(raw) == {"type": "error", "error": error}
    assert calls == []


@contextlib.contextmanager
def chat_call(url: str, placeholder: str, body: bytes) -> Iterator[http.client.HTTPResponse]:
    """A Chat Completions call through the gateway at `url`, its answer left for the test to
    read as it comes."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(
            "POST", "/openai/chat/completions", body, {"Authorization": f"Bearer {placeholder}"}
        )
        # An answer up to the connection's close holds the socket, past the connection's close.
        with connection.getresponse() as response:
            yield response
    finally:
        connection.close()


STREAM_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
EVENTS_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
STREAMED = b'{"model": "gpt-4o", "stream": true}'
USED = (
    b'data: {"model": "gpt-4o", "choices": [], '
    b'"usage": {"prompt_tokens": 5, "completion_tokens": 2}}\n\n'
)


def one_answer(first: bytes, then: threading.Event, rest: bytes) -> str:
    """An upstream that answers one call with `first`, and with `rest` only once `then` is
    set (or ten seconds have passed); its base URL."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                read_request(conn)
                conn.sendall(first)
                then.wait(10)
                conn.sendall(rest)

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.mark.parametrize("streamed", [False, True])
def test_a_chunked_answer_ending_across_two_reads_is_not_sent_to_the_api_twice(
    streamed: bool,
) -> None:
    """The last chunk's closing CRLF arrives in a read of its own: the gateway must wait for
    it, not reuse the connection with it unread, fail the next call on it and send that call
    again (billed twice, metered once)."""
    requests: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))
    body = json.dumps({"usage": {"prompt_tokens": 1, "completion_tokens": 1}}).encode()
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    if streamed:  # an event stream, passed in the upstream's own chunks
        body = b"data: " + body + b"\n\n"
        head = EVENTS_HEAD
    answer = head + b"%x\r\n" % len(body) + body + b"\r\n0\r\n"

    def serve() -> None:
        with listener:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with conn:
                    while (request := conn.recv(65536)) and request.endswith(b"}"):
                        requests.append(request)  # head and small body come in one read
                        conn.sendall(answer)
                        time.sleep(0.2)  # the final CRLF comes in a read of its own
                        conn.sendall(b"\r\n")

    threading.Thread(target=serve, daemon=True).start()
    base = f"http://127.0.0.1:{listener.getsockname()[1]}"
    with gateway({"OPENAI_API_KEY": REAL, "OPENAI_BASE_URL": base}) as (gw, url, calls):
        auth = {"Authorization": f"Bearer {gw.placeholder}"}
        asked = {"model": "gpt-4o", "stream": streamed}
        statuses = [post(url, "/openai/chat/completions", asked, auth)[0]
                    for _ in range(3)]  # fmt: skip
    listener.close()
    assert statuses == [200, 200, 200]
    assert len(requests) == 3 and len(calls) == 3


class Echo:
    """A hostile or careless upstream: answers 401 echoing every request header, in its
    headers and its body, in pieces that cut the key in two."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with self.listener:
            conn, _ = self.listener.accept()
            with conn:
                head, _ = read_request(conn)
                echoed = head.replace(b"\r\n", b" | ")
                conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nX-Echo: " + echoed + b"\r\n"
                             b"Connection: close\r\n\r\n")  # fmt: skip
                body = b'{"error": {"message": "Incorrect API key provided: ' + echoed + b'"}}'
                middle = body.index(REAL.encode()) + 5
                conn.sendall(body[:middle])
                conn.sendall(body[middle:])


def test_an_upstream_that_echoes_the_key_shows_the_agent_nothing_of_it() -> None:
    echo = Echo()
    with gateway({"OPENAI_API_KEY": REAL, "OPENAI_BASE_URL": echo.url}) as (gw, url, _):
        status, headers, raw = post(url, "/openai/chat/completions", {"model": "m"},
                                    {"Authorization": f"Bearer {gw.placeholder}"})  # fmt: skip
    assert status == 401
    assert REAL not in json.dumps(headers) and REAL.encode() not in raw
    assert b"[redacted]" in raw and "[redacted]" in headers["x-echo"]


def test_only_model_calls_pass() -> None:
    with (
        OpenAIChat() as api,
        gateway({"OPENAI_API_KEY": REAL, "OPENAI_BASE_URL": api.base_url}) as (gw, url, _),
    ):
        auth = {"Authorization": f"Bearer {gw.placeholder}"}
        files = post(url, "/openai/files", {}, auth)
        batches = post(url, "/openai/batches", {"input_file_id": "f"}, auth)
        nowhere = post(url, "/elsewhere/v1/messages", {}, auth)
        paths = ("/openai/models/..%2Ffiles", "/openai/models/%2e%2e", "/openai/v1/../files")
        walked = [post(url, path, {}, auth)[0] for path in paths]
    assert files[0] == batches[0] == 403 and nowhere[0] == 404
    assert walked == [403, 403, 403]
    assert api.requests == []


def test_a_call_past_the_budget_is_refused_in_the_apis_own_shape() -> None:
    refusal = "stopped at $0.50 of the $0.50 budget"
    with (
        OpenAIChat() as api,
        gateway(
            {"OPENAI_API_KEY": REAL, "OPENAI_BASE_URL": api.base_url},
            admit=lambda api, model: refusal,
        ) as (gw, url, calls),
    ):
        status, _, raw = post(url, "/openai/chat/completions", {"model": "gpt-4o"},
                              {"Authorization": f"Bearer {gw.placeholder}"})  # fmt: skip
    assert status == 402
    assert json.loads(raw)["error"]["message"] == f"forgehand: {refusal}"
    assert gw.refused == [refusal] and api.requests == [] and calls == []


@pytest.mark.parametrize("streamed", [False, True])
def test_answers_pass_as_they_come(streamed: bool) -> None:
    """The second piece is sent only once the client has the first: a gateway that buffered
    would never answer."""
    got_first = threading.Event()
    first, second = b"data: first\n\n", b"data: second\n\n"
    if streamed:  # in the upstream's own chunks
        first, second = EVENTS_HEAD + chunk(first), chunk(second) + b"0\r\n\r\n"
    else:
        first = STREAM_HEAD + first
    base = one_answer(first, got_first, second)
    with (
        gateway({"OPENAI_API_KEY": REAL, "OPENAI_BASE_URL": base}) as (gw, url, _),
        chat_call(url, gw.placeholder, STREAMED if streamed else b"{}") as response,
    ):
        assert response.read1(65536) == b"data: first\n\n"
        got_first.set()
        assert response.read() == b"data: second\n\n"


def test_the_agent_gets_placeholders_and_gateway_urls_and_no_real_key() -> None:
    env = {"PATH": "/bin", "ANTHROPIC_API_KEY": REAL, "ANTHROPIC_BASE_URL": "https://corp.example",
           "MY_COPY": REAL, "GEMINI_API_KEY": "g" * 20}  # fmt: skip
    found = upstreams(env)
    assert found["anthropic"].base == "https://corp.example"  # the operator's, as upstream
    out = agent_variables(env, found, "http://127.0.0.1:3128", "fh-gw-x")
    assert out["ANTHROPIC_API_KEY"] == out["MY_COPY"] == out["GEMINI_API_KEY"] == "fh-gw-x"
    assert out["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:3128/anthropic"
    assert out["GOOGLE_GEMINI_BASE_URL"] == "http://127.0.0.1:3128/gemini"
    assert REAL not in json.dumps(out) and "g" * 20 not in json.dumps(out)


def test_a_base_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="ANTHROPIC_BASE_URL"):
        upstreams({"ANTHROPIC_API_KEY": REAL, "ANTHROPIC_BASE_URL": "file:///etc"})


class RawUpstream:
    """An upstream on a raw socket that counts the connections it was given; `_serve` answers
    one."""

    def __init__(self) -> None:
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.listener.accept()
                self.connections += 1
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        raise NotImplementedError


class KeepAlive(RawUpstream):
    """An upstream that answers every request with a small JSON body and keeps the connection
    open (or, `closing`, closes it once the answer is sent, without saying so); it counts the
    connections it was given."""

    def __init__(self, closing: bool) -> None:
        self.closing = closing
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        body = b'{"model": "gpt-4o", "usage": {"prompt_tokens": 3, "completion_tokens": 1}}'
        with conn, contextlib.suppress(OSError):
            while True:
                read_request(conn)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
                if self.closing:
                    return


@pytest.mark.parametrize("closing", [False, True])
def test_calls_reuse_a_connection_to_the_upstream_and_survive_its_closing(closing: bool) -> None:
    upstream = KeepAlive(closing)
    with gateway({"OPENAI_API_KEY": REAL, "OPENAI_BASE_URL": upstream.url}) as (gw, url, calls):
        auth = {"Authorization": f"Bearer {gw.placeholder}"}
        answers = [post(url, "/openai/chat/completions", {"model": "gpt-4o"}, auth)[0]
                   for _ in range(3)]  # fmt: skip
    assert answers == [200, 200, 200] and len(calls) == 3
    assert upstream.connections == (3 if closing else 1)
    upstream.listener.close()


def test_calls_at_once_cannot_race_past_the_budget() -> None:
    """The budget is checked before a call and counted after it: an agent that sends many
    calls at once must not have them all admitted before the first is counted."""
    metered: list[list[tuple[Api, Usage]]] = []

    def admit(api: Api, model: str | None) -> str | None:  # a budget of one call
        return "stopped at $1.00 of the $1.00 budget" if metered[0] else None

    with (
        OpenAIChat(delay=0.3) as api,
        gateway({"OPENAI_API_KEY": REAL, "OPENAI_BASE_URL": api.base_url}, admit) as (
            gw, url, calls),
    ):  # fmt: skip
        metered.append(calls)
        threads = [
            threading.Thread(target=post, args=(url, "/openai/chat/completions",
                             {"model": "gpt-4o"}, {"Authorization": f"Bearer {gw.placeholder}"}))
            for _ in range(16)
        ]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        answered = len(api.completions)
    assert 1 <= answered <= MAX_CALLS
    assert len(gw.refused) == 16 - answered


def test_a_call_the_api_would_run_in_the_background_is_refused() -> None:
    """A background response is billed while the gateway sees no usage: it is not let out."""
    with (
        OpenAIResponses() as api,
        gateway({"OPENAI_API_KEY": REAL, "OPENAI_BASE_URL": api.base_url}) as (gw, url, calls),
    ):
        status, _, _ = post(url, "/openai/responses", {"model": "gpt-5", "background": True},
                            {"Authorization": f"Bearer {gw.placeholder}"})  # fmt: skip
    assert status == 403 and api.requests == [] and calls == []


def test_a_streamed_text_completion_is_asked_for_its_usage() -> None:
    """The scripted server, as the real API, reports a stream's usage only when asked."""
    with (
        OpenAIChat() as api,
        gateway({"OPENAI_API_KEY": REAL, "OPENAI_BASE_URL": api.base_url}) as (gw, url, calls),
    ):
        body = {"model": "gpt-3.5-turbo-instruct", "prompt": "hi", "stream": True}
        status, _, raw = post(url, "/openai/completions", body,
                              {"Authorization": f"Bearer {gw.placeholder}"})  # fmt: skip
    assert status == 200, raw
    sent = api.requests[-1]
    assert sent.body is not None and sent.body["stream_options"] == {"include_usage": True}
    assert "".join(c["choices"][0]["text"] for c in sse_data(raw) if c["choices"]) == FINAL
    assert calls == [("openai", Usage("gpt-3.5-turbo-instruct", input=100, output=20))]


def test_a_call_is_admitted_knowing_its_model_and_a_free_one_as_costing_nothing() -> None:
    asked: list[tuple[Api, str | None]] = []

    def admit(api: Api, model: str | None) -> None:
        asked.append((api, model))

    with (
        OpenAIChat() as api,
        gateway({"OPENAI_API_KEY": REAL, "OPENAI_BASE_URL": api.base_url}, admit) as (
            gw, url, _),
    ):  # fmt: skip
        auth = {"Authorization": f"Bearer {gw.placeholder}"}
        post(url, "/openai/chat/completions", {"model": "gpt-4o"}, auth)
        post(url, "/openai/models/gpt-4o", {}, auth)
    assert asked == [("openai", "gpt-4o"), ("openai", None)]


@pytest.mark.parametrize("chunked", [False, True])
def test_an_answer_the_agent_hangs_up_on_is_read_to_its_end_and_metered(chunked: bool) -> None:
    """The upstream bills the whole answer whoever reads it: the agent's hanging up mid-stream
    must not make its call free."""
    hung_up = threading.Event()
    reported = {"prompt_tokens": 7000, "completion_tokens": 900}
    # Megabytes more after the first event: the gateway's writes to the agent fail before the
    # end.
    piece = {"choices": [{"delta": {"content": "x" * 1000}}]}
    last = {"model": "gpt-4o", "choices": [], "usage": reported}
    rest = (
        b"data: %s\n\n" % json.dumps(piece).encode() * 4096
        + b"data: %s\n\ndata: [DONE]\n\n" % json.dumps(last).encode()
    )
    first = STREAM_HEAD + b"data: first\n\n"
    if chunked:
        first, rest = EVENTS_HEAD + chunk(b"data: first\n\n"), chunk(rest) + b"0\r\n\r\n"
    base = one_answer(first, hung_up, rest)
    metered = threading.Event()
    calls: list[Usage] = []

    def meter(api: Api, usage: Usage) -> None:
        calls.append(usage)
        metered.set()

    found = upstreams({"OPENAI_API_KEY": REAL, "OPENAI_BASE_URL": base})
    with Gateway(found, new_placeholder(), lambda api, model: None, meter) as gw:
        body = json.dumps({"model": "gpt-4o", "stream": True, "messages": []})
        with chat_call(gw.listen(), gw.placeholder, body.encode()) as response:
            assert response.read1(65536) == b"data: first\n\n"
        hung_up.set()
        assert metered.wait(30)
    assert calls == [Usage("gpt-4o", input=7000, output=900)]


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@pytest.mark.parametrize("across_reads", [False, True])
def test_a_key_the_upstreams_chunks_cut_in_two_never_reaches_the_agent_of_a_stream(
    across_reads: bool,
) -> None:
    # A streamed answer passes in the upstream's own framing: the agent's client takes the
    # framing out and would read the key whole.
    event = b'data: {"said": "' + REAL.encode() + b'"}\n\n'
    cut = event.index(REAL.encode()) + 9
    answer = chunk(b"data: first\n\n") + chunk(event[:cut]) + chunk(event[cut:])
    rest = chunk(USED) + b"0\r\n\r\n"
    got_first = threading.Event()
    if across_reads:  # the first read ends inside the framing that cuts the key
        split = len(answer) - len(chunk(event[cut:])) - 1
        answer, rest = answer[:split], answer[split:] + rest
    else:
        got_first.set()
    base = one_answer(EVENTS_HEAD + answer, got_first, rest)
    with (
        gateway({"OPENAI_API_KEY": REAL, "OPENAI_BASE_URL": base}) as (gw, url, calls),
        chat_call(url, gw.placeholder, b'{"model": "gpt-4o", "stream": true}') as response,
    ):
        first = response.fp.read1(65536)  # as framed: what the agent's client is given
        got_first.set()
        raw = first + response.fp.read()
    assert REAL.encode()[:9] not in raw
    assert len(gw.refused) == 1 and "key" in gw.refused[0]
    assert calls == [("openai", Usage("gpt-4o", input=5, output=2))]


def test_a_key_in_a_streams_trailers_never_reaches_the_agent() -> None:
    # Trailers follow the last chunk: not of the body, but passed on as the upstream sent them.
    trailers = b"0\r\nX-Echo: " + REAL.encode() + b"\r\n\r\n"
    at_once = threading.Event()
    at_once.set()
    base = one_answer(EVENTS_HEAD + chunk(b"data: 1\n\n") + chunk(USED), at_once, trailers)
    with gateway({"OPENAI_API_KEY": REAL, "OPENAI_BASE_URL": base}) as (gw, url, calls):
        raw = raw_call(url, gw.placeholder, STREAMED)
    assert REAL.encode()[:9] not in raw
    assert len(gw.refused) == 1 and "key" in gw.refused[0]
    assert calls == [("openai", Usage("gpt-4o", input=5, output=2))]


def test_a_key_split_across_reads_and_chunks_of_the_answer_is_hidden() -> None:
    """The upstream's chunked framing is undone before the key is looked for: a key cut in
    two by a chunk's end, and by the gateway's reads, is found all the same."""
    got_first = threading.Event()
    event = b'data: {"said": "' + REAL.encode() + b'"}\n\n'
    cut = event.index(REAL.encode()) + 9
    usage = {
        "model": "gpt-4o",
        "choices": [],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2},
    }
    last = b"data: %s\n\ndata: [DONE]\n\n" % json.dumps(usage).encode()

    small = b"".join(chunk(b"data: %d\n\n" % n) for n in range(1000))
    base = one_answer(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunk(b"data: first\n\n")
        + chunk(event[:cut])[:-2],
        got_first,
        b"\r\n" + chunk(event[cut:]) + small + chunk(last) + b"0\r\n\r\n",
    )
    with (
        gateway({"OPENAI_API_KEY": REAL, "OPENAI_BASE_URL": base}) as (gw, url, calls),
        chat_call(url, gw.placeholder, b'{"model": "gpt-4o"}') as response,
    ):
        first = response.read1(65536)
        got_first.set()
        answer = first + response.read()
    small = b"".join(b"data: %d\n\n" % n for n in range(1000))
    hidden = event.replace(REAL.encode(), b"[redacted]")
    assert answer == b"data: first\n\n" + hidden + small + last
    assert first.startswith(b"data: first\n\n") and REAL.encode()[:9] not in first
    assert calls == [("openai", Usage("gpt-4o", input=5, output=2))]


@pytest.mark.parametrize(
    "head",
    [
        b"POST /openai/models/x\nHost:y HTTP/1.1",
        b"POST /openai/models/x HTTP/1.1\r\nX-A: b\nHost: y",
    ],
)
def test_a_request_that_would_write_lines_of_its_own_upstream_is_refused(head: bytes) -> None:
    with (
        OpenAIChat() as api,
        gateway({"OPENAI_API_KEY": REAL, "OPENAI_BASE_URL": api.base_url}) as (gw, _, calls),
    ):
        client, server = socket.socketpair()
        serving = threading.Thread(target=gw.serve, args=(server, b""))
        serving.start()
        auth = b"Authorization: Bearer " + gw.placeholder.encode()
        client.sendall(head + b"\r\n" + auth + b"\r\nContent-Length: 0\r\n\r\n")
        answer = client.recv(65536)
        client.close()
        serving.join(10)
        server.close()
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert api.requests == [] and calls == []


def raw_call(url: str, placeholder: str, body: bytes, then: threading.Event | None = None) -> bytes:
    """A streamed Chat Completions call read raw to the connection's close, as a CLI's HTTP
    library sees it; `then` is set once the answer's head has come."""
    host, port = url.removeprefix("http://").split(":")
    head = (f"POST /openai/chat/completions HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
            f"Authorization: Bearer {placeholder}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")  # fmt: skip
    got = b""
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        while read := sock.recv(65536):
            got += read
            if then is not None and b"\r\n\r\n" in got:
                then.set()
    return got


@pytest.mark.parametrize("framing", ["chunked", "length", "close"])
def test_a_2xx_event_stream_passes_in_the_upstreams_own_framing(framing: str) -> None:
    """Not un-framed and framed again: the agent gets the upstream's bytes as they came (and,
    past an answer of a given length, nothing)."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    events = b"data: 1\n\n" + b"data: 2\n\ndata: 3\n\n" + USED
    if framing == "chunked":
        body = chunk(b"data: 1\n\n") + chunk(b"data: 2\n\ndata: 3\n\n") + chunk(USED)
        body, past, said = body + b"0\r\n\r\n", b"", b"transfer-encoding: chunked"
    elif framing == "length":
        body, past, said = events, b"stray", b"content-length: %d" % len(events)
    else:
        body, past, said = events, b"", b"connection: close"
    head += said + b"\r\n\r\n"
    at_once = threading.Event()
    at_once.set()  # an answer up to the close ends when the upstream closes: at once, not in 10 s
    base = one_answer(head + body + past, at_once, b"")
    with gateway({"OPENAI_API_KEY": REAL, "OPENAI_BASE_URL": base}) as (gw, url, calls):
        raw = raw_call(url, gw.placeholder, STREAMED)
    got_head, _, got = raw.partition(b"\r\n\r\n")
    assert said in got_head.lower() and got == body
    assert calls == [("openai", Usage("gpt-4o", input=5, output=2))]


@pytest.mark.parametrize("split", [False, True])
def test_an_upstream_that_echoes_the_key_in_a_2xx_stream_is_cut_there(split: bool) -> None:
    """A key cannot be replaced in a stream passed in the upstream's own chunks: the answer is
    cut before the first byte of it, even when it comes cut in two by the gateway's reads; the
    rest is read for its usage all the same."""
    event = chunk(b'data: {"said": "' + REAL.encode() + b'"}\n\n')
    cut = event.index(REAL.encode()) + 9
    first = EVENTS_HEAD + chunk(b"data: first\n\n") + event[:cut]
    rest = event[cut:] + chunk(USED) + b"0\r\n\r\n"
    got_head = threading.Event()
    if not split:
        first, rest = first + rest, b""
    base = one_answer(first, got_head, rest)
    with gateway({"OPENAI_API_KEY": REAL, "OPENAI_BASE_URL": base}) as (gw, url, calls):
        raw = raw_call(url, gw.placeholder, STREAMED, got_head)
    assert REAL.encode()[:2] not in raw.partition(b"\r\n\r\n")[2] and not raw.endswith(b"0\r\n\r\n")
    assert len(gw.refused) == 1 and "key" in gw.refused[0]
    assert calls == [("openai", Usage("gpt-4o", input=5, output=2))]


class Streams(RawUpstream):
    """An upstream that answers every request with a chunked event stream followed by `past`
    (bytes past its end, as a broken upstream sends them) and keeps the connection; it counts
    the connections it was given."""

    def __init__(self, past: bytes) -> None:
        self.answer = EVENTS_HEAD + chunk(b"data: 1\n\n") + chunk(USED) + b"0\r\n\r\n" + past
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while True:
                read_request(conn)
                conn.sendall(self.answer)


@pytest.mark.parametrize("past", [b"\r\n", b"HTTP/1.1 204 Stray\r\n\r\n", b"7\r\nstray\r\n"])
def test_bytes_past_a_streamed_answers_end_reach_no_one(past: bytes) -> None:
    """Bytes past the end of a chunked stream (a broken upstream, or one answering twice) do
    not reach the agent, and the connection they came on is not used again."""
    upstream = Streams(past)
    with gateway({"OPENAI_API_KEY": REAL, "OPENAI_BASE_URL": upstream.url}) as (gw, url, calls):
        answers = [raw_call(url, gw.placeholder, STREAMED) for _ in range(2)]
    upstream.listener.close()
    for raw in answers:
        body = raw.partition(b"\r\n\r\n")[2]
        assert b"Stray" not in body and b"stray" not in body
        whole = body.endswith(USED + b"\r\n0\r\n\r\n")
        # A CRLF past the end is no answer of its own: the answer is whole. Anything else cuts
        # it when it comes in the end's read (in a read of its own, it is never read).
        assert whole if past == b"\r\n" else whole or not body.endswith(b"0\r\n\r\n")
    assert upstream.connections == 2 and len(calls) == 2


def test_a_streamed_answers_end_reaches_the_agent_only_once_it_is_metered() -> None:
    """Passed in the upstream's own framing, its last bytes are held back until the meter has
    run: the agent's next call, once it has the end, is admitted knowing this one's spend."""
    body = chunk(b"data: 1\n\n") + chunk(USED) + b"0\r\n\r\n"
    base = one_answer(EVENTS_HEAD + body, threading.Event(), b"")
    metering, metered = threading.Event(), threading.Event()

    def meter(api: Api, usage: Usage) -> None:
        metering.set()
        metered.wait(10)

    found = upstreams({"OPENAI_API_KEY": REAL, "OPENAI_BASE_URL": base})
    with Gateway(found, new_placeholder(), lambda api, model: None, meter) as gw:
        host, port = gw.listen().removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            auth = b"Authorization: Bearer " + gw.placeholder.encode()
            head = b"POST /openai/chat/completions HTTP/1.1\r\n%s\r\nContent-Length: %d\r\n\r\n"
            sock.sendall(head % (auth, len(STREAMED)) + STREAMED)
            got = b""
            while not got.endswith(b"\r\n0\r\n"):  # all but the end's last CRLF
                got += sock.recv(65536)
            assert metering.wait(10)
            metered.set()
            while not got.endswith(body):
                got += sock.recv(65536)
