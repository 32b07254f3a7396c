"""`forgehand tasks`: the task records, newest first, as a table or JSON, or with --plan one
repository's fleet; read from REDIS_URL or the Redis of a `forgehand dev` running here."""

from __future__ import annotations

import argparse
import json
import time

from redis.exceptions import RedisError

from app.cli.common import Command, local_redis_url, positive, with_settings
from app.settings import Settings, SettingsError
from app.store import Store, connect, spend
from jobs.boundary import printable


def _options(tasks: argparse.ArgumentParser) -> None:
    tasks.add_argument("--json", action="store_true", help="one JSON array")
    tasks.add_argument(
        "--limit", type=positive, default=50, help="how many, newest first (default 50)"
    )
    tasks.add_argument("--plan", metavar="REPO", help="the fleet of one repository (owner/name)")


def _tasks(settings: Settings, args: argparse.Namespace) -> int:
    url = local_redis_url(settings)
    try:
        if args.plan:
            return _plan(Store(connect(url)), args.plan)
        redis = connect(url)
        records = Store(redis).recent(args.limit)
        spent = spend.tasks_spend(redis, [(r.id, r.run) for r in records])
    except RedisError as exc:
        raise SettingsError(f"Redis at {url} does not answer: {exc}") from None
    if args.json:
        out = [r.as_json() | {"usage": u.as_json()} for r, u in zip(records, spent, strict=True)]
        print(json.dumps(out, indent=2))
        return 0
    rows = [("ID", "KIND", "REPO", "NUMBER", "STATE", "ATTEMPT", "COST", "UPDATED", "WHY")]
    for r, used in zip(records, spent, strict=True):
        updated = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.updated))
        # Why a task failed can carry a CI log's or an agent's words: no control characters
        # reach the operator's terminal.
        why = printable(r.error.replace("\n", " "))
        rows.append(
            (r.id, r.task.kind.value, r.task.repo, f"#{r.task.number}", r.state.value,
             str(r.attempt) if r.attempt else "-", spend.cost_cell(used), updated,
             why if len(why) <= 80 else why[:79] + "…")
        )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if not records:
        print("(no tasks yet)")
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
    "tasks", "List tasks, newest first: id, kind, repository, issue/PR, state, "
    "attempt, cost, updated, and why a task failed or was escalated.",
    "REDIS_URL, or a `forgehand dev` running in this directory.",
    with_settings(_tasks), _options,
)  # fmt: skip
