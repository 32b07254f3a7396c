from __future__ import annotations

from redis import Redis

from app.store import Store, text
from tests import payloads as p


def agent_bases(store: Store) -> set[str]:
    with store.redis.pipeline(transaction=False) as pipe:
        store.read_agent_bases(pipe, p.REPO_ID)
        (bases,) = pipe.execute()
    return {text(b) for b in bases}


def test_an_agent_pull_requests_base_is_kept_while_it_is_open(redis: Redis) -> None:
    store = Store(redis)
    store.add_app_pull_request(p.REPO_ID, 12, 7, p.REPO, p.INSTALLATION, "main")
    store.add_app_pull_request(p.REPO_ID, 13, 8, p.REPO, p.INSTALLATION)
    assert agent_bases(store) == {"main"}
    store.note_base(p.REPO_ID, 13, "develop")  # backfilled by the sweep
    assert agent_bases(store) == {"main", "develop"}
    store.closed_pull_request(p.REPO_ID, 12)
    assert agent_bases(store) == {"develop"}
    assert store.is_app_pull_request(p.REPO_ID, 12)  # still the App's: its commands answer
    store.forget_app_pull_request(p.REPO_ID, 13)
    assert agent_bases(store) == set()
    assert not store.is_app_pull_request(p.REPO_ID, 13)
    assert [n for _r, n, _repo, _i in store.open_app_pull_requests()] == [12]
