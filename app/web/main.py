"""create_app(): routes and shared state; no logic lives here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from prometheus_client import CONTENT_TYPE_LATEST
from redis import Redis
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.dashboard import plan_page, usage_page
from app.dashboard import routes as dashboard
from app.dispatch import Dispatcher, job_timeout
from app.settings import Settings
from app.store import Store
from app.web.hosts import HostCheck
from app.web.metrics import render
from app.web.setup import routes as setup_routes
from app.web.tally import Tally, flush_forever
from app.web.triggers import Facts
from app.web.webhook import Intake, receive


async def healthz(request: Request) -> JSONResponse:
    redis: Redis = request.app.state.redis
    try:
        await run_in_threadpool(redis.ping)
    except RedisError as exc:
        return JSONResponse({"redis": f"unreachable: {exc}"}, status_code=503)
    return JSONResponse({"redis": "ok"})


async def metrics(request: Request) -> Response:
    # This process's latest counts first, so what it just answered is in what it serves.
    await run_in_threadpool(request.app.state.tally.flush, request.app.state.redis)
    body = await run_in_threadpool(render, request.app.state.redis)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def create_app(settings: Settings, redis: Redis) -> Starlette:
    settings.require("WEBHOOK_SECRET")
    store = Store(redis)
    facts = Facts(
        trigger_label=settings.trigger_label,
        plan_label=settings.plan_label,
        branch_prefix=settings.branch_prefix,
        command_prefix=settings.command_prefix,
        escalation_label=settings.escalation_label,
        app_id=settings.app_id,
    )
    tally = Tally()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        flusher = asyncio.create_task(flush_forever(tally, redis))
        yield
        flusher.cancel()
        with suppress(asyncio.CancelledError):
            await flusher

    app = Starlette(
        lifespan=lifespan,
        middleware=[
            Middleware(HostCheck, public_url=settings.public_url, exempt=settings.webhook_path)
        ],
        routes=[
            Route(settings.webhook_path, receive, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/", dashboard.work, methods=["GET"]),
            Route("/tasks", dashboard.index, methods=["GET"]),
            Route("/work/{owner}/{name}/{number:int}", dashboard.item, methods=["GET"]),
            Route("/tasks/{task_id}", dashboard.task_page, methods=["GET"]),
            Route("/tasks/{task_id}/cancel", dashboard.cancel, methods=["POST"]),
            Route("/tasks/{task_id}/retry", dashboard.retry, methods=["POST"]),
            Route("/plan/{owner}/{name}", plan_page, methods=["GET"]),
            Route("/usage", usage_page, methods=["GET"]),
            *setup_routes(settings, settings.setup_env_file),
        ],
    )
    app.state.settings = settings
    app.state.redis = redis
    app.state.tally = tally
    dispatcher = Dispatcher(store, job_timeout(settings.agent_timeout))
    app.state.intake = Intake(store, dispatcher, facts, tally)
    return app
