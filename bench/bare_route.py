"""The ceiling in bench/intake.py: a Starlette route that reads the body and answers 202."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def receive(request: Request) -> Response:
    await request.body()
    return Response(status_code=202)


app = Starlette(routes=[Route("/api/github/webhooks", receive, methods=["POST"])])
