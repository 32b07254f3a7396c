"""The sweep finds what a missed webhook would have started, and only that."""

from __future__ import annotations

from app.github import App
from jobs.entry import worker_settings
from jobs.housekeeping import housekeeping, reconcile
from tests import payloads as p
from tests.jobs.conftest import BRANCH, World


def test_sweep_queues_missed_ci_failure_and_review_once(world: World) -> None:
    number = world.open_pull_request()
    head = world.github.head_sha(BRANCH)
    world.github.add_check_run(head, "tests")
    world.github.reviews[555] = {"id": 555, "body": "please", "state": "CHANGES_REQUESTED",
                                 "user": {"login": "alice"}}  # fmt: skip
    app = App(worker_settings(), world.redis)
    queued = reconcile(app, world.store, world.dispatcher)
    assert queued == [f"ci-{p.REPO_ID}-{head}", f"review-{p.REPO_ID}-{number}-555"]
    assert reconcile(app, world.store, world.dispatcher) == []  # queued already
    world.work()
    assert reconcile(app, world.store, world.dispatcher) == []  # and handled


def test_sweep_forgets_closed_pull_requests(world: World) -> None:
    number = world.open_pull_request()
    world.github.pulls[number]["state"] = "closed"
    app = App(worker_settings(), world.redis)
    assert reconcile(app, world.store, world.dispatcher) == []
    assert world.store.open_app_pull_requests() == []


def test_housekeeping_runs_once_per_interval_across_workers(world: World) -> None:
    assert housekeeping(worker_settings(), world.redis) is True
    assert housekeeping(worker_settings(), world.redis) is False


def test_without_an_app_housekeeping_only_prunes(world: World) -> None:
    from app.settings import parse

    assert housekeeping(parse({}), world.redis) is True
    assert world.github.calls == []


def test_finished_tasks_are_pruned_after_retention_and_live_ones_never(world: World) -> None:
    import time

    done = world.issue_task(7)
    world.run(done)
    assert world.store.prompt(done.id) and world.store.diff(done.id)  # until it is pruned
    world.github.add_issue(8, "Other")
    live = world.issue_task(8)
    world.enqueue(live)
    later = time.time() + 15 * 86400
    assert world.store.prune(later) == 1
    assert world.store.get(done.id) is None and world.store.events(done.id) == []
    assert world.store.log_tail(done.id) == [] and world.store.get(live.id) is not None
    assert world.store.prompt(done.id) == "" and world.store.diff(done.id) == ""
    assert world.store.on_target(p.REPO_ID, 7) == []
