"""One task run's meter: what it admits under a cost cap, and how it records what was used."""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import pytest
from redis import Redis

from app.store import spend
from jobs.boundary import Gateway, Usage, new_placeholder, upstreams
from jobs.spend import Caps, TaskMeter
from simulator.server import read_request
from tests import payloads as p
from tests.agents.models.openai_chat import OpenAIChat
from tests.jobs.boundary.test_gateway import EVENTS_HEAD, REAL, RawUpstream, chunk, post

UNPRICED = "forgehand/no-such-model"


def meter(redis: Redis, said: list[str]) -> TaskMeter:
    where = spend.Where("t1", 1, 0, p.INSTALLATION, p.REPO, "command")
    return TaskMeter(redis, where, {}, Caps(task=5.0), said.append)


def two_calls(api: OpenAIChat, metered: TaskMeter, body: dict[str, Any]) -> list[int]:
    """The statuses of two calls of `body` through a gateway to `api` as OpenRouter."""
    with Gateway(
        upstreams({"OPENROUTER_API_KEY": REAL, "OPENROUTER_BASE_URL": api.base_url}),
        new_placeholder(), metered.admit, metered.record,
    ) as gw:  # fmt: skip
        auth = {"Authorization": f"Bearer {gw.placeholder}"}
        url = gw.listen()
        return [post(url, "/openrouter/chat/completions", body, auth)[0] for _ in range(2)]


def test_an_unpriced_model_is_refused_under_a_cap_but_on_openrouter_which_reports_its_cost(
    redis: Redis,
) -> None:
    metered = meter(redis, [])
    refused = metered.admit("openai", UNPRICED)
    assert refused is not None and "AGENT_PRICES" in refused
    assert metered.admit("openrouter", UNPRICED) is None


def test_openrouters_reported_cost_is_what_is_metered(redis: Redis) -> None:
    said: list[str] = []
    metered = meter(redis, said)
    metered.record("openrouter", Usage(UNPRICED, input=100, output=20, cost=0.0042))
    used = spend.task_spend(redis, "t1", 1)
    assert (used.calls, used.unknown, used.cost, used.tokens) == (1, 0, 0.0042, 120)
    assert said == []


def test_an_openrouter_answer_without_its_cost_is_unknown_and_then_fails_closed(
    redis: Redis,
) -> None:
    said: list[str] = []
    metered = meter(redis, said)
    metered.record("openrouter", Usage(UNPRICED, input=100, output=20))
    used = spend.task_spend(redis, "t1", 1)
    assert (used.calls, used.unknown, used.cost) == (1, 1, 0.0)
    assert said == [
        f"forgehand: OpenRouter reported no cost for a call, and no price is known for the model "
        f"{UNPRICED!r}: its calls are metered by tokens, their cost unknown (AGENT_PRICES can "
        "give one)"
    ]
    # Its next calls could count as free too: under a cap they are refused as elsewhere.
    refused = metered.admit("openrouter", UNPRICED)
    assert refused is not None and "AGENT_PRICES" in refused


@pytest.mark.parametrize("stream", [False, True])
def test_an_unpriced_openrouter_model_passes_a_cost_cap_metered_at_the_cost_it_reports(
    redis: Redis, stream: bool
) -> None:
    said: list[str] = []
    metered = meter(redis, said)
    body = {"model": UNPRICED, "stream": stream, "usage": {"foo": 1},
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    with OpenAIChat(cost=0.0042) as api:
        assert two_calls(api, metered, body) == [200, 200]
    # Asked for its cost, the agent's own usage options kept.
    assert [r.body["usage"] for r in api.completions] == [{"foo": 1, "include": True}] * 2
    used = spend.task_spend(redis, "t1", 1)
    assert (used.calls, used.unknown, used.cost) == (2, 0, 0.0084)
    assert said == []


def test_an_openrouter_answer_without_its_cost_says_so_and_its_next_call_is_refused(
    redis: Redis,
) -> None:
    said: list[str] = []
    metered = meter(redis, said)
    body = {"model": UNPRICED, "messages": [{"role": "user", "content": "hi"}]}
    with OpenAIChat() as api:
        assert two_calls(api, metered, body) == [200, 402]
    assert len(api.completions) == 1
    used = spend.task_spend(redis, "t1", 1)
    assert (used.calls, used.unknown) == (1, 1)
    assert len(said) == 1 and "OpenRouter reported no cost for a call" in said[0]


class Silent(RawUpstream):
    """An upstream whose streamed answers say nothing of their usage."""

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while True:
                read_request(conn)
                conn.sendall(EVENTS_HEAD + chunk(b'data: {"choices": []}\n\n') + b"0\r\n\r\n")


def test_an_answer_that_says_nothing_of_its_usage_is_a_call_of_unknown_cost(
    redis: Redis,
) -> None:
    said: list[str] = []
    metered = meter(redis, said)
    api = Silent()
    body = {"model": UNPRICED, "stream": True, "messages": []}
    with Gateway(
        upstreams({"OPENROUTER_API_KEY": REAL, "OPENROUTER_BASE_URL": api.url}),
        new_placeholder(), metered.admit, metered.record,
    ) as gw:  # fmt: skip
        auth = {"Authorization": f"Bearer {gw.placeholder}"}
        url = gw.listen()
        statuses = [post(url, "/openrouter/chat/completions", body, auth)[0] for _ in range(2)]
    # Not free: counted, its cost unknown; and OpenRouter's calls can no longer pass a cap on
    # the cost it did not report.
    assert statuses == [200, 402] and api.connections == 1
    used = spend.task_spend(redis, "t1", 1)
    assert (used.calls, used.unknown, used.cost) == (1, 1, 0.0)
    assert len(said) == 1 and "said nothing of what it used" in said[0]
