"""What every scripted model server shares: serving on 127.0.0.1 on a free port while its
context is open, recording each request, answering JSON, and telling its handlers when it
stops (so a "hanging" API lets go)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


@dataclass(frozen=True)
class Recorded:
    """One request as a fake got it."""

    method: str
    path: str  # as requested, query included
    headers: dict[str, str]  # names lower-cased
    body: Any  # the parsed JSON, the raw text where it is not JSON, or None when empty
    at: float = field(default_factory=time.monotonic)

    @property
    def route(self) -> str:
        """The path without its query."""
        return self.path.split("?", 1)[0]


class Handler(BaseHTTPRequestHandler):
    """The base of the fakes' handlers: HTTP/1.1 with explicit lengths (a stream closes its
    connection instead), and nothing logged to the test's output."""

    protocol_version = "HTTP/1.1"
    owner: FakeServer

    @classmethod
    def bound(cls, owner: FakeServer) -> type[Self]:
        """This handler serving `owner`."""
        return type(cls.__name__, (cls,), {"owner": owner})

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def recorded(self) -> Recorded:
        """The request, read and recorded with the fake."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = Recorded(self.command, self.path, headers, body)
        self.owner.record(request)
        return request

    def send_json(
        self,
        status: int,
        payload: Any,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def start_events(
        self, content_type: str = "text/event-stream", headers: Mapping[str, str] | None = None
    ) -> None:
        """The headers of a stream of server-sent events, which ends with the connection."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.close_connection = True

    def held(self, hang: bool, delay: float) -> bool:
        """A hanging API never answers: True once the fake stops, the connection to be closed
        unanswered. Otherwise a slow model thinks `delay` seconds first; False."""
        if hang:
            self.owner.wait_stopping()
            self.close_connection = True
            return True
        if delay:
            self.owner.wait_stopping(delay)
        return False


class FakeServer:
    """Subclasses call __init__ with the handler that serves their API."""

    def __init__(
        self, handler: type[Handler], *, delay: float = 0.0, write: tuple[str, str] | None = None
    ) -> None:
        self._handler = handler
        # A slow model: the seconds it thinks before each answer.
        self.delay = delay
        # (path, text): the model writes that new file (a plan) instead of fixing calc.py.
        self.write = write
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[Recorded] = []
        # The usage each answer reported, (input, output) tokens, as the real APIs report it.
        self.reported: list[tuple[int, int]] = []

    def record(self, request: Recorded) -> None:
        with self._lock:
            self.requests.append(request)

    def report(self, given: int, taken: int) -> None:
        with self._lock:
            self.reported.append((given, taken))

    def __enter__(self) -> Self:
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler.bound(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        assert self._server is not None, "the server runs only inside `with`"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT, without a path."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The URL that OpenAI-style clients take as their base: url + /v1."""
        return f"{self.url}/v1"

    def wait_stopping(self, seconds: float | None = None) -> bool:
        """Wait up to `seconds` (or for ever) for the server to stop; True if it did."""
        return self._stopping.wait(seconds)
