"""`forgehand tasks`: the work (issues and pull requests) as a table, the task records as
JSON, or with --plan one repository's fleet; read from REDIS_URL or the Redis of a
`forgehand dev` running here."""

from __future__ import annotations

import argparse
import json

from redis import Redis
from redis.exceptions import RedisError

from app.cli.common import Command, local_redis_url, positive, with_settings
from app.dashboard import work_text
from app.settings import Settings, SettingsError
from app.store import Store, connect, spend
from jobs.boundary import printable


def _options(tasks: argparse.ArgumentParser) -> None:
    tasks.add_argument("--json", action="store_true", help="one JSON array")
    tasks.add_argument(
        "--limit", type=positive, default=50,
        help="how many issues and pull requests (with --json: tasks), newest first (default 50)",
    )  # fmt: skip
    tasks.add_argument("--plan", metavar="REPO", help="the fleet of one repository (owner/name)")


def _tasks(settings: Settings, args: argparse.Namespace) -> int:
    url = local_redis_url(settings)
    try:
        if args.plan:
            return _plan(Store(connect(url)), args.plan)
        redis = connect(url)
        if args.json:
            return _tasks_json(redis, args.limit)
        lines = work_text.table(Store(redis), settings.max_attempts, args.limit)
    except RedisError as exc:
        raise SettingsError(f"Redis at {url} does not answer: {exc}") from None
    print("\n".join(lines))
    return 0


def _tasks_json(redis: Redis, limit: int) -> int:
    records = Store(redis).recent(limit)
    spent = spend.tasks_spend(redis, [(r.id, r.run) for r in records])
    out = [r.as_json() | {"usage": u.as_json()} for r, u in zip(records, spent, strict=True)]
    print(json.dumps(out, indent=2))
    return 0


def _plan(store: Store, repo: str) -> int:
    from app.fleet import plan

    rows = plan.read(store, repo)
    if not rows:
        print(f"(no tasks on {repo})")
        return 0
    print("\n".join(printable(line) for line in plan.text(rows).splitlines()))
    return 0


COMMAND = Command(
    "tasks", "List the work, most recently updated first: each issue and pull "
    "request forgehand worked on, with its title, state, attempts, last outcome, what to "
    "do next and its model spend. --json lists the tasks themselves, with their ids.",
    "REDIS_URL, or a `forgehand dev` running in this directory.",
    with_settings(_tasks), _options,
)  # fmt: skip
