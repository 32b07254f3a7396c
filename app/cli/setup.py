"""`forgehand setup`: register the GitHub App from app.yml through GitHub's manifest flow, on a
page served until the App is registered, and write .env."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.cli.common import Command, check_port, with_settings
from app.settings import Settings


def _setup(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from app.web import configured, serving, setup_app

    if configured(settings):
        print("forgehand is already registered: APP_ID and a private key are set.")
        return 0
    check_port(settings)
    server: serving.Server | None = None
    registered = False

    def done() -> None:
        nonlocal registered
        registered = True
        assert server is not None
        server.should_exit = True

    env = Path(".env")
    config = uvicorn.Config(
        setup_app(settings, env, done), host=settings.host, port=settings.port,
        log_level="warning",
    )  # fmt: skip
    server = serving.Server(config)
    print(f"Open http://{settings.host}:{settings.port}/setup in a browser on this machine.")
    print("(GitHub sends the browser back here, so use the address GitHub should reach.)")
    try:
        serving.run(server)
    finally:
        if not registered:
            print(f"Stopped before the App was registered; {env} was not written.",
                  file=sys.stderr)  # fmt: skip
    if not registered:
        return 1
    print(f"Registered: {env} now holds APP_ID, PRIVATE_KEY and WEBHOOK_SECRET.")
    return 0


COMMAND = Command(
    "setup", "Register the GitHub App from app.yml (manifest flow) and write .env; "
    "open the printed /setup URL in a browser.",
    "HOST and PORT where your browser and GitHub reach this machine.",
    with_settings(_setup),
)  # fmt: skip
