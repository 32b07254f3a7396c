"""Shared fixtures: a real Redis (the machine's at REDIS_URL, else an embedded one per test
process), flushed per test on a database of its own."""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from redis import Redis

from app.store.redis_conn import connect, embedded_redis

# Tests never touch database 0, where a developer's own forgehand may keep its state;
# FORGEHAND_TEST_DB picks another, so that two test runs can share one Redis server. Under
# pytest-xdist each worker flushes the database it uses, so worker gwN takes the base + N: the
# default base 10 leaves the six workers of addopts 10 to 15, Redis's last databases.
TEST_DB = int(os.environ.get("FORGEHAND_TEST_DB", "10")) + int(
    os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
)


# The longest tests — a wheel built and installed into a fresh venv, whole stacks of processes
# waiting out heartbeats — start first: under pytest-xdist a worker that picked one of them up
# last would keep the run going alone for minutes after the others had finished.
FIRST = ("tests/test_install.py", "tests/e2e/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not item.nodeid.startswith(FIRST))


def _with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"{url.split('?')[0]}?db={db}"
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    shared = os.environ.get("REDIS_URL")
    if shared:
        probe = connect(shared)
        try:
            probe.ping()
        finally:
            probe.close()
        yield _with_db(shared, TEST_DB)
        return
    with embedded_redis() as url:
        yield _with_db(url, TEST_DB)


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    client = connect(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()
