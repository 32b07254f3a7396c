"""Waking a repository's waiting tasks: each is queued again and looks at what it waits for."""

from __future__ import annotations

from app.dispatch import Dispatcher
from app.fleet.state import FleetState
from app.store import Store
from app.tasks import State


def wake(store: Store, dispatcher: Dispatcher, repo_id: int, origin: str) -> list[str]:
    """Queue every waiting task of the repository again; return the ids queued.

    The generation goes up first, so that a task deciding to wait at this very moment sees
    that it may have missed this wake-up (see `stale`)."""
    fleet = FleetState(store.redis)
    fleet.bump(repo_id)
    return _requeue(store, dispatcher, fleet, repo_id, origin, stale_only=False)


def wake_stale(store: Store, dispatcher: Dispatcher, origin: str) -> list[str]:
    """Queue again the waiting tasks that parked before their repository's last wake-up (they
    were still finishing their job when it came, so it could not queue them)."""
    fleet = FleetState(store.redis)
    woken = []
    for repo_id in fleet.repos_waiting():
        woken += _requeue(store, dispatcher, fleet, repo_id, origin, stale_only=True)
    return woken


def _requeue(
    store: Store,
    dispatcher: Dispatcher,
    fleet: FleetState,
    repo_id: int,
    origin: str,
    stale_only: bool,
) -> list[str]:
    current = fleet.generation(repo_id)
    woken = []
    for task_id in fleet.waiting(repo_id):
        record = store.get(task_id)
        if record is None or not record.state.active:
            fleet.unwait(repo_id, task_id)  # cancelled, or gone: its place is freed
            continue
        if record.state is not State.WAITING:
            continue  # already woken and queued or running; it keeps its place meanwhile
        if stale_only and int(fleet.parked(repo_id, task_id).get("generation", 0)) >= current:
            continue
        if dispatcher.enqueue(record.task, origin).enqueued:
            woken.append(task_id)
    return woken
