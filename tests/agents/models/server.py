"""What every scripted model server shares: serving on 127.0.0.1 on a free port while its
context is open, and telling its handlers when it stops (so a "hanging" API lets go)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self


class FakeServer:
    """Subclasses say which handler serves their API (`handler`) and call __init__."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # The usage each answer reported, (input, output) tokens, as the real APIs report it.
        self.reported: list[tuple[int, int]] = []

    def report(self, given: int, taken: int) -> None:
        with self._lock:
            self.reported.append((given, taken))

    def handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def __enter__(self) -> Self:
        server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
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
