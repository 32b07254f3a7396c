"""The simulator served over HTTP on 127.0.0.1 (or every address), in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import httpx
import uvicorn

from simulator.github import GitHubSimulator, logs_host


class Server:
    """A GitHubSimulator behind a real HTTP server; job logs under /_logs, another path."""

    def __init__(self, sim: GitHubSimulator, host: str = "127.0.0.1") -> None:
        """`host` "0.0.0.0" lets containers on a bridge network reach it through the bridge's
        address, as they reach GitHub; this machine still reaches it on 127.0.0.1."""
        self.sim = sim
        with socket.socket() as s:
            s.bind((host, 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(
            self._asgi, host=host, port=self.port, log_level="warning", interface="asgi3"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the GitHub simulator did not start")
            time.sleep(0.02)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v3"

    async def _asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        query = scope["query_string"].decode()
        url = f"http://127.0.0.1:{self.port}{scope['raw_path'].decode()}"
        url = url if not query or "?" in url else f"{url}?{query}"
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"]]
        request = httpx.Request(scope["method"], url, headers=headers, content=body)
        if request.url.path.startswith("/_logs/"):
            response = logs_host(self.sim, request)
        else:
            response = self.sim.handle(request)
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": [(k.encode(), v.encode()) for k, v in response.headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": response.content})

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def read_request(conn: socket.socket) -> tuple[bytes, bytes]:
    """A whole request with a Content-Length, read from a raw socket: its head and its body
    (a server that closed with some of it unread would reset the connection)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += conn.recv(65536)
    return head, body
