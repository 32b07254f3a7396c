from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis

from app.github import App
from app.redeliver import Delivery, redeliver, to_redeliver
from app.settings import parse
from tests import fakes
from tests import payloads as p

NOW = datetime.now(UTC)


def d(delivery_id: int, guid: str, ok: bool, minutes_ago: int) -> Delivery:
    return Delivery(delivery_id, guid, ok, NOW - timedelta(minutes=minutes_ago), "issues")


def test_only_guids_that_never_succeeded_are_asked_for_once() -> None:
    deliveries = [
        d(1, "a", False, 50), d(2, "a", False, 40),  # failed twice: ask with the newest
        d(3, "b", False, 30), d(4, "b", True, 20),  # redelivered fine already
        d(5, "c", True, 10),
        d(6, "e", False, 5000),  # older than asked for
    ]  # fmt: skip
    chosen = to_redeliver(deliveries, NOW - timedelta(hours=2))
    assert [(x.guid, x.id) for x in chosen] == [("a", 2)]


@pytest.fixture
def github() -> Iterator[fakes.FakeGitHub]:
    fake = fakes.FakeGitHub(clone_url="file:///nowhere")
    for _router in fakes.mocked(fake):
        yield fake


def _raw(delivery_id: int, guid: str, status: int, minutes_ago: int) -> dict[str, object]:
    when = (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"id": delivery_id, "guid": guid, "status_code": status, "delivered_at": when,
            "event": "issues", "action": "labeled", "redelivery": False}  # fmt: skip


def test_redeliver_pages_through_and_asks_at_most_once_per_guid(
    github: fakes.FakeGitHub, redis: Redis
) -> None:
    github.hook_deliveries = [_raw(i, f"g{i}", 200, i) for i in range(1, 250)]
    github.hook_deliveries += [_raw(1000, "lost-1", 503, 30), _raw(1001, "lost-2", 0, 31)]
    settings = parse({"APP_ID": str(p.APP_ID), "PRIVATE_KEY": fakes.app_key()[0],
                      "GITHUB_API_URL": fakes.API})  # fmt: skip
    app = App(settings, redis)
    first = redeliver(app, redis, timedelta(days=3))
    assert sorted(x.guid for x in first) == ["lost-1", "lost-2"]
    assert sorted(github.redelivered) == [1000, 1001]
    assert len(github.requests("GET", "^/app/hook/deliveries$")) == 3  # 251 deliveries, 100 a page
    assert redeliver(app, redis, timedelta(days=3)) == []  # already asked: never twice
    assert sorted(github.redelivered) == [1000, 1001]
