"""Counters kept in Redis, so web and workers on any machine add to the same numbers, and the
Prometheus text the web process serves from them at /metrics."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import suppress

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError
from rq import Worker

from app.dispatch import queue_for
from app.store import spend
from app.store.store import Store, text
from app.web.triggers import HANDLED_EVENTS

AGENT_BUCKETS = (5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, math.inf)
DELIVERIES = "fh:metrics:deliveries"
TASKS = "fh:metrics:tasks"
AGENT = "fh:metrics:agent_seconds"
ESCALATIONS = "fh:metrics:escalations"


def event_label(event: str) -> str:
    """The name a delivery is counted under: only known events, so that a forged header
    grows neither the label set nor the web process's counts."""
    return event if event in HANDLED_EVENTS else "other"


def count_delivery(redis: Redis, event: str, outcome: str, amount: int = 1) -> None:
    with suppress(RedisError):  # metrics never fail a delivery
        redis.hincrby(DELIVERIES, f"{event_label(event)}|{outcome}", amount)


def count_task(redis: Redis, kind: str, outcome: str) -> None:
    redis.hincrby(TASKS, f"{kind}|{outcome}", 1)


def count_escalation(redis: Redis) -> None:
    redis.incr(ESCALATIONS)


def observe_agent(redis: Redis, seconds: float) -> None:
    with redis.pipeline(transaction=False) as pipe:
        for bound in AGENT_BUCKETS:
            if seconds <= bound:
                pipe.hincrby(AGENT, _bucket(bound), 1)
        pipe.hincrbyfloat(AGENT, "sum", seconds)
        pipe.hincrby(AGENT, "count", 1)
        pipe.execute()


def _bucket(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else str(float(bound))


class RedisCollector(Collector):
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def collect(self) -> Iterator[Metric]:
        yield self._counter(
            "forgehand_deliveries", "Webhook deliveries by event and outcome", "event", DELIVERIES
        )
        yield self._counter("forgehand_tasks", "Finished tasks by kind and outcome", "kind", TASKS)
        states = GaugeMetricFamily(
            "forgehand_task_states", "Tasks Redis holds, by their state now", labels=["state"]
        )
        for state, count in Store(self.redis).state_totals().items():
            states.add_metric([state.value], float(count))
        yield states
        agent = self._hash(AGENT)
        buckets = [(_bucket(b), float(agent.get(_bucket(b), 0))) for b in AGENT_BUCKETS]
        yield HistogramMetricFamily(
            "forgehand_agent_duration_seconds", "Wall time of agent runs",
            buckets=buckets, sum_value=float(agent.get("sum", 0)),
        )  # fmt: skip
        escalations = CounterMetricFamily(
            "forgehand_escalations", "Pull requests handed to a human"
        )
        escalations.add_metric([], float(self.redis.get(ESCALATIONS) or 0))
        yield escalations
        depth = GaugeMetricFamily("forgehand_queue_depth", "Tasks waiting for a worker")
        depth.add_metric([], float(queue_for(self.redis).count))
        yield depth
        tokens = CounterMetricFamily(
            "forgehand_model_tokens", "Model tokens the agents used, through the gateway",
            labels=["repo", "agent", "kind"],
        )  # fmt: skip
        cost = CounterMetricFamily(
            "forgehand_model_cost_usd", "USD the agents' model calls of known price cost",
            labels=["repo", "agent"],
        )  # fmt: skip
        for row in spend.totals(self.redis):
            used = row.spend
            for kind in spend.KINDS:
                tokens.add_metric([row.repo, row.agent, kind], float(getattr(used, kind)))
            cost.add_metric([row.repo, row.agent], used.cost)
        yield tokens
        yield cost
        workers = GaugeMetricFamily("forgehand_workers", "RQ workers alive")
        workers.add_metric([], float(Worker.count(connection=self.redis)))
        yield workers

    def _counter(self, name: str, doc: str, label: str, key: str) -> CounterMetricFamily:
        """A counter from a hash whose fields are `<label value>|<outcome>`."""
        family = CounterMetricFamily(name, doc, labels=[label, "outcome"])
        for field, value in self._hash(key).items():
            family.add_metric(field.split("|", 1), float(value))
        return family

    def _hash(self, key: str) -> dict[str, str]:
        raw = self.redis.hgetall(key)
        return {text(k): text(v) for k, v in raw.items()}


def render(redis: Redis) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(redis))
    return generate_latest(registry)
