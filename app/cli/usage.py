"""`forgehand usage`: tokens and cost of the agents' model calls by day, repository and agent,
as forgehand's gateway metered them; read from REDIS_URL or a `forgehand dev` running here."""

from __future__ import annotations

import argparse
import json
import math

from redis.exceptions import RedisError

from app.cli.common import Command, local_redis_url, with_settings
from app.settings import Settings, SettingsError
from app.store import connect, spend
from jobs.boundary import printable


def _options(usage: argparse.ArgumentParser) -> None:
    usage.add_argument(
        "--since", default="7d", help="how far back, in whole UTC days: 1d, 7d, 30d (default 7d)"
    )
    usage.add_argument("--json", action="store_true", help="one JSON array")


def _usage(settings: Settings, args: argparse.Namespace) -> int:
    from app.parsing import parse_duration

    try:
        days = max(1, math.ceil(parse_duration(args.since).total_seconds() / 86400))
    except ValueError as exc:
        raise SettingsError(f"--since: {exc}") from None
    url = local_redis_url(settings)
    try:
        rows = spend.by_day(connect(url), days)
    except RedisError as exc:
        raise SettingsError(f"Redis at {url} does not answer: {exc}") from None
    if args.json:
        out = [{"day": r.day, "repo": r.repo, "agent": r.agent} | r.spend.as_json() for r in rows]
        print(json.dumps(out, indent=2))
        return 0
    print("\n".join(printable(line) for line in spend.usage_table(rows)))
    return 0


COMMAND = Command(
    "usage", "Tokens and cost of the agents' model calls, by day, repository and "
    "agent, as forgehand's gateway metered them.",
    "REDIS_URL, or a `forgehand dev` running in this directory.",
    with_settings(_usage), _options,
)  # fmt: skip
