"""The gateway's request side under a hostile agent: the memory its requests may hold, the
connections it serves at once."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import tracemalloc
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from typing import Any

import pytest

from jobs.boundary import gateway as module
from jobs.boundary.gateway import (
    MAX_BODY,
    MAX_CALLS,
    MAX_CONNECTIONS,
    MAX_HEAD,
    Gateway,
    new_placeholder,
    upstreams,
)
from tests.agents.models.openai_chat import OpenAIChat
from tests.jobs.boundary.test_gateway import REAL, post

MB = 1024 * 1024


class Counted(socket.socket):
    """The gateway's side of a connection, counting the bytes it reads from the agent."""

    read: list[int]  # shared by every connection of a test

    def recv(self, size: int, flags: int = 0) -> bytes:
        data = super().recv(size, flags)
        self.read.append(len(data))
        return data

    def recv_into(self, buffer: Any, size: int = 0, flags: int = 0) -> int:
        got = super().recv_into(buffer, size, flags)
        self.read.append(got)
        return got


@contextmanager
def connections(gw: Gateway, count: int, read: list[int]) -> Iterator[list[socket.socket]]:
    """`count` connections to `gw`, each served as the egress proxy serves one; closed (and
    their serving ended) on leaving."""
    with ExitStack() as stack:
        clients, threads = [], []
        for _ in range(count):
            client, server = socket.socketpair()
            stack.callback(client.close)
            counted = Counted(server.family, server.type, fileno=server.detach())
            counted.read = read
            stack.callback(counted.close)
            thread = threading.Thread(target=gw.serve, args=(counted, b""), daemon=True)
            thread.start()
            clients.append(client)
            threads.append(thread)
        yield clients
        for client in clients:
            client.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(10)


def test_many_connections_sending_large_bodies_hold_no_more_than_the_body_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hostile agent opens many connections, each sending a large body but never its last
    byte: the gateway must not hold them all (128 connections of 32 MB were 4 GB)."""
    monkeypatch.setattr(module, "BODY_BUDGET", 4 * MB, raising=False)
    count, size = 16, 2 * MB
    payload = b"x" * (size - 1)
    read: list[int] = []
    with (
        OpenAIChat() as api,
        Gateway(upstreams({"OPENAI_API_KEY": REAL, "OPENAI_BASE_URL": api.base_url}),
                new_placeholder(), lambda api, model: None, lambda api, usage: None) as gw,
    ):  # fmt: skip
        head = (
            b"POST /openai/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n"
            % (gw.placeholder.encode(), size)
        )

        def send(client: socket.socket) -> None:
            # The socket's timeout ends a send the gateway stopped reading.
            client.settimeout(3)
            with suppress(TimeoutError):
                client.sendall(head + payload)

        with connections(gw, count, read) as clients:
            senders = [threading.Thread(target=send, args=(c,)) for c in clients]
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join(30)
            held = sum(read)
        # Once those connections are gone their bytes are free again: a call passes.
        status, _, _ = post(gw.listen(), "/openai/chat/completions",
                            {"model": "gpt-4o", "pad": "y" * (3 * MB)},
                            {"Authorization": f"Bearer {gw.placeholder}"})  # fmt: skip
    # What came with each head, at most a read of it, is the only excess.
    assert held <= 4 * MB + count * (MAX_HEAD + 16 * 1024), held
    assert status == 200


def test_connections_past_the_cap_are_refused_and_those_served_go_on() -> None:
    read: list[int] = []
    with (
        Gateway(upstreams({"OPENAI_API_KEY": REAL}), new_placeholder(),
                lambda api, model: None, lambda api, usage: None) as gw,
        connections(gw, MAX_CONNECTIONS, read) as served,
    ):  # fmt: skip
        # A call without the key is answered on each: all are being served, and stay open.
        for client in served:
            client.sendall(b"GET /openai/models HTTP/1.1\r\nHost: x\r\n\r\n")
        answers = [client.recv(65536) for client in served]
        with connections(gw, 1, read) as (extra,):
            extra.settimeout(10)
            refused = extra.recv(65536)
        served[0].sendall(b"GET /openai/models HTTP/1.1\r\nHost: x\r\n\r\n")
        again = served[0].recv(65536)
    assert all(a.startswith(b"HTTP/1.1 401 ") for a in answers)
    assert refused.startswith(b"HTTP/1.1 503 ")
    assert again.startswith(b"HTTP/1.1 401 ")


@pytest.mark.parametrize("chunked", [False, True])
def test_the_agents_few_calls_of_a_few_megabytes_pass_at_once(chunked: bool) -> None:
    """Calls at once, each of several megabytes, as an agent sends them: none waits on the
    budget (the scripted server answers each only after a delay, so all overlap)."""
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "y" * (
        6 * MB)}]}).encode()  # fmt: skip
    with (
        OpenAIChat(delay=1) as api,
        Gateway(upstreams({"OPENAI_API_KEY": REAL, "OPENAI_BASE_URL": api.base_url}),
                new_placeholder(), lambda api, model: None, lambda api, usage: None) as gw,
    ):  # fmt: skip
        url = gw.listen()
        statuses: list[int] = []

        def call() -> None:
            host, port = url.removeprefix("http://").split(":")
            connection = http.client.HTTPConnection(host, int(port), timeout=30)
            sent: bytes | Iterator[bytes] = (
                iter([body[: 3 * MB], body[3 * MB :]]) if chunked else body
            )
            connection.request("POST", "/openai/chat/completions", sent,
                               {"Authorization": f"Bearer {gw.placeholder}"},
                               encode_chunked=chunked)  # fmt: skip
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
            connection.close()

        callers = [threading.Thread(target=call) for _ in range(MAX_CALLS)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(60)
        times = sorted(r.at for r in api.completions)
    assert statuses == [200] * MAX_CALLS
    assert all(r.body["messages"][0]["content"] == "y" * 6 * MB for r in api.completions)
    # All reached the model before the first was answered.
    assert times[-1] - times[0] < 1


@pytest.mark.parametrize(
    "framing", [b"Content-Length: %d\r\n\r\n", b"Transfer-Encoding: chunked\r\n\r\n%x\r\n"]
)
def test_a_body_past_max_body_gets_413_before_it_is_read(framing: bytes) -> None:
    read: list[int] = []
    with (
        Gateway(upstreams({"OPENAI_API_KEY": REAL}), new_placeholder(),
                lambda api, model: None, lambda api, usage: None) as gw,
        connections(gw, 1, read) as (client,),
    ):  # fmt: skip
        client.settimeout(10)
        client.sendall(b"POST /openai/chat/completions HTTP/1.1\r\nHost: x\r\n"
                       + framing % (MAX_BODY + 1))  # fmt: skip
        answer = client.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413 ")


def test_a_body_of_millions_of_tiny_values_is_refused_unparsed() -> None:
    # 30 MB of `{},` parse to ten million dicts: about 750 MB of the worker's memory for one
    # call, where a real context of that size is mostly long strings.
    body = b"[" + b"{}," * (10 * MB) + b"{}]"
    traced = tracemalloc.is_tracing()
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        with (
            Gateway(upstreams({"OPENAI_API_KEY": REAL}), new_placeholder(),
                    lambda api, model: None, lambda api, usage: None) as gw,
            connections(gw, 1, []) as (client,),
        ):  # fmt: skip
            client.settimeout(60)
            client.sendall(
                b"POST /openai/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                + gw.placeholder.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body
            )  # fmt: skip
            answer = client.recv(65536)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if not traced:
            tracemalloc.stop()
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"JSON values" in answer
    assert peak < 3 * len(body), f"{peak / MB:.0f} MB held for a {len(body) / MB:.0f} MB body"


def test_a_large_context_of_long_strings_passes() -> None:
    # What an agent sends: a few megabytes of messages, code and logs with braces in them.
    text = "def f(x):\n    return {'a': [x, {x: x}]}\n" * 40_000
    messages = [{"role": "user", "content": text} for _ in range(5)]
    body = {"model": "gpt-4o", "messages": messages}
    assert len(json.dumps(body)) > 5 * MB
    with (
        OpenAIChat() as server,
        Gateway(upstreams({"OPENAI_API_KEY": REAL, "OPENAI_BASE_URL": server.base_url}),
                new_placeholder(), lambda api, model: None, lambda api, usage: None) as gw,
    ):  # fmt: skip
        headers = {"Authorization": f"Bearer {gw.placeholder}"}
        status, _, _ = post(gw.listen(), "/openai/chat/completions", body, headers)
    assert status == 200


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "gpt-4o", "max_tokens": 1' + b"0" * 5000 + b"}",  # past Python's int digits
        b'{"model": "gpt-4o", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # past its depth
        b"not json",
        b'["gpt-4o"]',
    ],
    ids=["5000 digits", "nested 100000 deep", "not json", "not an object"],
)
def test_a_model_call_whose_body_this_parser_cannot_read_is_refused(body: bytes) -> None:
    # Its model, stream flag and the usage asked for decide its cost; another parser upstream
    # might read it, and run it unmetered.
    with (
        OpenAIChat() as api,
        Gateway(upstreams({"OPENROUTER_API_KEY": REAL, "OPENROUTER_BASE_URL": api.base_url}),
                new_placeholder(), lambda api, model: None, lambda api, usage: None) as gw,
    ):  # fmt: skip
        host, port = gw.listen().removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        auth = {"Authorization": f"Bearer {gw.placeholder}"}
        connection.request("POST", "/openrouter/chat/completions", body, auth)
        response = connection.getresponse()
        answer = response.read()
        connection.close()
    assert response.status == 400, answer
    assert b"not a JSON object" in answer
    assert api.completions == []
