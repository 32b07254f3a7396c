"""The names the web process answers to: loopback names and the host of PUBLIC_URL.

A web page the operator opens can rebind its own name to 127.0.0.1 (DNS rebinding) and so
reach the web process from the operator's browser; its requests still carry its own name in
`Host`, and get 421. The webhook route is exempt: GitHub's deliveries are signed, and a proxy
in front may name the process as it likes.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.parsing import hostname, is_loopback


def answers_to(authority: str, public_url: str | None) -> bool:
    name = hostname(authority)
    if not name:
        return False
    public = hostname(urlsplit(public_url).netloc) if public_url else ""
    return is_loopback(name) or name == public


class HostCheck:
    """ASGI middleware: 421 Misdirected Request for a foreign `Host`, on every route but
    `exempt` (the webhook's path)."""

    def __init__(self, app: ASGIApp, public_url: str | None, exempt: str) -> None:
        self.app = app
        self.public_url = public_url
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] != self.exempt:
            headers = dict(scope["headers"])
            authority = headers.get(b"host", b"").decode("latin-1")
            if not answers_to(authority, self.public_url):
                refusal = PlainTextResponse(
                    "421 Misdirected Request: this server answers only to its own names "
                    "(loopback, or the host of PUBLIC_URL)",
                    status_code=421,
                )
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)
