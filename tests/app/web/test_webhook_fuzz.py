"""Hostile and mangled input at the webhook endpoint: signed garbage, forged signatures."""

from __future__ import annotations

import copy
import hashlib
import hmac
import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis import Redis
from starlette.testclient import TestClient

from app.store.store import Store
from tests import payloads as p
from tests.app.web.test_webhook import PATH, make_client

EVENTS: dict[str, Any] = {
    "issues": p.issues(),
    "issue_comment": p.comment(),
    "pull_request": p.pr_closed(),
    "pull_request_review": p.review(),
    "check_suite": p.check_suite(),
    "check_run": p.check_run(),
    "status": p.status(),
    "installation": p.installation(),
    "installation_repositories": p.installation_repositories(),
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from paths(value, (*prefix, key))


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    event = draw(st.sampled_from(sorted(EVENTS)))
    payload = copy.deepcopy(EVENTS[event])
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(list(paths(payload))))
        parent = payload
        for key in where[:-1]:
            parent = parent[key]
        if draw(st.booleans()):
            parent[where[-1]] = draw(json_values)
        else:
            del parent[where[-1]]
        if not list(paths(payload)):
            break
    return event, payload


@pytest.fixture(scope="module")
def shared_client(redis_url: str) -> Iterator[tuple[TestClient, Redis]]:
    from app.store.redis_conn import connect

    redis = connect(redis_url)
    redis.flushdb()
    with make_client(redis) as client:
        yield client, redis
    redis.flushdb()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=mutated())
def test_signed_mangled_payloads_never_crash_or_start_wrong_work(
    shared_client: tuple[TestClient, Redis], case: tuple[str, dict[str, Any]]
) -> None:
    client, redis = shared_client
    redis.flushdb()  # each example from a clean slate, so replays behave the same
    event, payload = case
    body = p.encode(payload)
    response = client.post(PATH, content=body, headers=p.headers(event, body))
    assert response.status_code in (202, 400), response.text
    if response.status_code == 400:
        return
    for task_id in response.json()["tasks"]:
        record = Store(redis).get(task_id)
        assert record is not None
        task = record.task
        # Whatever the mutation, a task only ever comes from a qualifying payload.
        assert task.repo_id == payload["repository"]["id"]
        assert task.installation_id == payload["installation"]["id"]
        if event in ("issues", "issue_comment", "pull_request_review"):
            sender = payload["sender"]
            assert sender.get("type") != "Bot" and not str(sender["login"]).endswith("[bot]")
        if event == "issues":
            assert payload["label"]["name"] == "agent" and payload["action"] == "labeled"
        if event == "issue_comment":
            assert payload["comment"]["body"].strip().startswith("/agent")
            assert payload["comment"]["author_association"] in ("OWNER", "MEMBER", "COLLABORATOR")
        if event in ("check_run", "check_suite", "status", "pull_request_review"):
            assert "agent/" in task.branch


def test_ten_thousand_forged_signatures_are_all_refused(redis: Redis) -> None:
    body = p.encode(p.issues())
    good = "sha256=" + hmac.new(p.SECRET.encode(), body, hashlib.sha256).hexdigest()
    rng = random.Random(7)
    forged: set[str] = set()
    while len(forged) < 10_000:
        kind = rng.randrange(4)
        if kind == 0:  # random digest
            sig = "sha256=" + "".join(rng.choice("0123456789abcdef") for _ in range(64))
        elif kind == 1:  # the right digest with one character changed
            i = rng.randrange(7, len(good))
            sig = (
                good[:i]
                + rng.choice([c for c in "0123456789abcdef" if c != good[i]])
                + good[i + 1 :]
            )
        elif kind == 2:  # truncated, padded or re-cased
            sig = rng.choice([good[: rng.randrange(7, 71)], good + "0", good.upper()])
        else:  # signed with another secret
            secret = str(rng.random()).encode()
            sig = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        if sig != good:
            forged.add(sig)
    headers = p.headers("issues", body)
    with make_client(redis) as client:
        for sig in forged:
            answer = client.post(PATH, content=body, headers=headers | {"X-Hub-Signature-256": sig})
            assert answer.status_code == 401
    assert redis.keys("fh:task:*") == []
