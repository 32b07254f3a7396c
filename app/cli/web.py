"""`forgehand web`: the webhook receiver, dashboard and /metrics, once its port, settings and
Redis layout are checked."""

from __future__ import annotations

import argparse

from app.cli.common import Command, check_port, check_schema, serve, with_settings
from app.settings import Settings


def _web(settings: Settings, args: argparse.Namespace) -> int:
    settings.require("WEBHOOK_SECRET", "REDIS_URL", "APP_ID", "PRIVATE_KEY")
    assert settings.redis_url is not None
    check_port(settings)
    check_schema(settings.redis_url)
    serve(settings, settings.redis_url)
    return 0


COMMAND = Command(
    "web", "The webhook receiver, dashboard and /metrics, on HOST:PORT.",
    "WEBHOOK_SECRET, REDIS_URL, APP_ID, PRIVATE_KEY (or PRIVATE_KEY_PATH).",
    with_settings(_web),
)  # fmt: skip
