"""What a worker does between jobs, once per interval across all workers: ask GitHub for lost
deliveries again, and sweep the App's open pull requests for CI failures and reviews that no
task answered (events missed during an outage)."""

from __future__ import annotations

import logging
import socket
import time
from datetime import timedelta

from redis import Redis

from app.dispatch import Dispatcher, job_timeout
from app.fleet import wake_stale
from app.github import App, GitHubError
from app.redeliver import redeliver
from app.settings import Settings
from app.store import Store
from app.tasks import Kind, Task
from app.web import triggers
from jobs import ci, day_budget

INTERVAL = 300
# The review states that start a task, as the REST API spells them (webhooks: lower case).
REVIEW_STATES = frozenset(s.upper() for s in triggers.REVIEW_STATES)
log = logging.getLogger("forgehand.housekeeping")


def housekeeping(settings: Settings, redis: Redis) -> bool:
    """Run unless another worker did within INTERVAL seconds; True when it ran."""
    if not redis.set("fh:housekeeping", socket.gethostname(), nx=True, ex=INTERVAL):
        return False
    store = Store(redis)
    pruned = store.prune(time.time() - settings.retention_days * 86400)
    if pruned:
        log.info("pruned %d finished tasks older than %d days", pruned, settings.retention_days)
    woken = day_budget.wake_due(store, Dispatcher(store, job_timeout(settings.agent_timeout)))
    if woken:
        log.info("a new UTC day: queued %s again", ", ".join(woken))
    if settings.app_id is None or settings.private_key is None:
        return True  # `dev` before the App is registered: nothing to ask GitHub
    app = App(settings, redis)
    try:
        redeliver(app, redis, timedelta(seconds=INTERVAL * 4))
    except GitHubError as exc:
        log.warning("redelivery skipped: %s", exc)
    dispatcher = Dispatcher(store, job_timeout(settings.agent_timeout))
    reconcile(app, store, dispatcher)
    wake_stale(store, dispatcher, "sweep: woken while it was deciding to wait")
    return True


def reconcile(app: App, store: Store, dispatcher: Dispatcher) -> list[str]:
    """Queue what the App's open pull requests still need; return the task ids queued."""
    queued = []
    for repo_id, number, repo, installation in store.open_app_pull_requests():
        api = app.installation(installation)
        try:
            pr = api.get(f"/repos/{repo}/pulls/{number}")
            if pr["state"] != "open":
                store.forget_app_pull_request(repo_id, number)
                continue
            head, branch = pr["head"]["sha"], pr["head"]["ref"]
            # Pull requests opened before bases were kept get theirs here.
            store.note_base(repo_id, number, pr["base"]["ref"])
            found: list[Task] = []
            runs, statuses = ci.read_checks(api, repo, head)
            failing = not ci.pending(runs, statuses) and ci.failing(runs, statuses)
            if failing and not store.escalated(repo_id, number):
                found.append(Task(Kind.CI, installation, repo_id, repo, number, "forgehand",
                                  sha=head, branch=branch))  # fmt: skip
            for review in api.get(f"/repos/{repo}/pulls/{number}/reviews", per_page=100) or []:
                user = review.get("user") or {}
                if review.get("state") in REVIEW_STATES and user.get("type") != "Bot":
                    found.append(Task(Kind.REVIEW, installation, repo_id, repo, number,
                                      user.get("login", ""), review_id=int(review["id"]),
                                      branch=branch))  # fmt: skip
        except GitHubError as exc:
            log.warning("could not sweep %s#%s: %s", repo, number, exc)
            continue
        for task in found:
            if store.get(task.id) is None and dispatcher.enqueue(task, "sweep").enqueued:
                queued.append(task.id)
    if queued:
        log.info("the sweep queued %s", ", ".join(queued))
    return queued
