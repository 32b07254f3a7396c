"""`forgehand redeliver`: ask GitHub again for the webhook deliveries of a recent span that
never reached forgehand, since GitHub never retries on its own."""

from __future__ import annotations

import argparse
import sys

from app.cli.common import Command, with_settings
from app.settings import Settings, SettingsError
from app.store import connect


def _options(redeliver: argparse.ArgumentParser) -> None:
    redeliver.add_argument(
        "--since", default="3d", help="how far back: 90m, 6h, 2d (default and most: 3d)"
    )


def _redeliver(settings: Settings, args: argparse.Namespace) -> int:
    settings.require("APP_ID", "PRIVATE_KEY", "REDIS_URL")
    assert settings.redis_url is not None
    from app.github import App, GitHubError
    from app.parsing import parse_duration
    from app.redeliver import redeliver

    try:
        since = parse_duration(args.since)
    except ValueError as exc:
        raise SettingsError(f"--since: {exc}") from None
    redis = connect(settings.redis_url)
    try:
        asked = redeliver(App(settings, redis), redis, since)
    except GitHubError as exc:
        print(f"forgehand: {exc}", file=sys.stderr)
        return 1
    for delivery in asked:
        print(f"redelivering {delivery.guid} ({delivery.event}, failed {delivery.delivered_at})")
    print(f"{len(asked)} deliveries asked for again")
    return 0


COMMAND = Command(
    "redeliver", "Ask GitHub to redeliver webhook deliveries that never reached "
    "forgehand.", "APP_ID, PRIVATE_KEY (or PRIVATE_KEY_PATH), REDIS_URL.",
    with_settings(_redeliver), _options,
)  # fmt: skip
