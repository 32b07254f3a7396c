"""What the model gateway adds to a model call: latency per call, and a long streamed answer's
throughput, each through the gateway and straight to the same upstream on loopback, rounds
interleaved; prints a Markdown table of medians:

    .venv/bin/python bench/gateway.py [--calls 300] [--rounds 7] [--megabytes 10] [--parts]

- latency: a small Chat Completions call (a JSON answer with usage), each on a connection of
  its own as the gateway's clients and the gateway itself open them
- throughput: a streamed answer of --megabytes in server-sent events of ~200 bytes, read
  to its end, MB/s: sent as one body up to the connection's close, and in chunks of one event
  each, as the model APIs send their streams (Transfer-Encoding: chunked); the client reads
  raw bytes, as a CLI's HTTP library in C or Rust or Go would, and counts the bytes on the wire
- with --parts, where the time of a stream in chunks goes instead: the relay alone beside a
  bare copy loop, with each of its parts switched off in turn (see `parts`)
The upstream is a raw-socket server that writes pre-built answers, so that what is measured
is the gateway's own cost (a Python http.server would dominate both sides); it and the client
run in processes of their own, as the model API and the agent's CLI do, so that none of the
three waits for another's interpreter lock.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import platform
import socket
import statistics
import threading
import time
from multiprocessing import Queue
from unittest import mock

from jobs.boundary import gateway as boundary
from jobs.boundary.gateway import Gateway, new_placeholder, upstreams
from jobs.boundary.usage import UsageReader
from simulator.server import read_request

KEY = "sk-bench-0000000000"
SMALL = json.dumps({
    "id": "x", "object": "chat.completion", "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 2},
}).encode()  # fmt: skip


def big_stream(megabytes: int) -> bytes:
    event = {"choices": [{"index": 0, "delta": {"content": "lorem ipsum " * 12}}]}
    line = b"data: " + json.dumps(event).encode() + b"\n\n"
    body = line * (megabytes * 1_000_000 // len(line))
    tail = {"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 99}}
    return body + b"data: " + json.dumps(tail).encode() + b"\n\ndata: [DONE]\n\n"


def chunked(stream: bytes) -> bytes:
    """`stream` in chunks of one event each."""
    events = [e + b"\n\n" for e in stream.split(b"\n\n") if e]
    return b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"


class Upstream:
    """Answers every request with `small` (JSON) or, when the body says `stream`, `stream`
    (in chunks when it says `chunked` too)."""

    def __init__(self, listener: socket.socket, small: bytes, stream: bytes) -> None:
        self.small = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(small) + small
        )
        self.stream = stream
        self.chunked = chunked(stream)
        self.listener = listener

    def serve_forever(self) -> None:
        while True:
            conn, _ = self.listener.accept()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            _, body = read_request(conn)
            if b'"stream": true' not in body:
                conn.sendall(self.small)
                return
            framed = b'"chunked"' in body
            # It closes each connection after one answer, and says so: a gateway that kept it
            # would fail its next call on it first.
            framing = b"Transfer-Encoding: chunked\r\n" if framed else b""
            framing += b"Connection: close"
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n%s\r\n\r\n"
                         % framing)  # fmt: skip
            view = memoryview(self.chunked if framed else self.stream)
            for start in range(0, len(view), 65536):
                conn.sendall(view[start : start + 65536])


def bare_relay(upstream: str) -> str:
    """A relay that only copies bytes, each connection to the upstream: the ceiling of any
    relay in Python on this machine, to judge the gateway's own cost against."""
    host, port = upstream.removeprefix("http://").split(":")
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)

    def pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(262144):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def serve() -> None:
        while True:
            client, _ = listener.accept()
            origin = socket.create_connection((host, int(port)))
            threading.Thread(target=pipe, args=(client, origin), daemon=True).start()
            threading.Thread(target=pipe, args=(origin, client), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}"


def upstream_process(listener: socket.socket, megabytes: int) -> None:
    Upstream(listener, SMALL, big_stream(megabytes)).serve_forever()


def client_process(
    results: Queue[tuple[str, float, int]], urls: tuple[str, str, str], key: str, calls: int,
    rounds: int,
) -> None:  # fmt: skip
    """The calls, alternating straight, through the gateway and through the bare relay:
    (which, seconds, bytes)."""
    straight, gateway, relay = urls
    for _ in range(calls):
        results.put(("small straight", *call(straight, "", False)))
        results.put(("small gateway", *call(gateway, key, False)))
    for _ in range(rounds):
        for framing in ("", " chunked"):
            results.put((f"stream{framing} straight", *stream(straight, "", framing)))
            results.put((f"stream{framing} gateway", *stream(gateway, key, framing)))
            results.put((f"stream{framing} relay", *stream(relay, "", framing)))


def call(url: str, key: str, stream: bool) -> tuple[float, int]:
    """Seconds to the whole answer, and its size."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"model": "gpt-4o", "stream": stream, "messages": []}).encode()
    started = time.perf_counter()
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.request("POST", "/openai/chat/completions" if key else "/chat/completions",
                       body, {"Authorization": f"Bearer {key}",
                              "Content-Type": "application/json"})  # fmt: skip
    response = connection.getresponse()
    size = 0
    while chunk := response.read1(65536):
        size += len(chunk)
    connection.close()
    return time.perf_counter() - started, size


def stream(url: str, key: str, framing: str) -> tuple[float, int]:
    """Seconds to a streamed answer's last byte (the connection closed after it), and the
    bytes read, read raw: http.client reads a chunked body one chunk per call."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"model": "gpt-4o", "stream": True, "framing": framing.strip()}).encode()
    path = "/openai/chat/completions" if key else "/chat/completions"
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")  # fmt: skip
    started = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(head.encode() + body)
        buffer = bytearray(1 << 20)
        size = 0
        while read := sock.recv_into(buffer):
            size += read
    return time.perf_counter() - started, size


CHUNKED_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
PARTS = ("bare copy", "relay", "no key search", "no end parser", "no usage reader", "none")


class _LastRead:
    """The end of a chunked body taken from where the last read ends: no parser (and so no
    body without its framing for the key search: it searches nothing)."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []

    def feed(self, data: bytes) -> int | None:
        return len(data) if data.endswith(b"0\r\n\r\n") else None


class _NoUsage(UsageReader):
    def feed(self, data: bytes) -> None:
        pass


def relay_once(variant: str, answer: bytes) -> float:
    """Seconds to pass `answer` on, from its first byte read to its last sent."""
    up, upstream = socket.socketpair()
    client, agent = socket.socketpair()

    def write() -> None:
        view = memoryview(answer)
        for start in range(0, len(view), 65536):
            upstream.sendall(view[start : start + 65536])

    def read() -> None:
        buffer = bytearray(1 << 20)
        while agent.recv_into(buffer):
            pass

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    if variant == "bare copy":
        left = len(answer)
        while left:
            data = up.recv(boundary.CHUNK)
            left -= len(data)
            client.sendall(data)
    else:
        relay_alone(variant, up, client)
    took = time.perf_counter() - started
    client.close()
    for thread in threads:
        thread.join()
    for sock in (up, upstream, agent):
        sock.close()
    return took


def relay_alone(variant: str, up: socket.socket, client: socket.socket) -> None:
    """The gateway's relay of one answer, with the parts `variant` names switched off."""
    up.settimeout(boundary.UPSTREAM_TIMEOUT)  # as the gateway's own sockets
    client.settimeout(boundary.IDLE)
    keyed = variant not in ("no key search", "none")
    found = upstreams({"OPENAI_API_KEY": KEY} if keyed else {})
    reader_type = _NoUsage if variant in ("no usage reader", "none") else UsageReader
    ends = _LastRead if variant in ("no end parser", "none") else boundary._Ends
    with (
        Gateway(found, "placeholder", lambda api, model: None, lambda a, u: None) as gw,
        mock.patch.object(boundary, "_Ends", ends),
    ):
        answer = boundary._read_answer(up, "POST")
        reader = reader_type("openai", "gpt-4o", True)
        gw._relay(client, up, answer, reader, "openai", lambda read_whole: None, True)


def parts(rounds: int, megabytes: int) -> None:
    """Where the gateway's time goes on a stream in chunks of one event: its relay alone
    (`Gateway._relay`: no request, no connection set up) beside a bare copy loop, on socket
    pairs, with each of its parts switched off in turn (the key search, the end's parser, the
    usage reader), rounds interleaved. What none of them explains is the relay's own Python per
    read and its sockets' timeouts."""
    answer = CHUNKED_HEAD + chunked(big_stream(megabytes))
    took: dict[str, list[float]] = {variant: [] for variant in PARTS}
    for _ in range(rounds):
        for variant in PARTS:
            took[variant].append(relay_once(variant, answer))
    print(f"| {megabytes} MB in chunks of one event, relay alone, median of {rounds} | ms |")
    print("|---|---|")
    for variant in PARTS:
        print(f"| {variant} | {statistics.median(took[variant]) * 1000:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--megabytes", type=int, default=10)
    parser.add_argument("--parts", action="store_true", help="where the relay's time goes")
    args = parser.parse_args()
    if args.parts:
        parts(args.rounds, args.megabytes)
        return
    context = multiprocessing.get_context("fork")
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    upstream_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    server = context.Process(target=upstream_process, args=(listener, args.megabytes))
    server.start()
    found = upstreams({"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": upstream_url})
    metered: list[object] = []
    placeholder = new_placeholder()
    results: Queue[tuple[str, float, int]] = context.Queue()
    with Gateway(
        found, placeholder, lambda api, model: None, lambda a, u: metered.append(u)
    ) as gateway:
        urls = (upstream_url, gateway.listen(), bare_relay(upstream_url))
        client = context.Process(
            target=client_process, args=(results, urls, placeholder, args.calls, args.rounds)
        )
        client.start()
        got = [results.get() for _ in range(2 * args.calls + 6 * args.rounds)]
        client.join()
    server.kill()
    server.join()
    metered_calls = args.calls + 2 * args.rounds
    assert len(metered) == metered_calls, "every call through the gateway is metered"
    direct = [s for name, s, _ in got if name == "small straight"]
    through = [s for name, s, _ in got if name == "small gateway"]
    d, t = statistics.median(direct) * 1000, statistics.median(through) * 1000
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"load average {' '.join(f'{n:.2f}' for n in os.getloadavg())} at the end")
    print()
    print("| measure | straight | through the gateway | ratio / added |")
    print("|---|---|---|---|")
    print(f"| small call, median ms ({args.calls} calls) | {d:.2f} | {t:.2f} | +{t - d:.2f} ms |")
    for framing, label in (("", "up to the close"), (" chunked", "in chunks of one event")):

        def rate(which: str, framing: str = framing) -> float:
            named = f"stream{framing} {which}"
            return statistics.median(n / s / 1e6 for name, s, n in got if name == named)

        rd, rt, rr = rate("straight"), rate("gateway"), rate("relay")
        print(f"| {args.megabytes} MB stream {label}, median MB/s ({args.rounds} rounds) | "
              f"{rd:.0f} | {rt:.0f} | {rt / rd:.2f}x |")  # fmt: skip
        print(f"| the same through a bare Python relay, MB/s | {rd:.0f} | {rr:.0f} | "
              f"{rr / rd:.2f}x |")  # fmt: skip
        # On a shared machine the ratio to the relay, measured in the same rounds, moves
        # less with the load than either ratio to a straight connection.
        print(f"| the gateway to the bare relay | | | {rt / rr:.2f}x |")


if __name__ == "__main__":
    main()
