"""The model gateway: the agent's only way to its model API, which holds the key and the meter.

The agent is given, for each model API the operator configured, a base URL that leads here
and a placeholder key valid for this one gateway while its task runs; the real key never
enters the sandbox. Each call is checked (the placeholder, a model-call path, the budget),
forwarded to the real API (or the operator's own base URL for it) with the real key, and its
answer passed back as it comes, chunk by chunk, while its usage is read from it
(jobs/boundary/usage.py). Inside the sandbox the gateway is reached through the same bridge and Unix
socket as the egress proxy (jobs/boundary/egress.py hands it the connections meant for it); with
`AGENT_SANDBOX=none` it listens on a loopback port of its own.
"""

from __future__ import annotations

import contextlib
import hmac
import http.client
import json
import re
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httptools

from jobs.boundary.usage import Api, Usage, UsageReader

# An answer is read as it arrives, up to this much at once (what the socket holds already).
CHUNK = 256 * 1024
MAX_HEAD = 64 * 1024
# A request body is read whole (its model and stream flag decide metering); a larger one gets
# 413. Agents send their whole context each turn: a few megabytes at most.
MAX_BODY = 32 * 1024 * 1024
# Bytes of request bodies one gateway holds at once, from the first byte read until their call
# has ended: a body's length is taken from it before the body is read (a chunked one's whole
# MAX_BODY, then what it did not use given back), and a body that finds too little waits
# unread. Without it, a hostile agent's 128 connections each sending 32 MB held 4 GB of the
# worker. Two maximal bodies fit: the agent's few calls of a few megabytes never wait. What a
# call holds besides (its body parsed, re-encoded, sent) lasts only while it holds one of the
# MAX_CALLS call slots.
BODY_BUDGET = 2 * MAX_BODY
# Connections one gateway serves at once; more are answered 503 and closed. Before its body
# is taken from the budget, a connection holds at most its head and one read past it.
MAX_CONNECTIONS = 64
# A body is parsed whole (its model, its stream flag, the usage options asked for). Parsed, a
# body of tiny values takes some 25 times its size — 30 MB of `{},` made 750 MB — while an
# agent's context is mostly long strings: past this many values (counted by their `{`, `[` and
# `,`, those in strings too) it is refused unparsed. A few megabytes of code and logs hold a
# few hundred thousand.
MAX_JSON_VALUES = 1_000_000
HEAD_READ = 16 * 1024
# Calls of one task in flight at once: each is admitted against the budget only while the
# ones before it are counted, so an agent's burst passes its cap by at most this many calls.
MAX_CALLS = 4
IDLE = 300.0  # seconds a kept-alive connection may wait for its next request
UPSTREAM_TIMEOUT = 600.0  # seconds without a byte from the model API
# When the agent hangs up while its answer streams, the upstream bills the whole answer all the
# same: it is read to its end (for its usage, passed to no one) for at most this long.
DRAIN = 300.0
PLACEHOLDER_PREFIX = "fh-gw-"
KEPT_CONNECTIONS = 8  # idle connections a gateway keeps to one upstream

# Where each API's documented default lives; AGENT_ENV's base URL for it replaces it.
DEFAULT_BASE: dict[Api, str] = {
    "anthropic": "https://api.anthropic.com",
    "openai": "https://api.openai.com/v1",
    "gemini": "https://generativelanguage.googleapis.com",
    "openrouter": "https://openrouter.ai/api/v1",
}
# The operator's variables: keys (first set wins) and base URLs, per API.
KEYS: dict[Api, tuple[str, ...]] = {
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"),
    "openai": ("OPENAI_API_KEY", "CODEX_API_KEY"),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "openrouter": ("OPENROUTER_API_KEY",),
}
BASES: dict[Api, tuple[str, ...]] = {
    "anthropic": ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_BASE"),
    "openai": ("OPENAI_BASE_URL", "OPENAI_API_BASE"),
    "gemini": ("GOOGLE_GEMINI_BASE_URL", "GEMINI_API_BASE"),
    "openrouter": ("OPENROUTER_BASE_URL", "OPENROUTER_API_BASE"),
}
# Only model calls pass: not the key's other powers (files, batches, fine-tuning, admin), whose
# spend the meter would not see.
CALLS: dict[Api, re.Pattern[str]] = {
    "anthropic": re.compile(r"/v1/(messages(/count_tokens)?|complete|models(/[^/]+)?)"),
    "openai": re.compile(
        r"(/v1)?/(chat/completions|completions|responses(/compact)?|embeddings|models(/[^/]+)?)"
    ),
    "gemini": re.compile(
        r"/v1(beta|alpha)?/models(/[^/:]+(:(generateContent|streamGenerateContent|countTokens|"
        r"embedContent))?)?"
    ),
    "openrouter": re.compile(r"(/v1)?/(chat/completions|completions|models(/[^/]+)?)"),
}
# Calls that cost nothing (listing models, counting tokens): admitted whatever their model.
FREE = re.compile(r"(.*/)?(models(/[^/:]+)?|messages/count_tokens|models/[^/:]+:countTokens)")
AUTH_HEADERS = ("x-api-key", "authorization", "x-goog-api-key", "api-key")
HOP_HEADERS = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate",
    "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length",
    "accept-encoding",
})  # fmt: skip

# Why a call may not start (the budget, an unpriced model under a cost cap), or None; given the
# call's API and model, None for a call that costs nothing.
Admit = Callable[[Api, str | None], str | None]
Meter = Callable[[Api, Usage], None]


@dataclass(frozen=True)
class Upstream:
    api: Api
    base: str  # scheme://host[:port][/path], no trailing slash
    key: str = field(repr=False)
    bearer: bool  # Authorization: Bearer, else the API's own key header

    def auth(self) -> tuple[str, str]:
        if self.bearer:
            return "Authorization", f"Bearer {self.key}"
        return ("x-goog-api-key" if self.api == "gemini" else "x-api-key"), self.key


def upstreams(env: Mapping[str, str]) -> dict[Api, Upstream]:
    """The model APIs the operator's variables (those named in AGENT_ENV) give a key for."""
    found: dict[Api, Upstream] = {}
    for api, names in KEYS.items():
        name = next((n for n in names if env.get(n)), None)
        if name is None:
            continue
        base = next((env[n] for n in BASES[api] if env.get(n)), DEFAULT_BASE[api])
        if urlsplit(base).scheme not in ("http", "https") or not urlsplit(base).hostname:
            raise ValueError(f"{BASES[api][0]} must be an http(s) URL, got {base!r}")
        bearer = api != "gemini" and (api != "anthropic" or name != "ANTHROPIC_API_KEY")
        found[api] = Upstream(api, base.rstrip("/"), env[name], bearer)
    return found


def agent_variables(
    env: Mapping[str, str], found: Mapping[Api, Upstream], url: str, placeholder: str
) -> dict[str, str]:
    """`env` as the agent gets it: each key it holds replaced by the placeholder (wherever its
    value appears), each API's base URL variables pointing at the gateway at `url`."""
    real = {u.key for u in found.values()}
    out = {name: placeholder if value in real else value for name, value in env.items()}
    for api in found:
        for name in KEYS[api]:
            if name in env:
                out[name] = placeholder
        for name in BASES[api]:
            out[name] = f"{url}/{api}"
    return out


def new_placeholder() -> str:
    return PLACEHOLDER_PREFIX + secrets.token_urlsafe(24)


class SecretFilter:
    """Replaces the real keys in a stream of bytes, holding back no more than the end of a
    chunk that could begin one of them."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = [k.encode() for k in keys if len(k) >= 8]
        self._held = b""

    def text(self, value: str) -> str:
        for key in self.keys:
            value = value.replace(key.decode(), "[redacted]")
        return value

    def feed(self, data: bytes) -> bytes:
        if self._held:
            data = self._held + data
        for key in self.keys:
            if key in data:
                data = data.replace(key, b"[redacted]")
        keep = max((_partial(data, key) for key in self.keys), default=0)
        self._held = data[len(data) - keep :] if keep else b""
        return data[: len(data) - keep] if keep else data

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        return held


def _partial(data: bytes, key: bytes) -> int:
    """How many bytes at the end of `data` begin `key`."""
    at = data.find(key[:1], max(0, len(data) - len(key) + 1))
    while at >= 0:
        if key.startswith(data[at:]):
            return len(data) - at
        at = data.find(key[:1], at + 1)
    return 0


def _error(api: Api, status: int, message: str) -> bytes:
    """An error body in the API's own shape, so the CLI shows its message."""
    if api == "anthropic":
        kinds = {401: "authentication_error", 402: "billing_error", 403: "permission_error",
                 404: "not_found_error", 413: "request_too_large"}  # fmt: skip
        body: object = {"type": "error", "error": {
            "type": kinds.get(status, "api_error"), "message": message}}  # fmt: skip
    elif api == "gemini":
        states = {401: "UNAUTHENTICATED", 402: "RESOURCE_EXHAUSTED", 403: "PERMISSION_DENIED",
                  404: "NOT_FOUND", 413: "INVALID_ARGUMENT"}  # fmt: skip
        body = {"error": {"code": status, "message": message,
                          "status": states.get(status, "UNAVAILABLE")}}  # fmt: skip
    else:
        codes = {401: "invalid_api_key", 402: "budget_exceeded", 403: "forbidden"}
        body = {"error": {"message": message, "type": "invalid_request_error",
                          "code": codes.get(status)}}  # fmt: skip
    return json.dumps(body).encode()


class _Closed(Exception):
    """The client went away or sent something that ends the connection."""


class _Budget:
    """BODY_BUDGET's bytes: taken before a body is read, given back once its call has ended."""

    def __init__(self, size: int) -> None:
        self._left = size
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def holding(self) -> Iterator[_Held]:
        held = _Held(self)
        try:
            yield held
        finally:
            self.give(held.size)

    def take(self, size: int) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: self._left >= size, IDLE):
                raise _Closed
            self._left -= size

    def give(self, size: int) -> None:
        with self._changed:
            self._left += size
            self._changed.notify_all()


class _Held:
    """What one request holds of the budget."""

    def __init__(self, budget: _Budget) -> None:
        self.budget = budget
        self.size = 0

    def take(self, size: int) -> None:
        self.budget.take(size)
        self.size += size

    def keep(self, size: int) -> None:
        """Give back all but `size`."""
        self.budget.give(self.size - size)
        self.size = size


@dataclass
class _Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes | bytearray

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n.lower() == name), None)


class Gateway:
    """One task's gateway. `admit` says why a call may not start (the budget), or None;
    `meter` gets each call's usage. Both are called from connection threads."""

    def __init__(
        self,
        found: Mapping[Api, Upstream],
        placeholder: str,
        admit: Admit,
        meter: Meter,
    ) -> None:
        self.upstreams = dict(found)
        self.placeholder = placeholder
        self.admit = admit
        self.meter = meter
        self.refused: list[str] = []  # why calls were refused (the budget), in order
        self._open = True
        self._filter_keys = [u.key for u in found.values()]
        self._lock = threading.Lock()
        self._calls = threading.BoundedSemaphore(MAX_CALLS)
        self._bodies = _Budget(BODY_BUDGET)
        self._serving = 0  # connections
        self._listener: socket.socket | None = None
        self._idle: dict[str, list[socket.socket]] = {}  # to each upstream

    # --- the loopback listener, for AGENT_SANDBOX=none ------------------------------------

    def listen(self) -> str:
        """Serve on a loopback port of its own; returns its URL."""
        listener = socket.create_server(("127.0.0.1", 0))
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}"

    def _accept(self, listener: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = listener.accept()
                threading.Thread(target=self._own, args=(client,), daemon=True).start()

    def _own(self, client: socket.socket) -> None:
        with client:
            self.serve(client, b"")

    def close(self) -> None:
        """From now on every call gets 401: its task has ended."""
        self._open = False
        with self._lock:
            idle = [c for kept in self._idle.values() for c in kept]
            self._idle.clear()
        for connection in idle:
            connection.close()
        if self._listener is not None:
            _shut(self._listener)
            self._listener.close()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- one connection -------------------------------------------------------------------

    def serve(self, client: socket.socket, early: bytes) -> None:
        """Answer requests on `client` until it closes; `early` is what was read of it
        already. Origin-form and absolute-form requests, and a CONNECT tunnel, are served."""
        with self._lock:
            full = self._serving >= MAX_CONNECTIONS
            if not full:
                self._serving += 1
        if full:
            with contextlib.suppress(OSError):
                client.settimeout(IDLE)
                _send(client, 503, [], b"forgehand gateway: too many connections\n")
            return
        try:
            self._serve(client, early)
        finally:
            with self._lock:
                self._serving -= 1

    def _serve(self, client: socket.socket, buffer: bytes) -> None:
        try:
            while True:
                client.settimeout(IDLE)
                with self._bodies.holding() as held:
                    request, buffer = _read_request(client, buffer, held)
                    if request is None:
                        return
                    if request.method == "CONNECT":
                        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        continue
                    keep = self._answer(client, request)
                if not keep or (request.header("connection") or "").lower() == "close":
                    return
        except (_Closed, OSError):
            return

    def _answer(self, client: socket.socket, request: _Request) -> bool:
        """Answer one request; whether the connection may carry another."""
        target = request.target
        if target.lower().startswith("http://"):
            target = "/" + target[7:].partition("/")[2]
        parts = urlsplit(target)
        api_name, _, rest = parts.path.lstrip("/").partition("/")
        rest = "/" + rest
        upstream = self.upstreams.get(api_name)  # type: ignore[call-overload]
        if upstream is None:
            known = ", ".join(f"/{a}" for a in self.upstreams) or "none configured"
            where = f"forgehand gateway: no model API at {parts.path[:100]!r} (serving {known})"
            body = json.dumps({"error": {"message": where}}).encode()
            return _send(client, 404, [("Content-Type", "application/json")], body)
        api: Api = upstream.api
        query = parse_qsl(parts.query, keep_blank_values=True)
        presented = [v for n, v in request.headers if n.lower() in AUTH_HEADERS]
        presented += [v for n, v in query if n == "key"]
        if not self._open or not any(self._valid(v) for v in presented):
            message = (
                "forgehand gateway: this key is not valid here (not this task's, or its task "
                "has ended)"
            )
            return _send(client, 401, _json_type(), _error(api, 401, message))
        # Escapes and dot segments are not in any model call's path; an upstream that decoded
        # them could be walked to another of its endpoints.
        if "%" in rest or "/." in rest or not CALLS[api].fullmatch(rest):
            message = f"forgehand gateway: only model calls pass, not {request.method} {rest[:100]}"
            return _send(client, 403, _json_type(), _error(api, 403, message))
        if _too_many_values(request.body):
            message = (
                f"forgehand gateway: request body has more than {MAX_JSON_VALUES:,} JSON values"
            )
            return _send(client, 413, _json_type(), _error(api, 413, message))
        if _in_background(request.body):
            message = "forgehand gateway: background responses are not let out (unmetered)"
            return _send(client, 403, _json_type(), _error(api, 403, message))
        with self._calls:
            return self._call(client, request, upstream, rest, query)

    def _call(
        self, client: socket.socket, request: _Request, upstream: Upstream, rest: str,
        query: list[tuple[str, str]],
    ) -> bool:  # fmt: skip
        """Admit, forward and meter one model call."""
        api = upstream.api
        body, model, streamed = _prepare(api, rest, request.body)
        request.body = body  # the agent's own, when re-encoded, is not held beside it
        free = FREE.fullmatch(rest) is not None
        if model is None and not free:
            # Its model, its stream flag and the usage asked for decide what it costs.
            message = "forgehand gateway: the request body is not a JSON object it can read"
            return _send(client, 400, _json_type(), _error(api, 400, message))
        refusal = self.admit(api, None if free else model)
        if refusal is not None:
            with self._lock:
                self.refused.append(refusal)
            return _send(client, 402, _json_type(), _error(api, 402, f"forgehand: {refusal}"))
        # Gemini streams server-sent events only when asked (`alt=sse`); else one JSON array.
        sse = streamed and (api != "gemini" or ("alt", "sse") in query)
        query = [(n, v) for n, v in query if n != "key"]
        path = urlsplit(upstream.base).path + rest + (f"?{urlencode(query)}" if query else "")
        headers = [(n, v) for n, v in request.headers
                   if n.lower() not in HOP_HEADERS and n.lower() not in AUTH_HEADERS]  # fmt: skip
        headers += [upstream.auth(), ("Accept-Encoding", "identity"),
                    ("Content-Length", str(len(body)))]  # fmt: skip
        try:
            sock, answer = self._send_upstream(upstream.base, request.method, path, headers, body)
        except (OSError, _BadAnswer) as exc:
            host = urlsplit(upstream.base).netloc
            message = f"forgehand gateway: could not reach {host}: {type(exc).__name__}"
            return _send(client, 502, _json_type(), _error(api, 502, message))

        def release(read_whole: bool) -> None:
            # Before the agent sees the end: its next call may come at once.
            if read_whole and answer.reusable:
                self._put_back(upstream.base, sock)
            else:
                sock.close()

        try:
            reader = UsageReader(api, model or "unknown", sse)
            return self._relay(client, sock, answer, reader, api, release, not free)
        except BaseException:
            sock.close()
            raise

    def _send_upstream(
        self, base: str, method: str, path: str, headers: list[tuple[str, str]],
        body: bytes | bytearray,
    ) -> tuple[socket.socket, _Answer]:  # fmt: skip
        """The request sent and the answer's head read, on a kept connection to the upstream
        when there is one (no new TLS handshake per call), else a new one. A kept connection
        the upstream closed meanwhile fails before any answer: the request is sent again on a
        new one, once; any other failure is not retried, since the upstream may have run
        (and billed) the call."""
        host = urlsplit(base).netloc.rpartition("@")[2]
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", *(f"{n}: {v}" for n, v in headers)]
        request = "\r\n".join([*lines, "", ""]).encode("latin-1", "replace") + body
        kept = self._take(base)
        while True:
            sock = kept if kept is not None else _connect(base)
            try:
                sock.sendall(request)
                return sock, _read_answer(sock, method)
            except ConnectionError:  # reset, broken pipe, or closed before any answer byte
                sock.close()
                if kept is None:
                    raise
                kept = None
            except (OSError, _BadAnswer):
                sock.close()
                raise

    def _take(self, base: str) -> socket.socket | None:
        with self._lock:
            idle = self._idle.get(base)
            return idle.pop() if idle else None

    def _put_back(self, base: str, sock: socket.socket) -> None:
        with self._lock:
            idle = self._idle.setdefault(base, [])
            if self._open and len(idle) < KEPT_CONNECTIONS:
                idle.append(sock)
                return
        sock.close()

    def _valid(self, presented: str) -> bool:
        value = presented.removeprefix("Bearer ").removeprefix("bearer ").strip()
        return hmac.compare_digest(value.encode(), self.placeholder.encode())

    def _relay(
        self, client: socket.socket, upstream: socket.socket, answer: _Answer,
        reader: UsageReader, api: Api, release: Callable[[bool], None], billed: bool,
    ) -> bool:  # fmt: skip
        """Pass the answer on as it comes, reading its usage and hiding the real keys;
        `release` gets whether the upstream's answer was read whole, once it ends. Should the
        agent hang up, the rest is still read (within DRAIN) for its usage. A model call
        (`billed`) answered 2xx without a word of its usage is metered as a call of unknown
        cost: not as free."""
        out = _Verbatim if _passes_verbatim(answer, reader) else _Reframed
        way = out(answer.body, self._filter_keys)
        frame = answer.body
        deadline: float | None = None  # once the agent has gone, or the answer was cut
        try:
            client.sendall(way.head(answer))
        except OSError:
            deadline = time.monotonic() + DRAIN
        data = answer.early
        try:
            while not frame.done:
                if not data:
                    if deadline is not None:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        upstream.settimeout(left)
                    data = upstream.recv(CHUNK)
                    if not data:
                        frame.closed()
                        break
                payload, data = way.take(data), b""
                if not payload:
                    continue
                reader.feed(payload)
                if deadline is None:
                    try:
                        way.send(client, payload)
                    except OSError:
                        deadline = time.monotonic() + DRAIN
                    except _Leak:
                        with self._lock:
                            self.refused.append(
                                "the model API's answer held the real key: it was cut there"
                            )
                        deadline = time.monotonic() + DRAIN
        except (_BadAnswer, OSError):
            pass  # cut short by the upstream: the agent sees it cut, as the upstream cut it
        read_whole = frame.done
        sent = read_whole and deadline is None and not frame.cut
        if deadline is not None:
            with contextlib.suppress(OSError):  # closed already when the answer closed it
                upstream.settimeout(UPSTREAM_TIMEOUT)
        release(read_whole)
        usage = reader.finish()
        if usage is None and billed and 200 <= answer.status < 300:
            usage = Usage(reader.model, said=False)
        if usage is not None:
            self.meter(api, usage)
        return sent and way.end(client)


class _Leak(Exception):
    """A real key in an answer that cannot be rewritten: it is cut there."""


def _passes_verbatim(answer: _Answer, reader: UsageReader) -> bool:
    """Whether an answer passes as the upstream framed it: a 2xx event stream, the big one,
    where no API echoes a request's header. Errors (where they do) and bodies are read
    whole, their keys replaced."""
    kind = next((v for n, v in answer.headers if n.lower() == "content-type"), "")
    return (
        200 <= answer.status < 300
        and reader.streamed
        and kind.lower().startswith("text/event-stream")
        and answer.body.kind != "none"
    )


class _Reframed:
    """An answer un-framed, its keys replaced, and framed again in chunks of its own: hiding a
    key changes the length. The upstream's framing is undone by reads as large as the socket
    holds, not chunk by chunk: its chunks are often one event of a hundred bytes."""

    def __init__(self, frame: _Frame, keys: Sequence[str]) -> None:
        self.frame = frame
        self.secret = SecretFilter(keys)

    def head(self, answer: _Answer) -> bytes:
        return _head(answer, self.secret, ("Transfer-Encoding", "chunked"))

    def take(self, data: bytes) -> bytes:
        return self.frame.feed(data)

    def send(self, client: socket.socket, payload: bytes) -> None:
        _write(client, self.secret.feed(payload))

    def end(self, client: socket.socket) -> bool:
        """The end, sent only once its usage is metered: whoever sees it sees the spend."""
        _write(client, self.secret.flush())
        client.sendall(b"0\r\n\r\n")
        return True


class _Search:
    """The keys looked for in a stream fed in pieces, a key cut across two of them too."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        self.keys = keys
        self._longest = max(map(len, keys), default=0)
        self._seen = b""  # the stream's last bytes, as long as the longest key
        self.begun = 0  # how many of them may begin a key

    def search(self, data: bytes) -> int:
        """-1 when a key came, else how many bytes at the stream's end may begin one."""
        seen, longest = self._seen, self._longest
        # Not `seen + data` whole: a copy of every read costs a tenth of the relay.
        if any(key in data or key in seen + data[: len(key) - 1] for key in self.keys):
            return -1
        tail = data[len(data) - longest :] if len(data) >= longest else seen + data
        self._seen = tail[len(tail) - longest :]
        self.begun = max((_partial(self._seen, key) for key in self.keys), default=0)
        return self.begun


class _Verbatim:
    """An answer passed as the upstream sent it, framing and all, up to its end: a key in it
    cannot be replaced without breaking the framing, so the answer is cut before it (raises
    _Leak). The last bytes of its end (or of an answer up to the close, the closing of the
    agent's connection) are held back until its usage is metered."""

    def __init__(self, frame: _Frame, keys: Sequence[str]) -> None:
        self.frame = frame
        self.secret = SecretFilter(keys)  # of the head
        self.keys = self.secret.keys
        self._plain = _Search(self.keys)  # the body without its framing
        self._raw = _Search(self.keys)  # the bytes as they come
        self._held = b""  # what may begin a key, or ends the answer

    def head(self, answer: _Answer) -> bytes:
        frame = self.frame
        if frame.kind == "chunked":
            framing = ("Transfer-Encoding", "chunked")
        elif frame.kind == "length":
            framing = ("Content-Length", str(frame.left))
        else:
            framing = ("Connection", "close")
        return _head(answer, self.secret, framing)

    def take(self, data: bytes) -> bytes:
        return self.frame.through(data)

    def send(self, client: socket.socket, payload: bytes) -> None:
        frame = self.frame
        if frame.cut:
            return
        # The keys are searched for in the body without its framing (as the agent's client
        # reads it): a key the upstream's chunks cut in two is found too; and in the bytes as
        # they come, which hold what is not of the body (a chunked answer's trailers).
        begun = self._plain.search(frame.plain)
        if begun < 0 or self._raw.search(payload) < 0:
            raise _Leak
        raw = self._held + payload
        keep = max(self._framed(begun, payload) if begun else 0, self._raw.begun)
        if frame.done and frame.kind != "close":
            keep = max(keep, 2)
        at = max(0, len(raw) - keep)
        _gather(client, [memoryview(raw)[:at]])
        self._held = raw[at:]

    def _framed(self, begun: int, payload: bytes) -> int:
        """How many bytes at the end of what is not sent yet hold the last `begun` bytes of
        the body (they may begin a key): those of the read's last piece, and the framing
        after it; all of it when the piece is shorter."""
        last = self.frame.last
        if begun > len(last):
            return len(self._held) + len(payload)
        return begun + len(payload) - payload.rfind(last) - len(last)

    def end(self, client: socket.socket) -> bool:
        _gather(client, [memoryview(self._held)])
        return self.frame.kind != "close"


# --- HTTP plumbing --------------------------------------------------------------------------


def _json_type() -> list[tuple[str, str]]:
    return [("Content-Type", "application/json")]


def _send(client: socket.socket, status: int, headers: list[tuple[str, str]], body: bytes) -> bool:
    reason = http.client.responses.get(status, "")
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{n}: {v}" for n, v in headers),
             f"Content-Length: {len(body)}", "", ""]  # fmt: skip
    client.sendall("\r\n".join(lines).encode() + body)
    return True


def _head(answer: _Answer, secret: SecretFilter, framing: tuple[str, str]) -> bytes:
    """The answer's head as the agent gets it: its own framing, no key."""
    headers = [(n, secret.text(v)) for n, v in answer.headers
               if n.lower() not in HOP_HEADERS]  # fmt: skip
    headers.append(framing)
    head = f"HTTP/1.1 {answer.status} {answer.reason}\r\n"
    head += "".join(f"{n}: {v}\r\n" for n, v in headers) + "\r\n"
    return head.encode("latin-1", "replace")


def _write(client: socket.socket, data: bytes) -> None:
    """One chunk of a chunked body, its framing and data gathered in one call, not copied."""
    if data:
        _gather(client, [memoryview(b"%x\r\n" % len(data)), memoryview(data),
                         memoryview(b"\r\n")])  # fmt: skip


def _gather(client: socket.socket, parts: list[memoryview]) -> None:
    """`parts` sent whole, in as few calls as the socket takes, none of them copied."""
    parts = [part for part in parts if part]
    while parts:
        sent = client.sendmsg(parts)
        while parts and sent >= len(parts[0]):
            sent -= len(parts[0])
            parts.pop(0)
        if parts and sent:
            parts[0] = parts[0][sent:]


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _connect(base: str) -> socket.socket:
    parts = urlsplit(base)
    host = parts.hostname or ""
    tls = parts.scheme == "https"
    sock = socket.create_connection((host, parts.port or (443 if tls else 80)), UPSTREAM_TIMEOUT)
    if not tls:
        return sock
    try:
        return ssl.create_default_context().wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


class _BadAnswer(Exception):
    """The upstream's answer breaks HTTP/1.1: it ends there."""


class _Frame:
    """An upstream answer's body as its framing says (a length, chunks, or up to the
    connection's close), fed as it is read: its payload, and whether it has ended."""

    def __init__(self, kind: str, length: int = 0) -> None:
        self.kind = kind  # "length", "chunked", "close" or "none"
        self.left = length  # of the length, or of the chunk being read
        self.done = kind == "none" or (kind == "length" and length == 0)
        self.extra = False  # bytes came past its end: the connection cannot be reused
        self.cut = False  # passed as it came: where it ended is not known, the agent gets no end
        self._ends: _Ends | None = None  # passed as it came, chunked: where it ends
        self.plain = b""  # passed as it came: the last read's body, without its framing
        self.last = b""  # and the last piece of it, as it stands in the read
        self._line = b""  # chunked: a size line not yet whole
        self._trailers: bytes | None = None  # chunked: after the last chunk, what came of them

    def closed(self) -> None:
        """The upstream closed the connection: the end of a body that ends so, else a cut."""
        self.done = self.kind == "close"

    def feed(self, data: bytes) -> bytes:
        if self.kind == "close":
            return data
        if self.kind == "length":
            payload = data[: self.left]
            self.left -= len(payload)
            self.done = self.left == 0
            self.extra = len(data) > len(payload)
            return payload
        if self._trailers is not None:
            self._end(data)
            return b""
        return self._chunks(data)

    def through(self, data: bytes) -> bytes:
        """`data` as it came, framing and all, up to the body's end; `plain` is then its body
        without the framing, and `last` the last piece of it as framed (a chunk's data)."""
        if self.kind != "chunked":
            self.plain = self.last = self.feed(data)
            return self.plain
        if self._ends is None:
            self._ends = _Ends()
        pieces = self._ends.pieces
        pieces.clear()
        complete = self._ends.feed(data)
        self.plain = b"".join(pieces)
        self.last = pieces[-1] if pieces else b""
        if complete is None:
            return data
        self.done = True
        if complete < 0:
            # Another answer or bytes no HTTP/1.1 parser takes came past its end, and where it
            # ended is not said: nothing of this read is passed on, and no end.
            self.extra = self.cut = True
            return data
        self.extra = complete < len(data)
        return data[:complete]

    def _chunks(self, data: bytes) -> bytes:
        # One step per chunk, and the APIs send a chunk per event of a hundred bytes or so:
        # kept to a regular expression's match and a slice.
        if self._line:
            data, self._line = self._line + data, b""
        view = memoryview(data)
        pieces: list[memoryview] = []
        at, size, left, match = 0, len(data), self.left, _CHUNK.match
        while at < size:
            if not left:
                found = match(data, at)
                if found is None:
                    if data.find(b"\r\n", at + 2) >= 0 or size - at > MAX_HEAD:
                        raise _BadAnswer("a bad chunk size line")
                    self._line = data[at:]  # the rest of the line is still to come
                    break
                at = found.end()
                left = int(found[1], 16)
                if not left:
                    self._trailers = b""
                    self._end(data[at:])
                    break
            end = at + left
            if end > size:
                end = size
            pieces.append(view[at:end])
            left -= end - at
            at = end
        self.left = left
        if len(pieces) == 1 and len(pieces[0]) == size:
            return data
        return b"".join(pieces)

    def _end(self, data: bytes) -> None:
        """After the last chunk: trailers (passed on to no one) up to a blank line."""
        rest = (self._trailers or b"") + data
        at = rest.find(b"\r\n\r\n")
        end = 2 if rest.startswith(b"\r\n") else (at + 4 if at >= 0 else 0)
        if end:
            self.done = True
            self.extra = len(rest) > end
        elif len(rest) > MAX_HEAD:
            raise _BadAnswer("trailers too long")
        else:
            self._trailers = rest


class _Ends:
    """Where a chunked body ends, found by httptools' parser (llhttp, in C) with no callback
    per chunk: an event stream's 10 MB are 50,000 chunks, each a step of a Python walk
    (`_Frame._chunks`, 70-100 ms per 10 MB) where the parser takes 2 ms."""

    def __init__(self) -> None:
        self._begun = 0
        self._complete = False
        self._last = b""  # the last bytes fed
        # The body of each read without its framing, for the key search: httptools calls this
        # once per chunk, and a list's own append runs no Python per call.
        self.pieces: list[bytes] = []
        self.on_body = self.pieces.append
        self._parser = httptools.HttpResponseParser(self)
        self._parser.feed_data(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")

    def on_message_begin(self) -> None:
        self._begun += 1

    def on_message_complete(self) -> None:
        self._complete = True

    def feed(self, data: bytes) -> int | None:
        """Fed the next read: None while the body goes on, else how much of `data` is of it,
        or -1 when bytes that are not of it came after its end."""
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if not self._complete:
                raise _BadAnswer(f"a malformed chunked body: {exc}") from None
            return -1
        if not self._complete:
            self._last = (self._last + data[-4:])[-4:]
            return None
        if self._begun > 1:
            return -1
        # The parser passes over CRs and LFs between answers without a word, and a chunked
        # body's last four bytes are a CRLF and the empty line's: its end is four bytes past
        # its last byte that is neither (in this read, or in the one before).
        tail = self._last + data
        crlf = len(tail) - len(tail.rstrip(b"\r\n"))
        return len(data) - (crlf - 4)


# A chunk's size line, after the CRLF that ends the chunk before it.
_CHUNK = re.compile(rb"(?:\r\n)?([0-9a-fA-F]{1,15})(?:;[^\r\n]*)?\r\n")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_BREAK = re.compile(r"[\r\n\x00]")


@dataclass
class _Answer:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: _Frame
    early: bytes  # what was read of the body with the head
    keep_alive: bool

    @property
    def reusable(self) -> bool:
        return self.keep_alive and not self.body.extra


def _read_answer(sock: socket.socket, method: str) -> _Answer:
    """An upstream answer's head (informational ones skipped), and how its body is framed."""
    buffer = b""
    while True:
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            if len(buffer) > MAX_HEAD:
                raise _BadAnswer("an answer head too long")
            chunk = sock.recv(CHUNK)
            if not chunk:
                raise ConnectionError("the upstream closed the connection before answering")
            buffer += chunk
        head, buffer = buffer[:end].decode("latin-1"), buffer[end + 4 :]
        first, *lines = head.split("\r\n")
        version, _, rest = first.partition(" ")
        code, _, reason = rest.partition(" ")
        if (
            not version.startswith("HTTP/1.")
            or len(code) != 3
            or not (code.isascii() and code.isdigit())
        ):
            raise _BadAnswer("a malformed status line")
        if not 100 <= int(code) < 200:
            break
    headers = [(n.strip(), v.strip()) for n, _, v in (line.partition(":") for line in lines)]
    found = {n.lower(): v for n, v in headers}
    status = int(code)
    tokens = {t.strip().lower() for t in found.get("connection", "").split(",")}
    keep_alive = "close" not in tokens and (version != "HTTP/1.0" or "keep-alive" in tokens)
    length = found.get("content-length", "").strip()
    if method == "HEAD" or status in (204, 304):
        frame = _Frame("none")
        frame.extra = bool(buffer)  # bytes past an answer with no body: never reuse it
    elif "chunked" in found.get("transfer-encoding", "").lower():
        frame = _Frame("chunked")
    elif length.isascii() and length.isdigit():
        frame = _Frame("length", int(length))
    else:
        frame, keep_alive = _Frame("close"), False
    return _Answer(status, reason, headers, frame, buffer, keep_alive)


def _too_many_values(body: bytes | bytearray) -> bool:
    # A body shorter than the limit cannot hold more values than it: most are not counted.
    if len(body) <= MAX_JSON_VALUES:
        return False
    return body.count(b"{") + body.count(b"[") + body.count(b",") > MAX_JSON_VALUES


def _in_background(body: bytes | bytearray) -> bool:
    """Whether a call asks the API to run it in the background (OpenAI Responses): it is
    billed while its answer says nothing of its usage."""
    return b'"background"' in body and re.search(rb'"background"\s*:\s*true', body) is not None


def _prepare(
    api: Api, rest: str, body: bytes | bytearray
) -> tuple[bytes | bytearray, str | None, bool]:
    """The body to forward, the model it names (None: the body is no JSON object this parser
    reads, though another might) and whether its answer streams. A streamed
    (Chat) Completions call is asked to report its usage (`stream_options.include_usage`), and
    an OpenRouter one its cost (`usage.include`)."""
    streamed = ":streamGenerateContent" in rest
    model = rest.rpartition("/models/")[2].partition(":")[0] if api == "gemini" else ""
    try:
        value = json.loads(body) if body else None
    except (ValueError, RecursionError):  # a number of 5,000 digits; nesting 100,000 deep
        return body, None, streamed
    if not isinstance(value, dict):
        return body, None, streamed
    # Gemini runs the model its path names; a `model` in its body is only words.
    if api != "gemini" and isinstance(value.get("model"), str):
        model = value["model"]
    asked = False
    if value.get("stream") is True:
        streamed = True
        # Chat Completions, and the legacy text completions, which take the same option.
        if rest.endswith("/completions"):
            asked = _ask(value, "stream_options", "include_usage")
    # OpenRouter's own cost of the call (USD, `usage.cost`) is what meters a model no price
    # table knows: the meter admits such a model under a cost cap only on OpenRouter.
    if api == "openrouter" and rest.endswith("/completions"):
        asked = _ask(value, "usage", "include") or asked
    if asked:
        body = json.dumps(value).encode()
    return body, model or "unknown", streamed


def _ask(value: dict[str, Any], name: str, option: str) -> bool:
    """Set `value[name][option]` true; whether it was not already."""
    options = value.get(name)
    options = options if isinstance(options, dict) else {}
    if options.get(option) is True:
        return False
    value[name] = options | {option: True}
    return True


def _read_request(
    client: socket.socket, buffer: bytes, held: _Held
) -> tuple[_Request | None, bytes]:
    """The next request, its body held in `held`, and what was read past it."""
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        if len(buffer) > MAX_HEAD:
            raise _Closed
        chunk = client.recv(HEAD_READ)
        if not chunk:
            if buffer.strip():
                raise _Closed
            return None, b""
        buffer += chunk
    head, buffer = buffer[:end], buffer[end + 4 :]
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    # What is passed on goes into forgehand's own request upstream: a bare LF, a NUL or a
    # control character would let the agent write lines of its own into it.
    if (len(parts) != 3 or not parts[2].startswith("HTTP/1.") or _CONTROL.search(parts[1])
            or any(_BREAK.search(line) for line in lines)):  # fmt: skip
        _send(client, 400, [], b"forgehand gateway: malformed request line\n")
        raise _Closed
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            _send(client, 400, [], b"forgehand gateway: malformed header line\n")
            raise _Closed
        headers.append((name, value.strip()))
    request = _Request(parts[0], parts[1], parts[2], headers, b"")
    if parts[0] == "CONNECT":
        return request, buffer
    body, buffer = _read_body(client, request, buffer, held)
    request.body = body
    return request, buffer


def _read_body(
    client: socket.socket, request: _Request, buffer: bytes, held: _Held
) -> tuple[bytearray, bytes]:
    if "chunked" in (request.header("transfer-encoding") or "").lower():
        held.take(MAX_BODY)
        body, buffer = _read_chunked(client, buffer)
        held.keep(len(body))
        return body, buffer
    raw = request.header("content-length") or "0"
    if not (raw.isascii() and raw.isdigit()):
        _send(client, 400, [], b"forgehand gateway: bad Content-Length\n")
        raise _Closed
    size = int(raw)
    if size > MAX_BODY:
        _send(client, 413, [], b"forgehand gateway: request body too large\n")
        raise _Closed
    held.take(size)
    # Read in place: never more than the body's own bytes held, nor copied as it grows.
    body = bytearray(size)
    early = min(size, len(buffer))
    body[:early] = buffer[:early]
    view = memoryview(body)
    got = early
    while got < size:
        read = client.recv_into(view[got:], min(CHUNK, size - got))
        if not read:
            raise _Closed
        got += read
    return body, buffer[early:]


def _read_chunked(client: socket.socket, buffer: bytes) -> tuple[bytearray, bytes]:
    body = bytearray()

    def line() -> bytes:
        nonlocal buffer
        while (end := buffer.find(b"\r\n")) < 0:
            if len(buffer) > MAX_HEAD:
                raise _Closed
            chunk = client.recv(HEAD_READ)
            if not chunk:
                raise _Closed
            buffer += chunk
        out, buffer = buffer[:end], buffer[end + 2 :]
        return out

    while True:
        try:
            size = int(line().split(b";")[0].strip(), 16)
        except ValueError:
            raise _Closed from None
        if size == 0:
            while line():  # trailers, up to the blank line
                pass
            return body, buffer
        if len(body) + size > MAX_BODY:
            _send(client, 413, [], b"forgehand gateway: request body too large\n")
            raise _Closed
        # Straight into the body: a chunk as large as the body is never held twice.
        while size:
            if not buffer:
                buffer = client.recv(min(CHUNK, size + 2))
                if not buffer:
                    raise _Closed
            piece = buffer[:size]
            body += piece
            size -= len(piece)
            buffer = buffer[len(piece) :]
        if line():  # the CRLF that ends the chunk
            raise _Closed
