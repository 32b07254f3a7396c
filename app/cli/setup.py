"""`forgehand setup`: register the GitHub App from app.yml through GitHub's manifest flow, on a
page served until the App is registered, and write .env (or show it, SETUP_ENV_FILE=-)."""

from __future__ import annotations

import argparse
import sys

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

    env = settings.setup_env_file
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
            print("Stopped before the App was registered; nothing was written.",
                  file=sys.stderr)  # fmt: skip
    if not registered:
        return 1
    if env is None:
        print("Registered: the last page showed APP_ID, PRIVATE_KEY and WEBHOOK_SECRET to copy "
              "into your .env (SETUP_ENV_FILE=-: nothing was written here).")  # fmt: skip
    else:
        print(f"Registered: {env} now holds APP_ID, PRIVATE_KEY and WEBHOOK_SECRET.")
    return 0


COMMAND = Command(
    "setup", "Register the GitHub App from app.yml (manifest flow) and write .env (with "
    "SETUP_ENV_FILE=-, as in the image, show it to copy); open the printed /setup URL in a "
    "browser.",
    "HOST and PORT where your browser and GitHub reach this machine.",
    with_settings(_setup),
)  # fmt: skip
